"""The chance radius (indexer.match.chance): the balanced-hash model and the radius from
planted rejection rates."""
from __future__ import annotations

from math import comb

import numpy as np
import pytest

from indexer.match.chance import COMPARISONS, ChanceRadius, balanced_tail


def test_balanced_tail_is_the_hypergeometric_distance_of_32_bit_set_hashes():
    tail = balanced_tail()
    assert tail[-1] == pytest.approx(1.0)  # Vandermonde: sum C(32,k)^2 = C(64,32)
    assert np.all(tail[1::2] == tail[0::2][:-1])  # odd distances never happen
    assert tail[14] == pytest.approx(6.6528e-6, rel=1e-4) and tail[12] == pytest.approx(4.7094e-7, rel=1e-4)
    # brute force on small words: 8-bit hashes with 4 set, all pairs, within 2 bits
    words = [w for w in range(256) if bin(w).count("1") == 4]
    within = sum(bin(a ^ b).count("1") <= 2 for a in words for b in words) / len(words) ** 2
    assert within == pytest.approx((comb(4, 0) ** 2 + comb(4, 1) ** 2) / comb(8, 4))


def _planted(rate_at: dict[int, float], pairs: int = 10**8) -> ChanceRadius:
    """A ChanceRadius (max 14, floor 6, budget 0.25, a negligible prior) that saw
    ``pairs`` compared image pairs with rejections at the planted rates per pair."""
    cr = ChanceRadius(14, 6, 0.25, prior_pairs=1)
    cr.compared(pairs)
    for d, r in rate_at.items():
        for _ in range(int(r * pairs)):
            cr.rejected(d)
    return cr


def test_radius_steps_down_where_the_expected_chance_candidates_reach_the_budget():
    cr = _planted({14: 1e-4, 12: 1e-4, 10: 1e-6}, pairs=10**7)
    # n * rate(<= r) <= 0.25: rate(<=14) = 2.01e-4 -> 14 up to ~1,243 images
    assert cr.radius(1000) == 14
    # rate(<=12) = 1.01e-4 -> 13 (12 and 13 are one: distances are even) up to ~2,475
    assert cr.radius(2000) == 13
    # rate(<=10) = 1e-6 -> 11 up to 250,000; then 9: nothing rejected within 8 bits
    assert cr.radius(10_000) == 11 and cr.radius(200_000) == 11 and cr.radius(10**6) == 9
    # never below the floor, however many chance candidates sit close
    assert _planted({2: 1e-5}, pairs=10**7).radius(10**6) == 6


def test_a_fresh_archive_follows_the_model_and_copies_do_not_count():
    cr = ChanceRadius(14, 6, 0.25)
    # the model alone: 0.25 / (COMPARISONS * P(d <= 14)) ~ 280 images at 14 bits
    limit = 0.25 / (COMPARISONS * balanced_tail()[14])
    assert cr.radius(int(limit) - 5) == 14 and cr.radius(int(limit) + 5) < 14
    # compared pairs with nothing rejected (every candidate a copy, accepted) pull the
    # rate below the model: the radius stays wide for longer
    cr.compared(10**7)
    assert cr.radius(5 * int(limit)) == 14
