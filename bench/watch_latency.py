"""Latency, throughput and memory of ``photoqa watch`` on real-size JPEGs, with ``index``
on the same files as the baseline, in one run.

    PYTHONPATH=. python bench/watch_latency.py            # N=300 at 10 files/s
    PYTHONPATH=. python bench/watch_latency.py --n 5000   # memory over many files
    PYTHONPATH=. python bench/watch_latency.py --no-hooks # the daemon's own cost

Phases (one daemon process, ``--workers`` decoding processes, ``--settle`` seconds):
1. paced: N files copied into the watched folder at ``--rate`` files/s (each written
   and closed like a tethering tool does). Latency = time the daemon logs the committed
   row minus the time the copy finished writing the file (p50, p95, max).
2. burst: N more files written beside the watched folder, then renamed into it as fast
   as possible (tethering tools do this); sustained images/s = N / (last commit - first
   rename).
3. ``photoqa index`` of the paced files, then of the burst's files, into a fresh
   database (so the burst meets the same database state as in 2), same workers: the
   second run's images/s (walk, pool start and the post-store hooks' final flush
   included, as a user waits for it). Ratio = 2 / 3.
RSS of the daemon and of its worker processes is sampled every second throughout.

Sources: the >= 5 MP camera JPEGs of ../shared/data (each copy gets 16 unique bytes
after the JPEG end marker, so every file has its own SHA-256), else synthetic 4000x3000
scenes. Targets (issue 4): at 10 files/s p95 <= settle + 1 s; burst >= 0.8 x index;
flat memory. The files are copies of a few shots (same pixels and EXIF): since each
exposure is learnt once (2026-12-07, branch camera2) the sensor stage learns at most one
frame per source, where it learnt ~1 copy in 10; figures in docs/BENCHMARKS.md
(2026-12-07, load 12-14: p50 0.45 s, p95 2.84 s, 44 ms of CPU a file against 155 ms).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("PHOTOQA_SHARED_DATA", REPO.parent / "shared" / "data"))


def sources(limit: int = 12) -> list[bytes]:
    from PIL import Image

    found = []
    for path in sorted(DATA.glob("**/*")) if DATA.is_dir() else []:
        if path.suffix.lower() not in (".jpg", ".jpeg") or "corrupt" in path.name:
            continue
        try:
            with Image.open(path) as im:
                if im.width * im.height >= 5_000_000:
                    found.append(path.read_bytes())
        except Exception:  # noqa: BLE001 - not a usable source
            continue
        if len(found) >= limit:
            break
    if found:
        return found
    from indexer.synthetic import scenes as synth

    out = []
    for seed in range(4):
        buf = io.BytesIO()
        Image.fromarray(synth.scene(seed, 4000, 3000)).save(buf, format="JPEG", quality=92)
        out.append(buf.getvalue())
    return out


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            out += [kid] + children(kid)
    return out


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of process ``pid`` so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """RSS of the daemon and its workers every second, and each process's CPU as last
    seen (``cpu``: pid -> seconds; a worker's last second before it exits is missed)."""

    def __init__(self, pid: int, done):
        super().__init__(daemon=True)
        self.pid, self.done, self.samples, self.halt = pid, done, [], threading.Event()
        self.cpu: dict[int, float] = {}

    def run(self):
        start = time.monotonic()
        while not self.halt.wait(1.0):
            kids = children(self.pid)
            if not rss_mb(self.pid):
                continue  # the daemon has exited
            for pid in [self.pid, *kids]:
                self.cpu[pid] = max(self.cpu.get(pid, 0.0), cpu_seconds(pid))
            self.samples.append((time.monotonic() - start, self.done(), rss_mb(self.pid),
                                 sum(rss_mb(k) for k in kids), len(kids)))


def copy_files(folder: Path, srcs: list[bytes], n: int, rate: float, tag: str) -> dict[str, float]:
    """Write n files (rate 0: as fast as possible); returns path -> wall time the write ended."""
    finished = {}
    start = time.monotonic()
    for i in range(n):
        if rate > 0:
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
        path = folder / f"{tag}{i:05}.jpg"
        with open(path, "wb") as fh:
            fh.write(srcs[i % len(srcs)])
            fh.write(f"{tag}{i:011}".encode()[:16].ljust(16, b"-"))
        finished[str(path)] = time.time()
    return finished


def committed(log: Path) -> dict[str, float]:
    """path -> wall time of the 'indexed' log line (written right after the commit)."""
    out = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "indexed":
            out[parts[2]] = datetime.fromisoformat(parts[0].replace("Z", "+00:00")).timestamp()
    return out


def rows(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM images").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300, help="files per phase (default 300)")
    ap.add_argument("--rate", type=float, default=10.0, help="paced phase, files/s (default 10)")
    ap.add_argument("--settle", type=float, default=2.0, help="daemon --settle (default 2.0)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--config", help="photoqa --config FILE for both watch and index")
    ap.add_argument("--no-hooks", action="store_true",
                    help="turn matching and sensor statistics off (the daemon's own cost only)")
    args = ap.parse_args()
    srcs = sources()
    print(f"sources: {len(srcs)} JPEGs, mean {sum(map(len, srcs)) / len(srcs) / 1e6:.1f} MB; "
          f"N={args.n} per phase, rate {args.rate}/s, settle {args.settle} s, workers {args.workers}")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "cli"]
    with tempfile.TemporaryDirectory(prefix="photoqa-bench-") as tmp:
        tmp = Path(tmp)
        if args.no_hooks:
            (tmp / "nohooks.toml").write_text("[match]\nenabled = false\n[sensor]\nenabled = false\n")
            cli += ["--config", str(tmp / "nohooks.toml")]
        elif args.config:
            cli += ["--config", str(Path(args.config).resolve())]
        print("config:", "matching and sensor statistics off" if args.no_hooks else args.config or "defaults")
        inbox, db, log = tmp / "inbox", tmp / "watch.db", tmp / "watch.log"
        (inbox / "paced").mkdir(parents=True)
        (inbox / "burst").mkdir()
        daemon = subprocess.Popen(cli + ["--db", str(db), "watch", str(inbox), "-j", str(args.workers),
                                         "--settle", str(args.settle), "--log-file", str(log)],
                                  cwd=REPO, env=env, stderr=subprocess.DEVNULL)
        wait_until(lambda: log.exists() and "catch-up" in log.read_text(), 60)
        sampler = Sampler(daemon.pid, lambda: rows(db))
        sampler.start()

        paced = copy_files(inbox / "paced", srcs, args.n, args.rate, "p")
        wait_until(lambda: len(committed(log)) >= args.n, 120 + args.n)  # logged after hooks
        done = committed(log)
        lat = [done[p] - t for p, t in paced.items() if p in done]

        # the burst is written first outside the watched tree, then renamed in as fast as
        # possible (the tethering pattern): the daemon, not the copying, sets the pace,
        # and index later reads the same files from the same page cache
        stage = tmp / "stage"
        stage.mkdir()
        staged = copy_files(stage, srcs, args.n, 0.0, "b")
        t0 = time.time()
        burst = {}
        for src in staged:
            dest = inbox / "burst" / Path(src).name
            os.rename(src, dest)
            burst[str(dest)] = time.time()
        copy_s = time.time() - t0
        wait_until(lambda: len(committed(log)) >= 2 * args.n, 120 + args.n)
        done = committed(log)
        ends = [done[p] for p in burst if p in done]
        watch_ips = len(ends) / (max(ends) - t0) if ends else 0.0

        stop_t = time.monotonic()
        daemon_cpu = sampler.cpu.get(daemon.pid, 0.0)
        all_cpu = sum(sampler.cpu.values())
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(30)
        stop_s = time.monotonic() - stop_t
        stop_line = [line for line in log.read_text().splitlines() if " stopped " in line][-1:]
        sampler.halt.set()
        sampler.join()

        # the baseline starts from the state the burst met: the paced files already indexed
        for phase in ("paced", "burst"):
            out = subprocess.run(cli + ["--db", str(tmp / "index.db"), "index", str(inbox / phase),
                                        "-j", str(args.workers), "--format", "json"],
                                 cwd=REPO, env=env, capture_output=True, text=True, check=True)
        index_ips = json.loads(out.stdout)["images_per_second"]

    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} cores; other jobs share them)")
    target = args.settle + 1.0
    print(f"\npaced {args.n} files at {args.rate}/s: committed {len(lat)}/{args.n}; latency from last "
          f"write to committed row: p50 {pct(lat, .5):.2f} s, p95 {pct(lat, .95):.2f} s, max {max(lat):.2f} s "
          f"(target p95 <= settle + 1 = {target:.1f} s: {'met' if pct(lat, .95) <= target else 'MISSED'})")
    print(f"burst {args.n} files (renamed in within {copy_s:.1f} s): watch sustained {watch_ips:.1f} images/s; "
          f"`photoqa index` same files {index_ips:.1f} images/s; ratio {watch_ips / index_ips:.2f} "
          f"(target >= 0.8: {'met' if watch_ips >= 0.8 * index_ips else 'MISSED'})")
    print(f"CPU before the stop (last 1-s sample): daemon {daemon_cpu:.1f} s, with its workers {all_cpu:.1f} s "
          f"= {1000 * all_cpu / (2 * args.n):.0f} ms a file")
    print(f"SIGTERM -> exit {code} in {stop_s:.2f} s; the daemon's last line: "
          f"{stop_line[0].split(' (', 1)[-1].rstrip(')') if stop_line else '-'}")
    print("\nRSS over time (MB): t_s  rows  daemon  workers(total, n)")
    step = max(1, len(sampler.samples) // 12)
    for t, n, main_mb, kids_mb, nkids in sampler.samples[::step] + sampler.samples[-1:]:
        print(f"  {t:6.0f}  {n:5}  {main_mb:6.1f}  {kids_mb:6.1f} ({nkids})")
    first, last = sampler.samples[len(sampler.samples) // 10], sampler.samples[-1]
    print(f"daemon RSS from 10% of the run to the end: {first[2]:.1f} -> {last[2]:.1f} MB "
          f"({last[2] - first[2]:+.1f} MB over {last[1] - first[1]} files)")


if __name__ == "__main__":
    main()
