"""Per-image flags: planted dark, bright, blurred, flat, grey and odd-shaped images fire
their flags; clean photos raise none. Metrics come from indexer.measure.features.measure on a
256-px working image, as the indexer computes them."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from indexer.measure import features

from indexer.synthetic import scenes as synth
from indexer.exposure import flags

WORK = 256


def metrics(rgb8: np.ndarray):
    """(Features at the working size, width, height) of a uint8 RGB image."""
    img = Image.fromarray(rgb8)
    w, h = img.size
    img.thumbnail((WORK, WORK), Image.Resampling.LANCZOS)
    return features.measure(np.asarray(img, dtype=np.float32) / 255.0), w, h


def fired_names(rgb8: np.ndarray, **kwargs) -> set[str]:
    m, w, h = metrics(rgb8)
    return {f.name for f in flags.fired(m, w, h, **kwargs)}


@pytest.fixture(scope="module")
def scene():
    return synth.scene(1, 640, 480)


def test_names_version_and_all_checks_reported(scene):
    m, w, h = metrics(scene)
    result = flags.evaluate(m, w, h)
    assert tuple(f.name for f in result) == flags.FLAG_NAMES
    assert isinstance(flags.FLAGS_VERSION, int) and flags.FLAGS_VERSION >= 1
    assert all(isinstance(f.value, float) and isinstance(f.threshold, float) for f in result)


def test_clean_synthetic_scene_raises_none(scene):
    assert fired_names(scene) == set()


def test_dark_image(scene):
    names = fired_names(synth.change_exposure(scene, -5))
    assert {"dark", "underexposed"} <= names
    assert "blurry" not in names and "light" not in names  # dark is not called blurry


def test_bright_image(scene):
    names = fired_names(synth.change_exposure(scene, 5))
    assert {"light", "clipped_highlights", "overexposed"} <= names
    assert "dark" not in names


def test_moderately_bright_image_only_clips(scene):
    assert fired_names(synth.change_exposure(scene, 2)) == {"clipped_highlights"}


def test_blurred_image(scene):
    blurred = np.asarray(Image.fromarray(scene).filter(ImageFilter.GaussianBlur(6)))
    assert fired_names(blurred) == {"blurry"}


def test_flat_image():
    flat = np.full((480, 640, 3), 128, np.uint8)
    names = fired_names(flat)
    assert {"low_information", "low_contrast", "grayscale"} <= names
    assert "blurry" not in names  # flat frames are low-information, not blurry


def test_grey_and_low_contrast(scene):
    grey = np.repeat(np.asarray(Image.fromarray(scene).convert("L"))[..., None], 3, axis=2)
    assert fired_names(grey) == {"grayscale"}
    washed = (128 + (scene.astype(np.int16) - 128) // 6).astype(np.uint8)
    assert fired_names(washed) == {"low_contrast"}


def test_crushed_shadows(scene):
    crushed = np.clip(scene.astype(np.int16) - 90, 0, 255).astype(np.uint8)
    assert "crushed_shadows" in fired_names(crushed)


def test_odd_aspect_ratio_and_size():
    strip = synth.scene(2, 640, 480)[200:280]  # 640 x 80: ratio 0.125
    assert "odd_aspect_ratio" in fired_names(strip)
    assert "odd_aspect_ratio" not in fired_names(synth.scene(2, 640, 480))
    tiny = np.asarray(Image.fromarray(synth.scene(2, 640, 480)).resize((30, 24)))
    assert "odd_size" in fired_names(tiny)  # shorter side below 32 px without quartiles


def test_odd_size_with_dataset_quartiles():
    widths = np.array([640, 800, 1024, 640, 720, 800, 4000])
    heights = np.array([480, 600, 768, 480, 540, 600, 3000])
    q = flags.size_quartiles(widths, heights)
    big = flags.odd_size(4000, 3000, quartiles=q)
    normal = flags.odd_size(800, 600, quartiles=q)
    assert big.fired and big.value == pytest.approx(np.sqrt(4000 * 3000))
    assert big.threshold == pytest.approx(q[1] + 3 * (q[1] - q[0]))
    assert not normal.fired


def test_thresholds_are_keyword_overridable(scene):
    m, w, h = metrics(scene)
    strict = flags.FlagThresholds(blurry=1e9)
    assert "blurry" in {f.name for f in flags.fired(m, w, h, thresholds=strict)}
    assert "blurry" in flags.threshold_names()


def test_rgb_entropy_matches_pillow(scene):
    m, _, _ = metrics(scene)
    img = Image.fromarray(scene)
    img.thumbnail((WORK, WORK), Image.Resampling.LANCZOS)
    small = features.to_uint8(np.asarray(img, dtype=np.float32) / 255.0)
    assert flags.rgb_entropy(m.hist) == pytest.approx(Image.fromarray(small).entropy(), abs=1e-6)


def test_kodak_photos_clean(shared_data):
    """23 of the 24 Kodak photos raise no flag; kodim20 (white sky) clips 41%."""
    for path in sorted((shared_data / "photos" / "kodak").glob("kodim*.png")):
        names = fired_names(np.asarray(Image.open(path).convert("RGB")))
        expected = {"clipped_highlights"} if path.stem == "kodim20" else set()
        assert names == expected, (path.name, names)


def test_blurred_kodak_is_blurry(shared_data):
    img = Image.open(shared_data / "photos" / "kodak" / "kodim23.png").convert("RGB")
    assert fired_names(np.asarray(img)) == set()
    assert fired_names(np.asarray(img.filter(ImageFilter.GaussianBlur(8)))) == {"blurry"}


def test_odd_sizes_in_a_mixed_archive():
    """40 camera originals among 112 web copies: neither size is odd; one thumbnail is."""
    widths = [4000] * 40 + [800] * 112 + [96]
    heights = [3000] * 40 + [600] * 112 + [64]
    checks = flags.odd_sizes(widths, heights)
    fired = [i for i, f in enumerate(checks) if f.fired]
    assert fired == [152]
    assert checks[152].value == 0.0 and checks[152].threshold == pytest.approx(0.02)
    assert checks[0].value == pytest.approx(39 / 152)
    # a handful of images: the minimum-side rule
    small = flags.odd_sizes([4000, 800, 20], [3000, 600, 20])
    assert [f.fired for f in small] == [False, False, True]
