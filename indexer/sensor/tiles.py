"""A sensor accumulator cut into bands of rows, and merged band by band.

Where a sensor's statistics cannot live in one file (a PostgreSQL database shared by
several machines keeps them in the ``sensor_tiles`` table, one row per band), each band
is itself a :class:`~indexer.sensor.accumulator.SensorAccumulator` of ``y1 - y0`` rows and
the full width (with the stuck candidates of its rows), carrying the sensor's ``frames``, ``pairs``, layout, pattern and params;
band 0 also carries the sensor's timeline (``times``), the others an empty one. Every
site's statistics depend on its own frames only, so merging band by band (Chan et al.
1979, :meth:`SensorAccumulator.merge`) equals merging the whole, and a merge never holds
more than one band's float64 temporaries (24 bytes a site) beside the two accumulators.

A band is at most :data:`TILE_BYTES` of per-site arrays (26 bytes a site): 4 MiB, i.e.
40 rows of a 4000x3000 (12 MP) sensor, 75 bands for the whole of it.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from indexer.sensor import stuckfit
from indexer.sensor.accumulator import SensorAccumulator, field_names
from indexer.sensor.stuckfit import StuckRecord

TILE_BYTES = 4 << 20  # per band: a few MiB per round trip and bytea value, ~75 per 12 MP body
SITE_BYTES = 26  # per-site bytes of an accumulator (accumulator module docstring)


def band_rows(width: int, tile_bytes: int = TILE_BYTES) -> int:
    """Rows per band so that a band's arrays take at most ``tile_bytes`` (at least 1 row)."""
    return max(1, tile_bytes // (SITE_BYTES * max(1, width)))


def bands(height: int, width: int, tile_bytes: int = TILE_BYTES) -> list[tuple[int, int]]:
    """(y0, y1) row ranges covering ``height`` rows, top to bottom."""
    step = band_rows(width, tile_bytes)
    return [(y, min(y + step, height)) for y in range(0, height, step)]


def band(acc: SensorAccumulator, y0: int, y1: int, *, with_times: bool = False) -> SensorAccumulator:
    """Rows ``y0:y1`` of ``acc`` as an accumulator of their own: its arrays are *views*
    into ``acc`` (no copy), frames/pairs/layout/pattern/params are ``acc``'s, ``times``
    is ``acc``'s when ``with_times`` else empty; its stuck candidates (a copy) those of its
    rows, indices relative to row ``y0``."""
    return SensorAccumulator(y1 - y0, acc.width, acc.layout, acc.pattern, acc.params,
                             frames=acc.frames, pairs=acc.pairs,
                             times=acc.times if with_times else np.empty(0, np.int64),
                             stuck_fit=acc.stuck_fit.rows(y0, y1, acc.width),
                             **{name: getattr(acc, name)[y0:y1] for name in field_names()})


def merge_in_place(acc: SensorAccumulator, later: SensorAccumulator,
                   ranges: list[tuple[int, int]] | None = None) -> None:
    """``acc`` becomes ``acc.merge(later)`` (same values), computed band by band in place.

    ``ranges``: the bands (default :func:`bands`). Raises what :meth:`SensorAccumulator.merge`
    raises (ValueError on another geometry, layout, pattern or params; OverflowError past
    65,535 frames) before changing anything: every band shares the checked properties,
    so the first band's merge decides.
    """
    if acc.shape != later.shape:
        raise ValueError(f"cannot merge accumulators: {acc.shape} vs {later.shape}")
    for y0, y1 in ranges if ranges is not None else bands(acc.height, acc.width):
        merged = band(acc, y0, y1).merge(band(later, y0, y1))
        for name in field_names():
            getattr(acc, name)[y0:y1] = getattr(merged, name)
    if acc.height == 0:  # no band ran the checks
        band(acc, 0, 0).merge(band(later, 0, 0))
    # the sparse candidates are few (a few % of the sites at most): merged whole
    acc.stuck_fit = stuckfit.merge(acc.stuck_fit, later.stuck_fit, acc.frames, acc.frames + later.frames,
                                   cap=stuckfit.cap_for(acc.height * acc.width))
    acc.frames += later.frames
    acc.pairs += later.pairs
    acc.times = np.concatenate([acc.times, later.times])


def assemble(parts: Iterable[tuple[int, SensorAccumulator]], height: int) -> SensorAccumulator:
    """One accumulator of ``height`` rows from its bands, given as (y0, band) top to
    bottom (consumed one at a time: a caller reading bands lazily holds one band beside
    the result); frames, pairs and ``times`` come from the band at row 0. Raises
    ValueError when bands overlap, leave rows uncovered, or disagree on width, frames,
    pairs, layout, pattern or params (pieces of two different states)."""
    out = head = None
    row = 0
    fits = []
    for y0, part in parts:
        if out is None:
            if y0 != 0:
                raise ValueError("no band starts at row 0")
            head = part
            out = SensorAccumulator(height, head.width, head.layout, head.pattern, head.params,
                                    frames=head.frames, pairs=head.pairs, times=head.times.copy())
        if y0 != row:
            raise ValueError(f"bands leave rows {row}..{y0} uncovered" if y0 > row else f"bands overlap at row {y0}")
        mine = (part.width, part.frames, part.pairs, part.layout, part.params)
        theirs = (head.width, head.frames, head.pairs, head.layout, head.params)
        if mine != theirs or (head.layout == "cfa" and not np.array_equal(part.pattern, head.pattern)):
            raise ValueError(f"band at row {y0} is of another state: {mine} vs {theirs}")
        if y0 + part.height > height:
            raise ValueError(f"band at row {y0} runs past the sensor's {height} rows")
        for name in field_names():
            getattr(out, name)[y0:y0 + part.height] = getattr(part, name)
        fits.append(StuckRecord(part.stuck_fit.at + y0 * head.width, part.stuck_fit.since, part.stuck_fit.sums))
        row = y0 + part.height
    if out is None:
        raise ValueError("no bands")
    if row != height:
        raise ValueError(f"bands cover {row} of {height} rows")
    out.stuck_fit = StuckRecord(*(np.concatenate([getattr(f, k) for f in fits]) for k in ("at", "since", "sums")))
    out.stuck_fit.check(out.height * out.width)
    return out


__all__ = ["SITE_BYTES", "TILE_BYTES", "assemble", "band", "band_rows", "bands", "merge_in_place"]
