"""Planted answers for the copy-vs-burst measures: blurred correlations (resampled copies),
the one-sided edit (text drawn over a copy), the colour guard, and greyscale wording."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from test_match_engine import jpeg, moved_object, record, scene

from indexer.match.engine import Matcher, MatchParams
from indexer.match.verdict import MatchThresholds, classify, describe
from indexer.match.verify import Evidence, colour_spread, edit_measures, smooth_correlations

NO_OVERLAY = MatchThresholds(overlay_min_sign=2.0)
NO_SMOOTH = MatchThresholds(smooth_corr_rank=2.0)


def kodak(shared_data, n: int) -> np.ndarray:
    return np.asarray(Image.open(shared_data / "photos" / "kodak" / f"kodim{n:02d}.png").convert("RGB"))


def with_text(rgb8: np.ndarray, y: float) -> np.ndarray:
    """White "(c) photoqa 2026" as bench/neardup_eval.py draws it, at height ``y``."""
    img = Image.fromarray(rgb8)
    w, h = img.size
    ImageDraw.Draw(img).text((w * 0.05, h * y), "(c) photoqa 2026", fill=(255, 255, 255),
                             font=ImageFont.load_default(size=max(12, h // 14)))
    return np.asarray(img)


def pair(a: np.ndarray, b: np.ndarray, th: MatchThresholds = MatchThresholds()):
    found = Matcher.from_records([record(0, a), record(1, b)], MatchParams(thresholds=th)).batch_pairs()
    assert len(found) == 1
    return found[0]


def test_text_overlay_copy_is_derived(shared_data):
    """kodim05 with the caption low in the frame: one tile drops below the plain derived
    rule; the edit is small, one-sided and the rest is the same picture."""
    base = kodak(shared_data, 5)
    copy = jpeg(with_text(base, 0.75), 90)
    assert pair(base, copy, NO_OVERLAY).verdict == "similar"
    p = pair(base, copy)
    assert p.verdict == "derived"
    ev = p.evidence
    assert ev.edit_area < 0.05 and ev.edit_sign > 0.85 and ev.outside_corr > 0.99
    assert "marked over" in p.description and "(text, logo)" in p.description


@pytest.mark.parametrize("n", [1, 5, 14, 17, 20])
def test_kodak_moved_object_is_similar(shared_data, n):
    base = kodak(shared_data, n)
    assert pair(base, jpeg(moved_object(base), 90)).verdict == "similar"


@pytest.mark.parametrize("n, keep, oy, ox", [(2, 0.85, 20, 70), (20, 0.82, 10, 60)])
def test_crops_derived_by_blurred_correlation(shared_data, n, keep, oy, ox):
    """Crops whose thumbnails sample the scene on another grid: plain rank correlation
    misses them, blurred by one thumbnail pixel they agree again."""
    full = kodak(shared_data, n)
    h, w = round(full.shape[0] * keep), round(full.shape[1] * keep)
    crop = jpeg(np.ascontiguousarray(full[oy:oy + h, ox:ox + w]), 90)
    assert pair(full, crop, NO_SMOOTH).verdict == "similar"
    p = pair(full, crop)
    assert p.verdict == "derived"
    assert p.evidence.corr_smooth > p.evidence.corr_rank


def test_edit_sign_tells_a_drawn_mark_from_moved_content():
    base = scene(11).mean(axis=2)
    marked = base.copy()
    cols = np.arange(40, 200)
    marked[100:110, cols[(cols // 2) % 3 != 0]] = 255.0  # strokes of a caption
    moved = base.copy()
    moved[60:130, 200:300] = base[60:130, 188:288]  # an object moved 12 px: content replaced
    mask = np.ones(base.shape, bool)
    area, sign, outside = edit_measures(base, marked, mask)
    assert 0 < area < 0.05 and sign > 0.95 and outside > 0.99
    area_m, sign_m, outside_m = edit_measures(base, moved, mask)
    assert area_m > area and sign_m < 0.5 and outside_m > 0.99
    assert edit_measures(base, base, mask) == (0.0, 0.0, pytest.approx(1.0))


def test_smooth_correlation_forgives_subpixel_resampling():
    base = scene(12).mean(axis=2)
    from scipy import ndimage
    shifted = ndimage.shift(base, (0.5, 0.5), order=1)
    mask = np.ones(base.shape, bool)
    mask[:2], mask[:, :2] = False, False
    r, t = smooth_correlations(base, shifted, mask)
    assert r > 0.98 and t > 0.95


def _copy_like(**kw) -> Evidence:
    ev = Evidence(transform="identity", x=0, y=0, scale=1, overlap_a=1, overlap_b=1, peak=0.5,
                  corr_rank=0.95, corr_grey=0.95, corr_tile=0.84, hist_sim=0.8, delta_ev=0.0,
                  corr_smooth=0.985, tile_smooth=0.96)
    return dataclasses.replace(ev, **kw)


def test_blurred_rule_needs_a_copys_colours():
    """The same chart shot by two cameras (scenes/digicam_corpus, Canon 350D vs Sony FD92)
    blurs to up to 0.985 / 0.967 but its colour histograms overlap only 0.27-0.29."""
    assert classify(_copy_like()) == "derived"
    assert classify(_copy_like(hist_sim=0.29)) == "similar"
    assert classify(_copy_like(corr_smooth=0.96)) == "similar"


def test_greyscale_copy_is_described_as_greyscale():
    base = scene(13)
    grey = np.repeat(np.asarray(Image.fromarray(base).convert("L"))[..., None], 3, axis=2)
    p = pair(base, jpeg(grey, 90))
    assert p.verdict == "derived"
    assert "converted to greyscale" in p.description
    assert "re-encoded" not in p.description
    hist = record(0, grey).hist
    assert colour_spread(hist) == 0.0 and colour_spread(record(0, base).hist) > 3
    ev = dataclasses.replace(p.evidence, colour_a=p.evidence.colour_b, colour_b=p.evidence.colour_a)
    assert "first is a greyscale copy" in describe(ev, "derived")


def test_another_cameras_colours_are_not_a_copy():
    """Measured: Canon S40 CRW_0101 against the Sony Mavica e-mail copy MVC-177E, two
    cameras' photos of one colour chart; the plain rule alone made them ``derived``."""
    from indexer.match.verdict import classify
    from indexer.match.verify import Evidence

    chart = Evidence(transform="identity", x=0, y=0, scale=0.14, overlap_a=0.96, overlap_b=1.0, peak=0.551,
                     corr_rank=0.966, corr_grey=0.97, corr_tile=0.898, hist_sim=0.377, delta_ev=0.1,
                     colour_a=40.0, colour_b=35.0)
    assert classify(chart) == "similar"
    grey_copy = Evidence(transform="identity", x=0, y=0, scale=1.0, overlap_a=1.0, overlap_b=1.0, peak=0.8,
                         corr_rank=0.99, corr_grey=0.99, corr_tile=0.95, hist_sim=0.4, delta_ev=0.0,
                         colour_a=40.0, colour_b=0.0)
    assert classify(grey_copy) == "derived"


def test_full_pixels_are_asked_for_by_overlap_not_by_a_shift_in_full_size_pixels():
    """A 12 MP JPEG and a PNG of its exact pixels measured 3.4 px apart (0.1 px of the
    thumbnails): still a same-pixels candidate. A 1% re-framing (96% overlap) is not."""
    from indexer.match.verdict import needs_pixels

    png_of_jpeg = Evidence(transform="identity", x=-3.36, y=-3.36, scale=1.0, overlap_a=0.999, overlap_b=0.999,
                           peak=0.9, corr_rank=0.996, corr_grey=0.998, corr_tile=0.99, hist_sim=0.99, delta_ev=0.0)
    reframed = dataclasses.replace(png_of_jpeg, x=30.2, y=23.5, scale=1.015, overlap_a=0.96)
    assert needs_pixels("a" * 64, "b" * 64, png_of_jpeg)
    assert not needs_pixels("a" * 64, "b" * 64, reframed)
    assert not needs_pixels("a" * 64, "a" * 64, png_of_jpeg)  # same bytes: no pixels needed


def test_a_greyscale_copy_of_a_colour_image_needs_no_full_pixels():
    """Measured on bench/end_to_end.py's dense set: 20 of 167 pixel digests were for
    greyscale copies (grey correlation ~1 with their colour original); their pixels cannot
    be equal, so none is asked for. Two colour (or two grey) images still are."""
    from indexer.match.verdict import needs_pixels

    looks_same = Evidence(transform="identity", x=0.0, y=0.0, scale=1.0, overlap_a=1.0, overlap_b=1.0, peak=0.9,
                          corr_rank=0.998, corr_grey=0.999, corr_tile=0.99, hist_sim=0.4, delta_ev=0.0,
                          colour_a=40.0, colour_b=0.0)
    assert not needs_pixels("a" * 64, "b" * 64, looks_same)
    assert not needs_pixels("a" * 64, "b" * 64, dataclasses.replace(looks_same, colour_a=0.0, colour_b=12.0))
    assert needs_pixels("a" * 64, "b" * 64, dataclasses.replace(looks_same, colour_b=38.0))
    assert needs_pixels("a" * 64, "b" * 64, dataclasses.replace(looks_same, colour_a=0.0))
