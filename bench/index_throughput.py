"""Indexing throughput on ~12 MP JPEGs against a bare decode loop measured in the same run.

Usage::

    PYTHONPATH=. python bench/index_throughput.py [--count 200] [--naive 60] [--cli 40] [--dir DIR]

Generates ``--count`` JPEGs of 4000x3000 (quality 90) from the Kodak PNGs in
``../shared/data/photos/kodak`` (upscaled, mirrored/cropped per copy so every file is
distinct, with mild grain so entropy decoding costs what it costs on a real photo) into
``--dir`` (default ``$TMPDIR/photoqa-bench-12mp-cam``), reused by later runs. Each file
names its camera in EXIF, as a real photo does. Then prints, in images per second:

* bare decode: Pillow open + ``draft`` to the features' size (``indexer.decode.draft_request``,
  256 px long side) + load: the floor any indexer pays;
* ``index_paths`` on a fresh SQLite database with 1 worker and with all cores;
* a naive ``imagehash.phash(Image.open(f))`` loop (on ``--naive`` files: it is slow);
* ``photoqa index`` as the CLI runs it (``commands.run_index``: default settings, so the
  matching and sensor stages too; the sensor stage needs full-size pixels of files that
  name their camera, so no draft decode for them), all cores, on ``--cli`` files;

and the ratios against the targets (1 worker >= 0.6 x bare decode; all workers >= 1.6 x
1 worker on 2 cores; >= 3 x the naive loop). Every loop reads the same files, with the
page cache warmed first.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# photoqa modules are imported inside the functions: worker processes (forkserver/spawn)
# re-import this main module, and `photoqa index` workers only import indexer.pipeline.analyse.

KODAK = REPO.parent / "shared" / "data" / "photos" / "kodak"
SIZE = (4000, 3000)
WORK_SIZE = 256


def camera_jpeg(source: Path, out: Path, k: int, *, size: tuple[int, int] = SIZE, quality: int = 90,
                exif: Image.Exif | None = None, portrait_tagged: bool = False) -> None:
    """Write variant ``k`` of ``source`` as a distinct camera-sized JPEG: a crop of its own
    (no two files hash alike), every other one mirrored, upscaled to ``size`` with grain,
    with ``exif`` (default: a camera's Make and Model only). bench/sensor_cost.py uses it too.

    ``portrait_tagged``: a portrait source is stored landscape (``size``) with EXIF
    orientation 6 (turn 90 degrees clockwise to view), as a camera writes it, so every
    file of one body has the sensor's geometry; otherwise it is stored as a portrait."""
    img = Image.open(source).convert("RGB")
    margin = 4 + 3 * (k % 8)  # a different crop per copy: no two files hash alike
    img = img.crop((margin, margin, img.width - margin, img.height - margin))
    if k % 2:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if exif is None:
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = "BenchCam", "Twelve MP"  # Make, Model: as a camera writes
    if img.width < img.height and portrait_tagged:
        img = img.transpose(Image.Transpose.ROTATE_90)  # stored as the sensor reads it
        exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    size = size if img.width >= img.height else size[::-1]
    big = np.asarray(img.resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    grain = np.random.default_rng(k).normal(0, 3.0, size=(size[1], size[0], 1)).astype(np.int16)
    Image.fromarray(np.clip(big + grain, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=quality,
                                                                          exif=exif.tobytes())


def make_one(job: tuple[Path, Path, int]) -> None:
    """Write one distinct 12 MP JPEG made from ``source`` (variant ``k``)."""
    source, out, k = job
    camera_jpeg(source, out, k)


def ensure_files(folder: Path, count: int) -> list[Path]:
    from indexer.pipeline.run import worker_count

    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(KODAK.glob("*.png"))
    if not sources:
        sys.exit(f"no Kodak PNGs in {KODAK}: this benchmark needs ../shared/data")
    jobs = [(sources[i % len(sources)], folder / f"k{i:04d}.jpg", i // len(sources) + i)
            for i in range(count)]
    todo = [j for j in jobs if not j[1].exists()]
    if todo:
        print(f"generating {len(todo)} JPEGs of {SIZE[0]}x{SIZE[1]} into {folder} (once)...", flush=True)
        with ProcessPoolExecutor(worker_count(None)) as pool:
            list(pool.map(make_one, todo))
    return [j[1] for j in jobs]


def warm(files: list[Path]) -> int:
    return sum(len(f.read_bytes()) for f in files)


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


CPU: dict[str, float] = {}  # CPU seconds of this process per loop: robust to shared cores


def bare_decode(files: list[Path]) -> float:
    from indexer.decode import draft_request

    start, cpu = time.perf_counter(), time.process_time()
    for f in files:
        with Image.open(f) as img:
            img.draft("RGB", draft_request(img.size, WORK_SIZE))
            img.load()
    CPU["bare"] = time.process_time() - cpu
    return rate(len(files), time.perf_counter() - start)


def index_rate(files: list[Path], workers: int, scratch: Path) -> float:
    from indexer.pipeline.run import index_paths
    from indexer.session import open_session

    db = scratch / f"bench-{workers}-{time.monotonic_ns()}.db"
    session = open_session(str(db))
    start, cpu = time.perf_counter(), time.process_time()
    summary = index_paths([files[0].parent], session.store, session.settings.index, workers=workers)
    seconds = time.perf_counter() - start
    CPU[f"index{workers}"] = time.process_time() - cpu
    session.engine.dispose()
    if summary.indexed != len(files):
        sys.exit(f"index with {workers} worker(s) indexed {summary.indexed} of {len(files)}: {summary}")
    return rate(len(files), seconds)


def cli_rate(files: list[Path], scratch: Path) -> float:
    """``photoqa index`` on ``files`` (copied by hard link into a folder of their own)."""
    from indexer.commands.index import run_index
    from indexer.session import open_session

    folder = scratch / "cli-files"
    folder.mkdir()
    for f in files:
        os.link(f, folder / f.name)
    session = open_session(str(scratch / "cli.db"))
    start = time.perf_counter()
    summary = run_index(session, [folder], workers=0, show_progress=False)
    seconds = time.perf_counter() - start
    session.engine.dispose()
    if summary.indexed != len(files):
        sys.exit(f"photoqa index indexed {summary.indexed} of {len(files)}: {summary}")
    return rate(len(files), seconds)


def naive_rate(files: list[Path]) -> float:
    import imagehash

    start, cpu = time.perf_counter(), time.process_time()
    for f in files:
        imagehash.phash(Image.open(f))
    CPU["naive"] = (time.process_time() - cpu) / len(files)  # per image: fewer files here
    return rate(len(files), time.perf_counter() - start)


def verdict(value: float, target: float) -> str:
    return f"{value:5.2f}  (target >= {target}: {'met' if value >= target else 'MISSED'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="JPEGs to generate and index (default 200)")
    parser.add_argument("--naive", type=int, default=60, help="files for the naive imagehash loop (default 60)")
    parser.add_argument("--cli", type=int, default=40, help="files for the CLI-path run (default 40)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "photoqa-bench-12mp-cam")
    args = parser.parse_args()

    from indexer.pipeline.run import worker_count

    files = ensure_files(args.dir, args.count)
    total = warm(files)
    cores = worker_count(None)
    print(f"files: {len(files)} JPEG {SIZE[0]}x{SIZE[1]} q90, {total / len(files) / 1e6:.1f} MB each; "
          f"{cores} cores; features at {WORK_SIZE} px")
    load_before = os.getloadavg()[0]
    bare = bare_decode(files)
    print(f"bare decode (open + draft + load), 1 process : {bare:7.1f} images/s")
    with tempfile.TemporaryDirectory(prefix="photoqa-bench-db-") as scratch:
        one = index_rate(files, 1, Path(scratch))
        print(f"photoqa index, 1 worker                      : {one:7.1f} images/s")
        allw = index_rate(files, cores, Path(scratch))
        print(f"photoqa index, {cores} workers                     : {allw:7.1f} images/s")
        try:
            cli = cli_rate(files[: args.cli], Path(scratch)) if args.cli else None
        except Exception as exc:  # noqa: BLE001 - later stages are other people's work in progress
            print(f"photoqa index as the CLI runs it: failed ({type(exc).__name__}: {exc})")
            cli = None
    naive = naive_rate(files[: args.naive])
    print(f"naive imagehash.phash(Image.open(f)), {min(args.naive, len(files))} files: {naive:7.1f} images/s")
    if cli is not None:
        print(f"photoqa index as the CLI runs it (+ matching, sensor stages), {cores} workers, "
              f"{min(args.cli, len(files))} files: {cli:7.1f} images/s")
    load_after = os.getloadavg()[0]
    print(f"load average (1 min) before/after: {load_before:.2f} / {load_after:.2f}"
          + ("  <- other processes share the cores: the parallel ratio is not meaningful"
             if load_before > 0.5 * cores else ""))
    print("ratios")
    print(f"  1 worker / bare decode        : {verdict(one / bare, 0.6)}")
    print(f"  same, by CPU time of this process (bare {CPU['bare'] / len(files) * 1e3:.1f} ms/image, "
          f"index {CPU['index1'] / len(files) * 1e3:.1f} ms/image): {CPU['bare'] / CPU['index1']:.2f}")
    print(f"  {cores} workers / 1 worker          : {verdict(allw / one, 1.6)}")
    print(f"  {cores} workers / naive loop        : {verdict(allw / naive, 3.0)}")
    print(f"  1 worker / naive loop         : {one / naive:5.2f}  (by CPU time: naive "
          f"{CPU['naive'] * 1e3:.0f} ms/image, {CPU['naive'] / (CPU['index1'] / len(files)):.2f})")
    if cli is not None:
        print(f"  CLI defaults / bare decode    : {cli / bare:5.2f}")


if __name__ == "__main__":
    main()
