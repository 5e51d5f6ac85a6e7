"""Stuck photosites on rendered frames: a sparse per-site regression, mergeable exactly.

On a JPEG, 4:2:0 chroma mixes a stuck site's value with its neighbours' (a green site
stuck at 18,000 DN wanders 127-164 codes while its neighbourhood goes 93-175), so the
"value unchanged between frames" test of RAW never holds. What still tells it apart is
how its value follows its neighbourhood: per site and per colour, in linear light (sRGB
decoded), the least-squares fit ``v = a + b m`` of its value ``v`` on the ninther ``m``
of its same-colour grid (``rgb_step`` px apart, as the residual) over the frames in
which it stood out. A clean site follows (b ~ 1, a ~ 0), a hot one follows with an
offset (b ~ 1, a > 0), a dead one follows scaled down (a ~ 0), a stuck one does not follow
(b ~ 0, a = its value). On the synthetic camera of ``bench/sensor_stuck_jpeg.py`` (JPEG
q95, 30 frames) the rule "some colour has b < 0.6 and a / mean(v) > 0.45" passed its three
stuck sites (one per filter colour) and none of 133 hot, dead or clean candidates.

A fit over few frames, or over frames whose neighbourhood level barely varied, is noise
(the rule alone called 2,161 sites of 9 real Nikon JPEGs stuck). So a colour is *stuck*
only with at least ``min_frames`` fitted frames (default 20), a spread of ``m`` (standard
deviation, linear light) of at least ``min_spread`` (0.05), the rule above, and both
parts of it significant: ``(1 - b) / se(b) > z`` and ``a / se(a) > z`` (ordinary least
squares standard errors, default z = 5, one-sided p ~ 3e-7 each: the candidates of a
12 MP body number in the 10^4-10^5). The level it is stuck at (the intercept ``a``) must
be at least ``min_level`` (1% of full scale in linear light, code ~25 of 255): a site
that reads black whatever the scene is dead (a synthetic dead site of gain 0-0.1 on 16-bit
frames fits b = 0.01, a = 0.0017), as the dark test reports it. These six thresholds
(0.6 and 0.45 of the rule too) are the ``[sensor] stuck_*`` settings, passed in as
:class:`StuckTests`; the defaults quoted here are defined in ``indexer.config``.

The record is sparse: only *candidates*, sites that stood out in at least 2 frames and at
least half of the accumulator's frames when they stood out (``admit``), each with
``since`` (the accumulator's frame number when admitted, 1-based) and, per colour
(3), the sums ``n, Sm, Sv, Smm, Smv, Svv`` over the frames it stood out in since, its
values unclipped (0 < v, m < white in codes). A candidate that stands out in fewer than
half the frames since its admission, once ``keep_window`` (20) frames have passed, is
dropped (``prune``): texture that recurs for a few frames does not stay. Past
:func:`cap_for` candidates (1% of the sites, at least 4,096) those that stood out in the
smallest share of their frames since admission go first: 9 real Nikon JPEGs of one
session (640x480) leave 36,824 candidates (12% of the sites) after their 9 frames, which
on a 12 MP body would be 230 MB. Sums add, so two
records merge exactly (Chan-style, as the dense statistics; a later record's ``since``
shifts by the earlier one's frames); which sites are admitted depends on the frames an
accumulator saw before, so a merged record may hold a site one pass would admit a frame
later (the writer's accumulator since its last flush admits on its own frames). 152
bytes a candidate.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUMS = ("n", "m", "v", "mm", "mv", "vv")
COLOURS = 3
KEEP_WINDOW = 20
CAP_SHARE = 0.01  # at most 1% of a sensor's sites are candidates ...
CAP_MIN = 4096  # ... or this many: 19 MB for a 12 MP body, 0.6 MB for a small one


def cap_for(sites: int) -> int:
    """The most candidates a sensor of ``sites`` sites keeps."""
    return max(CAP_MIN, int(sites * CAP_SHARE))


@dataclass(frozen=True)
class StuckTests:
    """The tests a colour of a candidate must pass to be stuck (module docstring): at
    least ``min_frames`` fitted frames, a spread of ``m`` of at least ``min_spread``
    (linear light), slope ``b < max_slope``, intercept share ``a / mean(v) > min_share``,
    intercept ``a >= min_level`` (linear light, share of full scale), both z scores
    ``> z``. No defaults here: they are the ``[sensor] stuck_*`` settings
    (``indexer.config.SensorSettings.stuck_tests``), defined once there."""

    min_frames: int
    min_spread: float
    max_slope: float
    min_share: float
    min_level: float
    z: float


@dataclass(eq=False)
class StuckRecord:
    """Candidates of one sensor: ``at`` (K,) int64 flat site index (y * W + x), sorted,
    unique; ``since`` (K,) int64 frame number at admission; ``sums`` (K, 3, 6) float64."""

    at: np.ndarray
    since: np.ndarray
    sums: np.ndarray

    @classmethod
    def empty(cls) -> "StuckRecord":
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.zeros((0, COLOURS, len(SUMS))))

    def __len__(self) -> int:
        return int(self.at.size)

    @property
    def nbytes(self) -> int:
        return self.at.nbytes + self.since.nbytes + self.sums.nbytes

    def copy(self) -> "StuckRecord":
        return StuckRecord(self.at.copy(), self.since.copy(), self.sums.copy())

    def rows(self, y0: int, y1: int, width: int) -> "StuckRecord":
        """The candidates of rows ``y0:y1``, indices relative to row ``y0``."""
        lo, hi = np.searchsorted(self.at, [y0 * width, y1 * width])
        return StuckRecord(self.at[lo:hi] - y0 * width, self.since[lo:hi].copy(), self.sums[lo:hi].copy())

    def check(self, sites: int) -> None:
        """ValueError unless the arrays are consistent for a sensor of ``sites`` sites."""
        k = self.at.shape
        dtypes = (self.at.dtype, self.since.dtype, self.sums.dtype)
        if dtypes != (np.int64, np.int64, np.float64):
            raise ValueError(f"stuck record dtypes {dtypes}, expected int64, int64, float64")
        if (len(k) != 1 or self.since.shape != k or self.sums.shape != (k[0], COLOURS, len(SUMS))
                or (k[0] and (self.at[0] < 0 or self.at[-1] >= sites or np.any(np.diff(self.at) <= 0)))):
            raise ValueError(f"inconsistent stuck record: at {self.at.shape}, since {self.since.shape}, "
                             f"sums {self.sums.shape} for {sites} sites")


def linear(codes: np.ndarray, white: int) -> np.ndarray:
    """sRGB codes (any int dtype, 0..white) -> float64 linear light 0..1 (IEC 61966-2-1)."""
    c = np.clip(codes, 0, white) / float(white)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def samples(v: np.ndarray, m: np.ndarray, white: int) -> np.ndarray:
    """One frame's sites' (K, C) values and ninthers in codes -> their (K, 3, 6) float64
    contribution to the sums; colours past C and clipped values count 0."""
    k, c = v.shape
    valid = (v > 0) & (v < white) & (m > 0) & (m < white)
    lv, lm = linear(v, white) * valid, linear(m, white) * valid
    out = np.zeros((k, COLOURS, len(SUMS)))
    out[:, :c] = np.stack([valid.astype(np.float64), lm, lv, lm * lm, lm * lv, lv * lv], axis=-1)
    return out


def add_frame(rec: StuckRecord, frame_no: int, at: np.ndarray, contrib: np.ndarray,
              admit: np.ndarray, window: int = KEEP_WINDOW, cap: int | None = None) -> StuckRecord:
    """``rec`` plus one frame: sites ``at`` (sorted) that stood out, their sums
    ``contrib`` (K, 3, 6), ``admit`` (K,) bool whether a new site may enter; then pruned
    (``window``: see :func:`prune`)."""
    pos = np.searchsorted(rec.at, at)
    known = pos < rec.at.size
    known[known] = rec.at[pos[known]] == at[known]
    sums = rec.sums
    if known.any():
        sums = sums.copy()
        sums[pos[known]] += contrib[known]
    new = ~known & admit
    if new.any():
        merged_at = np.concatenate([rec.at, at[new]])
        order = np.argsort(merged_at, kind="stable")
        rec = StuckRecord(merged_at[order],
                          np.concatenate([rec.since, np.full(int(new.sum()), frame_no, np.int64)])[order],
                          np.concatenate([sums, contrib[new]])[order])
    else:
        rec = StuckRecord(rec.at, rec.since, sums)
    return prune(rec, frame_no, window, cap)


def prune(rec: StuckRecord, frames: int, window: int = KEEP_WINDOW, cap: int | None = None) -> StuckRecord:
    """Drop candidates that stood out in under half the frames since their admission,
    once ``window`` frames have passed since; then, past ``cap`` candidates (None: no
    cap), those with the smallest share (ties: the later sites in raster order)."""
    span = frames - rec.since + 1
    hits = rec.sums[:, :, 0].max(axis=1)
    keep = (span < window) | (2 * hits >= span)
    if cap is not None and int(keep.sum()) > cap:
        share = np.where(keep, hits / np.maximum(span, 1), -1.0)
        order = np.lexsort((np.arange(share.size), -share))  # by share down, then index
        keep = np.zeros_like(keep)
        keep[order[:cap]] = True
    if keep.all():
        return rec
    return StuckRecord(rec.at[keep], rec.since[keep], rec.sums[keep])


def merge(a: StuckRecord, b: StuckRecord, frames_a: int, frames: int, window: int = KEEP_WINDOW,
          cap: int | None = None) -> StuckRecord:
    """The record of ``a``'s frames then ``b``'s: sums add, ``b``'s ``since`` shifts by
    ``frames_a``; pruned at ``frames`` (the merged count)."""
    at = np.concatenate([a.at, b.at])
    since = np.concatenate([a.since, b.since + frames_a])
    sums = np.concatenate([a.sums, b.sums])
    uniq, first, inverse = np.unique(at, return_index=True, return_inverse=True)
    total = np.zeros((uniq.size, COLOURS, len(SUMS)))
    np.add.at(total, inverse, sums)
    earliest = np.full(uniq.size, np.iinfo(np.int64).max)
    np.minimum.at(earliest, inverse, since)
    return prune(StuckRecord(uniq, earliest, total), frames, window, cap)


def fits(sums: np.ndarray) -> dict[str, np.ndarray]:
    """Per candidate and colour, (K, 3) float64: n, slope b, intercept a, share a/mean v,
    spread std(m), and the z scores (1 - b)/se(b), a/se(a) (NaN where n < 3)."""
    n, sm, sv, smm, smv, svv = (sums[..., i] for i in range(len(SUMS)))
    with np.errstate(divide="ignore", invalid="ignore"):
        mm, mv = sm / n, sv / n
        var_m = np.maximum(smm / n - mm * mm, 0.0)
        cov = smv / n - mm * mv
        var_v = np.maximum(svv / n - mv * mv, 0.0)
        b = cov / np.maximum(var_m, 1e-12)
        a = mv - b * mm
        # residual variance of the fit, unbiased (n - 2 degrees of freedom)
        s2 = np.maximum(var_v - b * cov, 0.0) * n / (n - 2)
        se_b = np.sqrt(s2 / (n * np.maximum(var_m, 1e-12)))
        se_a = np.sqrt(s2 * (1.0 / n + mm * mm / (n * np.maximum(var_m, 1e-12))))
        tiny = 1e-12  # a perfect fit (lossless, noise-free): any departure is significant
        out = dict(n=n, b=b, a=a, share=a / np.maximum(mv, 1e-12), spread=np.sqrt(var_m),
                   z_b=(1.0 - b) / np.maximum(se_b, tiny), z_a=a / np.maximum(se_a, tiny))
    bad = n < 3
    for key in out:
        if key != "n":
            out[key] = np.where(bad, np.nan, out[key])
    return out


def passing(rec: StuckRecord, tests: StuckTests) -> np.ndarray:
    """(K, 3) bool: the colours of each candidate that pass every one of ``tests``."""
    if len(rec) == 0:
        return np.zeros((0, COLOURS), bool)
    f = fits(rec.sums)
    t = tests
    with np.errstate(invalid="ignore"):
        return ((f["n"] >= t.min_frames) & (f["spread"] >= t.min_spread) & (f["b"] < t.max_slope)
                & (f["share"] > t.min_share) & (f["a"] >= t.min_level) & (f["z_b"] > t.z) & (f["z_a"] > t.z))


def stuck(rec: StuckRecord, tests: StuckTests) -> np.ndarray:
    """(K,) bool: candidates with some colour passing every one of ``tests``."""
    return passing(rec, tests).any(axis=1)


__all__ = ["COLOURS", "StuckRecord", "StuckTests", "add_frame", "cap_for", "fits", "linear", "merge", "passing",
           "prune", "samples", "stuck"]
