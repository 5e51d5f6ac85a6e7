"""What sensor learning costs `photoqa index` on a folder of 12 MP camera JPEGs.

Usage::

    PYTHONPATH=. python bench/sensor_cost.py [--count 60] [--rounds 2] [--dir DIR] [--base OTHER_CHECKOUT]

Generates ``--count`` (>= 60) JPEGs of 4032x3024 (quality 92) from the Kodak PNGs in
``../shared/data/photos/kodak`` (or ``$PHOTOQA_SHARED_DATA/photos/kodak``), upscaled with grain and a different crop per copy so no
two hash alike, each with the EXIF a camera writes (Make, Model, DateTimeOriginal a minute
apart, ISO, exposure time; a portrait stored landscape with EXIF orientation 6, so the
folder is one body of one geometry, one sensor), into ``--dir`` (default ``$TMPDIR/photoqa-bench-sensor-cost``),
reused by later runs. Then, in one run, ``--rounds`` times in turn on a fresh database:

* ``off``:     ``[sensor] enabled = false``, the baseline;
* ``default``: the shipped settings on a fresh database, i.e. a *new* camera: its map is
  not stable yet (fewer than ``learn_first`` = 64 frames), so it *maps*: a 12 MP frame is
  learnt with probability ``learn_megapixels`` / 12 = 0.75 / 12 (1 in 16), drawn by hash;
* ``settled``: the shipped sample with ``learn_first = 0, stable_frames = 0``: the frames
  a camera *past its first frames* (map stable) learns, the same draws (content hash,
  ``sample_megapixels``, reveal factors) without indexing 128+ frames of history first;
* ``every``:   ``learn_every_frame = true`` (every frame decoded full size and learnt);

the median wall time of each (``photoqa index`` as a subprocess, all cores, matching on as
shipped) and its ratio to ``off``; the writer's *tail*: from the last image stored and
matched (the highest ``images.matched_at``) to the process's exit, where the end-of-run
flush of a new camera's statistics sat (a young body's is no longer written: its frames
learnt show as ``counted+parked``); and the per-frame CPU of the residual + delta of one
12 MP rendered frame (``indexer.sensor.delta.rgb_delta``, the compiled kernel) against the
NumPy definition (``reference_rgb_strips``) on the same frame.

``--base DIR``: also run the same modes with the checkout in DIR (e.g. ``git -C REPO
archive main | tar -x -C DIR``), interleaved with this one's in every round, and print
this checkout's times against it: a baseline measured in the same run.

Targets (issue 17): default (a new camera) <= 1.15 x off; per-frame residual <= 80 ms of
CPU.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
KODAK = Path(os.environ.get("PHOTOQA_SHARED_DATA") or REPO.parent / "shared" / "data") / "photos" / "kodak"
SIZE = (4032, 3024)
MODES = {"off": "[sensor]\nenabled = false\n", "default": "",
         "settled": "[sensor]\nlearn_first = 0\nstable_frames = 0\n",
         "every": "[sensor]\nlearn_every_frame = true\n"}


def make_one(job: tuple[Path, Path, int]) -> None:
    """One distinct 12 MP camera JPEG made from ``source`` (variant ``k``), with a capture
    time, ISO and exposure time as a camera writes them."""
    from index_throughput import camera_jpeg  # this folder: the same maker, our EXIF

    source, out, k = job
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "BenchCam", "Twelve MP"
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = (datetime(2026, 5, 1, 9) + timedelta(minutes=k)).strftime("%Y:%m:%d %H:%M:%S")
    sub[0x8827] = 100 * (1 + k % 4)  # ISO 100-400: no frame "reveals" more than another
    sub[0x829A] = 1 / 125
    camera_jpeg(source, out, k, size=SIZE, quality=92, exif=exif, portrait_tagged=True)


def _current(path: Path) -> bool:
    """Whether ``path`` is a file this version makes: stored landscape, one geometry
    (earlier versions stored portraits as 3024x4032, which made a second sensor)."""
    try:
        with Image.open(path) as img:
            return img.size == SIZE
    except OSError:
        return False


def ensure_files(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(KODAK.glob("*.png"))
    if not sources:
        sys.exit(f"no Kodak PNGs in {KODAK}: this benchmark needs ../shared/data")
    jobs = [(sources[i % len(sources)], folder / f"c{i:04d}.jpg", i) for i in range(count)]
    todo = [j for j in jobs if not _current(j[1])]
    if todo:
        print(f"generating {len(todo)} camera JPEGs of {SIZE[0]}x{SIZE[1]} into {folder} (once)...", flush=True)
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(make_one, todo))
    return [j[1] for j in jobs]


_TICK = os.sysconf("SC_CLK_TCK")


def _session_cpu(sid: int, seen: dict[int, float]) -> None:
    """Note in ``seen`` (pid -> CPU seconds so far) every process of session ``sid``: the
    `photoqa index` process, its forkserver and workers (which are not its waited-for
    children, so ``os.times`` misses them), read from /proc (Linux)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # fields after the name: state ppid pgrp session ... utime stime (11, 12)
            seen[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _TICK


class Run(NamedTuple):
    wall: float  # seconds
    cpu: float  # seconds, every process of the run
    frames: str  # sum of sensors.frames, + frames parked in the spool (a young body's)
    tail: float  # seconds from the last image stored and matched to the exit


def index_once(folder: Path, mode: str, scratch: Path, repo: Path = REPO) -> Run:
    """One `photoqa index` of ``folder`` by the checkout ``repo``; the CPU is sampled from
    /proc every 0.2 s, so a process's last 0.2 s may be missed (the workers live the
    whole run)."""
    config = scratch / f"{mode}.toml"
    config.write_text(MODES[mode])
    db = scratch / f"{mode}-{time.monotonic_ns()}.db"
    env = dict(os.environ, PHOTOQA_CONFIG=str(config), PYTHONPATH=str(repo))
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, str(repo / "cli.py"), "--db", str(db), "index", str(folder)],
                             cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    seen: dict[int, float] = {}
    while child.poll() is None:
        _session_cpu(child.pid, seen)
        time.sleep(0.05)
    ended = datetime.now(timezone.utc).replace(tzinfo=None)
    _, stderr = child.communicate()
    wall = time.perf_counter() - start
    if child.returncode != 0:
        sys.exit(f"photoqa index ({mode}) failed: {stderr[-2000:]}")
    cpu = sum(seen.values())
    out = subprocess.run([sys.executable, str(repo / "cli.py"), "--db", str(db), "sql", "--format", "csv",
                          "select coalesce(sum(frames), 0), "
                          "(select max(coalesce(matched_at, indexed_at)) from images) from sensors"],
                         cwd=repo, env=env, capture_output=True, text=True).stdout.strip().splitlines()
    frames, last = out[-1].split(",") if out else ("?", "")
    waiting = len(list(db.with_name(db.name + ".sensors").glob("pending/*/*.npz")))  # a young body's, parked
    frames = f"{frames}+{waiting}" if waiting else frames
    tail = (ended - datetime.fromisoformat(last.replace(" ", "T"))).total_seconds() if last else float("nan")
    return Run(wall, cpu, frames, tail)


def residual_cpu(path: Path) -> tuple[float, float]:
    """Best-of-5 CPU seconds of the compiled delta and of the NumPy reference, one frame."""
    from indexer.sensor.delta import rgb_delta
    from indexer.sensor.residual import reference_rgb_strips

    with Image.open(path) as img:
        frame = np.asarray(img.convert("RGB"))
    rgb_delta(frame[:64, :64])  # JIT (or load the cached machine code) outside the timing

    def best(fn, n):
        times = []
        for _ in range(n):
            t0 = time.process_time()
            fn()
            times.append(time.process_time() - t0)
        return min(times)

    return best(lambda: rgb_delta(frame), 5), best(lambda: sum(1 for _ in reference_rgb_strips(frame)), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of "
                    + ", ".join(MODES) + " (off is always run: the baseline)")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "photoqa-bench-sensor-cost")
    ap.add_argument("--base", type=Path, help="another checkout to run interleaved, as the baseline")
    args = ap.parse_args()
    files = ensure_files(args.dir, max(args.count, 60))
    folder = args.dir
    sum(len(f.read_bytes()) for f in files)  # warm the page cache
    load = os.getloadavg()
    modes = ["off"] + [m for m in args.modes.split(",") if m in MODES and m != "off"]
    repos = {"this": REPO, **({"base": args.base.resolve()} if args.base else {})}
    results: dict[tuple[str, str], list[Run]] = {(r, m): [] for r in repos for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        warm = scratch / "warm"
        warm.mkdir()
        for f in files[:2]:
            os.link(f, warm / f.name)
        for repo in repos.values():
            index_once(warm, "every", scratch, repo)  # numba's cache filled before anything is timed
        for _ in range(args.rounds):
            for mode in modes:  # interleaved: a noisy neighbour hits every mode alike
                for name, repo in repos.items():
                    results[(name, mode)].append(index_once(folder, mode, scratch, repo))
    print(f"photoqa index of {len(files)} camera JPEGs {SIZE[0]}x{SIZE[1]}, {args.rounds} round(s), "
          f"median wall and CPU time (all processes of the run); frames learnt = sum of sensors.frames; "
          f"tail = last image stored and matched to exit; load average before {load[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    for name in repos:
        off = statistics.median(r.wall for r in results[(name, "off")])
        off_cpu = statistics.median(r.cpu for r in results[(name, "off")])
        for mode in modes:
            runs = results[(name, mode)]
            wall, cpu = statistics.median(r.wall for r in runs), statistics.median(r.cpu for r in runs)
            tail = statistics.median(r.tail for r in runs)
            print(f"  {name:4s} {mode:8s} {wall:6.2f} s wall  {cpu:6.2f} s CPU  tail {tail:5.2f} s  "
                  f"frames learnt {runs[0].frames:>4s}  ratio to off: wall {wall / off:.2f}, CPU {cpu / off_cpu:.2f}"
                  + ("  (target <= 1.15)" if mode == "default" else ""))
    if args.base:
        for mode in modes:
            this, base = results[("this", mode)], results[("base", mode)]
            per_round = [t.wall / b.wall for t, b in zip(this, base)]
            print(f"  this / base, {mode:8s}: wall {statistics.median(r.wall for r in this) / statistics.median(r.wall for r in base):.2f} "
                  f"(per round {', '.join(f'{x:.2f}' for x in per_round)}), CPU "
                  f"{statistics.median(r.cpu for r in this) / statistics.median(r.cpu for r in base):.2f}")
    fast, slow = residual_cpu(files[0])
    print(f"per-frame residual + delta, 12 MP rendered frame: {fast * 1e3:.0f} ms CPU (target <= 80); "
          f"NumPy reference {slow * 1e3:.0f} ms: ratio {slow / fast:.1f}x")


if __name__ == "__main__":
    main()
