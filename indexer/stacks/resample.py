"""Resizing a batch of frames with matrices: Pillow's Lanczos-3 weights (or its bicubic,
bilinear or box filter: :data:`KERNELS`), no rounding.

Pillow resizes rows then columns, each output sample a normalised sum of input samples
under ``lanczos((x - centre + 0.5) / filterscale)`` with support ``3 * filterscale``
(``filterscale = max(in/out, 1)``: the kernel widens when shrinking), rounding to 8 bits
between the passes (libImaging/Resample.c, ``precompute_coeffs``). Here the two passes
are one ``einsum`` over the whole batch in float64, so a (n, h, w) batch costs one
contraction instead of n Pillow calls; results differ from Pillow by that rounding only
(below 0.5 of a level per pass).
"""
from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np


def _lanczos(x: np.ndarray) -> np.ndarray:
    out = np.sinc(x) * np.sinc(x / 3.0)
    return np.where(np.abs(x) < 3.0, out, 0.0)


def _bicubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def _triangle(x: np.ndarray) -> np.ndarray:
    return np.maximum(1.0 - np.abs(x), 0.0)


def _box(x: np.ndarray) -> np.ndarray:
    return ((x > -0.5) & (x <= 0.5)).astype(np.float64)


# name -> (kernel, support in input samples at scale 1): Pillow's filters (libImaging/Resample.c)
KERNELS = {"lanczos": (_lanczos, 3.0), "bicubic": (_bicubic, 2.0), "bilinear": (_triangle, 1.0), "box": (_box, 0.5)}


@lru_cache(maxsize=256)
def weights(size_in: int, size_out: int, start: int = 0, length: int | None = None,
            kernel: str = "lanczos") -> np.ndarray:
    """float64 (size_out, size_in): row i holds the weights of output sample i over the
    input window ``[start, start + length)`` (default: all of it; a crop box, which
    Pillow's ``crop().resize()`` treats as the whole image), under one of :data:`KERNELS`."""
    length = size_in - start if length is None else length
    scale = length / size_out
    filterscale = max(scale, 1.0)
    func, reach = KERNELS[kernel]
    support = reach * filterscale
    out = np.zeros((size_out, size_in))
    for i in range(size_out):
        centre = (i + 0.5) * scale
        lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), length)
        j = np.arange(lo, hi)
        w = func((j - centre + 0.5) / filterscale)
        total = w.sum()
        out[i, start + lo:start + hi] = w / total if total else 0.0
    out.setflags(write=False)
    return out


@lru_cache(maxsize=256)
def bands(size_in: int, size_out: int, kernel: str = "lanczos") -> tuple[np.ndarray, np.ndarray]:
    """The rows of :func:`weights` (whole input) as bands: (first, taps), int64 (size_out,)
    and float32 (size_out, K): output sample i is ``sum_k taps[i, k] * x[first[i] + k]``,
    K the widest window (narrower ones padded with zero weights; windows at the far edge
    start earlier so every band stays inside the input)."""
    dense = weights(size_in, size_out, kernel=kernel)
    present = dense != 0
    lo = present.argmax(axis=1)
    hi = size_in - present[:, ::-1].argmax(axis=1)
    k = max(int((hi - lo).max()), 1)
    first = np.minimum(lo, size_in - k).astype(np.int64)
    taps = np.ascontiguousarray(dense[np.arange(size_out)[:, None], first[:, None] + np.arange(k)], np.float32)
    first.setflags(write=False)
    taps.setflags(write=False)
    return first, taps


_LOCAL = threading.local()  # fit_rgb8's work buffers by shape, kept per thread (see resample_kernels)


def fit_rgb8(pixels: np.ndarray, height: int, width: int, mode: str = "pad", kernel: str = "lanczos") -> np.ndarray:
    """uint8 (3, height, width) from uint8 RGB ``pixels`` (h, w, 3): fitted as :func:`fit`
    places it (padding 0), resized with ``kernel`` (:data:`KERNELS`, Pillow's weights) as
    Pillow's ``resize`` does it, 8-bit rounding between the passes included, within one
    level of it and in less than half its CPU time (:mod:`indexer.stacks.resample_kernels`).
    No ``reducing_gap``: where Pillow would ``reduce`` first, use Pillow's ``resize``."""
    from indexer.stacks.resample_kernels import resize_height8, resize_width8  # numba: export's photos only

    h, w, c = pixels.shape
    top, left, rh, rw = placement(h, w, height, width, mode)
    row_first, row_w = bands(h, rh, kernel)
    col_first, col_w = bands(w, rw, kernel)
    if mode != "pad":  # only the kept window is computed
        row_first, row_w = row_first[-top:-top + height], row_w[-top:-top + height]
        col_first, col_w = col_first[-left:-left + width], col_w[-left:-left + width]
        top = left = 0
    ow = len(col_first)
    key = (h, w, c, ow)
    work = _LOCAL.__dict__.setdefault("work", {})
    if key not in work:
        if len(work) >= 8:  # a few sizes (landscape, portrait, ...) kept; the oldest goes
            del work[next(iter(work))]
        work[key] = (np.empty((c, w, h), np.float32), np.empty((c, ow, h), np.float32),
                     np.empty((c, h, ow), np.float32))
    planes, cols, mid = work[key]
    lo, hi = int(row_first[0]), int(row_first[-1]) + row_w.shape[1]
    # columns made contiguous by NumPy's strided copies (0.13 ms for 320x240 here, 0.22-0.26
    # as a compiled loop), before the first pass and between the two (0.055 ms)
    np.copyto(planes[:, :, lo:hi], pixels[lo:hi].transpose(2, 1, 0))
    resize_width8(planes, col_first, col_w, lo, hi, cols)
    np.copyto(mid[:, lo:hi], cols[:, :, lo:hi].transpose(0, 2, 1))
    out = np.zeros((c, height, width), np.uint8)
    resize_height8(mid, row_first, row_w, out, top, left)
    return out


def resize(batch: np.ndarray, height: int, width: int,
           box: tuple[int, int, int, int] | None = None, *, like_pillow: bool = False,
           kernel: str = "lanczos") -> np.ndarray:
    """float64 (n, height, width): each (h, w) frame of ``batch`` (n, h, w), or its crop
    ``box`` = (left, top, right, bottom) in px, resized with Lanczos-3 (or ``kernel``).

    ``like_pillow``: 8-bit input (0..255) rounded and clipped after each pass as Pillow
    does (columns first), so hashes equal those of Pillow's resize up to its fixed-point
    weights; otherwise one float contraction (no clipping: Lanczos overshoots edges).
    """
    n, h, w = batch.shape
    left, top, right, bottom = box if box is not None else (0, 0, w, h)
    rows = weights(h, height, top, bottom - top, kernel)
    cols = weights(w, width, left, right - left, kernel)
    # columns: one 2-D GEMM with the batch folded into the rows. Rows: a batched matmul
    # for many small frames, einsum's contraction for a few large ones. Measured against a
    # batched matmul for both passes (2026-12-07, 2 busy cores, medians of noisy runs):
    # (10000, 7, 7) -> 32x32 in ~110 ms against ~230 ms; (3, 240, 320) -> 224x299 in
    # ~25 ms against ~80-150 ms. float64: float32 moves ties at .5 across levels.
    first = (np.ascontiguousarray(batch, dtype=np.float64).reshape(n * h, w) @ cols.T).reshape(n, h, width)
    if like_pillow:
        np.clip(np.rint(first, out=first), 0, 255, out=first)
    out = rows @ first if n >= 64 else np.einsum("ih,nhw->niw", rows, first, optimize=True)
    if like_pillow:
        np.clip(np.rint(out, out=out), 0, 255, out=out)
    return out


FITS = ("pad", "crop")


def fit(image: np.ndarray, height: int, width: int, mode: str = "pad", *, fill: float = 0.0,
        kernel: str = "lanczos") -> np.ndarray:
    """float32 (C, height, width) from ``image`` (C, h, w) float, aspect kept: ``pad``
    scales the whole image inside and pads with ``fill`` (centred; NaN keeps the padding
    out of later statistics), ``crop`` scales it to cover and cuts the centre. NaN pixels are missing values: resized by normalised convolution
    (sum of weights x values over sum of weights of the present ones), NaN only where no
    present pixel contributes, so one NaN never spreads over its neighbours. ``kernel``:
    one of :data:`KERNELS`."""
    c, h, w = image.shape
    top, left, rh, rw = placement(h, w, height, width, mode)
    missing = np.isnan(image)
    if missing.any():
        num = resize(np.where(missing, 0.0, image), rh, rw, kernel=kernel)
        den = resize((~missing).astype(np.float64), rh, rw, kernel=kernel)
        small = np.where(den > 1e-6, num / np.where(den > 1e-6, den, 1), np.nan)
    else:
        small = resize(image.astype(np.float64), rh, rw, kernel=kernel)
    out = np.full((c, height, width), fill, np.float32)
    if mode == "pad":
        out[:, top:top + rh, left:left + rw] = small
    else:
        out[:] = small[:, -top:-top + height, -left:-left + width]
    return out


def placement(h: int, w: int, height: int, width: int, mode: str = "pad") -> tuple[int, int, int, int]:
    """(top, left, resized height, resized width) of an (h, w) image fitted into
    (height, width) by :func:`fit`; top/left are <= 0 when cropping (the offset of the
    kept window, negated)."""
    scale = min(height / h, width / w) if mode == "pad" else max(height / h, width / w)
    rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
    if mode == "pad":
        return (height - rh) // 2, (width - rw) // 2, rh, rw
    return -((rh - height) // 2), -((rw - width) // 2), rh, rw


def padding_mask(h: int, w: int, height: int, width: int, mode: str = "pad") -> np.ndarray:
    """bool (height, width): True where :func:`fit` pads (never when cropping)."""
    mask = np.zeros((height, width), bool)
    if mode == "pad":
        top, left, rh, rw = placement(h, w, height, width, mode)
        mask[:] = True
        mask[top:top + rh, left:left + rw] = False
    return mask
