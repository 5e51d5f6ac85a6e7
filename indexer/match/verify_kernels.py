"""Compiled loops of the pixel verification measures (:mod:`indexer.match.verify`).

Numba ``@njit(cache=True)`` kernels (machine code cached beside this file, as
:mod:`indexer.match.mih_kernels`). At thumbnail size (~128 x 85 px) the NumPy versions
spend most of their time in per-call overhead: one tile's rank correlation is ~10 NumPy
calls on ~700 values, and a compare measured 32 of them (plain and blurred 4x4 grids),
~0.1 ms each (cProfile, 2026-12-03: ``np.unique``'s argsort and bookkeeping were 20% of
``compare``); ``scipy.ndimage.median_filter`` 3x3 on float64 took ~1.7 ms a call
(a generic rank filter); the measures only ask whether that median exceeds a level,
which :func:`median3_above` answers by counting, ~0.03 ms.

Every kernel computes the same numbers as the NumPy reference it replaces (ranks and
the median test exactly; correlations up to summation order, ~1e-16), see tests/test_match_verify_kernels.py.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def sorted_order(values: np.ndarray) -> np.ndarray:
    """Indices that sort ``values`` (float64, finite) ascending; ties in any order.

    A bucket sort: ``n`` buckets over ``[min, max]`` (the bucket index is a monotone
    function of the value, so buckets are in order), each bucket sorted by insertion,
    or by ``np.argsort`` past 32 entries unless they are all one value. A resampled
    thumbnail at scale 1.0 and a whole-pixel shift holds only its ~200 integer levels,
    each level a bucket of ~50 ties: skipping their argsort took ``mid_ranks`` of such
    an overlap (~10^4 values) from ~0.2-0.28 to ~0.05 ms (2026-12-07). On ~10^4 thumbnail values 8x sooner than
    ``np.argsort`` (0.06 against 0.45 ms, 2026-12-03), whose comparison sort dominates
    a rank correlation at this size.
    """
    n = values.size
    order = np.empty(n, dtype=np.int64)
    if n == 0:
        return order
    lo, hi = values.min(), values.max()
    if not hi > lo:
        for i in range(n):
            order[i] = i
        return order
    scale = n / (hi - lo)
    bucket = np.empty(n, dtype=np.int64)
    starts = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        k = min(int((values[i] - lo) * scale), n - 1)
        bucket[i] = k
        starts[k + 1] += 1
    for k in range(n):
        starts[k + 1] += starts[k]
    fill = starts[:n].copy()
    for i in range(n):
        k = bucket[i]
        order[fill[k]] = i
        fill[k] += 1
    for k in range(n):
        s, e = starts[k], starts[k + 1]
        if e - s > 32 and not _all_equal(values, order, s, e):
            seg = order[s:e].copy()
            sub = np.argsort(values[seg])
            for j in range(e - s):
                order[s + j] = seg[sub[j]]
            continue
        for j in range(s + 1, e):
            idx = order[j]
            v = values[idx]
            m = j - 1
            while m >= s and values[order[m]] > v:
                order[m + 1] = order[m]
                m -= 1
            order[m + 1] = idx
    return order


@njit(cache=True, nogil=True)
def _all_equal(values: np.ndarray, order: np.ndarray, s: int, e: int) -> bool:
    """True when ``values[order[s:e]]`` are all one value (a bucket of ties needs no sort)."""
    v = values[order[s]]
    for j in range(s + 1, e):
        if values[order[j]] != v:
            return False
    return True


@njit(cache=True, nogil=True)
def _level_ranks(values: np.ndarray, out: np.ndarray) -> bool:
    """:func:`mid_ranks` into ``out`` by counting when every value is an integer level
    0..255 (a stored thumbnail, or one resampled at scale 1.0 by a whole-pixel shift);
    False, ``out`` untouched, otherwise. The same numbers: a level's mid rank is
    ``(cumulative count - count / 2) / n`` either way. ~4x sooner than the bucket sort
    on such an overlap (2026-12-07)."""
    n = values.size
    counts = np.zeros(257, dtype=np.int64)
    for i in range(n):
        v = values[i]
        if not (0.0 <= v <= 255.0) or v != np.floor(v):
            return False
        counts[int(v) + 1] += 1
    mid = np.empty(256)
    total = 0
    for level in range(256):
        c = counts[level + 1]
        total += c
        mid[level] = (total - 0.5 * c) / n
    for i in range(n):
        out[i] = mid[int(values[i])]
    return True


@njit(cache=True, nogil=True)
def mid_ranks(values: np.ndarray) -> np.ndarray:
    """Each value's mid-rank quantile in (0, 1) (float64, same length): ties share their
    mean rank, ``(start + count / 2) / n``, as ``align.rank_normalise``."""
    n = values.size
    out = np.empty(n)
    if n == 0:
        return out
    if _level_ranks(values, out):
        return out
    order = sorted_order(values)
    start = 0
    while start < n:
        stop = start + 1
        v = values[order[start]]
        while stop < n and values[order[stop]] == v:
            stop += 1
        # numpy: (cumsum - 0.5 * counts) / n with cumsum = stop, counts = stop - start
        mid = (stop - 0.5 * (stop - start)) / n
        for i in range(start, stop):
            out[order[i]] = mid
        start = stop
    return out


@njit(cache=True, nogil=True)
def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two equal-length float64 vectors; 0.0 when either is constant."""
    n = x.size
    if n == 0:
        return 0.0
    mx, my = 0.0, 0.0
    for i in range(n):
        mx += x[i]
        my += y[i]
    mx /= n
    my /= n
    sxy, sxx, syy = 0.0, 0.0, 0.0
    for i in range(n):
        dx, dy = x[i] - mx, y[i] - my
        sxy += dx * dy
        sxx += dx * dx
        syy += dy * dy
    den = np.sqrt(sxx * syy)
    return sxy / den if den > 0 else 0.0


@njit(cache=True, nogil=True)
def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation: :func:`pearson` of :func:`mid_ranks`."""
    return pearson(mid_ranks(x), mid_ranks(y))


@njit(cache=True, nogil=True)
def tile_spearman(a: np.ndarray, b: np.ndarray, mask: np.ndarray, ys: np.ndarray, xs: np.ndarray,
                  min_pixels: int, min_range: float) -> np.ndarray:
    """Rank correlation of ``a`` and ``b`` (float64 (h, w)) under ``mask`` (bool) in each
    tile ``[ys[i], ys[i+1]) x [xs[j], xs[j+1])``, row-major, keeping the tiles with at
    least ``min_pixels`` masked pixels whose values span more than ``min_range`` on both
    sides; float64 (k,)."""
    out = np.empty((len(ys) - 1) * (len(xs) - 1))
    k = 0
    for ti in range(len(ys) - 1):
        for tj in range(len(xs) - 1):
            y0, y1, x0, x1 = ys[ti], ys[ti + 1], xs[tj], xs[tj + 1]
            m = 0
            for y in range(y0, y1):
                for x in range(x0, x1):
                    if mask[y, x]:
                        m += 1
            if m < min_pixels:
                continue
            ta, tb = np.empty(m), np.empty(m)
            i = 0
            for y in range(y0, y1):
                for x in range(x0, x1):
                    if mask[y, x]:
                        ta[i], tb[i] = a[y, x], b[y, x]
                        i += 1
            if ta.max() - ta.min() > min_range and tb.max() - tb.min() > min_range:
                out[k] = spearman(ta, tb)
                k += 1
    return out[:k]


@njit(cache=True, nogil=True)
def median3_above(img: np.ndarray, level: float) -> np.ndarray:
    """``ndimage.median_filter(img, size=3) > level`` (bool (h, w)) without sorting: a median of 9 values exceeds
    ``level`` exactly when at least 5 of them do."""
    h, w = img.shape
    above = np.empty((h, w), dtype=np.uint8)
    for y in range(h):
        for x in range(w):
            above[y, x] = img[y, x] > level
    out = np.empty((h, w), dtype=np.bool_)
    for y in range(h):
        for x in range(w):
            n = 0
            for dy in range(-1, 2):
                yy = min(max(y + dy, 0), h - 1)
                for dx in range(-1, 2):
                    n += above[yy, min(max(x + dx, 0), w - 1)]
            out[y, x] = n >= 5
    return out


# One sort per side, many rank correlations (2026-12-07). A compare ranks the same
# overlap values for the whole-overlap correlation, for each of 16 tiles and (blurred)
# for the overlap outside an edit: ~70 sorts of 500-10,000 values. Ranks within a
# subset follow from the whole set's sorted order (filter it: the subset's values come
# out sorted, ties still adjacent), so one sort per side serves them all. The ranks
# are the same numbers as :func:`mid_ranks` of each subset (a tie group's mid rank
# depends only on where it starts and stops in the subset's sorted sequence), and each
# correlation sums in the subset's own (row-major) order as before: equal to the bit.


@njit(cache=True, nogil=True)
def order_of(values: np.ndarray) -> np.ndarray:
    """Indices that sort ``values`` (float64 (n,), finite) ascending, ties adjacent:
    a counting sort when every value is an integer level 0..255 (a stored thumbnail),
    else :func:`sorted_order`."""
    n = values.size
    counts = np.zeros(257, dtype=np.int64)
    for i in range(n):
        v = values[i]
        if not (0.0 <= v <= 255.0) or v != np.floor(v):
            return sorted_order(values)
        counts[int(v) + 1] += 1
    for level in range(256):
        counts[level + 1] += counts[level]
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        k = int(values[i])
        order[counts[k]] = i
        counts[k] += 1
    return order


@njit(cache=True, nogil=True)
def _ranks_of_run(values: np.ndarray, seq: np.ndarray, local: np.ndarray, out: np.ndarray) -> None:
    """Mid ranks of a subset whose indices, sorted by value, are ``seq`` (m,): ``out``
    (m,) at ``local[index]`` (the index's position in the subset's own order); the
    arithmetic of :func:`mid_ranks`."""
    m = seq.size
    start = 0
    while start < m:
        stop = start + 1
        v = values[seq[start]]
        while stop < m and values[seq[stop]] == v:
            stop += 1
        mid = (stop - 0.5 * (stop - start)) / m
        for i in range(start, stop):
            out[local[seq[i]]] = mid
        start = stop


@njit(cache=True, nogil=True)
def ranks_sorted(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """:func:`mid_ranks` of ``values`` from their sorted ``order`` (:func:`order_of`)."""
    n = values.size
    out = np.empty(n)
    local = np.arange(n)
    _ranks_of_run(values, order, local, out)
    return out


@njit(cache=True, nogil=True)
def subset_ranks(values: np.ndarray, order: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """:func:`mid_ranks` of ``values[keep]`` (``keep`` bool (n,)) from the sorted
    ``order`` of all of ``values``; float64 (keep.sum(),)."""
    n = values.size
    local = np.full(n, -1, dtype=np.int64)
    m = 0
    for i in range(n):
        if keep[i]:
            local[i] = m
            m += 1
    seq = np.empty(m, dtype=np.int64)
    j = 0
    for i in range(n):
        idx = order[i]
        if keep[idx]:
            seq[j] = idx
            j += 1
    out = np.empty(m)
    _ranks_of_run(values, seq, local, out)
    return out


@njit(cache=True, nogil=True)
def tile_spearman_sorted(a: np.ndarray, b: np.ndarray, order_a: np.ndarray, order_b: np.ndarray,
                         mask: np.ndarray, ys: np.ndarray, xs: np.ndarray, min_pixels: int,
                         min_range: float) -> np.ndarray:
    """:func:`tile_spearman` from the values under ``mask`` (bool (h, w)) in row-major
    order (``a``, ``b`` float64 (n,)) and their sorted orders: the same tiles
    ``[ys[i], ys[i+1]) x [xs[j], xs[j+1])`` kept, the same correlations."""
    n = a.size
    ny, nx = ys.size - 1, xs.size - 1
    tiles = ny * nx
    tile = np.empty(n, dtype=np.int64)
    i = 0
    ti = 0
    for y in range(mask.shape[0]):
        while ti < ny - 1 and y >= ys[ti + 1]:
            ti += 1
        tj = 0
        for x in range(mask.shape[1]):
            if mask[y, x]:
                while tj < nx - 1 and x >= xs[tj + 1]:
                    tj += 1
                tile[i] = ti * nx + tj
                i += 1
    count = np.zeros(tiles + 1, dtype=np.int64)
    local = np.empty(n, dtype=np.int64)
    lo_a, hi_a = np.full(tiles, np.inf), np.full(tiles, -np.inf)
    lo_b, hi_b = np.full(tiles, np.inf), np.full(tiles, -np.inf)
    for i in range(n):
        t = tile[i]
        local[i] = count[t + 1]
        count[t + 1] += 1
        lo_a[t], hi_a[t] = min(lo_a[t], a[i]), max(hi_a[t], a[i])
        lo_b[t], hi_b[t] = min(lo_b[t], b[i]), max(hi_b[t], b[i])
    for t in range(tiles):
        count[t + 1] += count[t]
    seq_a, seq_b = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    fill_a, fill_b = count[:tiles].copy(), count[:tiles].copy()
    for i in range(n):
        idx = order_a[i]
        t = tile[idx]
        seq_a[fill_a[t]] = idx
        fill_a[t] += 1
        idx = order_b[i]
        t = tile[idx]
        seq_b[fill_b[t]] = idx
        fill_b[t] += 1
    out = np.empty(tiles)
    k = 0
    for t in range(tiles):
        s, e = count[t], count[t + 1]
        if e - s < min_pixels:
            continue
        if hi_a[t] - lo_a[t] > min_range and hi_b[t] - lo_b[t] > min_range:
            ra, rb = np.empty(e - s), np.empty(e - s)
            _ranks_of_run(a, seq_a[s:e], local, ra)
            _ranks_of_run(b, seq_b[s:e], local, rb)
            out[k] = pearson(ra, rb)
            k += 1
    return out[:k]


@njit(cache=True, nogil=True)
def level_pair_median(a: np.ndarray, b: np.ndarray, low: int, high: int, table: np.ndarray,
                      keys: np.ndarray) -> tuple:
    """(count, median) of ``table[a * 256 + b]`` over the pixels with ``low < a < high``
    and ``low < b < high`` (``a``, ``b`` uint8 (n,)); ``table`` float64 (65536,),
    ``keys`` the level pairs in that range sorted by their table value. By counting
    pairs, not sorting values: the k-th value in ``keys`` order is the k-th smallest, so
    the median is ``np.median``'s (the middle value, or the two middle values' sum
    halved) to the bit; 0.0 with no pixel."""
    counts = np.zeros(65536, dtype=np.int64)
    n = 0
    for i in range(a.size):
        x, y = a[i], b[i]
        if low < x < high and low < y < high:
            counts[np.int64(x) * 256 + np.int64(y)] += 1
            n += 1
    if n == 0:
        return 0, 0.0
    lo_rank, hi_rank = (n - 1) // 2, n // 2
    seen = 0
    lo_value = 0.0
    for key in keys:
        c = counts[key]
        if c == 0:
            continue
        if seen <= lo_rank < seen + c:
            lo_value = table[key]
        if seen <= hi_rank < seen + c:
            hi = table[key]
            return n, lo_value if lo_rank == hi_rank else (lo_value + hi) / 2.0
        seen += c
    return n, 0.0
