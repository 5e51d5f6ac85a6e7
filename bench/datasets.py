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
  equalize     histogram equalisation of N images 3x224x224 in chunks of 64 as export
               does it (normalize.equalize of 0..1 floats at 256 levels) against a
               per-image loop of np.histogram + np.interp on the same images as uint8,
               in CPU time of this process (wall time on a machine at load 30 swings 3x).
  export       photoqa export --normalize equalize of --photos JPEG photos 320x240 to
               224x224 (decode, fit, normalise, stream; whole command in a child, start-up
               included) in img/s, against the per-image loop a user would write (Pillow
               decode + Lanczos resize, np.histogram + np.interp; first 1,000 photos) in
               this process, same run; then in CPU time: a second export with -j 1 (all
               its CPU in RUSAGE_CHILDREN) against the loop's process time, with the load.

    PYTHONPATH=. python bench/datasets.py [--frames 96108] [--images 10000] [--photos 10000]
                                          [--only stats,index,equalize,export]
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


def child(*args: str) -> tuple[float, float, str]:
    """(seconds, peak RSS MB, stdout) of ``python cli.py args`` in a child process. The
    RSS is the largest of any child so far (ru_maxrss of RUSAGE_CHILDREN), so the
    children run smallest first."""
    t = time.perf_counter()
    done = subprocess.run([sys.executable, str(REPO / "cli.py"), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - t
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0, done.stdout


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
    """img per CPU-second of export's equalisation (0..1 floats from 8-bit sources, 256
    levels, in chunks) and of the per-image loop on the same values as uint8."""
    rng = np.random.default_rng(0)
    block = np.clip(rng.normal(110, 40, (chunk, 3, 224, 224)), 0, 255).astype(np.uint8)
    unit = block.astype(np.float32) / 255.0
    fast = slow = 0.0
    for start in range(0, n, chunk):
        b = block[: min(chunk, n - start)]
        t = time.process_time()
        nz.equalize(unit[: len(b)], levels=256)
        fast += time.process_time() - t
        t = time.process_time()
        loop_equalize(b)
        slow += time.process_time() - t
    return n / fast, n / slow


def make_photos(folder: Path, n: int) -> float:
    """``n`` distinct 320x240 JPEGs (smooth random colour fields with grain; ~1 ms each,
    where a synthetic scene costs ~40 ms): seconds taken."""
    from PIL import Image

    t = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((320, 240), Image.BICUBIC)
        grain = rng.integers(-12, 13, (240, 320, 3))
        pixels = np.clip(np.asarray(coarse, np.int16) + grain, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i:05d}.jpg", quality=90)
    return time.perf_counter() - t


def naive_export(paths: list[Path], size: int = 224) -> float:
    """img/s of the per-image Python loop a user would write for the same export: Pillow
    decode, fit into size x size (aspect kept, zero padding), np.histogram + np.interp
    equalisation per image, float32 rows collected in a list."""
    from PIL import Image

    t = time.perf_counter()
    rows = []
    for path in paths:
        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = size / max(im.size)
            w, h = max(1, round(im.width * scale)), max(1, round(im.height * scale))
            small = np.asarray(im.resize((w, h), Image.LANCZOS))
        counts, _ = np.histogram(small, bins=256, range=(0, 256))
        cdf = np.cumsum(counts) / small.size
        out = np.zeros((3, size, size), np.float32)
        top, left = (size - h) // 2, (size - w) // 2
        out[:, top:top + h, left:left + w] = np.moveaxis(np.interp(small, np.arange(256), cdf), -1, 0)
        rows.append(out)
    return len(paths) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=96108)
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--photos", type=int, default=10000, help="photos exported (generated, then indexed)")
    ap.add_argument("--only", default="stats,index,equalize,export",
                    help="comma-separated parts to run: stats,index,equalize,export")
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
            made = make_photos(tmp / "photos", args.photos)
            t = time.perf_counter()
            subprocess.run([sys.executable, str(REPO / "cli.py"), "--db", str(tmp / "p.db"), "index",
                            str(tmp / "photos")], check=True, capture_output=True, env=env)
            print(f"photos       {args.photos} JPEG 320x240 made in {made:.0f} s, indexed in "
                  f"{time.perf_counter() - t:.0f} s")
            export_args = ["--db", str(tmp / "p.db"), "export", str(tmp / "out.npz"), "--size", "224", "224",
                           "--normalize", "equalize", "--where", "container IS NULL", "--format", "json"]
            secs, rss, out = child(*export_args)
            rows = json.loads(out)["rows"]
            # CPU time of an inline export (-j 1: one process, so RUSAGE_CHILDREN holds all
            # of it; a pool's workers are the forkserver's children, not ours)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            child(*export_args, "-j", "1")
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            sample = sorted((tmp / "photos").glob("*.jpg"))[:min(args.photos, 1000)]
            t = time.process_time()
            base = naive_export(sample)
            base_cpu = len(sample) / (time.process_time() - t)
            print(f"export       {rows / secs:10,.1f} img/s ({rows} of {args.photos} photos -> 224x224, equalize, "
                  f"whole command, default workers)  peak RSS so far {rss:6.0f} MB  per-image loop (Pillow "
                  f"decode+resize, np.histogram+np.interp; {len(sample)} photos) {base:8,.1f} img/s  "
                  f"ratio {rows / secs / base:5.2f}x")
            print(f"export -j 1  {rows / cpu:10,.1f} img/CPU-s (whole command, start-up included)  "
                  f"loop {base_cpu:8,.1f} img/CPU-s  ratio {rows / cpu / base_cpu:5.2f}x  "
                  f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
