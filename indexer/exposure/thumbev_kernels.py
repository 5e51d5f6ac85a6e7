"""Compiled loops of :mod:`indexer.exposure.thumbev` (numba, cached).

One pass over a pair of 8-bit grey thumbnails per candidate decoding gathers what
:func:`indexer.exposure.transfer.delta_ev` takes from many NumPy passes: the usable
pixels' ratios B/A, the pixels per level of A, B's usable share per level, and per level
the median of A and of B. No transcendental function is evaluated here: decoded values
come from NumPy (a 256-entry table, or the decoded shifted B), and so does ``log2``,
because NumPy's SIMD ``power``/``log2`` need not round like the C library numba calls.
What remains (comparisons, one float32 division, selections, a float32 mean of two
middle values) is exact IEEE arithmetic, so the figures equal the reference's to the bit.

Medians are selections: counts per 8-bit code where values are decoded codes, a radix
selection for the ~10^4 log ratios, a quickselect (Hoare partition, Numerical Recipes'
``select``) within the levels of a shifted B. The k-th smallest value is the same
whichever algorithm finds it, and ``np.median`` of float32 returns the float32 mean
``(lo + hi) / 2`` of the two middle values (one value for an odd count), as
:func:`indexer.exposure.transfer_kernels.level_medians` does.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def select(x: np.ndarray, lo: int, hi: int, k: int):
    """The ``k``-th smallest of ``x[lo:hi + 1]`` (``lo <= k <= hi``, absolute indices),
    partially ordering it in place: afterwards ``x[lo:k] <= x[k] <= x[k + 1:hi + 1]``.
    Hoare partition around a median of three stops on equal values, so the thumbnails'
    many ties cost no quadratic time."""
    left, right = lo, hi
    while right > left + 1:
        mid = (left + right) >> 1
        x[mid], x[left + 1] = x[left + 1], x[mid]
        if x[left] > x[right]:
            x[left], x[right] = x[right], x[left]
        if x[left + 1] > x[right]:
            x[left + 1], x[right] = x[right], x[left + 1]
        if x[left] > x[left + 1]:
            x[left], x[left + 1] = x[left + 1], x[left]
        i, j, pivot = left + 1, right, x[left + 1]
        while True:
            i += 1
            while x[i] < pivot:
                i += 1
            j -= 1
            while x[j] > pivot:
                j -= 1
            if j < i:
                break
            x[i], x[j] = x[j], x[i]
        x[left + 1], x[j] = x[j], pivot
        if j >= k:
            right = j - 1
        if j <= k:
            left = i
    if right == left + 1 and x[right] < x[left]:
        x[left], x[right] = x[right], x[left]
    return x[k]


@njit(cache=True, nogil=True)
def median_inplace(x: np.ndarray, lo: int, n: int):
    """``np.median`` of ``x[lo:lo + n]`` (n >= 1) in ``x``'s dtype, reordering that slice."""
    hi_k = lo + n // 2
    upper = select(x, lo, lo + n - 1, hi_k)
    if n % 2:
        return upper
    lower = x[lo]
    for i in range(lo + 1, hi_k):  # the largest value below the upper middle
        if x[i] > lower:
            lower = x[i]
    return (lower + upper) / x.dtype.type(2)


@njit(cache=True, nogil=True)
def median_and_mad(values: np.ndarray):
    """(median, median absolute deviation from it) of float32 ``values`` (n >= 1, no NaN),
    both float32 as ``np.median(v)`` and ``np.median(np.abs(v - median))`` give them.

    By radix selection (:func:`_two_ranks`): a counting pass per 11 bits of the values'
    ordered bit patterns instead of a partition, whose data-dependent branches made
    the two selections over a thumbnail's ~10^4 log ratios ~0.2 ms (2026-12-08).
    """
    n = values.size
    keys = np.empty(n, np.uint32)
    bits = values.view(np.uint32)
    for i in range(n):  # IEEE sign-magnitude to unsigned order: negatives get all bits flipped
        b = np.int64(bits[i])
        keys[i] = b ^ (0x80000000 | ((b >> 31) * 0x7FFFFFFF))
    lo, hi = _two_ranks(keys, (n - 1) // 2, n // 2)
    med = _mean_of_two(_from_key(lo), _from_key(hi))
    dev = np.empty(n, np.float32)
    for i in range(n):
        dev[i] = abs(values[i] - med)
    lo, hi = _two_ranks(dev.view(np.uint32), (n - 1) // 2, n // 2)  # >= 0: bits are in order
    return med, _mean_of_two(_as_float(lo), _as_float(hi))


@njit(cache=True, nogil=True)
def _mean_of_two(lo, hi):
    return hi if lo == hi else (lo + hi) / np.float32(2)


@njit(cache=True, nogil=True)
def _as_float(bits):
    cell = np.empty(1, np.uint32)
    cell[0] = bits
    return cell.view(np.float32)[0]


@njit(cache=True, nogil=True)
def _from_key(key):
    k = np.int64(key)
    return _as_float(k ^ 0x80000000 if k >> 31 else k ^ 0xFFFFFFFF)


@njit(cache=True, nogil=True)
def _two_ranks(keys: np.ndarray, lo_k: int, hi_k: int):
    """The ``lo_k``-th and ``hi_k``-th smallest (``hi_k`` = ``lo_k`` or ``lo_k + 1``) of
    uint32 ``keys`` (n,), by 11, 11 then 10 bits from the top: count each digit, keep the
    bucket holding both ranks; when they fall in two buckets, the lower rank is the
    largest of the first and the upper the smallest of the second."""
    cur = keys
    for shift in (21, 10, 0):
        hist = np.zeros(2048, np.int64)
        for i in range(cur.size):
            hist[(cur[i] >> shift) & 0x7FF] += 1
        seen, b_lo, b_hi, base = 0, -1, -1, 0
        for d in range(2048):
            if b_lo < 0 and lo_k < seen + hist[d]:
                b_lo, base = d, seen
            if hi_k < seen + hist[d]:
                b_hi = d
                break
            seen += hist[d]
        if b_lo != b_hi:
            lo, hi = np.uint32(0), np.uint32(0xFFFFFFFF)
            for i in range(cur.size):
                d = (cur[i] >> shift) & 0x7FF
                if d == b_lo and cur[i] > lo:
                    lo = cur[i]
                elif d == b_hi and cur[i] < hi:
                    hi = cur[i]
            return lo, hi
        nxt = np.empty(hist[b_lo], np.uint32)
        j = 0
        for i in range(cur.size):
            if (cur[i] >> shift) & 0x7FF == b_lo:
                nxt[j] = cur[i]
                j += 1
        cur, lo_k, hi_k = nxt, lo_k - base, hi_k - base
    return cur[lo_k], cur[hi_k]  # equal: every bit is now fixed


@njit(cache=True, nogil=True)
def _code_median(hist: np.ndarray, table: np.ndarray, n: int):
    """Median of ``n`` values given as counts per code (``hist`` (256,)) of an increasing
    ``table`` (256,) float32: the two middle ranks found by walking the counts."""
    lo_k, hi_k = (n - 1) // 2, n // 2
    lower = upper = table[0]
    seen = 0
    for c in range(256):
        if hist[c] == 0:
            continue
        if seen <= lo_k < seen + hist[c]:
            lower = table[c]
        if seen <= hi_k < seen + hist[c]:
            upper = table[c]
            break
        seen += hist[c]
    return upper if lo_k == hi_k else (lower + upper) / np.float32(2)


@njit(cache=True, nogil=True)
def thumb_pass(a8: np.ndarray, b8: np.ndarray, bv: np.ndarray, mask: np.ndarray,
               table: np.ndarray, level: np.ndarray, low: np.float32, high: np.float32,
               n_levels: int, min_count: int, min_ok: float):
    """The numbers :func:`~indexer.exposure.transfer.delta_ev` needs for one decoding.

    ``a8``: uint8 (n,) A's codes; B is ``b8`` uint8 (n,) codes, or when ``b8`` is empty
    ``bv`` float32 (n,) decoded values (a shifted B); ``mask``: bool (n,) or empty (all
    pixels). ``table``: float32 (256,) strictly increasing decoded value of each code;
    ``level``: int64 (256,) A's level of each code, -1 where A is noise floor or clipped.
    ``low``/``high``: float32 linear levels.

    Returns (ratios float32 (m,) B/A over the usable pixels, pixels compared (int),
    kept levels int64 (k,), their ``count`` int64 (k,), ``level_a`` and ``median_b``
    float64 (k,), ``usable`` bool (k,)); levels need ``min_count`` pixels to be kept,
    and are usable when at least ``min_ok`` of their B pixels are neither clipped nor
    in the noise floor.
    """
    n = a8.size
    codes, masked = b8.size == n, mask.size == n
    size = np.zeros(n_levels, np.int64)
    b_ok = np.zeros(n_levels, np.int64)
    hist_a = np.zeros((n_levels, 256), np.int32)
    hist_b = np.zeros((n_levels if codes else 0, 256), np.int32)
    ratios = np.empty(n, np.float32)
    used = total = 0
    for i in range(n):
        if masked and not mask[i]:
            continue
        total += 1
        t = level[a8[i]]
        if t < 0:
            continue
        yb = table[b8[i]] if codes else bv[i]
        size[t] += 1
        hist_a[t, a8[i]] += 1
        if codes:
            hist_b[t, b8[i]] += 1
        if yb > low and yb < high:
            b_ok[t] += 1
            ratios[used] = yb / table[a8[i]]
            used += 1
    kept = np.flatnonzero(size >= min_count)
    k = kept.size
    level_a, median_b, usable = np.empty(k), np.empty(k), np.empty(k, np.bool_)
    for j in range(k):
        t = kept[j]
        level_a[j] = _code_median(hist_a[t], table, size[t])
        usable[j] = b_ok[t] / size[t] >= min_ok
        if codes:
            median_b[j] = _code_median(hist_b[t], table, size[t])
    if not codes and k:
        _level_medians(a8, bv, mask, level, size, kept, median_b)
    return ratios[:used], total, kept, size[kept], level_a, median_b, usable


@njit(cache=True, nogil=True)
def _level_medians(a8, bv, mask, level, size, kept, out):
    """``out[j]``: median of ``bv`` over the pixels at level ``kept[j]`` of A: grouped
    by level (a counting sort), then a selection within each group."""
    n_levels = size.size
    starts = np.zeros(n_levels + 1, np.int64)
    for t in range(n_levels):
        starts[t + 1] = starts[t] + size[t]
    fill = starts[:n_levels].copy()
    grouped = np.empty(starts[n_levels], np.float32)
    masked = mask.size == a8.size
    for i in range(a8.size):
        t = level[a8[i]]
        if t < 0 or (masked and not mask[i]):
            continue
        grouped[fill[t]] = bv[i]
        fill[t] += 1
    for j in range(kept.size):
        t = kept[j]
        out[j] = median_inplace(grouped, starts[t], size[t])
