"""Compiled loop of :func:`indexer.stacks.resample.fit_rgb8` (numba, cached).

Pillow's ``resize`` of an 8-bit RGB image is scalar fixed-point C: a 320x240 JPEG to
224x168 with Lanczos (11 taps a sample each way, ~3 M multiply-adds) took 1.38-1.46 ms
of CPU, half of what an export spent per image (2026-12-07, 2 cores at load 11-14).
Here the same separable weights (:func:`indexer.stacks.resample.bands`) run in float32
with every inner loop over contiguous samples, so LLVM vectorises them, in Pillow's
order and with its rounding: the width first, on the image's columns (the caller makes
them contiguous: float32 channel planes stored by column), rounded half up and clipped
to 8 bits as Pillow does between its passes; then the height, on whole rows of that
result, rounded and clipped into the uint8 (3, H, W) output. 0.65-0.72 ms for that
image with the caller's transpose, into work buffers the caller keeps (allocated fresh
each call, they cost ~0.5 ms of page faults). Values equal Pillow's within one level
(its weights are 22-bit fixed point, these float32): at most 1 over every size, filter
and fit of ``tests/test_export.py``. A loop over ``range(lo, hi)`` was not vectorised
where the same loop over a view from 0 was (2.5x apart): keep the loops from 0.
"""

from __future__ import annotations

import numpy as np
from numba import njit



@njit(cache=True, nogil=True, fastmath=True)
def resize_planes8(planes: np.ndarray, row_first: np.ndarray, row_w: np.ndarray, col_first: np.ndarray,
                   col_w: np.ndarray, out: np.ndarray, top: int, left: int, mid: np.ndarray) -> None:
    """An 8-bit image given as float32 ``planes`` (C, w, h) (its columns contiguous: only
    the rows ``row_first[0] .. row_first[-1] + K`` are read) resized into
    ``out[:, top:top + oh, left:left + ow]`` (uint8 (C, H, W)) as Pillow does it: the
    width first, output column ``x`` being ``sum_k col_w[x, k] * planes[:, col_first[x] + k]``
    (``col_w`` float32 (ow, K')), rounded half up and clipped to 0..255; then the height,
    output row ``y`` being ``sum_k row_w[y, k] * mid[:, row_first[y] + k]`` (``row_w``
    float32 (oh, K)), rounded and clipped the same. Work buffer: ``mid`` float32 (C, h, ow)."""
    nc = planes.shape[0]
    oh, ky = row_w.shape
    ow, kx = col_w.shape
    lo = row_first[0]  # the input rows the output needs (all but a crop's)
    hi = row_first[oh - 1] + ky
    m = hi - lo
    acc = np.empty(m, np.float32)
    for c in range(nc):  # the width: each output column a weighted sum of whole columns
        for x in range(ow):
            acc[:] = 0.0
            for k in range(kx):
                wt = col_w[x, k]
                col = planes[c, col_first[x] + k, lo:hi]
                for y in range(m):  # from 0 over a view: see the module docstring
                    acc[y] += wt * col[y]
            for y in range(m):  # half up: truncation of a value made >= 0 first
                v = acc[y] + np.float32(0.5)
                v = np.float32(0.0) if v < 0.0 else (np.float32(255.0) if v > 255.0 else v)
                mid[c, lo + y, x] = np.float32(np.int32(v))
    line = np.empty(ow, np.float32)
    for c in range(nc):  # the height: each output row a weighted sum of whole rows
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
