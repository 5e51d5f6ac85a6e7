"""Shot identity from metadata: camera bodies and capture times (indexer.match.shots)."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from indexer.match.shots import ShotRelation, body_key, is_raw, relate, same_body, settle

T = datetime(2020, 2, 10, 8, 32, 29)
EPSON = body_key("SEIKO EPSON CORP.", "PhotoPC 3100Z")
S40 = body_key("Canon", "Canon PowerShot S40")


def test_body_key_normalises_case_and_spaces():
    assert body_key(" Canon ", "Canon  PowerShot S40", None) == S40
    assert body_key(None, None, "123") is None and body_key("", "") is None


def test_serials_compared_only_when_both_known():
    a, b, c = body_key("Canon", "EOS D30", "a32-00001"), body_key("Canon", "EOS D30", "1235-02474"), \
        body_key("Canon", "EOS D30")
    assert same_body(a, b) is False
    assert same_body(a, c) is True and same_body(c, b) is True
    assert same_body(a, None) is None


@pytest.mark.parametrize("bodies, times, expect", [
    ((EPSON, S40), (T, T), (False, False)),  # two bodies: two shots, whatever the times
    ((EPSON, S40), (None, None), (False, False)),
    ((EPSON, EPSON), (T, T + timedelta(seconds=4)), (True, False)),  # the Epson repeats, 4 s apart
    ((EPSON, EPSON), (T, T), (True, True)),
    ((EPSON, None), (T, T), (None, None)),  # a stripped copy: unknown
    ((None, None), (T, T + timedelta(seconds=1)), (None, False)),  # times alone separate shots
    ((EPSON, EPSON), (T.replace(microsecond=144000), T.replace(microsecond=262000)), (True, False)),  # burst
    ((EPSON, EPSON), (T.replace(microsecond=144000), T), (True, True)),  # a copy lost its sub-seconds
])
def test_relate(bodies, times, expect):
    rel = relate(*bodies, *times)
    assert (rel.same_camera, rel.same_shot) == expect


def test_raw_and_its_jpeg_may_be_stamped_a_second_apart():
    later = T + timedelta(seconds=1)
    assert relate(S40, S40, T, later, raw_pair=True).same_shot is True
    assert relate(S40, S40, T, later).same_shot is False
    assert relate(S40, S40, T, T + timedelta(seconds=2), raw_pair=True).same_shot is False


def test_reason_in_words():
    assert relate(EPSON, EPSON, T, T + timedelta(days=287)).reason == "taken 287 days apart"
    assert relate(EPSON, EPSON, T, T + timedelta(seconds=26)).reason == "taken 26 s apart"
    assert relate(EPSON, S40, T, T).reason == "different cameras"


@pytest.mark.parametrize("verdict, rel, raw, expect", [
    ("derived", ShotRelation(False, False), (False, False), "similar"),
    ("exposure_variant", ShotRelation(True, False), (False, False), "exposure_variant"),  # a bracket
    ("exposure_variant", ShotRelation(True, True), (False, False), "derived"),  # an edit of one capture
    ("exposure_variant", ShotRelation(None, None), (False, False), "exposure_variant"),
    ("derived", ShotRelation(True, True), (True, False), "raw_jpeg"),
    ("similar", ShotRelation(True, True), (False, True), "raw_jpeg"),
    ("same_file", ShotRelation(False, False), (False, False), "same_file"),
    ("same_pixels", ShotRelation(True, False), (False, False), "same_pixels"),
    (None, ShotRelation(True, True), (False, False), None),
    ("derived", ShotRelation(None, None), (False, False), "derived"),
])
def test_settle(verdict, rel, raw, expect):
    assert settle(verdict, rel, raw_a=raw[0], raw_b=raw[1]) == expect


def test_is_raw_reads_stored_format_names():
    assert is_raw("RAW-CRW") and is_raw("RAW-KDC") and is_raw("dng")
    assert not is_raw("JPEG") and not is_raw("TIFF") and not is_raw(None)
