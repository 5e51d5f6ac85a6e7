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
    assert words_from(crop, 4) == "uncropped: the keeper is cropped to 81% of it, shifted (-12, +4) px"
    assert words_from(Row(5, 6, "same_file", "identical file", None), 6) == "identical file"
    mirror = Row(7, 8, "derived", "mirrored left-right, re-encoded")
    assert words_from(mirror, 8) == "mirrored left-right, re-encoded"  # its own inverse


def test_a_crop_is_told_by_the_overlaps_whichever_side_is_a():
    """The stored words say "cropped" for the pair; the side wholly inside the other is the crop."""
    crop_is_a = Row(5, 6, "derived", "cropped to 81% of the area, re-encoded", 1.0)
    overlaps = {(5, 6): (1.0, 0.81)}  # all of a lies in b; 81% of b in a
    assert words_from(crop_is_a, 6, overlaps=overlaps) == "cropped to 81% of the area, re-encoded"
    assert words_from(crop_is_a, 5, overlaps=overlaps) == "uncropped: the keeper is cropped to 81% of it, re-encoded"
    assert relation_to_keeper(6, 5, [crop_is_a], overlaps=overlaps) == "cropped to 81% of the area, re-encoded"
    crop_is_b = Row(7, 8, "derived", "cropped to 64% of the area", 1.0)
    overlaps = {(7, 8): (0.64, 1.0)}
    assert words_from(crop_is_b, 7, overlaps=overlaps) == "cropped to 64% of the area"
    assert words_from(crop_is_b, 8, ref="a.jpg", overlaps=overlaps) == "uncropped: a.jpg is cropped to 64% of it"


def test_a_member_reached_through_another_copy_gets_the_words_of_the_path():
    half = Row(1, 2, "derived", "resized 50%", 0.5)
    pairs = [half, Row(2, 3, "same_file", "identical file", None)]
    assert [p for _, p in path_to(1, 3, pairs)] == pairs
    # a byte copy of the half-size copy is itself half the size, from the keeper's side...
    assert relation_to_keeper(1, 3, pairs, {2: "half.jpg"}) == "resized 50%"
    # ...and turned around when the keeper is the copy's copy
    assert relation_to_keeper(3, 1, pairs, {2: "half.jpg"}) == "resized 200%"
    assert relation_to_keeper(1, 9, pairs) == ""
    copies = [Row(1, 2, "same_file", "identical file", None), Row(2, 3, "same_file", "identical file", None)]
    assert relation_to_keeper(1, 3, copies) == "identical file"
    mixed = [copies[0], Row(2, 3, "same_pixels", "same pixels, different file (metadata or container changed)")]
    assert relation_to_keeper(1, 3, mixed) == "same pixels, different file"
    # two changes of kinds that compose: one description from the keeper's side
    chain = [Row(4, 1, "derived", "rotated 90° counter-clockwise"), half]
    assert relation_to_keeper(4, 2, chain, {1: "rot.png"}) == "rotated 90° counter-clockwise, resized 50%"
    assert relation_to_keeper(2, 4, chain, {1: "rot.png"}) == "rotated 90° clockwise, resized 200%"
    # a crop composes too (kept areas multiply); an uncrop (read from the cropped side)
    # or a shift does not: each hop, naming the file between, joined with "; then "
    crop = [Row(4, 1, "derived", "cropped to 50% of the area"), half]
    assert relation_to_keeper(4, 2, crop, {1: "crop.jpg"}) == "resized 50%, cropped to 50% of the area"
    shifted = [Row(4, 1, "derived", "shifted (+3, -2) px"), half]
    assert relation_to_keeper(4, 2, shifted, {1: "s.jpg"}) == "shifted (+3, -2) px (s.jpg); then resized 50%"


def test_keeper_reason_names_the_rule_that_decided():
    t = datetime(2020, 1, 1)
    big = KeeperInfo(1, 4000, 3000, "JPEG", 3_000_000, 10.0, t)
    small = KeeperInfo(2, 2000, 1500, "JPEG", 900_000, 10.0, t)
    raw = KeeperInfo(3, 4000, 3000, "RAW-CRW", 9_000_000, 5.0, t)
    assert keeper_reason(big, [small]) == "most pixels"
    assert keeper_reason(raw, [big, small]) == "RAW"


def test_changes_in_a_row_are_composed_when_they_are_turns_sizes_and_exposure():
    rot = Row(1, 2, "derived", "rotated 90° counter-clockwise, re-encoded", 1.0)
    small = Row(3, 2, "derived", "rotated 90° counter-clockwise, resized 133%, darker by 0.5 EV", 4 / 3)
    # keeper 1 -> 2 rotated ccw; 2 -> 3 is the inverse of small: rotated cw, resized 75%, brighter by 0.5 EV
    assert relation_to_keeper(1, 3, [rot, small], {2: "rot.png"}) == "resized 75%, brighter by 0.5 EV, re-encoded"
    assert relation_to_keeper(3, 1, [rot, small], {2: "rot.png"}) == "resized 133%, darker by 0.5 EV, re-encoded"
    crop = Row(2, 4, "derived", "cropped to 50% of the area", 1.0)
    assert relation_to_keeper(1, 4, [rot, crop], {2: "rot.png"}) == ("rotated 90° counter-clockwise, "
                                                                    "cropped to 50% of the area, re-encoded")
    uncrop = Row(4, 2, "derived", "cropped to 50% of the area", 1.0)  # 4 is the crop: read from 2, an uncrop
    assert "; then" in relation_to_keeper(1, 4, [rot, uncrop], {2: "rot.png"})
