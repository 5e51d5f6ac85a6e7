"""Real sensors: Canon PowerShot S40 hot pixels, Infinite-ISP dark frame bad column."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from indexer.sensor.accumulator import SensorAccumulator
from indexer.sensor.defects import classify_defects

rawpy = pytest.importorskip("rawpy")

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def s40(shared_data):
    paths = sorted((shared_data / "raw/digicam_corpus/Canon/PowerShot_S40").glob("*.CRW"))
    assert len(paths) == 5
    acc = None
    for path in paths:
        with rawpy.imread(str(path)) as raw:
            cfa = raw.raw_image_visible.copy()
            if acc is None:
                acc = SensorAccumulator(*cfa.shape, pattern=raw.raw_pattern.copy())
            acc.update(cfa, black_level=list(raw.black_level_per_channel),
                       white_level=raw.white_level)
    return acc


def _candidates(shared_data, min_frames: int) -> set[tuple[int, int]]:
    path = shared_data / "sensor/derived/hotpixel_candidates_canon_s40.csv"
    with path.open(newline="") as fh:
        return {(int(r["col_visible"]), int(r["row_visible"])) for r in csv.DictReader(fh)
                if int(r["frames_flagged"]) >= min_frames}


def test_s40_reports_sites_recurring_in_all_five_frames(s40, shared_data):
    # 5 frames: min_frames=5 and the default rate 0.9 mean "bright in all 5"
    found = {(d.x, d.y) for d in classify_defects(s40, min_frames=5, rate=0.9) if d.kind == "hot"}
    all_five = _candidates(shared_data, 5)
    assert len(all_five) == 2
    assert all_five <= found
    assert len(found) < 100  # a few dozen weak hot pixels, not texture


def test_s40_recurring_in_three_of_five_at_rate_06(s40, shared_data):
    # the CSV's looser list (flagged in >= 3 of 5 frames by a 2x-median rule) at rate 3/5
    found = {(d.x, d.y) for d in classify_defects(s40, min_frames=5, rate=0.6)}
    assert _candidates(shared_data, 3) <= found


def test_dark_frame_bad_last_column(shared_data):
    """The one dark frame fed as 6 frames, each with fresh Gaussian noise (sigma 2 DN,
    about the frame's own spread): a dark frame's defects are fixed-pattern, the same in
    every dark exposure, while temporal noise is not; adding independent noise stands in
    for the other exposures. Feeding the identical frame 6 times would find the column
    too, but freezes every site's value, which no real series does."""
    path = shared_data / "sensor/infinite-isp/BlackImage_1920x1080_12bits_BGGR.raw"
    dark = np.fromfile(path, "<u2").reshape(1080, 1920)
    rng = np.random.default_rng(0)
    acc = SensorAccumulator(1080, 1920, pattern=[[2, 1], [3, 0]])  # BGGR in rawpy's indices
    for _ in range(6):
        frame = np.clip(dark + np.round(rng.normal(0, 2, dark.shape)), 0, 4095)
        acc.update(frame.astype(np.uint16), black_level=0, white_level=4095)
    defects = classify_defects(acc, min_frames=5)
    column = {d.y for d in defects if d.x == 1919 and d.kind == "hot"}
    bright_rows = set(np.flatnonzero(dark[:, 1919] > 20).tolist())
    assert len(bright_rows) > 700
    assert len(column & bright_rows) >= 0.98 * len(bright_rows)
    assert not [d for d in defects if d.kind == "stuck"]  # 5 pairs cannot prove stuck
