"""A member in words relative to its keeper, whichever side of the stored pair it is."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from indexer.match.groups import KeeperInfo, keeper_reason
from indexer.match.relation import path_to, relation_to_keeper, words_from


@dataclass
class Row:
    a: int
    b: int
    verdict: str
    description: str
    scale: float | None = 1.0


def test_words_turn_around_when_the_keeper_is_b():
    half = Row(1, 2, "derived", "rotated 90° clockwise, resized 200%, darker by 0.5 EV, converted to greyscale", 2.0)
    assert words_from(half, 1) == half.description
    assert words_from(half, 2) == ("rotated 90° counter-clockwise, resized 50%, brighter by 0.5 EV, "
                                   "in colour: the keeper is a greyscale copy")
    crop = Row(3, 4, "derived", "cropped to 81% of the area, shifted (+12, -4) px", 1.0)
    assert words_from(crop, 4) == "wider: the keeper keeps 81% of it, shifted (-12, +4) px"
    assert words_from(Row(5, 6, "same_file", "identical file", None), 6) == "identical file"
    mirror = Row(7, 8, "derived", "mirrored left-right, re-encoded")
    assert words_from(mirror, 8) == "mirrored left-right, re-encoded"  # its own inverse


def test_a_member_reached_through_another_copy_gets_each_hop():
    pairs = [Row(1, 2, "derived", "resized 50%", 0.5), Row(2, 3, "same_file", "identical file", None)]
    assert [p for _, p in path_to(1, 3, pairs)] == pairs
    assert relation_to_keeper(1, 3, pairs, {2: "half.jpg"}) == "identical file to half.jpg"
    assert relation_to_keeper(3, 1, pairs, {2: "half.jpg"}) == "resized 200% (relative to half.jpg)"
    assert relation_to_keeper(1, 9, pairs) == ""


def test_keeper_reason_names_the_rule_that_decided():
    t = datetime(2020, 1, 1)
    big = KeeperInfo(1, 4000, 3000, "JPEG", 3_000_000, 10.0, t)
    small = KeeperInfo(2, 2000, 1500, "JPEG", 900_000, 10.0, t)
    raw = KeeperInfo(3, 4000, 3000, "RAW-CRW", 9_000_000, 5.0, t)
    assert keeper_reason(big, [small]) == "most pixels"
    assert keeper_reason(raw, [big, small]) == "RAW"
