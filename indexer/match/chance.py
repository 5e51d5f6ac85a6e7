"""How far out a new image's hash candidates are taken: a radius that tightens as the
archive grows, so the expected number of chance candidates per new image stays constant.

Why. Two unrelated pictures' pHashes fall within ``r`` bits of each other with a fixed
probability ``p(r)``, so a new image meets ``N * p(r)`` chance candidates among ``N``
indexed ones, and verifying them costs work per image that grows with ``N`` (the
archive's with ``N**2``). On bench/soak.py's archive the kept candidates per new image
rose from 0.22 (first 2,000 images) to 2.9 (12-14k), all but the planted copies rejected
by pixels: CPU per image 25 -> 77 ms, img/s 38 -> 5.4. Holding ``N * p(r) <= budget``
keeps that work flat; the price is that, past the size where the radius steps down, a
copy whose hashes sit farther apart than the radius (extreme crops and shifts at 12-14
bits, strong exposure changes) is no longer proposed.

The model. Our pHash thresholds 64 DCT coefficients at their median, so every hash has
exactly 32 bits set (all 2,000 hashes of the soak checked), and the distance of two such
hashes is even: for two independent uniform balanced hashes, ``d = 2k`` with ``k``
hypergeometric, ``P(d = 2k) = C(32, k)**2 / C(64, 32)`` (:func:`balanced_tail`:
``P(d <= 14) = 6.7e-6``, ``<= 12``: 4.7e-7, ``<= 10``: 2.3e-8, ``<= 8``: 7.2e-10; the plain
binomial tail of 64 independent bits, 3.5e-6 at 14, misses the parity and
underestimates the steps). A pair of images is compared through ``COMPARISONS`` hash
pairs (8 D4 probes x 11 entries, 2 centred-crop probes x 11 entries, 8 off-centre
entries x 3 crop-channel probes of the older image). That is the prior. Real pictures
are not uniform: on the soak (noise with a flat rectangle, 64-640 px) the chance
candidates per image pair within 12, 10 and 8 bits were 3, 12 and 60 times the model's
(a flat rectangle fixes many low-frequency signs), so the model alone would keep the
radius too wide and the work would still grow. :class:`ChanceRadius` therefore counts
the archive's own chance candidates: pairs the index proposed that verification
*rejected*, by distance, per image pair compared, and blends that rate with the model
(the model weighs as ``prior_pairs`` image pairs): a fresh or small archive follows the
model, a large one its own rate. Rejections, not candidates: an archive of many copies
proposes each new copy with all its group (in bench/neardup_eval.py's 432 files every
image has 17 copies), and counting those as chance closed the radius to the floor and
lost 17% of the crops and shifts. Candidates left unverified (the fan-out's group
reserves, the ``loose`` cap) are not counted: the cap binds only when the expected count
is well above the budget, and the 4 it verifies then suffice to tighten the radius.

Replayed on the soak's first 14,713 images with their stored verdicts
(bench/match_growth.py, 2026-12-07): kept candidates per image 0.13-0.30 in every
2,000-image window, verification jobs 0.13-0.23 (without: 0.12 -> 2.9 candidates and
1.7 jobs, towards the ``loose`` cap of 4), the radius 14 -> 10 by 2,000 images and 8 by
8,000. 8 of the 164 pairs the soak stored were beyond the radius when their second image
arrived: all ``similar`` look-alikes of the synthetic scenes at 10-14 bits; every copy
(``same_file``, ``derived``, ``exposure_variant``: 0-8 bits) was still proposed. bench/neardup_eval.py (432 files) is unchanged: precision
1.0000, recall 0.9975, every transform 1.00 but exposure 0.96.
"""
from __future__ import annotations

from functools import lru_cache
from math import comb

import numpy as np

BITS = 64
COMPARISONS = 8 * 11 + 2 * 11 + 8 * 3  # hash pairs compared per image pair (see the module docstring)


@lru_cache(maxsize=1)
def balanced_tail() -> np.ndarray:
    """``P(d <= r)`` for ``r`` = 0..64, float64 (65,): the Hamming distance of two
    independent uniform 64-bit hashes with exactly 32 bits set (odd ``r`` repeat the even
    one below: such distances are always even)."""
    total = comb(BITS, BITS // 2)
    point = np.zeros(BITS + 1)
    for k in range(BITS // 2 + 1):
        point[2 * k] = comb(BITS // 2, k) ** 2 / total
    return np.cumsum(point)


class ChanceRadius:
    """The radius within which a new image's candidates are kept, from the archive size.

    ``max_radius``: the widest (the matcher's ``crop_radius``); ``floor``: the narrowest
    it ever gets (copies within it are always proposed; past the size where even the
    floor expects ``budget``, chance candidates grow again, at the floor's rate);
    ``budget``: expected chance candidates per new image; ``prior_pairs``: how many
    compared image pairs the model's rate weighs as against the counted one.

    :meth:`compared` each query with the number of images it was compared with,
    :meth:`rejected` each of its candidates that verification rejected (its best
    distance); :meth:`radius` is the largest ``r <= max_radius`` with
    ``n * rate(<= r) <= budget``, at least ``floor``. Rates are per compared image pair.
    """

    def __init__(self, max_radius: int, floor: int, budget: float, prior_pairs: float = 1e5):
        if not 0 <= floor <= max_radius <= BITS:
            raise ValueError(f"need 0 <= floor {floor} <= max_radius {max_radius} <= {BITS}")
        self.max_radius, self.floor, self.budget, self.prior_pairs = max_radius, floor, budget, prior_pairs
        self.counts = np.zeros(BITS + 1, dtype=np.int64)  # rejected candidates, by best distance
        self.pairs = 0  # image pairs the queries compared (sum of the index sizes)

    def compared(self, n_indexed: int) -> None:
        """A query was compared with ``n_indexed`` images."""
        self.pairs += int(n_indexed)

    def rejected(self, distance: int) -> None:
        """A candidate at best Hamming distance ``distance`` was verified and rejected."""
        self.counts[min(max(int(distance), 0), BITS)] += 1

    def rate(self) -> np.ndarray:
        """Chance candidates within ``r`` bits per compared image pair, float64 (65,): the
        counted rate blended with the model's (:func:`balanced_tail` x ``COMPARISONS``)."""
        prior = np.minimum(balanced_tail() * COMPARISONS, 1.0)
        return (np.cumsum(self.counts) + prior * self.prior_pairs) / (self.pairs + self.prior_pairs)

    def radius(self, n_indexed: int) -> int:
        """The radius for a query against ``n_indexed`` images."""
        expected = n_indexed * self.rate()[: self.max_radius + 1]
        within = np.flatnonzero(expected <= self.budget)
        return max(self.floor, int(within[-1]) if within.size else 0)
