"""Delta EV of a matched pair from its two stored thumbnails (pure: arrays in, a number out).

Used by the verification job (worker processes) right after the pair's alignment, and by
:mod:`indexer.pipeline.exposurestage` for pairs stored earlier. See
:func:`indexer.exposure.transfer.delta_ev_thumbs` for the transfer-curve method
(computed by its fast equivalent for grey 8-bit thumbnails, :mod:`indexer.exposure.thumbev`).
"""
from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from indexer.exposure import thumbev
from indexer.measure import orient


class Thumbnailed(Protocol):
    """What this module reads of an image's stored record (a match record fits)."""

    thumb: np.ndarray  # uint8 (h, w) grey thumbnail, display orientation
    width: int  # stored pixel size, before orientation
    height: int


def thumb_delta_ev(ra: Thumbnailed, rb: Thumbnailed, *, transform: str, shift: tuple[float, float],
                   scale: float, scale_tol: float = 0.03, min_pixels: int = 200) -> float | None:
    """Delta EV (B over A) of two stored thumbnails aligned as a stored pair says, or None.

    ``transform``: the pair's D4 transform (``b ~ orient.apply(a, transform)``);
    ``shift``: (x, y) of B's top-left corner in A's full-size display pixels; ``scale``: B
    pixels per A pixel at full size. Only a translation is applied, so None is returned
    when the thumbnails' relative scale is off 1 by more than ``scale_tol`` (crops), when
    the alignment data is missing, or when fewer than ``min_pixels`` are usable.
    """
    if shift is None or None in shift or not scale or not math.isfinite(scale):
        return None
    bt = orient.apply(rb.thumb, orient.inverse(transform))
    fa = ra.width / ra.thumb.shape[1]  # full px of A per thumbnail px
    size_bt = (rb.height, rb.width) if orient.swaps_axes(transform) else (rb.width, rb.height)
    fb = size_bt[0] / bt.shape[1]
    if abs(scale * fa / fb - 1.0) > scale_tol:
        return None
    b = np.zeros_like(ra.thumb)  # B's thumbnail on A's grid; zeros fall below the noise floor
    h, w = min(b.shape[0], bt.shape[0]), min(b.shape[1], bt.shape[1])
    b[:h, :w] = bt[:h, :w]
    # thumbev: transfer.delta_ev_thumbs's numbers to the bit, ~6x cheaper: 2.4 -> 0.39 ms
    # CPU a call over the dense set's 371 pairs, its 441 verification jobs 3.37 -> 2.45 s
    # CPU (bench/thumbev_cost.py, tools' jobprof against main, 2026-12-08)
    res = thumbev.delta_ev_thumbs(ra.thumb, b, dy=shift[1] / fa, dx=shift[0] / fa,
                                  encoding="auto", min_pixels=min_pixels)
    return None if math.isnan(res.delta_ev) else float(res.delta_ev)
