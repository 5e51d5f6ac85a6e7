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
    max_transforms: distinct orientations of one candidate pair verified by pixels.
    thresholds: the verdicts' thresholds and the information gate.
    """

    radius: int = 10
    crop_radius: int = 14
    crop_hits: int = 2
    lone_radius: int = 12
    max_transforms: int = 2
    thresholds: MatchThresholds = field(default_factory=MatchThresholds)
