"""Benchmark: per-frame sensor-statistics update on a synthetic 24 MP CFA frame.

Measures, in one run on the same frames, pinned to one core:
- photoqa: ``SensorAccumulator.update`` (ninther residual, tile noise, outlier masks,
  float32 Welford, uint16 counters, stuck tracking, defect dates), 26 bytes per site;
- baseline: the straightforward float64 NumPy Welford of the raw values
  (``delta = x - mean; mean += delta / n; m2 += delta * (x - mean)``), 16 bytes per site,
  no residual, no outliers, no stuck tracking;
- reference (``--median-filter``): the residual the obvious way, ``scipy.ndimage.median_filter``
  3x3 on each of the four CFA planes, timed on one frame.

Targets: <= 0.3 s per 24 MP frame on one core; <= 26 bytes per site (16 before the
defect dates of issue 17: strong-sighting count and first/last capture time, 10 more).

Figures behind ``indexer/sensor/residual.py`` (2026-11-24, when it was written): the
3x3 ``median_filter`` on one 6 MP colour plane ~650 ms, the reason for the ninther; the
tile-noise pass (``_tile_noise``) ~10 ms per 24 MP frame.
Usage: PYTHONPATH=. python bench/sensor_update.py [--frames 5] [--height 4000 --width 6000]
"""
from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import numpy as np

from indexer.sensor.accumulator import SensorAccumulator

BLACK, WHITE = 512, 16383  # a 14-bit camera


def synthetic_frames(height: int, width: int, count: int, seed: int = 0):
    """Smooth textured scene (bilinear-upsampled random field, RGGB gains) + shot/read noise,
    a new random scene offset per frame; uint16 (height, width)."""
    rng = np.random.default_rng(seed)
    gains = np.array([[0.55, 1.0], [1.0, 0.7]], np.float32)
    tile_gain = np.tile(gains, (height // 2, width // 2))
    for _ in range(count):
        coarse = rng.uniform(0.02, 0.8, (height // 40 + 2, width // 40 + 2)).astype(np.float32)
        scene = np.kron(coarse, np.ones((40, 40), np.float32))[:height, :width]
        signal = scene * tile_gain * (WHITE - BLACK)
        noise = rng.standard_normal((height, width), dtype=np.float32)
        noise *= np.sqrt(9.0 + 2.0 * signal)
        signal += noise
        signal += BLACK
        yield np.clip(signal, 0, WHITE).astype(np.uint16)


class Float64Welford:
    """The straightforward baseline: float64 mean and M2 per site."""

    def __init__(self, shape):
        self.n = 0
        self.mean = np.zeros(shape, np.float64)
        self.m2 = np.zeros(shape, np.float64)

    def update(self, frame: np.ndarray) -> None:
        x = frame.astype(np.float64)
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)


def _time(fn, frames) -> list[float]:
    out = []
    for frame in frames:
        t0 = time.perf_counter()
        fn(frame)
        out.append(time.perf_counter() - t0)
    return out


def _median_filter_residual(frame: np.ndarray) -> float:
    from scipy import ndimage

    t0 = time.perf_counter()
    for dy in (0, 1):
        for dx in (0, 1):
            plane = frame[dy::2, dx::2]
            plane.astype(np.float32) - ndimage.median_filter(plane, size=3, mode="mirror")
    return time.perf_counter() - t0


def _peak_transient(acc: SensorAccumulator, frame: np.ndarray) -> int:
    tracemalloc.start()
    acc.update(frame, black_level=BLACK, white_level=WHITE)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--width", type=int, default=6000)
    ap.add_argument("--median-filter", action="store_true", help="also time scipy median_filter")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    shape = (args.height, args.width)
    sites = shape[0] * shape[1]
    frames = list(synthetic_frames(*shape, args.frames + 1))
    warm, frames = frames[0], frames[1:]

    acc = SensorAccumulator(*shape, pattern=[[0, 1], [3, 2]])
    acc.update(warm, black_level=BLACK, white_level=WHITE)
    ours = _time(lambda f: acc.update(f, black_level=BLACK, white_level=WHITE), frames)
    transient = _peak_transient(acc, warm)

    base = Float64Welford(shape)
    base.update(warm)
    baseline = _time(base.update, frames)

    mp = sites / 1e6
    med_ours, med_base = float(np.median(ours)), float(np.median(baseline))
    print(f"frame {shape[1]}x{shape[0]} uint16 CFA ({mp:.1f} MP), {len(frames)} timed frames, 1 core")
    print(f"photoqa update    : median {med_ours:.3f} s/frame  (min {min(ours):.3f}, max {max(ours):.3f})"
          f"  {med_ours / mp * 1e3:.1f} ms/MP   target <= 0.3 s: {'met' if med_ours <= 0.3 else 'MISSED'}")
    print(f"float64 Welford   : median {med_base:.3f} s/frame  (min {min(baseline):.3f}, max {max(baseline):.3f})")
    print(f"ratio photoqa / float64 Welford: {med_ours / med_base:.2f}x "
          f"(photoqa also computes the residual, noise, outliers and stuck counts)")
    print(f"memory per site   : photoqa {acc.nbytes / sites:.1f} B (target <= 26), "
          f"float64 Welford {(base.mean.nbytes + base.m2.nbytes) / sites:.1f} B")
    print(f"transient per update: {transient / 2**20:.1f} MiB peak ({transient / sites:.2f} B/site)")
    if args.median_filter:
        t = _median_filter_residual(frames[0])
        print(f"scipy median_filter residual alone (1 frame): {t:.3f} s  = {t / med_ours:.1f}x photoqa's whole update")


if __name__ == "__main__":
    main()
