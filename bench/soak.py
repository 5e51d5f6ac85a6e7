"""Soak: index a generated archive and watch throughput, memory and database size.

Generates ``--files`` small images (JPEG, PNG, WebP, TIFF; 64 to 640 px on the long side;
nested folders ``d<k>/e<j>/``; ``--dupes`` of them byte copies or re-encodes of others),
runs ``photoqa index`` on them in a process of its own and samples every ``--every``
seconds: rows stored, and the resident memory of the command and of each of its
workers (``/proc``). Then times ``dupes``, ``status`` and ``sql`` on the result.

    PYTHONPATH=. python bench/soak.py --files 100000 --workers 2     # the issue's soak
    PYTHONPATH=. python bench/soak.py --files 2000                   # a quick one

Prints img/s per interval and its ratio to the first full interval (the baseline of
this run: flat is ~1.0, degrading is < 1), peak RSS per process, database bytes per
image, and the report commands' latency against `photoqa --version` (start-up only).

2026-12-07, 18:59-19:58 UTC, 2 shared cores at load 10-21 then 2-5, commit 1ed2a73
(``--files 100000 --workers 2 --keep /work/soak100k --every 60``): all 100,000 files in
3,455 s (28.9 img/s overall, 6.6-98 per minute with the load); CPU per image 17-22 ms
in every minute (19 in the first, 17-18 in the last ten), where the run stopped
at 14,713 files before went 25 -> 77 ms; peak RSS the command 272 MB at 1,073 rows ->
476 MB at 100,000 (~2.1 kB per image: the matching index), decoding workers 104 MB,
verification workers 123 MB, forkserver 157 MB, resource tracker 13 MB; database
12,916 bytes per image (+1,119 for the ``.match-index``); ``status`` 0.20 s, ``sql``
0.09 s, ``dupes --format json`` 1.59 s against ``--version`` 0.08 s. docs/RELIABILITY.md
has the table.
"""
from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
FORMATS = [("JPEG", ".jpg", {"quality": 88}), ("PNG", ".png", {}), ("WEBP", ".webp", {"quality": 80}),
           ("TIFF", ".tif", {})]


def scene(rng: np.random.Generator, long_side: int) -> np.ndarray:
    """A smooth random scene with edges (so hashes differ), uint8 (h, w, 3)."""
    from indexer.synthetic.scenes import soak_scene

    return soak_scene(rng, long_side)


def _generate_chunk(job: tuple[Path, int, int, float, int]) -> int:
    """Files ``start`` to ``stop - 1`` of the archive (seeded by chunk, so chunks can be made in parallel);
    copies are of earlier files of the same chunk. Returns how many are copies."""
    root, start, stop, dupes, seed = job
    rng, pick = np.random.default_rng((seed, start)), random.Random(seed * 1_000_003 + start)
    written: list[Path] = []
    copies = 0
    for i in range(start, stop):
        folder = root / f"d{i % 50:02}" / f"e{(i // 50) % 20:02}"
        folder.mkdir(parents=True, exist_ok=True)
        if written and pick.random() < dupes:
            src = pick.choice(written)
            dest = folder / f"copy{i:06}{src.suffix}"
            if pick.random() < 0.5:
                dest.write_bytes(src.read_bytes())
            else:  # a re-encode: same pixels or near
                with Image.open(src) as im:
                    im.convert("RGB").save(dest.with_suffix(".jpg"), "JPEG", quality=80)
            copies += 1
            continue
        fmt, suffix, kwargs = FORMATS[i % len(FORMATS)]
        path = folder / f"img{i:06}{suffix}"
        buf = io.BytesIO()
        Image.fromarray(scene(rng, int(rng.integers(64, 641)))).save(buf, fmt, **kwargs)
        path.write_bytes(buf.getvalue())
        written.append(path)
    return copies


def generate(root: Path, files: int, dupes: float, seed: int = 0, processes: int = 2) -> int:
    """Write the archive (in ``processes`` processes, chunks of 1,000 files); returns how many files are
    copies of another."""
    jobs = [(root, start, min(start + 1000, files), dupes, seed) for start in range(0, files, 1000)]
    with multiprocessing.Pool(processes) as pool:
        return sum(pool.imap_unordered(_generate_chunk, jobs))


def tree_rss(pid: int) -> dict[int, tuple[str, int]]:
    """pid -> (name, RSS bytes) of ``pid`` and every process below it."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    tree, todo = {pid}, [pid]
    while todo:
        parent = todo.pop()
        for child, p in parents.items():
            if p == parent and child not in tree:
                tree.add(child)
                todo.append(child)
    out = {}
    for p in tree:
        try:
            with open(f"/proc/{p}/status") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
            out[p] = (fields["Name"].strip(), int(fields.get("VmRSS", "0 kB").split()[0]) * 1024)
        except (OSError, KeyError, ValueError):
            pass
    return out


def cpu_seconds(pids) -> float:
    """User + system CPU seconds so far of ``pids`` (those still alive)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, ValueError, IndexError):
            pass
    return total


def count(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT (SELECT count(*) FROM images) + (SELECT count(*) FROM failures)").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def cli(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "cli.py"), *args], check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--dupes", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--every", type=float, default=5.0)
    parser.add_argument("--keep", type=Path, default=None, help="folder to keep the archive and database in")
    parser.add_argument("--stop-after", type=float, default=None,
                        help="seconds of indexing after which to stop it with Ctrl-C (SIGINT) and report on what "
                             "was stored (the largest size reached, when the whole archive cannot finish in time)")
    parser.add_argument("--latency-of", type=Path, default=None, metavar="DB",
                        help="only time status/sql/dupes on this existing database (no archive, no indexing)")
    args = parser.parse_args()
    if args.latency_of:
        print(f"{args.latency_of}: {count(args.latency_of)} rows (images + failures)")
        report_latency(args.latency_of)
        return
    root = args.keep or Path(tempfile.mkdtemp(prefix="photoqa-soak-"))
    photos, db = root / "photos", root / "soak.db"
    started = time.perf_counter()
    if (root / "generated").exists():  # a rerun over a kept archive
        copies = int((root / "generated").read_text())
    else:
        copies = generate(photos, args.files, args.dupes)
        (root / "generated").write_text(str(copies))
    print(f"generated {args.files} files ({copies} copies) in {time.perf_counter() - started:.0f} s under {root}",
          flush=True)
    process = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "--db", str(db), "index", str(photos),
                                "-j", str(args.workers)], env={**os.environ, "PYTHONPATH": str(REPO)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak: dict[tuple[str, int], int] = {}  # (name, pid) -> peak RSS bytes: each worker on its own
    rates, last_n, last_t = [], 0, time.perf_counter()
    t0 = last_t
    interrupted = False
    cpu: dict[int, float] = {}  # pid -> CPU seconds at its last sample (a pid gone keeps its last)
    last_cpu = 0.0
    while process.poll() is None:
        time.sleep(args.every)
        tree = tree_rss(process.pid)
        for pid in tree:
            cpu[pid] = max(cpu.get(pid, 0.0), cpu_seconds([pid]))
        for pid, (name, rss) in tree.items():
            key = ("command" if pid == process.pid else name, pid)
            peak[key] = max(peak.get(key, 0), rss)
        n, now = count(db), time.perf_counter()
        if n > last_n:
            rates.append(((now - t0), (n - last_n) / (now - last_t)))
            live = sorted(((k[0], v) for k, v in peak.items()), key=lambda kv: -kv[1])[:4]
            # CPU per image moves less with the other jobs on the machine than img/s does
            used = sum(cpu.values())
            print(f"  t {now - t0:7.0f} s  rows {n:7}  {rates[-1][1]:6.1f} img/s  "
                  f"{1000 * (used - last_cpu) / (n - last_n):5.0f} CPU ms/img  peak RSS so far: "
                  + ", ".join(f"{k} {v / 2**20:.0f} MB" for k, v in live), flush=True)
            last_cpu = used
        last_n, last_t = n, now
        if args.stop_after and not interrupted and now - t0 > args.stop_after:
            process.send_signal(signal.SIGINT)  # index stores what is in flight, prints its summary, exits 130
            interrupted = True
    out, err = process.communicate()
    total = time.perf_counter() - t0
    print(out.strip())
    if process.returncode and not (interrupted and process.returncode == 130):
        print(err[-2000:])
        sys.exit(process.returncode)
    if interrupted:
        print(f"stopped after {total:.0f} s (--stop-after): {count(db)} of {args.files} files stored")
    print(f"indexed {count(db)} files in {total:.0f} s: {count(db) / total:.1f} img/s overall")
    baseline = rates[1][1] if len(rates) > 2 else (rates[0][1] if rates else 0)
    print("img/s over time (t s: img/s, ratio to the first full interval):")
    for t, rate in rates:
        print(f"  {t:7.0f}: {rate:7.1f}  {rate / baseline if baseline else 0:5.2f}")
    command = max(v for (k, _p), v in peak.items() if k == "command")
    others = sorted(((k, p, v) for (k, p), v in peak.items() if k != "command"), key=lambda kpv: -kpv[2])
    print(f"peak RSS: the command {command / 2**20:.0f} MB; {len(others)} other processes (workers, forkserver, "
          "resource tracker), each: " + ", ".join(f"{k}[{p}] {v / 2**20:.0f} MB" for k, p, v in others))
    size = sum(p.stat().st_size for p in root.glob("soak.db*") if p.is_file())
    print(f"database + WAL: {size / 2**20:.1f} MB, {size / max(count(db), 1):.0f} bytes per image")
    report_latency(db)


def report_latency(db: Path) -> None:
    """Best of 3 of each report command on ``db``, against `photoqa --version` (start-up
    alone) timed in the same run."""
    startup = min(cli("--version") for _ in range(3))
    print(f"{'--version':9} {startup:6.2f} s")
    for name, command in (("status", ["status"]), ("sql", ["sql", "SELECT count(*) FROM images"]),
                          ("dupes", ["dupes", "--format", "json"])):
        seconds = min(cli("--db", str(db), *command) for _ in range(3))
        print(f"{name:9} {seconds:6.2f} s  ({seconds / startup:.1f}x `photoqa --version`)")


if __name__ == "__main__":
    main()
