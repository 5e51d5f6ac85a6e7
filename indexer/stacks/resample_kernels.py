"""Compiled loop of :func:`indexer.stacks.resample.fit_rgb8` (numba, cached).

Pillow's ``resize`` of an 8-bit RGB image is scalar fixed-point C: a 320x240 JPEG to
224x168 with Lanczos (11 taps a sample each way, ~3 M multiply-adds) took 1.38-1.46 ms
of CPU, half of what an export spent per image (2026-12-07, 2 cores at load 11-14).
Here the same separable weights (:func:`indexer.stacks.resample.bands`) run in float32
with every inner loop over contiguous samples, so LLVM vectorises them, in Pillow's
order and with its rounding: the width first, on the image's columns (the caller makes
them contiguous: float32 channel planes stored by column), rounded half up and clipped
to 8 bits as Pillow does between its passes; then the height, on whole rows of that
result, rounded and clipped into the uint8 (3, H, W) output. 0.54-0.61 ms for that
image with the caller's transposes (Pillow's ``resize`` 1.44-1.53 in the same runs, load
21), into work buffers the caller keeps (allocated fresh each call, they cost ~0.5 ms of
page faults). Values equal Pillow's within one level
(its weights are 22-bit fixed point, these float32): at most 1 over every size, filter
and fit of ``tests/test_export.py``. A loop over ``range(lo, hi)`` was not vectorised
where the same loop over a view from 0 was (2.5x apart): keep the loops from 0.
"""
from __future__ import annotations

import numpy as np
from numba import njit



@njit(cache=True, nogil=True, fastmath=True)
def resize_width8(planes: np.ndarray, col_first: np.ndarray, col_w: np.ndarray, lo: int, hi: int,
                  cols: np.ndarray) -> None:
    """Pillow's first pass on an 8-bit image given as float32 ``planes`` (C, w, h) (its
    columns contiguous), rows ``lo .. hi`` only: ``cols[c, x, lo:hi]`` (float32 (C, ow, h))
    is ``sum_k col_w[x, k] * planes[c, col_first[x] + k, lo:hi]`` (``col_w`` float32
    (ow, K)), rounded half up and clipped to 0..255 as Pillow does between its passes.
    Stored by column, contiguous: stored by row, the scattered writes took 0.17 of the
    pass's 0.27 ms (a 320x240 photo); a NumPy transpose after it takes 0.055."""
    nc = planes.shape[0]
    ow, kx = col_w.shape
    m = hi - lo
    for c in range(nc):
        for x in range(ow):
            acc = cols[c, x, lo:hi]
            acc[:] = 0.0
            for k in range(kx):
                wt = col_w[x, k]
                col = planes[c, col_first[x] + k, lo:hi]
                for y in range(m):  # from 0 over views: see the module docstring
                    acc[y] += wt * col[y]
            for y in range(m):  # half up: truncation of a value made >= 0 first
                v = acc[y] + np.float32(0.5)
                v = np.float32(0.0) if v < 0.0 else (np.float32(255.0) if v > 255.0 else v)
                acc[y] = np.float32(np.int32(v))


@njit(cache=True, nogil=True, fastmath=True)
def resize_height8(mid: np.ndarray, row_first: np.ndarray, row_w: np.ndarray, out: np.ndarray,
                   top: int, left: int) -> None:
    """Pillow's second pass: ``out[c, top + y, left:left + ow]`` (uint8 (C, H, W)) is
    ``sum_k row_w[y, k] * mid[c, row_first[y] + k]`` (``mid`` float32 (C, h, ow), the first
    pass's result stored by row; ``row_w`` float32 (oh, K)), rounded half up and clipped."""
    nc, _, ow = mid.shape
    oh, ky = row_w.shape
    line = np.empty(ow, np.float32)
    for c in range(nc):
        for y in range(oh):
            line[:] = 0.0
            for k in range(ky):
                wt = row_w[y, k]
                row = mid[c, row_first[y] + k]
                for x in range(ow):
                    line[x] += wt * row[x]
            for x in range(ow):
                v = line[x] + np.float32(0.5)
                out[c, top + y, left + x] = np.uint8(np.float32(0.0) if v < 0.0 else (np.float32(255.0) if v > 255.0 else v))
