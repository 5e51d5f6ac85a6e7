"""Compiled residual of a rendered (demosaiced) frame: the math of :mod:`.residual`, fused.

:func:`rgb_strip_arrays` computes, for every strip of ``tile`` rows, exactly what
:func:`indexer.sensor.residual.iter_rgb_strips` yields (the ninther residual per channel
against the same-colour grid ``rgb_step`` pixels away, the robust tile noise, the outlier
masks, the channel with the largest |r| / noise, that channel's value and whether it
is judgeable), in one pass per strip whose intermediates stay in cache. The NumPy version
makes ~20 full-strip passes per channel (min/max, casts, reshapes); this one reads each
input byte a few times. ``tests/test_sensor_kernels.py`` checks both agree element for
element; ``bench/sensor_cost.py`` times it against the NumPy path on a 12 MP frame.

Numba ``@njit(cache=True)``: the machine code is cached beside this file, so the JIT cost
is paid once per machine, not per worker process.

Exactness: inputs are integers, so every residual is an integer and every sub-tile sum of
|r| is an integer below 2**24; float32 holds them exactly, whatever the summation order.
No ``fastmath``: it would let LLVM replace |r| / noise by a reciprocal multiply, which
moves some channel picks and outlier verdicts off the NumPy definition.

RGB frames whose width is a multiple of 8 (every camera's) take a fused row loop
(``_row3``): channel pick, value, the four masks and the stuck-fit sample test in one
vectorised loop, the masks packed 8 flags per multiply, and the sampled sites' values
and ninthers appended by visiting only the non-zero bytes of the packed sample row. On
a textured 12 MP frame (2026-12-07), with the tile noise's sort gone too, that took the
whole delta from ~92 to ~50 ms CPU at load ~3 (the kernel from ~84 to ~40 ms, of which
the stuck-fit sampling from ~10 to ~4 ms), and from 104-105 to 60-61 ms at load ~14
(``bench/sensor_residual.py --baseline main``, 3 runs: 0.57x); other shapes run the
generic per-channel loops.
"""
from __future__ import annotations

import sys

import numpy as np
from numba import njit

from indexer.sensor.residual import STRONG


@njit(cache=True, inline="always")
def _med3(a, b, c):
    lo = min(a, b)
    hi = max(a, b)
    hi = min(hi, c)
    return max(lo, hi)


# Loops index rows sliced to start at their offset (``row[step : step + n]``) rather than
# ``row[x + step]``: numba then proves every index non-negative, drops the wrap-around
# check and LLVM vectorises the loop. The row-median loop went from 61 ms to 3 ms for
# three 12 MP uint8 planes (2026-12-07).

@njit(cache=True, error_model="numpy")
def _strip_channel(pad, y, tile, step, hmed, res):
    """Ninther residual of padded rows ``y + step .. y + step + tile`` into ``res`` (tile, Wp);
    ``hmed`` (tile + 2 step, Wp) is scratch for the row medians, each computed once."""
    wp = res.shape[1]
    for i in range(tile + 2 * step):
        row = pad[y + i]
        ra, rb, rc, out = row[0:wp], row[step : step + wp], row[2 * step : 2 * step + wp], hmed[i]
        for x in range(wp):
            out[x] = _med3(ra[x], rb[x], rc[x])
    for i in range(tile):
        a, b, c = hmed[i], hmed[i + step], hmed[i + 2 * step]
        centre, out = pad[y + i + step][step : step + wp], res[i]
        for x in range(wp):
            out[x] = np.int32(centre[x]) - np.int32(_med3(a[x], b[x], c[x]))


@njit(cache=True, error_model="numpy")
def _tile_noise(res, tile, floor, colsum, sums, noise):
    """Lower quartile of the 16 sub-tiles' mean |r| per tile column, floored: ``noise`` (Wp,).

    Scratch: ``colsum`` (Wp,) int32, ``sums`` (Wp / tile, 16) int64. Each band of
    ``tile / 4`` rows is summed down the columns first (a vectorised loop over the whole
    row), then cut into sub-tiles: runs of ``tile / 4`` are too short to vectorise.
    """
    q = tile // 4
    tiles = sums.shape[0]
    wp = colsum.shape[0]
    for band in range(4):
        colsum[:] = 0
        for i in range(band * q, (band + 1) * q):
            row = res[i][:wp]
            for x in range(wp):
                colsum[x] += abs(np.int32(row[x]))
        for t in range(tiles):
            for j in range(4):
                run = colsum[t * tile + j * q : t * tile + (j + 1) * q]
                sums[t, band * 4 + j] = run.sum()
    for t in range(tiles):
        value = max(np.float32(_fourth_smallest(sums[t])) / np.float32(q * q), np.float32(floor))
        noise[t * tile : (t + 1) * tile] = value


@njit(cache=True, inline="always")
def _fourth_smallest(v):
    """The 4th smallest of ``v`` (16 integers) by insertion into four registers: an
    ``np.sort`` per tile allocated a copy each time, ~10 ms of the 12 MP frame."""
    big = np.iinfo(np.int64).max
    a = b = c = d = big
    for k in range(v.shape[0]):
        x = v[k]
        if x < d:
            if x < c:
                d = c
                if x < b:
                    c = b
                    if x < a:
                        b, a = a, x
                    else:
                        b = x
                else:
                    c = x
            else:
                d = x
    return d


@njit(cache=True, error_model="numpy")
def _combine_row(res, noise, i, width, margin, factor, best_r, best_z, best_c, up, down, strong):
    """Row ``i`` of the strip: the channel with the largest |r| / noise (``best_c``) and the
    outlier masks (``strong``: |r| beyond ``factor`` times the threshold in some channel)."""
    row, n = res[0, i][:width], noise[0][:width]
    for x in range(width):
        r = np.float32(row[x])
        thr = n[x] * margin
        best_r[x] = row[x]
        best_z[x] = abs(r) / n[x]
        best_c[x] = 0
        up[x] = r > thr
        down[x] = r < -thr
        strong[x] = abs(r) > thr * factor
    for c in range(1, res.shape[0]):
        row, n = res[c, i][:width], noise[c][:width]
        for x in range(width):
            r = np.float32(row[x])
            thr = n[x] * margin
            z = abs(r) / n[x]
            better = z > best_z[x]
            best_r[x] = row[x] if better else best_r[x]
            best_z[x] = z if better else best_z[x]
            best_c[x] = c if better else best_c[x]
            up[x] = up[x] | (r > thr)
            down[x] = down[x] | (r < -thr)
            strong[x] = strong[x] | (abs(r) > thr * factor)


@njit(cache=True, inline="always")
def _reflect(k, n):
    """Index of padded position ``k`` (may be < 0 or >= n) in a side of ``n``, mirrored
    as NumPy's ``np.pad(mode="reflect")`` mirrors (repeatedly, when the pad exceeds n)."""
    if n == 1:
        return 0
    period = 2 * (n - 1)
    k = abs(k) % period
    return period - k if k >= n else k


@njit(cache=True, error_model="numpy")
def _fill_strip(image, y, step, colmap, spad):
    """Channel-major mirror-padded rows ``y - step .. y - step + rows`` of ``image`` (H, W, C)
    into ``spad`` (C, rows, Wp + 2 step); ``colmap`` the source column of each padded one."""
    height, width, channels = image.shape
    wpad = spad.shape[2]
    for i in range(spad.shape[1]):
        src = image[_reflect(y + i - step, height)]
        for c in range(channels):
            dst = spad[c, i]
            inner = dst[step : step + width]
            for x in range(width):
                inner[x] = src[x, c]
            for j in range(step):
                dst[j] = src[colmap[j], c]
            for j in range(step + width, wpad):
                dst[j] = src[colmap[j], c]


@njit(cache=True, inline="always")
def _pack_row(flags, packed, base):
    """OR the bools ``flags`` into ``packed`` (zeroed, np.packbits order: big-endian
    bits, row-major) at bit offset ``base``; whole bytes are written 8 flags at a time."""
    n = flags.shape[0]
    x = 0
    while x < n and (base + x) & 7:
        if flags[x]:
            packed[(base + x) >> 3] |= np.uint8(1 << (7 - ((base + x) & 7)))
        x += 1
    k = (base + x) >> 3
    while x + 8 <= n:
        b = 0
        for j in range(8):
            b = (b << 1) | (1 if flags[x + j] else 0)
        packed[k] = b
        k += 1
        x += 8
    while x < n:
        if flags[x]:
            packed[(base + x) >> 3] |= np.uint8(1 << (7 - ((base + x) & 7)))
        x += 1


@njit(cache=True, error_model="numpy")
def _sample_row(res, i, src, best_z, zmin, width, sv, sm, count, sampled, base):
    """Sites of row ``i`` with ``best_z`` > ``zmin``: set in the packed ``sampled`` (bit
    ``base + x``, as np.packbits orders them), their channels' values and ninthers
    appended to ``sv`` / ``sm``."""
    # one pass, each bit set where its site is taken (~3 % are): a pass building a bool
    # row and another packing it cost ~4 ms more per 12 MP frame (bench/sensor_residual.py)
    k = count[0]
    channels = src.shape[1]
    for x in range(width):
        if best_z[x] > zmin:
            p = base + x
            sampled[p >> 3] |= np.uint8(1 << (7 - (p & 7)))
            for c in range(channels):
                sv[k, c] = src[x, c]
                sm[k, c] = np.int32(src[x, c]) - np.int32(res[c, i, x])
            k += 1
    count[0] = k


# np.packbits of 8 flags (bytes 0/1, first flag most significant) in one multiply: flag j of
# the little-endian word, at bit 8 j, lands on bit 63 - j and nothing carries (the product's
# terms sit at distinct bits); bits 56..63 are the packed byte.
_PACK8 = np.uint64(0x8040201008040201)


@njit(cache=True, inline="always")
def _pack_words(flags, packed, base):
    """``_pack_row`` for ``base`` a multiple of 8 and ``flags`` (n,) bool, n a multiple of 8:
    a vectorised multiply per 8 flags instead of a branch per flag."""
    words = flags.view(np.uint64)
    out = packed[base >> 3 : (base >> 3) + words.shape[0]]
    for k in range(words.shape[0]):
        out[k] = np.uint8((words[k] * _PACK8) >> np.uint64(56))


@njit(cache=True, error_model="numpy")
def _row3(res, noise, i, width, margin, factor, zmin, white, spad, step, rrow, vrow, flags):
    """Row ``i`` of a 3-channel strip in one vectorised loop: what ``_combine_row``, the
    value pick and the sample test do in turn, the three channels' residuals, noise and
    values read once. ``flags`` (5, width) bool receives bright, dark, judgeable, strong
    and "sample" (best |r| / noise > ``zmin``); the picks and comparisons are
    ``_combine_row``'s, in the same order, so results are identical."""
    ra, rb, rc = res[0, i][:width], res[1, i][:width], res[2, i][:width]
    na, nb, nc = noise[0][:width], noise[1][:width], noise[2][:width]
    up, down, fair, far, take = flags[0], flags[1], flags[2], flags[3], flags[4]
    # the values from the channel-major padded strip: picking from the interleaved (W, 3)
    # row kept LLVM from vectorising (101 ms against 12 ms for 12 MP in a micro benchmark)
    sa = spad[0, i + step][step : step + width]
    sb = spad[1, i + step][step : step + width]
    sc = spad[2, i + step][step : step + width]
    for x in range(width):
        # every load unconditional, picks as selects: LLVM then vectorises the loop
        ia, ib, ic = ra[x], rb[x], rc[x]
        va, vb, vc = sa[x], sb[x], sc[x]
        a, b, c = np.float32(ia), np.float32(ib), np.float32(ic)
        ta, tb, tc = na[x] * margin, nb[x] * margin, nc[x] * margin
        za, zb, zc = abs(a) / na[x], abs(b) / nb[x], abs(c) / nc[x]
        better = zb > za
        r = ib if better else ia
        v = vb if better else va
        z = zb if better else za
        better = zc > z
        r = ic if better else r
        v = vc if better else v
        z = zc if better else z
        rrow[x] = r
        vrow[x] = v
        up[x] = (a > ta) | (b > tb) | (c > tc)
        down[x] = (a < -ta) | (b < -tb) | (c < -tc)
        far[x] = (abs(a) > ta * factor) | (abs(b) > tb * factor) | (abs(c) > tc * factor)
        fair[x] = (v > 0) & (v < white)
        take[x] = z > zmin


@njit(cache=True, error_model="numpy")
def _take_row(res, i, src, packed, base, width, sv, sm, count):
    """Append the channels' values and ninthers of the sites set in row ``i``'s packed
    sample bits (``base`` a multiple of 8) to ``sv`` / ``sm``, in raster order. Only the
    non-zero bytes are visited (~3 % of sites are taken: ~1 byte in 5), so this costs
    ~1/8 of a loop over the row's sites, and the appends are sequential."""
    k = count[0]
    channels = src.shape[1]
    first = base >> 3
    for kb in range(width >> 3):
        byte = packed[first + kb]
        if byte:
            for j in range(8):
                if byte & (128 >> j):
                    x = kb * 8 + j
                    for c in range(channels):
                        sv[k, c] = src[x, c]
                        sm[k, c] = np.int32(src[x, c]) - np.int32(res[c, i, x])
                    k += 1
    count[0] = k


@njit(cache=True, error_model="numpy")
def _rgb_strips(image, tile, step, wp, floor, margin, factor, white, green, res,
                residual, noise_out, bright, dark, value, judge, strong, sample, sv, sm, count,
                sfactor, sampled, fuse):
    """``image`` (H, W, C) contiguous; ``wp`` the width rounded up to whole tiles; ``res``
    (C, tile, wp) int16 (8-bit input) or int32 scratch; outputs as returned by
    :func:`rgb_strip_arrays` (the four masks packed, zeroed by the caller). With ``sample``,
    each site that stood out by ``sfactor`` times the outlier threshold in some channel
    is set in the packed ``sampled`` and gets its channels' values and ninthers (value -
    residual) in the next rows of ``sv`` / ``sm`` (H * W, C), ``count[0]`` the rows written."""
    height, width, channels = image.shape
    spad = np.empty((channels, tile + 2 * step, wp + 2 * step), image.dtype)
    colmap = np.empty(wp + 2 * step, np.int64)
    for j in range(wp + 2 * step):
        colmap[j] = _reflect(j - step, width)
    hmed = np.empty((tile + 2 * step, wp), image.dtype)
    noise = np.empty((channels, wp), np.float32)
    sums = np.empty((wp // tile, 16), np.int64)
    colsum = np.empty(wp, np.int32)
    best_z = np.empty(width, np.float32)
    best_c = np.empty(width, np.int64)
    up = np.empty(width, np.bool_)
    down = np.empty(width, np.bool_)
    far = np.empty(width, np.bool_)
    fair = np.empty(width, np.bool_)
    fmargin = np.float32(margin)
    zmin = fmargin * sfactor
    # the common case (RGB, width a multiple of 8) runs one vectorised loop per row;
    # ``fuse`` is False on big-endian machines (_PACK8 reads 8 flags as a little-endian word)
    fused = fuse and channels == 3 and width % 8 == 0
    flags = np.zeros((5, width), np.bool_)
    for s, y in enumerate(range(0, height, tile)):
        _fill_strip(image, y, step, colmap, spad)
        for c in range(channels):
            _strip_channel(spad[c], 0, tile, step, hmed, res[c])
            _tile_noise(res[c], tile, floor, colsum, sums, noise[c])
        noise_out[s] = noise[green, :width]
        for i in range(min(tile, height - y)):
            if fused:
                base = (y + i) * width
                _row3(res, noise, i, width, fmargin, factor, zmin, white, spad, step, residual[y + i],
                      value[y + i], flags)
                _pack_words(flags[0], bright, base)
                _pack_words(flags[1], dark, base)
                _pack_words(flags[2], judge, base)
                _pack_words(flags[3], strong, base)
                if sample:
                    _pack_words(flags[4], sampled, base)
                    _take_row(res, i, image[y + i], sampled, base, width, sv, sm, count)
                continue
            _combine_row(res, noise, i, width, fmargin, factor, residual[y + i], best_z, best_c, up, down, far)
            vrow, src = value[y + i], image[y + i]
            for x in range(width):
                v = src[x, best_c[x]]
                vrow[x] = v
                fair[x] = (v > 0) & (v < white)
            base = (y + i) * width
            _pack_row(up, bright, base)
            _pack_row(down, dark, base)
            _pack_row(fair, judge, base)
            _pack_row(far, strong, base)
            if sample:
                _sample_row(res, i, src, best_z, zmin, width, sv, sm, count, sampled, base)


def rgb_strip_arrays(image: np.ndarray, *, tile: int, step: int, floor: float, margin: float,
                     white: int, samples: float = 0.0) -> tuple[np.ndarray, ...]:
    """Whole-frame arrays of a demosaiced frame, strip by strip, compiled.

    image: (H, W) or (H, W, C) uint8/uint16, C in 1..4, channel 1 green when C > 1.
    Returns residual (H, W) int16 (8-bit input) or int32, exact; noise_rows float32
    (ceil(H / tile), W) (the green channel's noise of each strip, as
    :class:`indexer.sensor.residual.Strip` keeps it); bright, dark uint8: the (H, W)
    masks as ``np.packbits(mask, axis=None)`` packs them; value (H, W) of the channel
    the residual was picked from, in the input's dtype; judgeable packed likewise (that
    value strictly between 0 and white); strong packed likewise (see
    :data:`indexer.sensor.residual.STRONG`). With ``samples`` > 0, three more: the packed
    mask of the K sites whose |r| exceeds ``samples`` times the outlier threshold in some
    channel, and two (K, C) arrays of the input's dtype, each channel's value and
    ninther there, in raster order (what :func:`site_ninthers` gives, read in the pass).

    The frame is mirror-padded strip by strip into a buffer that stays in cache, and the
    masks are packed as they are made: a padded copy of the whole frame and four
    (H, W) bool arrays (then ``np.packbits`` for the delta) cost CPU in copies and page
    faults (bench/sensor_residual.py times both versions).
    """
    if image.ndim == 2:
        image = image[:, :, None]
    image = np.ascontiguousarray(image)
    height, width, channels = image.shape
    green = min(1, channels - 1)
    strips = -(-height // tile)
    wp = width + (-width % tile)
    # 8-bit residuals lie in [-255, 255]: int16 halves the bytes the loops stream; exact
    int_type = np.int16 if image.dtype == np.uint8 else np.int32
    residual = np.empty((height, width), int_type)
    noise = np.empty((strips, width), np.float32)
    nbytes = -(-height * width // 8)
    bright, dark, judge, strong = (np.zeros(nbytes, np.uint8) for _ in range(4))
    value = np.empty((height, width), image.dtype)
    res = np.empty((channels, tile, wp), int_type)
    # np.empty maps pages when first written: only the rows written cost
    rows = height * width if samples else 0
    sv, sm = (np.empty((rows, channels), image.dtype) for _ in range(2))
    count = np.zeros(1, np.int64)
    sampled = np.zeros(nbytes if samples else 0, np.uint8)
    # STRONG goes in as an argument: numba's cache would keep a global's old value
    _rgb_strips(image, tile, step, wp, float(floor), float(margin), STRONG, int(white), green, res,
                residual, noise, bright, dark, value, judge, strong, samples > 0, sv, sm, count,
                np.float32(samples), sampled, sys.byteorder == "little")
    if samples:
        k = int(count[0])
        return residual, noise, bright, dark, value, judge, strong, sampled, sv[:k].copy(), sm[:k].copy()
    return residual, noise, bright, dark, value, judge, strong


def rgb_kernels_cached() -> bool:
    """Whether numba's on-disk cache holds the rendered-frame kernel's machine code, so
    loading it compiles nothing (``pipeline.kernelwarm``). numba keeps that index under a
    private path: when it moves (a numba upgrade), the answer is False and nothing is
    warmed."""
    import os

    try:
        return os.path.exists(_rgb_strips._cache._cache_file._index_path)
    except AttributeError:
        return False


@njit(cache=True, error_model="numpy")
def _site_ninthers(image, ys, xs, step, values, ninthers):
    height, width, channels = image.shape
    for k in range(ys.size):
        y, x = ys[k], xs[k]
        r0, r1, r2 = _reflect(y - step, height), y, _reflect(y + step, height)
        c0, c1, c2 = _reflect(x - step, width), x, _reflect(x + step, width)
        for c in range(channels):
            m0 = _med3(image[r0, c0, c], image[r0, c1, c], image[r0, c2, c])
            m1 = _med3(image[r1, c0, c], image[r1, c1, c], image[r1, c2, c])
            m2 = _med3(image[r2, c0, c], image[r2, c1, c], image[r2, c2, c])
            values[k, c] = image[y, x, c]
            ninthers[k, c] = _med3(m0, m1, m2)


def site_ninthers(image: np.ndarray, flat: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel value and ninther (row medians then their median, of the 3x3 grid
    ``step`` px apart, mirrored at edges: what :func:`rgb_strip_arrays` subtracts) at the
    sites ``flat`` (K,) int64 = y * W + x of ``image`` (H, W[, C]) uint8/uint16.
    Returns two (K, C) arrays of the image's dtype (a few ms for 10^5 sites)."""
    if image.ndim == 2:
        image = image[:, :, None]
    image = np.ascontiguousarray(image)
    width, channels = image.shape[1], image.shape[2]
    ys, xs = np.divmod(np.asarray(flat, np.int64), width)
    values = np.empty((ys.size, channels), image.dtype)
    ninthers = np.empty((ys.size, channels), image.dtype)
    _site_ninthers(image, ys, xs, int(step), values, ninthers)
    return values, ninthers
