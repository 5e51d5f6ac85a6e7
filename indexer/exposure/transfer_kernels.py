"""Compiled loop of :func:`indexer.exposure.transfer.level_medians` (numba, cached).

The transfer curve of a verified pair takes the median of A and of B at each of up to
48 levels of A, for two candidate decodings: one sort by (level, value) of ~10^4
values each time, four per pair, was ~60% of ``thumb_delta_ev`` (~2 of ~3.4 ms a job,
2026-12-07). A median needs only the middle one or two values of its level, so here
each level's values are gathered (a counting sort by level) and the middle ones
selected (``np.partition``: the k-th smallest, the same value a sort puts there), and
averaged in the values' own dtype as ``np.median``/``np.mean`` do: the same numbers to
the bit (``tests/test_exposure_transfer.py``).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def level_medians(values: np.ndarray, bins: np.ndarray, n_levels: int, starts: np.ndarray,
                  count: np.ndarray) -> np.ndarray:
    """Median of ``values`` (float32 or float64 (n,)) per level (``bins`` int64 (n,) in
    ``0..n_levels-1``), for the levels whose members start at ``starts`` in level order
    with ``count`` members: float64 (k,)."""
    n = values.size
    offs = np.zeros(n_levels + 1, dtype=np.int64)
    for i in range(n):
        offs[bins[i] + 1] += 1
    for t in range(n_levels):
        offs[t + 1] += offs[t]
    fill = offs[:n_levels].copy()
    grouped = np.empty_like(values)
    for i in range(n):
        t = bins[i]
        grouped[fill[t]] = values[i]
        fill[t] += 1
    two = values.dtype.type(2)
    out = np.empty(starts.size)
    for j in range(starts.size):
        s, c = starts[j], count[j]
        lo_k, hi_k = (c - 1) // 2, c // 2
        part = np.partition(grouped[s:s + c], hi_k)
        hi = part[hi_k]
        lo = hi if lo_k == hi_k else np.max(part[:hi_k])  # the largest below the upper middle
        out[j] = (lo + hi) / two
    return out
