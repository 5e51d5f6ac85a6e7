"""Hot, dead and stuck photosites from a sensor's running statistics.

- hot:   stood out bright in at least ``rate`` of the frames (default 90%);
- dead:  stood out dark in at least ``rate`` of the frames;
- stuck: raw value unchanged (within the accumulator's ``stuck_tolerance``) in at least
         ``rate`` of the consecutive-frame pairs while the median of its 8 same-colour
         neighbours was unchanged in at most ``neighbour_stuck_max`` of them (default 50%),
         i.e. the neighbours varied, and the count is too high to be chance for a site
         that repeats as often as its neighbours (binomial tail < ``stuck_chance``,
         default 1e-9). In dark areas with ~1-2 DN of noise a normal site repeats its
         value in 1 pair of 4 or 5, so 5 pairs prove nothing; ~15 pairs do. Clipped values
         (<= black, >= white) never count as unchanged. On for RAW and rendered frames
         alike. On a rendered frame the value is read, per frame, in the channel the
         site stands out in most (a photosite stuck under a red filter keeps the red
         value of its pixel, green and blue are interpolated from its neighbours) and the
         neighbours are ``rgb_step`` pixels away; in frames whose scene happens to match
         the stuck value another channel is read, so "rgb" sensors need only
         ``rgb_stuck_rate`` (75%) of the pairs (the binomial test still applies), and the
         hot/dead records of its demosaic blob within ``spread_radius`` are dropped in
         its favour. Measured on the synthetic camera (30 frames, 5 stuck sites):
         lossless PNG frames diagnose 4 of 5 as stuck (the fifth is stuck at a value
         its pixel renders at 255, i.e. clipped: indistinguishable from hot, as on RAW);
         in a JPEG q95, 4:2:0 chroma mixes a stuck site's value with its neighbours'
         (identical in 0-2 of 29 pairs, within 3 codes in 7-13), so there it shows as
         hot or is missed (red: hot; green, blue: nothing; bench/sensor_stuck_jpeg.py,
         which also measures what would tell them apart). So on "rgb" sensors a site is
         also stuck when its sparse regression says so (:mod:`.stuckfit`: per colour, in
         linear light, its value does not follow its neighbourhood: slope < 0.6, intercept
         share > 0.45, both significant, over >= 20 standing-out frames whose
         neighbourhood level varied); its rate is then the share of the frames since it
         became a candidate in which it stood out.

A rate of 90% over fewer than ``min_frames`` frames (default 5) is not evidence: such a
sensor raises :class:`NotEnoughFrames` ("not enough frames (n of m)"); at least 2 frames
are always required, so one frame never makes a defect, and a site must stand out in at
least 2 frames whatever the rate. This is the rule of ``rawpy.enhance.find_bad_pixels``
(kept if in >= 90% of frames) with a per-frame test that adapts to local noise, so
texture and stars do not add up (a star is bright in one frame of many).

A defect that appears late (or heals) never reaches ``rate`` of all frames; it is dated
instead: the capture times of the frames in which a site stood out *strongly*
(:data:`indexer.sensor.residual.STRONG`) give its first and last sighting, and the
sensor's timeline how many frames were taken in between. A site that stood out strongly
in at least ``rate`` of the frames between its first and last sighting, over at least
``min_window`` frames (default 20), is a defect from its first sighting on ("clean for 20
frames, then hot from a date on is a defect from that date"). Every defect carries
``first_seen`` / ``last_seen`` (None when no dated frame saw it strongly).

Demosaicing spreads one bad photosite into its neighbours, and JPEG's 8x8 DCT rings
around it (dark halos beside a hot pixel, in every frame); for "rgb" sensors a hot or dead
candidate is kept only where its |mean residual| is the largest among the candidates of
any kind within ``spread_radius`` (default 3 px), so one defect is one record. Two real
defects closer than that report as one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from indexer.sensor import stuckfit
from indexer.sensor.accumulator import SensorAccumulator

KINDS = ("hot", "dead", "stuck")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Defect:
    """One defective site. x = column, y = row, sensor coordinates (visible CFA plane for
    RAW, stored un-rotated pixels otherwise); rate = fraction of frames (pairs for stuck)
    in which it misbehaved; mean_residual in DN / code values; frames = frames seen;
    first_seen / last_seen = capture times (s since 1970, camera clock read as UTC) of the
    first and last frames in which it stood out strongly, None when unknown."""

    x: int
    y: int
    kind: str
    rate: float
    mean_residual: float
    frames: int
    first_seen: int | None = None
    last_seen: int | None = None


class NotEnoughFrames(ValueError):
    """The sensor has fewer frames than the classification needs."""

    def __init__(self, frames: int, required: int):
        self.frames, self.required = frames, required
        super().__init__(f"not enough frames ({frames} of {required})")


def _needed(rate: float, total: int) -> int:
    """Smallest count whose share of ``total`` reaches ``rate`` (never below 2)."""
    return max(2, math.ceil(rate * total - 1e-9))


def _neighbour_median(values: np.ndarray, ys: np.ndarray, xs: np.ndarray, step: int) -> np.ndarray:
    """Median of the 8 same-colour neighbours (mirrored at edges) at the given sites."""
    h, w = values.shape
    offsets = [(dy, dx) for dy in (-step, 0, step) for dx in (-step, 0, step) if dy or dx]
    gathered = []
    for dy, dx in offsets:
        yy, xx = np.abs(ys + dy), np.abs(xs + dx)
        yy = np.where(yy >= h, 2 * (h - 1) - yy, yy)
        xx = np.where(xx >= w, 2 * (w - 1) - xx, xx)
        gathered.append(values[yy, xx])
    return np.median(np.stack(gathered), axis=0)


def _stuck_sites(acc: SensorAccumulator, rate: float, neighbour_max: float,
                 chance: float) -> np.ndarray:
    """Boolean map of stuck sites (see module docstring)."""
    if acc.pairs < 1:
        return np.zeros(acc.shape, bool)
    ys, xs = np.nonzero(acc.unchanged >= _needed(rate, acc.pairs))
    if ys.size == 0:  # mostly so on a new body's few frames: no scipy import for nothing
        return np.zeros(acc.shape, bool)
    # here, not at the top: importing scipy.stats costs ~1.4 s of CPU, as much as the rest
    # of classifying a 12 MP sensor (0.6 s) and saving it (0.8 s) together
    from scipy.stats import binom

    step = 2 if acc.layout == "cfa" else acc.params.rgb_step
    out = np.zeros(acc.shape, bool)
    for start in range(0, ys.size, _CHUNK):  # bounded memory even if every site repeats
        y, x = ys[start : start + _CHUNK], xs[start : start + _CHUNK]
        around = _neighbour_median(acc.unchanged, y, x, step)
        # how likely is this many unchanged pairs for a site that behaves like its
        # neighbours? (Laplace's rule keeps p > 0 when the neighbours never repeat)
        p_like_neighbours = (around + 1) / (acc.pairs + 2)
        by_chance = binom.sf(acc.unchanged[y, x].astype(np.int64) - 1, acc.pairs, p_like_neighbours)
        keep = (around <= neighbour_max * acc.pairs) & (by_chance < chance)
        out[y[keep], x[keep]] = True
    return out


def _dilated(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` grown by Chebyshev ``radius`` (few sites: a loop over them)."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    for y, x in np.argwhere(mask):
        out[max(0, y - radius) : min(h, y + radius + 1), max(0, x - radius) : min(w, x + radius + 1)] = True
    return out


def _local_maxima(mask: np.ndarray, strength: np.ndarray, radius: int) -> np.ndarray:
    """Keep the sites of ``mask`` whose strength is the largest among masked sites within
    Chebyshev distance ``radius`` (ties: the first in raster order wins)."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    s = strength[ys, xs]
    keep = np.ones(ys.size, bool)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if not (dy or dx):
                continue
            yy, xx = ys + dy, xs + dx
            inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            yy, xx = np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)
            other = inside & mask[yy, xx]
            rival = strength[yy, xx]
            beats = rival >= s if (dy, dx) < (0, 0) else rival > s
            keep &= ~(other & beats)
    out = np.zeros_like(mask)
    out[ys[keep], xs[keep]] = True
    return out


def classify_defects(acc: SensorAccumulator, *, rate: float = 0.9, min_frames: int = 5,
                     neighbour_stuck_max: float = 0.5, stuck_chance: float = 1e-9,
                     stuck: bool | None = None, suppress_spread: bool | None = None,
                     spread_radius: int = 3, min_window: int = 20,
                     rgb_stuck_rate: float = 0.75,
                     stuck_tests: stuckfit.StuckTests | None = None) -> list[Defect]:
    """Defects of one sensor, sorted by (y, x).

    rate:                share of frames a site must misbehave in (default 0.9).
    min_frames:          frames required before anything is reported (default 5, >= 2).
    neighbour_stuck_max: max share of pairs the neighbours may be unchanged (default 0.5).
    stuck_chance:        max binomial probability of the site's unchanged count for a
                         site that repeats as often as its neighbours (default 1e-9).
    stuck:               detect stuck sites (default True).
    suppress_spread:     one record per demosaic/JPEG blob (default: True for "rgb").
    spread_radius:       Chebyshev radius of that suppression, pixels (default 3).
    min_window:          frames between first and last strong sighting a dated (late or
                         healed) defect needs (default 20).
    rgb_stuck_rate:      share of pairs a site of an "rgb" sensor must be unchanged in to
                         be stuck (default 0.75, never above ``rate``): its value is read
                         in the channel it stands out in, and in a frame whose scene
                         matches its stuck value another channel is read (see the module
                         docstring); the binomial test carries the evidence.
    stuck_tests:         the thresholds of the stuck regression of "rgb" sensors (the
                         ``[sensor] stuck_*`` settings: ``SensorSettings.stuck_tests()``);
                         required when that test runs (an "rgb" sensor with ``stuck``),
                         so no second set of defaults lives here.
    Raises NotEnoughFrames when ``acc.frames < min_frames``.
    """
    if min_frames < 2 or not 0 < rate <= 1:
        raise ValueError(f"need min_frames >= 2 and 0 < rate <= 1, got {min_frames}, {rate}")
    if acc.frames < min_frames:
        raise NotEnoughFrames(acc.frames, min_frames)
    is_rgb = acc.layout == "rgb"
    stuck = True if stuck is None else stuck
    if stuck and is_rgb and stuck_tests is None:
        raise ValueError("an rgb sensor's stuck test needs stuck_tests (SensorSettings.stuck_tests())")
    spread = is_rgb if suppress_spread is None else suppress_spread
    need = _needed(rate, acc.frames)
    # stuck first: a site frozen at a bright value also stands out bright, but "stuck"
    # (the value never moves) is the more specific diagnosis
    stuck_rate = min(rate, rgb_stuck_rate) if is_rgb else rate
    stuck_map = (_stuck_sites(acc, stuck_rate, neighbour_stuck_max, stuck_chance) if stuck
                 else np.zeros(acc.shape, bool))
    fitted = _fitted_stuck(acc, stuck_map, spread_radius, stuck_tests) if stuck and is_rgb else {}
    for y, x in fitted:
        stuck_map[y, x] = True
    late_hot, late_dead = _dated_defects(acc, rate, max(min_window, min_frames))
    hot = ((acc.bright >= need) | late_hot) & ~stuck_map
    dead = ((acc.dark >= need) | late_dead) & ~hot & ~stuck_map
    if spread:
        # a stuck site's demosaic/JPEG blob stands out around it: one record, the stuck one
        near_stuck = _dilated(stuck_map, spread_radius)
        hot, dead = hot & ~near_stuck, dead & ~near_stuck
        peaks = _local_maxima(hot | dead, np.abs(acc.mean), spread_radius)
        hot, dead = hot & peaks, dead & peaks
    maps = [("hot", hot, acc.bright, acc.frames), ("dead", dead, acc.dark, acc.frames),
            ("stuck", stuck_map, acc.unchanged, acc.pairs)]
    found = [fitted.get((d.y, d.x), d) for kind, mask, counts, total in maps
             for d in _records(acc, kind, mask, counts, total)]
    return sorted(found, key=lambda d: (d.y, d.x))


def _fitted_stuck(acc: SensorAccumulator, stuck_map: np.ndarray, radius: int,
                  tests: stuckfit.StuckTests) -> dict[tuple[int, int], Defect]:
    """{(y, x): stuck Defect} of the candidates passing ``tests`` (:func:`stuckfit.stuck`); rate = the
    share of the frames since the site became a candidate in which it stood out.

    Demosaicing interpolates a stuck site into its neighbours, which then follow their
    neighbourhood only in part and pass too (on lossless frames, 5-8 around each planted
    site): one record per blob, the site that follows least (largest ``share * (1 - b)``
    of its passing colours) within ``radius``, none beside a site ``stuck_map`` already
    holds (the unchanged-value test, on lossless frames), and only where the site's RMS
    residual is the largest within ``radius`` of all sites: a site stuck at a value its
    pixel renders clipped is left out of the fit, its blob passes in its place (a red
    one at 255 on PNG frames: 4 neighbours, b 0.50, share 0.88) and would be reported a
    pixel off; it stays what the other tests make it (hot), as on RAW."""
    rec = acc.stuck_fit
    ok = stuckfit.passing(rec, tests)
    passed = np.flatnonzero(ok.any(axis=1))
    if passed.size == 0:
        return {}
    f = stuckfit.fits(rec.sums[passed])
    strength = np.where(ok[passed], f["share"] * (1 - f["b"]), -np.inf).max(axis=1)
    mask = np.zeros(acc.shape, bool)
    ys, xs = np.divmod(rec.at[passed], acc.width)
    mask[ys, xs] = True
    score = np.zeros(acc.shape)
    score[ys, xs] = strength
    mask &= ~_dilated(stuck_map, radius) & _local_maxima(mask, score, radius)
    h, w = acc.shape
    for y, x in np.argwhere(mask):  # few sites: windows, not a whole-sensor RMS array
        rows, cols = slice(max(0, y - radius), min(h, y + radius + 1)), slice(max(0, x - radius), min(w, x + radius + 1))
        mean = acc.mean[rows, cols].astype(np.float64)
        ms = acc.m2[rows, cols] / acc.frames + mean * mean  # mean square residual
        mask[y, x] = ms[y - rows.start, x - cols.start] >= ms.max()
    out = {}
    for i in passed.tolist():
        y, x = divmod(int(rec.at[i]), acc.width)
        if not mask[y, x]:
            continue
        span = acc.frames - int(rec.since[i]) + 1
        first, last = int(acc.first[y, x]), int(acc.last[y, x])
        out[(y, x)] = Defect(x=x, y=y, kind="stuck", rate=round(float(rec.sums[i, :, 0].max()) / max(span, 1), 4),
                             mean_residual=float(acc.mean[y, x]), frames=acc.frames,
                             first_seen=first or None, last_seen=last or None)
    return out


def _dated_defects(acc: SensorAccumulator, rate: float, min_window: int) -> tuple[np.ndarray, np.ndarray]:
    """Hot and dark maps of the sites that stood out strongly in >= ``rate`` of the dated
    frames between their first and last strong sighting, a window of >= ``min_window``."""
    empty = np.zeros(acc.shape, bool)
    if acc.times.size < min_window:
        return empty, empty
    ys, xs = np.nonzero(acc.strong >= max(2, math.ceil(rate * min_window - 1e-9)))
    if ys.size == 0:
        return empty, empty
    timeline = np.sort(acc.times)
    first, last = acc.first[ys, xs].astype(np.int64), acc.last[ys, xs].astype(np.int64)
    window = np.searchsorted(timeline, last, side="right") - np.searchsorted(timeline, first, side="left")
    strong = acc.strong[ys, xs].astype(np.int64)
    keep = (window >= min_window) & (strong >= np.ceil(rate * window - 1e-9))
    hot, dead = empty.copy(), empty.copy()
    bright = acc.mean[ys, xs] > 0  # the sign of the mean residual tells hot from dead
    hot[ys[keep & bright], xs[keep & bright]] = True
    dead[ys[keep & ~bright], xs[keep & ~bright]] = True
    return hot, dead


def _records(acc, kind, mask, counts, total) -> Iterable[Defect]:
    ys, xs = np.nonzero(mask)
    for y, x in zip(ys.tolist(), xs.tolist()):
        first, last = int(acc.first[y, x]), int(acc.last[y, x])
        yield Defect(x=x, y=y, kind=kind, rate=round(int(counts[y, x]) / total, 4),
                     mean_residual=float(acc.mean[y, x]), frames=acc.frames,
                     first_seen=first or None, last_seen=last or None)


def defect_mask(defects: Iterable[Defect], shape: tuple[int, int], *,
                kinds: Iterable[str] = KINDS) -> np.ndarray:
    """Boolean (H, W) map of the given defects (of the given kinds), for :mod:`.repair`."""
    wanted = set(kinds)
    mask = np.zeros(shape, bool)
    for d in defects:
        if d.kind in wanted:
            mask[d.y, d.x] = True
    return mask
