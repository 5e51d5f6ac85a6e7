"""Watch soak: files arriving at a fixed rate under ``photoqa watch``, moves and deletes mixed in.

Starts ``photoqa watch`` (a real process, default stages, ``-j --workers``) on an empty
folder, then writes ``--files`` images into it at ``--rate`` files/s (bytes taken from
``--source``, a folder of images, e.g. the archive ``bench/soak.py --keep`` made; written
under new names, so every arrival is a new path), spread over 20 subfolders. Mixed in:
every ``--move-every``-th arrival also renames an earlier arrival into another
subfolder, every ``--delete-every``-th deletes one. Samples the resident memory of the
daemon and each of its workers every ``--every`` seconds, waits until every file has its
line in the log, stops the daemon (SIGTERM) and checks:

* every arrival was indexed exactly once (one ``indexed`` line per path; a renamed file is
  ``moved``, not indexed again) and the database holds one live row per file on the disk,
  its deleted files marked missing;
* latency from a file's arrival (write done) to its ``indexed`` line: p50, p95, max;
* RSS of every process, first and last quarter of the run (flat or not).

    PYTHONPATH=. python bench/watch_soak.py --source /tmp/soak/photos --files 10000 --rate 50

2026-12-07, beside the 100,000-file batch soak (load 10-21), ``--source
/work/soak100k/photos --files 10000 --rate 50 --workers 2 --warm 5``: 13.0 files/s
through the daemon (all indexed 747 s after the first arrival); every arrival indexed
once (0 twice, 0 never), 9,511 live rows for the 9,511 files on the disk, 192 of 192 late
renames and deletions logged; latency p50 266 s, p95 514 s (the queue: arrivals at 4x
the throughput); RSS first / last quarter: daemon 248 / 267 MB, workers flat (115 / 120,
99 / 100, 157 / 157). The run before the fix of ``watch.settle.Pending.deleted`` left 3
rows live for files renamed and then deleted before the daemon reached the rename.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import REPO, tree_rss  # noqa: E402 - the batch soak's /proc reader


def sources(folder: Path, n: int) -> list[Path]:
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in
                   (".jpg", ".png", ".webp", ".tif"))
    if not found:
        sys.exit(f"no images under {folder}")
    return [found[i % len(found)] for i in range(n)]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def parse_log(log: Path) -> list[tuple[float, str, str]]:
    """(epoch seconds, status, path) of each line of the daemon's log."""
    out = []
    for line in log.read_text().splitlines():
        parts = line.split(maxsplit=2)
        if len(parts) < 3:
            continue
        stamp = datetime.fromisoformat(parts[0].replace("Z", "+00:00")).timestamp()
        path = parts[2].strip().split(" (", 1)[0]
        out.append((stamp, parts[1], path))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0, help="arrivals per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--move-every", type=int, default=20)
    parser.add_argument("--delete-every", type=int, default=25)
    parser.add_argument("--every", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up waiting after this many seconds")
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--warm", type=int, default=0,
                        help="files to index before the timed arrivals (the first stored image pays for "
                             "the stages' start: numba compiling, the match index; 24 s under load)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="photoqa-watchsoak-"))
    inbox, db, log = root / "in", root / "watch.db", root / "watch.log"
    inbox.mkdir(parents=True)
    for k in range(20):
        (inbox / f"s{k:02}").mkdir()
    payloads = sources(args.source, args.files)
    daemon = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "--db", str(db), "watch", str(inbox),
                               "-j", str(args.workers), "--log-file", str(log)],
                              env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                              stderr=open(root / "watch.stderr", "wb"))
    while not (log.exists() and "catch-up" in log.read_text()):
        if daemon.poll() is not None:
            sys.exit((root / "watch.stderr").read_text())
        time.sleep(0.2)
    if args.warm:
        (inbox / "warm").mkdir()
        for k, src in enumerate(sources(args.source, args.files + args.warm)[-args.warm:]):
            (inbox / "warm" / f"w{k:03}{src.suffix}").write_bytes(src.read_bytes())
        while log.read_text().count(" indexed ") < args.warm:
            time.sleep(0.5)
        print(f"warmed up with {args.warm} files", flush=True)
    samples: list[tuple[float, dict[int, tuple[str, int]]]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.time(), tree_rss(daemon.pid)))
            done.wait(args.every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    arrived: dict[str, float] = {}  # path -> when its bytes were written (epoch s)
    present: list[str] = []  # arrivals still on the disk, where they are now
    origin: dict[str, str] = {}  # where an arrival is now -> where it arrived
    deleted: list[str] = []  # arrivals deleted (their path at the time)
    moves = 0
    pick = random.Random(1)
    started = time.time()
    for i, src in enumerate(payloads):
        due = started + i / args.rate
        if (lag := due - time.time()) > 0:
            time.sleep(lag)
        path = inbox / f"s{i % 20:02}" / f"a{i:06}{src.suffix}"
        path.write_bytes(src.read_bytes())
        arrived[str(path)] = time.time()
        present.append(str(path))
        origin[str(path)] = str(path)
        if i and i % args.move_every == 0 and len(present) > 50:
            old = present.pop(pick.randrange(len(present) - 50))  # one that has had time to be indexed
            new = inbox / f"s{(i + 7) % 20:02}" / ("m" + Path(old).name)
            os.rename(old, new)
            origin[str(new)] = origin.pop(old)
            present.append(str(new))
            moves += 1
        if i and i % args.delete_every == 0 and len(present) > 50:
            gone = present.pop(pick.randrange(len(present) - 50))
            os.unlink(gone)
            deleted.append(gone)
            origin.pop(gone)
    feeding = time.time() - started
    print(f"{args.files} arrivals in {feeding:.0f} s ({args.files / feeding:.1f} files/s), "
          f"{moves} moves, {len(deleted)} deletes", flush=True)
    # wait until every arrival has its `indexed` line (or a failure), then stop the daemon
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        lines = parse_log(log)
        settled = {p for _, s, p in lines if s in ("indexed", "failed", "moved")}
        if all(p in settled or o in settled for p, o in origin.items()):
            break
        if daemon.poll() is not None:
            break
        time.sleep(2.0)
    finished = time.time()
    # then moves and deletes of files the daemon has stored (those of the feed mostly hit
    # files still queued): 1% each, then wait for their lines
    stored = {q for _, s, q in parse_log(log) if s in ("indexed", "moved")}  # once: the log is long
    settled = [p for p in present if p in stored]
    pick.shuffle(settled)
    late_moves, late_deletes = settled[:max(1, len(settled) // 100)], settled[-max(1, len(settled) // 100):]
    expect = []
    for old in late_moves:
        new = str(Path(old).with_name("late" + Path(old).name))
        os.rename(old, new)
        origin[new] = origin.pop(old)
        present[present.index(old)] = new
        expect.append(("moved", new))
        moves += 1
    for gone in late_deletes:
        os.unlink(gone)
        deleted.append(gone)
        origin.pop(gone)
        present.remove(gone)
        expect.append(("missing", gone))
    deadline = time.time() + 120
    while time.time() < deadline and not set(expect) <= {(s, p) for _, s, p in parse_log(log)}:
        time.sleep(1.0)
    late = {(s, p) for _, s, p in parse_log(log)}
    print(f"late moves {len(late_moves)}, deletes {len(late_deletes)} of stored files: "
          f"{sum(1 for e in expect if e in late)} of {len(expect)} logged", flush=True)
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(60)
    done.set()
    sampler.join()
    lines = parse_log(log)
    # an arrival's lines are those of every path it had (renamed before or after indexing)
    arrival_of = {p: p for p in arrived} | origin
    first_indexed: dict[str, float] = {}
    indexed_count: dict[str, int] = {}
    failed = set()
    for stamp, status, path in lines:
        arrival = arrival_of.get(path)
        if arrival is None:
            continue
        if status == "indexed":
            indexed_count[arrival] = indexed_count.get(arrival, 0) + 1
            first_indexed.setdefault(arrival, stamp)
        elif status == "moved" and arrival not in first_indexed:
            # the bytes of a deleted file's row (a move seen as delete + create): the row moves
            first_indexed[arrival] = stamp
        elif status == "failed":
            failed.add(arrival)
    latency = [first_indexed[a] - arrived[a] for a in first_indexed]
    kept = set(origin.values())  # arrivals still on the disk at the end
    never = [a for a in kept if a not in first_indexed and a not in failed]
    twice = {a: n for a, n in indexed_count.items() if n > 1}
    print(f"all indexed {finished - started:.0f} s after the first arrival: "
          f"{len(first_indexed) / (finished - started):.1f} files/s through the daemon")
    print(f"indexed once: {sum(1 for n in indexed_count.values() if n == 1)} of {len(arrived)} arrivals, "
          f"stored as the move of a deleted copy's row: {len(first_indexed) - len(indexed_count)} "
          f"({len(kept)} still on the disk, {len(deleted)} deleted, some before they were indexed); "
          f"twice or more: {len(twice)} {list(twice.items())[:3]}; never (on disk, no line): {len(never)} "
          f"{never[:5]}; failed: {len(failed)}")
    print(f"latency arrival -> indexed: p50 {percentile(latency, 0.5):.1f} s, p95 {percentile(latency, 0.95):.1f} s, "
          f"max {max(latency, default=float('nan')):.1f} s")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    live = {r[0] for r in con.execute("SELECT path FROM images WHERE missing_since IS NULL")}
    missing = {r[0] for r in con.execute("SELECT path FROM images WHERE missing_since IS NOT NULL")}
    failures = con.execute("SELECT count(*) FROM failures").fetchone()[0]
    con.close()
    on_disk = set(present) | {str(w) for w in (inbox / "warm").glob("*")}  # the warm-up files have rows too
    print(f"database: {len(live)} live rows for {len(on_disk)} files on disk (rows missing: "
          f"{len(on_disk - live)}, rows of no file: {len(live - on_disk)}); {len(missing)} marked missing of "
          f"{len(deleted)} deleted (unmarked: {len(set(deleted) - missing)}); {failures} failure rows")
    # RSS: per process, the peak in the first and the last quarter of the run
    t0, t1 = samples[0][0], samples[-1][0]
    quarter = (t1 - t0) / 4
    peaks: dict[int, list] = {}
    for stamp, tree in samples:
        for pid, (name, rss) in tree.items():
            entry = peaks.setdefault(pid, ["command" if pid == daemon.pid else name, 0, 0, 0])
            entry[1] = max(entry[1], rss)
            if stamp <= t0 + quarter:
                entry[2] = max(entry[2], rss)
            if stamp >= t1 - quarter:
                entry[3] = max(entry[3], rss)
    print("RSS per process (peak; peak in the first / last quarter of the run, MB):")
    for pid, (name, peak, first, last) in sorted(peaks.items(), key=lambda kv: -kv[1][1]):
        print(f"  {name}[{pid}]: {peak / 2**20:.0f}; {first / 2**20:.0f} / {last / 2**20:.0f}")
    print(f"exit code {daemon.returncode}; log {log}")


if __name__ == "__main__":
    main()
