"""Delta EV of two 8-bit grey thumbnails, as :func:`indexer.exposure.transfer.delta_ev_thumbs`
computes it, in one compiled pass per candidate decoding (the same numbers to the bit).

Every verified pair of one scene ends in this measure (371 of the dense set's 441
verification jobs). The reference decodes both thumbnails to float, then takes masks,
log ratios, a sort of A into levels and medians in ~40 NumPy calls per decoding. Here:

- A is never shifted, so its decoded values, its noise-floor / clipping test and its
  level are looked up per code in 256-entry tables made by the reference's own NumPy
  functions (``decode``, ``searchsorted``): equal to decoding every pixel. B is looked up
  the same way, or when shifted (interpolated values) moved once and decoded by NumPy
  per candidate, as before.
- :func:`indexer.exposure.thumbev_kernels.thumb_pass` gathers the ratios and the curve;
  medians of code-valued data come from counts per code, others from selections.
- ``log2`` of the ratios and the median / MAD are computed only for the decoding kept,
  the only one whose :class:`~indexer.exposure.transfer.ExposureDelta` is returned.

Inputs this path does not cover (RGB thumbnails, other options, more pixels than
``max_samples``) go to the reference.
"""
from __future__ import annotations

import math
from functools import cache

import numpy as np

from indexer.exposure import transfer
from indexer.exposure.shift import shift_image
from indexer.exposure.transfer import ExposureDelta, TransferCurve

_OPTIONS = {"low", "high", "n_levels", "max_samples", "ratio", "margin"}


def delta_ev_thumbs(thumb_a: np.ndarray, thumb_b: np.ndarray, *, dy: float = 0.0,
                    dx: float = 0.0, min_pixels: int = 100, encoding: str = "srgb",
                    **kwargs) -> ExposureDelta:
    """:func:`indexer.exposure.transfer.delta_ev_thumbs`, same arguments and result, fast
    for grey uint8 thumbnails (h, w) of the same shape; other inputs go to it."""
    a, b = np.asarray(thumb_a), np.asarray(thumb_b)
    if not covered(a, b, kwargs):
        return transfer.delta_ev_thumbs(thumb_a, thumb_b, dy=dy, dx=dx, min_pixels=min_pixels,
                                        encoding=encoding, **kwargs)
    encodings = ("srgb", "bt709") if encoding == "auto" else (encoding,)
    get = kwargs.get
    return _measure(a, b, dy, dx, encodings, min_pixels=min_pixels,
                    low=get("low", transfer.LOW), high=get("high", transfer.HIGH),
                    n_levels=get("n_levels", transfer.N_LEVELS),
                    ratio=get("ratio", transfer.BEND_RATIO), margin=get("margin", transfer.BEND_MARGIN))


def covered(a: np.ndarray, b: np.ndarray, options: dict) -> bool:
    """Whether this path computes the pair: grey uint8 (h, w) of one shape, no more pixels
    than the curve samples, only options it knows, ``low`` / ``high`` as Python numbers
    (NumPy compares float32 pixels with those in float32, as the kernel does, but with a
    NumPy float64 in float64)."""
    return (a.dtype == np.uint8 and b.dtype == np.uint8 and a.ndim == 2 and a.shape == b.shape
            and set(options) <= _OPTIONS and a.size <= options.get("max_samples", transfer.MAX_SAMPLES)
            and all(type(options.get(k, 0.0)) in (float, int) for k in ("low", "high")))


def _measure(a8, b8, dy, dx, encodings, *, min_pixels, low, high, n_levels, ratio, margin):
    from indexer.exposure import thumbev_kernels as k  # numba: loaded on first use only

    b_moved, mask = None, np.empty(0, np.bool_)
    linear_shift = encodings == ("srgb",)
    if dy or dx:  # B moved as the reference moves it (see shifted_b)
        b_moved, m = shifted_b(b8, dy, dx, linear_shift)
        mask = m.ravel()
    best = None
    for enc in encodings:
        if b_moved is None:
            b_codes, bv = flat(b8), np.empty(0, np.float32)
        else:
            b_codes = np.empty(0, np.uint8)
            bv = (b_moved if linear_shift else _decode(b_moved, enc)).ravel()
        table, level = tables(enc, float(low), float(high), int(n_levels))
        ratios, total, _, count, level_a, median_b, usable = k.thumb_pass(
            flat(a8), b_codes, bv, mask, table, level, np.float32(low), np.float32(high),
            int(n_levels), transfer.MIN_COUNT, transfer.MIN_OK)
        curve = TransferCurve(level_a, median_b, count, usable)
        bend = transfer.curve_bend(curve)
        if best is None or transfer.straighter(bend, best[0], ratio=ratio, margin=margin):
            best = (bend, ratios, total, curve)
    return _delta(*best[1:], min_pixels)


def _delta(ratios: np.ndarray, total: int, curve: TransferCurve, min_pixels: int) -> ExposureDelta:
    """transfer's robust statistics of the kept decoding's ratios (float32 (n,))."""
    from indexer.exposure import thumbev_kernels as k

    n = int(ratios.size)
    if n < max(min_pixels, 1):
        return ExposureDelta(math.nan, math.nan, n, n / max(total, 1), curve)
    med, mad = k.median_and_mad(np.log2(ratios))
    return ExposureDelta(float(med), transfer.MAD_TO_SIGMA * float(mad), n, n / max(total, 1), curve)


def flat(codes: np.ndarray) -> np.ndarray:
    """``codes`` as a writable C-ordered (n,) array: one compiled signature for the kernel
    whether a thumbnail is a view, transposed or read-only (mapped from a snapshot)."""
    out = codes.ravel()
    return out if out.flags.writeable else out.copy()


def shifted_b(b8: np.ndarray, dy: float, dx: float, linear_shift: bool) -> tuple[np.ndarray, np.ndarray]:
    """B moved by (dy, dx) as the reference moves it: decoded as sRGB then shifted (the
    one encoding "srgb"), or shifted as codes / 255 to be decoded per candidate (float32
    (h, w) and the bool (h, w) overlap mask of ``shift_image``)."""
    if linear_shift:
        from indexer.measure.linear import srgb8_to_linear

        return shift_image(srgb8_to_linear(b8), dy, dx)
    return shift_image(np.asarray(b8, dtype=np.float32) / np.float32(255), dy, dx)


def _decode(values: np.ndarray, encoding: str) -> np.ndarray:
    from indexer.measure.linear import decode

    return decode(values, encoding)


@cache
def tables(encoding: str, low: float, high: float, n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """(float32 (256,) decoded value of each 8-bit code, int64 (256,) its level of A in
    the transfer curve or -1 when A is not usable there), both computed by the
    reference's own NumPy calls so that looking a pixel up equals decoding it."""
    table = _decode(np.arange(256, dtype=np.float32) / np.float32(255), encoding)
    if not np.all(np.diff(table) > 0):  # the code medians walk codes in value order
        raise ValueError(f"decoding {encoding!r} is not increasing over 8-bit codes")
    edges = np.geomspace(low, high, n_levels + 1)
    level = np.clip(np.searchsorted(edges, table, side="right") - 1, 0, n_levels - 1)
    level[~((table > low) & (table < high))] = -1
    level = level.astype(np.int64)
    table.flags.writeable = level.flags.writeable = False  # shared by every call (cached)
    return table, level
