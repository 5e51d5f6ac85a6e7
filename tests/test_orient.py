"""D4 algebra and the EXIF orientation mapping, checked against Pillow's exif_transpose."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image, ImageOps

from indexer.measure import orient

PROBE = np.arange(12).reshape(3, 4)


def test_eight_distinct_transforms():
    outs = {orient.apply(PROBE, t).tobytes() + bytes(orient.apply(PROBE, t).shape) for t in orient.D4}
    assert len(outs) == 8


@pytest.mark.parametrize("a,b", list(itertools.product(orient.D4, repeat=2)))
def test_compose_matches_applying_in_turn(a, b):
    both = orient.compose(a, b)
    assert np.array_equal(orient.apply(orient.apply(PROBE, a), b), orient.apply(PROBE, both))


@pytest.mark.parametrize("t", orient.D4)
def test_inverse_undoes(t):
    inv = orient.inverse(t)
    assert np.array_equal(orient.apply(orient.apply(PROBE, t), inv), PROBE)
    assert orient.compose(t, inv) == "identity" == orient.compose(inv, t)


def test_group_facts():
    assert orient.compose("rot90", "rot90") == "rot180"
    assert orient.compose("rot90", "rot270") == "identity"
    assert orient.inverse("rot90") == "rot270"
    for t in ("flip_h", "flip_v", "transpose", "transverse", "rot180"):
        assert orient.inverse(t) == t  # involutions
    assert orient.compose("flip_h", "flip_v") == "rot180"


@pytest.mark.parametrize("t", orient.D4)
def test_swaps_axes(t):
    assert orient.swaps_axes(t) == (orient.apply(PROBE, t).shape != PROBE.shape)


def test_rot90_is_counter_clockwise():
    a = np.array([[1, 2], [3, 4]])
    # counter-clockwise: the top-right corner comes to the top-left
    assert orient.apply(a, "rot90").tolist() == [[2, 4], [1, 3]]


@pytest.mark.parametrize("value", range(1, 9))
def test_exif_mapping_agrees_with_pillow(value):
    stored = np.arange(3 * 5, dtype=np.uint8).reshape(3, 5) * 10
    img = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x0112] = value
    img.info["exif"] = exif.tobytes()
    img.getexif()[0x0112] = value
    upright = np.asarray(ImageOps.exif_transpose(img))
    ours = orient.apply(stored, orient.from_exif(value))
    assert np.array_equal(ours, upright), value


def test_from_exif_defaults_to_identity():
    assert orient.from_exif(None) == "identity"
    assert orient.from_exif(0) == "identity"
    assert orient.from_exif(9) == "identity"


def test_unknown_name_raises():
    with pytest.raises(ValueError):
        orient.apply(PROBE, "spin")


NUMPY_D4 = {"identity": lambda a: a, "rot90": lambda a: np.rot90(a, 1), "rot180": lambda a: np.rot90(a, 2),
            "rot270": lambda a: np.rot90(a, 3), "flip_h": np.fliplr, "flip_v": np.flipud,
            "transpose": lambda a: np.swapaxes(a, 0, 1), "transverse": lambda a: np.rot90(np.swapaxes(a, 0, 1), 2)}


@pytest.mark.parametrize("t", orient.D4)
def test_apply_equals_numpy_on_colour_images(t):
    """The slicing steps (no NumPy import in orient) give the values of numpy.rot90 /
    flip / swapaxes on an (H, W, C) array, as views with the same strides."""
    a = np.arange(4 * 5 * 3).reshape(4, 5, 3)
    ours, theirs = orient.apply(a, t), NUMPY_D4[t](a)
    assert np.array_equal(ours, theirs) and ours.strides == theirs.strides
    assert np.shares_memory(ours, a)


def test_compose_rejects_unknown_names():
    with pytest.raises(ValueError):
        orient.compose("spin", "rot90")
