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
"""
from __future__ import annotations

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
        ordered = np.sort(sums[t])
        value = max(np.float32(ordered[3]) / np.float32(q * q), np.float32(floor))
        noise[t * tile : (t + 1) * tile] = value


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


@njit(cache=True, error_model="numpy")
def _rgb_strips(pads, height, width, tile, step, floor, margin, factor, white, green, res,
                residual, noise_out, bright, dark, value, judge, strong):
    """``res`` (C, tile, Wp) int16 (8-bit input) or int32 scratch; outputs as returned by
    :func:`rgb_strip_arrays`."""
    channels = pads.shape[0]
    wp = pads.shape[2] - 2 * step
    hmed = np.empty((tile + 2 * step, wp), pads.dtype)
    noise = np.empty((channels, wp), np.float32)
    sums = np.empty((wp // tile, 16), np.int64)
    colsum = np.empty(wp, np.int32)
    best_z = np.empty(width, np.float32)
    best_c = np.empty(width, np.int64)
    fmargin = np.float32(margin)
    for s, y in enumerate(range(0, height, tile)):
        for c in range(channels):
            _strip_channel(pads[c], y, tile, step, hmed, res[c])
            _tile_noise(res[c], tile, floor, colsum, sums, noise[c])
        noise_out[s] = noise[green, :width]
        for i in range(min(tile, height - y)):
            _combine_row(res, noise, i, width, fmargin, factor, residual[y + i], best_z, best_c, bright[y + i],
                         dark[y + i], strong[y + i])
            vrow, jrow = value[y + i], judge[y + i]
            for x in range(width):
                v = pads[best_c[x], y + i + step, step + x]
                vrow[x] = v
                jrow[x] = (v > 0) & (v < white)


def padded_planes(image: np.ndarray, tile: int, step: int) -> np.ndarray:
    """(C, H + 2 step + eh, W + 2 step + ew) planes of an (H, W) or (H, W, C) image,
    mirror-padded (NumPy ``mode="reflect"``) by ``step`` all round and up to whole tiles
    (``eh = -H % tile``), in one copy: channel-major so each plane's rows are contiguous."""
    if image.ndim == 2:
        image = image[:, :, None]
    height, width, channels = image.shape
    extra_h, extra_w = -height % tile, -width % tile
    if min(height, width) <= step + tile:  # several reflections: NumPy knows how
        planes = np.ascontiguousarray(np.moveaxis(image, 2, 0))
        return np.pad(planes, ((0, 0), (step, step + extra_h), (step, step + extra_w)), mode="reflect")
    pads = np.empty((channels, height + 2 * step + extra_h, width + 2 * step + extra_w), image.dtype)
    pads[:, step : step + height, step : step + width] = np.moveaxis(image, 2, 0)
    top, left = step, step
    for k in range(1, step + 1):
        pads[:, top - k] = pads[:, top + k]
    for k in range(1, step + extra_h + 1):
        pads[:, top + height - 1 + k] = pads[:, top + height - 1 - k]
    for k in range(1, step + 1):
        pads[:, :, left - k] = pads[:, :, left + k]
    for k in range(1, step + extra_w + 1):
        pads[:, :, left + width - 1 + k] = pads[:, :, left + width - 1 - k]
    return pads


def rgb_strip_arrays(image: np.ndarray, *, tile: int, step: int, floor: float, margin: float,
                     white: int) -> tuple[np.ndarray, ...]:
    """Whole-frame arrays of a demosaiced frame, strip by strip, compiled.

    image: (H, W) or (H, W, C) uint8/uint16, C in 1..4, channel 1 green when C > 1.
    Returns residual (H, W) int16 (8-bit input) or int32, exact; noise_rows float32
    (ceil(H / tile), W) (the green channel's noise of each strip, as
    :class:`indexer.sensor.residual.Strip` keeps it); bright, dark bool (H, W); value
    (H, W) of the channel the residual was picked from, in the input's dtype; judgeable
    bool (H, W) (that value strictly between 0 and white); strong
    bool (H, W) (see :data:`indexer.sensor.residual.STRONG`).
    """
    height, width = image.shape[:2]
    pads = padded_planes(image, tile, step)
    channels = pads.shape[0]
    green = min(1, channels - 1)
    strips = -(-height // tile)
    # 8-bit residuals lie in [-255, 255]: int16 halves the bytes the loops stream; exact
    int_type = np.int16 if image.dtype == np.uint8 else np.int32
    residual = np.empty((height, width), int_type)
    noise = np.empty((strips, width), np.float32)
    bright = np.empty((height, width), np.bool_)
    dark = np.empty((height, width), np.bool_)
    value = np.empty((height, width), image.dtype)
    judge = np.empty((height, width), np.bool_)
    strong = np.empty((height, width), np.bool_)
    res = np.empty((channels, tile, pads.shape[2] - 2 * step), int_type)
    # STRONG goes in as an argument: numba's cache would keep a global's old value
    _rgb_strips(pads, height, width, tile, step, float(floor), float(margin), STRONG, int(white), green, res,
                residual, noise, bright, dark, value, judge, strong)
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
