"""Compiled loop of :func:`indexer.measure.smallfilters.gaussian` (numba, cached).

``ndimage.correlate1d`` copies each line into a buffer with its reflected borders and
back, per axis: at thumbnail size (~128 x 86 px, a 9-tap kernel) that bookkeeping,
not the multiply-adds, was most of its ~40 us a pass, and a verification blurs 5-8
times (cProfile and py-spy of ``bench/verify_cost.py``, 2026-12-07: ~7% of
``compare``). Here both passes run in one call over the array, with ndimage's
arithmetic for a symmetric kernel in its order (``ni_filters.c``, ``NI_Correlate1D``:
``out = x[0] w[0]``, then ``out += (x[-j] + x[j]) w[-j]`` for ``j`` from the radius
down to 1) and its "reflect" border (``d c b a | a b c d | d c b a``, repeated for
lines shorter than the kernel), so the same values to the bit
(``tests/test_smallfilters.py``).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _reflect(i: int, n: int) -> int:
    """Index ``i`` of a line of ``n`` extended by half-sample symmetric reflection."""
    if n == 1:
        return 0
    period = 2 * n
    i %= period
    return period - 1 - i if i >= n else i


@njit(cache=True, nogil=True)
def gaussian_reflect(src: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``correlate1d`` along axis 0, then along axis 1 of its result, of float64 (h, w)
    ``src`` with the symmetric odd-length float64 ``weights`` (mode "reflect",
    origin 0): float64 (h, w)."""
    h, w = src.shape
    r = weights.size // 2
    centre = weights[r]
    tmp = np.empty((h, w))
    for y in range(h):
        for x in range(w):
            tmp[y, x] = src[y, x] * centre
        for j in range(r, 0, -1):
            up, down = _reflect(y - j, h), _reflect(y + j, h)
            wj = weights[r - j]
            for x in range(w):
                tmp[y, x] += (src[up, x] + src[down, x]) * wj
    out = np.empty((h, w))
    line = np.empty(w + 2 * r)
    for y in range(h):
        for x in range(-r, w + r):
            line[x + r] = tmp[y, _reflect(x, w)]
        for x in range(w):
            out[y, x] = line[x + r] * centre
        for j in range(r, 0, -1):
            wj = weights[r - j]
            for x in range(w):
                out[y, x] += (line[x + r - j] + line[x + r + j]) * wj
    return out
