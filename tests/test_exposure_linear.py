"""sRGB / BT.709 <-> linear transfer, luminance and EV against 18% grey."""
from __future__ import annotations

import numpy as np
import pytest

from indexer.measure import features
from indexer.measure import linear


def test_srgb_known_values():
    # IEC 61966-2-1: the toe is linear below 0.04045; mid code 0.5 decodes to 0.2140
    v = np.array([0.0, 0.04045, 0.5, 1.0], dtype=np.float32)
    assert linear.srgb_to_linear(v) == pytest.approx([0.0, 0.04045 / 12.92, 0.21404, 1.0], abs=2e-5)


def test_round_trips():
    v = np.linspace(0, 1, 10001, dtype=np.float32)
    assert np.abs(linear.linear_to_srgb(linear.srgb_to_linear(v)) - v).max() < 1e-5
    # BT.709 inverse maps the OETF's breakpoint (0.018 -> 0.081) back
    assert linear.bt709_to_linear(np.float32(0.081)) == pytest.approx(0.018, abs=1e-4)
    assert linear.bt709_to_linear(np.float32(1.0)) == pytest.approx(1.0, abs=1e-5)


def test_lut_matches_formula():
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(linear.srgb8_to_linear(codes), linear.srgb_to_linear(codes / 255.0))


def test_decode_by_name_and_unknown():
    v = np.float32(0.4)
    assert linear.decode(v, "bt709") == linear.bt709_to_linear(v)
    with pytest.raises(ValueError, match="unknown encoding"):
        linear.decode(v, "gamma9")


def test_luminance_weights_sum_to_one_and_grey_passthrough():
    rgb = np.full((2, 2, 3), 0.3, dtype=np.float32)
    assert linear.luminance(rgb) == pytest.approx(np.full((2, 2), 0.3))
    grey = np.full((2, 2), 0.7, dtype=np.float32)
    assert linear.luminance(grey) is not None and linear.luminance(grey)[0, 0] == pytest.approx(0.7)
    assert linear.luminance(np.array([1.0, 0.0, 0.0], dtype=np.float32)) == pytest.approx(0.2126)


@pytest.mark.parametrize("ev", [-3.0, -1.0, 0.0, 0.5, 2.0])
def test_ev_of_uniform_linear_frame(ev):
    level = 0.18 * 2.0**ev
    frame = np.full((4, 4, 3), level, dtype=np.float32)
    assert linear.exposure_ev(frame, linear=True) == pytest.approx(ev, abs=1e-5)
    srgb = linear.linear_to_srgb(frame)
    assert linear.exposure_ev(srgb) == pytest.approx(ev, abs=1e-4)


def test_black_frame_is_floored_and_features_agree():
    assert linear.exposure_ev(np.zeros((3, 3, 3), np.float32)) == linear.EV_FLOOR
    rgb = np.random.default_rng(1).uniform(0, 1, (20, 30, 3)).astype(np.float32)
    assert linear.exposure_ev(rgb) == pytest.approx(features.measure(rgb).ev, abs=1e-5)
