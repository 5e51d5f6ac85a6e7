"""Hot and dead sites of a small detector from its per-pixel statistics over a stack.

A raw counting detector (say 7x7 photosites, ~10^5 frames) has no "same-colour
neighbours 2 px away" worth the name, and every frame is mostly noise, so the per-frame
outlier test of :mod:`indexer.sensor.defects` does not apply. Over a stack, though, each
site's mean is known very precisely (its standard error is sigma / sqrt(n)), and the
sites of a uniformly lit or dark detector share one mean. A site is:

- hot:  mean above the robust centre of all sites (their median) by more than
        ``k`` robust spreads (1.4826 x median absolute deviation of the site means, plus
        ``floor``), and by at least ``min_ratio`` x the centre;
- dead: mean below the centre by as much (a site that never counts: mean ~0 while the
        others see signal), or no variance at all while the median site varies.

Median and MAD ignore up to half the sites being defective (Rousseeuw & Croux 1993).
Returns (y, x) per channel 0 for grey stacks; channels are tested separately.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

K_SPREADS = 8.0  # robust spreads from the centre; Poisson site means sit within ~3
MIN_RATIO = 0.5  # and at least half the centre away (a 2% gain spread is not a defect)


@dataclass(frozen=True)
class Site:
    """One defective site: channel, row y, column x, kind, its mean and the centre."""

    channel: int
    y: int
    x: int
    kind: str
    mean: float
    centre: float
    score: float  # (mean - centre) / robust spread


def classify(mean: np.ndarray, variance: np.ndarray, *, k: float = K_SPREADS,
             min_ratio: float = MIN_RATIO, floor: float = 1e-9) -> list[Site]:
    """Hot and dead sites from per-pixel ``mean`` and ``variance`` (C, H, W) float."""
    out: list[Site] = []
    for c in range(mean.shape[0]):
        m, v = mean[c], variance[c]
        centre = float(np.median(m))
        spread = 1.4826 * float(np.median(np.abs(m - centre))) + floor
        score = (m - centre) / spread
        margin = min_ratio * abs(centre)
        hot = (score > k) & (m - centre > margin)
        dead = ((score < -k) & (centre - m > margin)) | ((v == 0) & (np.median(v) > 0))
        for kind, mask in (("hot", hot), ("dead", dead & ~hot)):
            for y, x in zip(*np.nonzero(mask)):
                out.append(Site(c, int(y), int(x), kind, float(m[y, x]), centre, float(score[y, x])))
    return sorted(out, key=lambda s: (s.channel, s.y, s.x))
