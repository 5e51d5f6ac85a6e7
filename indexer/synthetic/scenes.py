"""Synthetic photographs for the demo, tests and benchmarks (no files needed).

Pure NumPy: a smooth random colour field (low-frequency noise upsampled bicubically),
random discs and bars with sharp edges, and fine grain, so the result has the
statistics photo tools care about (edges, texture, a spread histogram) and distinct
seeds give distinct scenes (pHash distances ~30 between seeds).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from indexer.measure import linear


def scene(seed: int, width: int = 640, height: int = 480) -> np.ndarray:
    """A synthetic scene; uint8 (height, width, 3)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.15, 0.85, size=(5, 7, 3)).astype(np.float32)
    field = np.stack([np.asarray(Image.fromarray(coarse[..., c], mode="F")
                                 .resize((width, height), Image.Resampling.BICUBIC)) for c in range(3)], axis=2)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(rng.integers(6, 12)):
        colour = rng.uniform(0.0, 1.0, size=3).astype(np.float32)
        if rng.random() < 0.5:
            cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.04, 0.2) * width
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        else:
            x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
            mask = (np.abs(xx - x0) < rng.uniform(5, width / 5)) & (np.abs(yy - y0) < rng.uniform(5, height / 5))
        field[mask] = 0.35 * field[mask] + 0.65 * colour
    field += rng.normal(0.0, 0.015, size=field.shape).astype(np.float32)
    return np.clip(np.rint(field * 255.0), 0, 255).astype(np.uint8)


def change_exposure(rgb8: np.ndarray, ev: float) -> np.ndarray:
    """Scale linear light by 2**ev (sRGB decode, scale, clip, encode); uint8 in and out."""
    lin = linear.srgb_to_linear(rgb8.astype(np.float32) / 255.0) * np.float32(2.0 ** ev)
    return np.clip(np.rint(linear.linear_to_srgb(lin) * 255.0), 0, 255).astype(np.uint8)


def soak_scene(rng: np.random.Generator, long_side: int) -> np.ndarray:
    """bench/soak.py's archive picture: 16x-upsampled uniform colour noise (bicubic) with
    one flat rectangle; uint8 (h, w, 3), ``long_side`` px on the long side, landscape 70%
    of the time. Small ones (2 to 8 noise cells a side) have few degrees of freedom: in an
    archive of these they are the partners most often met by chance at 10-14 bits
    (indexer.match.fanout)."""
    short = max(16, int(long_side * rng.uniform(0.5, 1.0)))
    h, w = (short, long_side) if rng.random() < 0.7 else (long_side, short)
    base = rng.integers(0, 256, (max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    arr = np.asarray(Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)).copy()
    y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
    arr[y:y + h // 4, x:x + w // 4] = rng.integers(0, 256, 3, dtype=np.uint8)
    return arr
