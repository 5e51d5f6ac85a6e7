"""Datasets: a (96108, 7, 7) uint16 detector stack, and export with equalisation.

Prints rates and the ratio to baselines measured in the same run (absolute times move
with the machine's load):

  stack-stats  per-pixel mean/variance/min/max/count histograms over the whole stack
               (photoqa stack-stats, in a child process: frames/s and its peak RSS)
               against a per-frame Python loop of Welford updates (first 5,000 frames).
  index        photoqa index --sensor of the stack (rows, hashes, statistics, defects;
               child process: frames/s, peak RSS) against the per-image feature path
               (features.measure on each frame as an RGB image: one worker task per
               frame would do this; first 300 frames).
  equalize     what export adds to decoding, against the loop the issue names: export's
               equalisation of N fitted 8-bit images 3x224x224 in chunks of 64 (uint8
               bincount + CDF lookup, padding excluded: normalize.equalize as export
               calls it) against a per-image loop of np.histogram + np.interp on the
               same images, in CPU time of this process.
  export       photoqa export --normalize equalize of --photos JPEG photos (--photo-size,
               default 320x240) to 224x224 (decode, fit, normalise, stream; whole command
               in a child, start-up included) in img/s, against the same export written
               as a per-image loop (Pillow decode + Lanczos resize, np.histogram +
               np.interp, each row written into a .npy opened with open_memmap; first
               1,000 photos) in this process, same run (export's rows are written by its
               workers with O_DIRECT, the loop's through the page cache, as NumPy's
               memmap does; export's peak RSS is its main process: the workers are the
               forkserver's children); then in CPU time: exports with
               -j 1 (all their CPU in RUSAGE_CHILDREN) with each --resample filter
               against the loop's process time, with the load.
  quality      each --resample filter's PSNR against Lanczos from the full decode, on the
               real JPEGs of ../shared/data/scenes fitted to 224x224 (export's 8-bit road).

    PYTHONPATH=. python bench/datasets.py [--frames 96108] [--images 10000] [--photos 10000]
                                          [--photo-size 320x240] [--photo-dir DIR --photo-db DB]
                                          [--filters lanczos,bilinear,box] [--only stats,index,equalize,export,quality]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from indexer.measure import features
from indexer.stacks import normalize as nz

REPO = Path(__file__).resolve().parents[1]


# A small launcher between this process and the command: a forked child's peak RSS starts
# at its parent's (the kernel keeps the high-water mark of the pre-exec copy), and this
# process holds the stack and the loop's rows; the launcher holds ~10 MB.
_LAUNCH = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
           "print('maxrss_kb=%d' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
           "sys.exit(r.returncode)")


def child(*args: str) -> tuple[float, float, str]:
    """(seconds, peak RSS MB, stdout) of ``python cli.py args`` in a child process: the
    largest RSS of that command's processes (through :data:`_LAUNCH`)."""
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:  # a file: a full stderr pipe would block the child
        done = subprocess.run([sys.executable, "-c", _LAUNCH, sys.executable, str(REPO / "cli.py"), *args],
                              stdout=subprocess.PIPE, stderr=errors, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        seconds = time.perf_counter() - t
        errors.seek(0)
        err = errors.read()
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, args, done.stdout, err)
    rss = int(err.rpartition("maxrss_kb=")[2].split()[0])
    return seconds, rss / 1024.0, done.stdout


def welford_loop(stack: np.ndarray) -> float:
    """Frames/s of a per-frame Welford update in Python (the baseline)."""
    mean = np.zeros(stack.shape[1:])
    m2 = np.zeros(stack.shape[1:])
    t = time.perf_counter()
    for n, frame in enumerate(stack, start=1):
        x = frame.astype(np.float64)
        delta = x - mean
        mean += delta / n
        m2 += delta * (x - mean)
    return len(stack) / (time.perf_counter() - t)


def per_image_features(stack: np.ndarray) -> float:
    t = time.perf_counter()
    for frame in stack:
        rgb = np.repeat((frame / 65535.0).astype(np.float32)[..., None], 3, axis=2)
        features.measure(rgb)
    return len(stack) / (time.perf_counter() - t)


def loop_equalize(batch: np.ndarray) -> np.ndarray:
    out = np.empty(batch.shape, np.float32)
    for i, im in enumerate(batch):
        counts, edges = np.histogram(im, bins=256, range=(0, 256))
        cdf = np.cumsum(counts) / im.size
        out[i] = np.interp(im, np.arange(256), cdf)
    return out


def bench_equalize(n: int, chunk: int = 64) -> tuple[float, float]:
    """img per CPU-second of export's equalisation (uint8 chunks with 4:3 photos' padding
    excluded, into a reused buffer, as export's 8-bit road calls it) and of the per-image
    loop on the same images."""
    rng = np.random.default_rng(0)
    block = np.clip(rng.normal(110, 40, (chunk, 3, 224, 224)), 0, 255).astype(np.uint8)
    pad = np.zeros((chunk, 1, 224, 224), bool)
    pad[:, :, :28] = pad[:, :, -28:] = True  # a 320x240 photo fitted into 224x224: 224x168 and two bands
    block[np.broadcast_to(pad, block.shape)] = 0
    buffer = np.empty(block.shape, np.float32)
    fast = slow = 0.0
    for start in range(0, n, chunk):
        b = block[: min(chunk, n - start)]
        t = time.process_time()
        nz.equalize(b, exclude=pad[: len(b)], fill=0.0, out=buffer[: len(b)], excluded_value=0)
        fast += time.process_time() - t
        t = time.process_time()
        loop_equalize(b)
        slow += time.process_time() - t
    return n / fast, n / slow


def make_photos(folder: Path, n: int, width: int = 320, height: int = 240) -> float:
    """``n`` distinct width x height JPEGs (smooth random colour fields with grain; ~1 ms
    each at 320x240, where a synthetic scene costs ~40 ms): seconds taken."""
    from PIL import Image

    t = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height), Image.BICUBIC)
        grain = rng.integers(-12, 13, (height, width, 3))
        pixels = np.clip(np.asarray(coarse, np.int16) + grain, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i:05d}.jpg", quality=90)
    return time.perf_counter() - t


def naive_export(paths: list[Path], out: Path, size: int = 224) -> float:
    """img/s of the per-image Python loop a user would write for the same export: Pillow
    decode, fit into size x size (aspect kept, zero padding), np.histogram + np.interp
    equalisation per image, each float32 row written into ``out`` (a .npy opened with
    ``open_memmap``: the same bytes export writes; rows kept in a list instead would hold
    10,000 x 0.6 MB)."""
    from PIL import Image

    t = time.perf_counter()
    rows = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(len(paths), 3, size, size))
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = size / max(im.size)
            w, h = max(1, round(im.width * scale)), max(1, round(im.height * scale))
            small = np.asarray(im.resize((w, h), Image.LANCZOS))
        counts, _ = np.histogram(small, bins=256, range=(0, 256))
        cdf = np.cumsum(counts) / small.size
        row = np.zeros((3, size, size), np.float32)
        top, left = (size - h) // 2, (size - w) // 2
        row[:, top:top + h, left:left + w] = np.moveaxis(np.interp(small, np.arange(256), cdf), -1, 0)
        rows[i] = row
    rows.flush()
    del rows
    return len(paths) / (time.perf_counter() - t)


def squared_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def filter_quality(folder: Path) -> dict[str, float]:
    """PSNR (dB, of the mean squared error over all photos) of export's 8-bit road with
    each --resample filter against Pillow's Lanczos from the full decode, over the JPEGs
    of ``folder`` fitted to 224x224 (lanczos differs by the JPEG draft only)."""
    from PIL import Image, ImageOps

    from indexer.commands.exportload import FILTERS, fit_pillow, load_8bit

    scores: dict[str, list[float]] = {name: [] for name in FILTERS}
    for path in sorted(folder.rglob("*.jpg")):
        try:
            with Image.open(path) as im:
                ref = fit_pillow(ImageOps.exif_transpose(im).convert("RGB"), 224, 224, "pad", "lanczos")
        except (OSError, ValueError):  # the folder's corrupt samples
            continue
        for name in FILTERS:
            got = load_8bit(str(path), 224, 224, "pad", resample=name)
            if got is not None and got.pixels.shape == ref.shape:
                scores[name].append(squared_error(got.pixels, ref))
    print(f"quality      {len(scores['lanczos'])} photos")
    return {name: float(10 * np.log10(255.0 ** 2 / max(np.mean(v), 1e-12))) for name, v in scores.items() if v}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=96108)
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--photos", type=int, default=10000, help="photos exported (generated, then indexed)")
    ap.add_argument("--photo-size", default="320x240", help="generated photos' width x height")
    ap.add_argument("--photo-dir", type=Path, default=None,
                    help="export: JPEGs already made (make_photos) instead of generating --photos")
    ap.add_argument("--photo-db", type=Path, default=None,
                    help="export: the database of --photo-dir, already indexed (indexed here if absent)")
    ap.add_argument("--filters", default="lanczos,bilinear,box", help="export: --resample filters timed with -j 1")
    ap.add_argument("--only", default="stats,index,equalize,export,quality",
                    help="comma-separated parts to run: stats,index,equalize,export,quality")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        stack = rng.poisson(20, (args.frames, 7, 7)).astype(np.uint16)
        stack[:, 1, 2] += 200
        stack[:, 4, 5] = 0
        np.save(tmp / "det.npy", stack)
        print(f"stack {stack.shape} {stack.dtype}, {stack.nbytes / 1e6:.1f} MB")

        if "stats" in parts:
            base = welford_loop(stack[:5000])
            secs, rss, out = child("stack-stats", str(tmp / "det.npy"), "--out", str(tmp / "s.npz"),
                                   "--format", "json")
            rate = json.loads(out)[0]["frames_per_second"]  # the statistics alone, without start-up
            print(f"stack-stats  {rate:10,.0f} frames/s (statistics; whole command {args.frames / secs:,.0f})  "
                  f"peak RSS {rss:6.0f} MB  per-frame Welford loop {base:9,.0f} frames/s  ratio {rate / base:5.1f}x")

        if "index" in parts:
            base = per_image_features(stack[:300])
            secs, rss, _ = child("--db", str(tmp / "b.db"), "index", str(tmp / "det.npy"), "--sensor", "det",
                                 "-j", "1")
            print(f"index        {args.frames / secs:10,.0f} frames/s (whole command)  peak RSS {rss:6.0f} MB  "
                  f"per-frame features.measure {base:9,.0f} frames/s  ratio {args.frames / secs / base:5.1f}x")

        if "equalize" in parts:
            fast, slow = bench_equalize(args.images)
            print(f"equalize     {fast:10,.0f} img/CPU-s ({args.images} x 3x224x224 uint8)  "
                  f"np.histogram+np.interp loop {slow:9,.0f} img/CPU-s  ratio {fast / slow:5.1f}x")

        if "export" in parts:
            pw, ph = map(int, args.photo_size.split("x"))
            photos, db = args.photo_dir or tmp / "photos", args.photo_db or tmp / "p.db"
            made = 0.0 if args.photo_dir else make_photos(photos, args.photos, pw, ph)
            t = time.perf_counter()
            if not db.exists():
                subprocess.run([sys.executable, str(REPO / "cli.py"), "--db", str(db), "index", str(photos)],
                               check=True, capture_output=True, env=env)
            print(f"photos       {args.photos} JPEG {pw}x{ph} made in {made:.0f} s, indexed in "
                  f"{time.perf_counter() - t:.0f} s")
            export_args = ["--db", str(db), "export", str(tmp / "out.npz"), "--size", "224", "224",
                           "--normalize", "equalize", "--where", "container IS NULL", "--format", "json"]
            sample = sorted(photos.glob("*.jpg"))[:min(args.photos, 1000)]
            t, c = time.perf_counter(), time.process_time()
            base = naive_export(sample, tmp / "loop.npy")
            base_cpu = len(sample) / (time.process_time() - c)
            base_wall = len(sample) / (time.perf_counter() - t)
            (tmp / "loop.npy").unlink()
            secs, rss, out = child(*export_args)
            rows = json.loads(out)["rows"]
            print(f"export       {rows / secs:10,.1f} img/s ({rows} photos -> 224x224, equalize, lanczos, whole "
                  f"command, default workers)  peak RSS {rss:6.0f} MB  same export as a per-image loop "
                  f"({len(sample)} photos) {base_wall:8,.1f} img/s  ratio {rows / secs / base_wall:5.2f}x")
            for name in args.filters.split(","):
                # CPU time of an inline export (-j 1: one process, so RUSAGE_CHILDREN holds all
                # of it; a pool's workers are the forkserver's children, not ours)
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                _, rss1, _ = child(*export_args, "-j", "1", "--resample", name)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                print(f"export -j 1  {rows / cpu:10,.1f} img/CPU-s (--resample {name:8s} whole command, start-up "
                      f"included; {cpu:.0f} CPU-s, peak RSS {rss1:.0f} MB)  loop (lanczos) {base_cpu:8,.1f} img/CPU-s  ratio {rows / cpu / base_cpu:5.2f}x  "
                      f"load {os.getloadavg()[0]:.1f}")

        if "quality" in parts:
            scenes = REPO.parent / "shared" / "data" / "scenes"
            scenes = scenes if scenes.is_dir() else Path("/work/shared/data/scenes")
            if scenes.is_dir():
                q = filter_quality(scenes)
                print("quality      PSNR against Lanczos from the full decode (dB, scenes JPEGs -> 224x224): "
                      + ", ".join(f"{k} {v:.1f}" for k, v in q.items()))
            else:
                print("quality      skipped: ../shared/data/scenes not found")

if __name__ == "__main__":
    main()
