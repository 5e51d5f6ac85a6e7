"""What a :class:`~indexer.match.engine.Matcher` searches and verifies with, and the
defaults: the ``[match]`` settings of :mod:`indexer.config` take theirs from here."""
from __future__ import annotations

from dataclasses import dataclass, field

from indexer.match.verdict import MatchThresholds


@dataclass(frozen=True)
class MatchParams:
    """A matcher's settings.

    radius: Hamming radius (bits of 64) of the 8 D4 probes against every entry; it also
        picks the index tables' layout. Search cost grows steeply with it.
    crop_radius: radius of hits with a crop hash on either side (at least ``radius``;
        why 14, and when to lower it: :mod:`indexer.match.engine`).
    crop_hits, lone_radius: a pair whose best hash distance is beyond ``lone_radius`` (at
        least ``radius``) needs ``crop_hits`` hash hits (see ``Matcher`` on corroboration).
    chance_budget, chance_floor: a new image's candidates are kept only within a radius
        that tightens as the archive grows so that about ``chance_budget`` chance
        candidates per new image are expected, never below ``chance_floor`` bits
        (:mod:`indexer.match.chance`); ``chance_budget = 0`` keeps every candidate out to
        ``crop_radius`` (verification work per image then grows with the archive).
    max_transforms: distinct orientations of one candidate pair verified by pixels.
    thresholds: the verdicts' thresholds and the information gate.
    """

    radius: int = 10
    crop_radius: int = 14
    crop_hits: int = 2
    lone_radius: int = 12
    chance_budget: float = 0.25
    chance_floor: int = 6
    max_transforms: int = 2
    thresholds: MatchThresholds = field(default_factory=MatchThresholds)
