"""Which members of a group are upscales: more pixels without more detail (issue 14).

A pair's ``detail_gain`` and ``detail_above`` (:mod:`indexer.measure.detail`, measured
by the matching stage for pairs of a group verdict whose sides differ in size by
:data:`MIN_SCALE` or more) say whether the bigger side holds anything the smaller one
does not. Both below their limits: the bigger side is an upscale of the smaller, and the
keeper rule does not count its extra pixels. NumPy-free: ``dupes`` reads groups.

Limits from the measures of 8 camera JPEGs of ../shared/data against their 1.5x
bicubic/Lanczos/bilinear upscales (JPEG quality 80 and 95) and 2x bicubic PNGs, and
against their 1/1.5 and 1/2 Lanczos and bilinear downscales at quality 80 and 95
(2026-12-07): gain 0.37-0.98 for upscales, 1.14-3.89 for originals; above 0.03-0.37 for
upscales, 0.06-2.26 for originals. ``gain`` separates them; ``above`` must agree, so an
original with plenty of detail above its copy is never called an upscale on gain alone.
"""
from __future__ import annotations

from collections.abc import Iterable

MIN_SCALE = 1.25  # below it the band above the small side's Nyquist limit is too thin to measure
MAX_GAIN = 1.06  # an upscale has less in the small side's top band than the small side (0.98 at most measured, originals 1.14 at least)
MAX_ABOVE = 0.5  # ... and little above it


def bigger_side(pair) -> tuple[int, float] | None:
    """(id of the bigger image, its linear size over the other's) of a row with ``a``,
    ``b``, ``scale`` (b's size over a's); None when they differ by less than
    :data:`MIN_SCALE` or the scale is unknown."""
    s = getattr(pair, "scale", None)
    if not s or s <= 0:
        return None
    if s >= MIN_SCALE:
        return pair.b, s
    if 1 / s >= MIN_SCALE:
        return pair.a, 1 / s
    return None


def is_upscale(gain: float | None, above: float | None) -> bool:
    """Whether measures ``gain``/``above`` (None: not measured) show no detail above the source's."""
    return gain is not None and above is not None and gain < MAX_GAIN and above < MAX_ABOVE


def upscales(pairs: Iterable) -> dict[int, float]:
    """Image id -> scale (> 1) over its source, for every image that is the bigger side
    of a pair of ``pairs`` (rows with ``a``, ``b``, ``scale``, ``detail_gain``,
    ``detail_above``) and an upscale of the other side; the largest scale when several."""
    out: dict[int, float] = {}
    for p in pairs:
        side = bigger_side(p)
        if side and is_upscale(getattr(p, "detail_gain", None), getattr(p, "detail_above", None)):
            out[side[0]] = max(out.get(side[0], 0.0), side[1])
    return out


def words(scale: float) -> str:
    """"an upscale (1.5x, no detail above the source's)"."""
    return f"an upscale ({scale:.2f}".rstrip("0").rstrip(".") + "x, no detail above the source's)"
