"""``diff`` core: planted sub-pixel shifts with exposure changes come back; outputs drawn."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from indexer.synthetic import scenes as synth
from indexer.exposure import diffimages, shift
from indexer.measure import linear


def displaced(a_lin: np.ndarray, dy: float, dx: float, ev: float) -> np.ndarray:
    """A moved by (dy, dx) pixels (content at (y, x) goes to (y+dy, x+dx)), scaled by
    2**ev in linear light and clipped, then written as 8-bit sRGB: float sRGB out."""
    moved = ndimage.shift(a_lin, (dy, dx, 0), order=3, mode="nearest")
    b = np.clip(moved * 2.0**ev, 0, 1)
    return np.rint(linear.linear_to_srgb(b) * 255) / 255.0


SHIFTS = [(7.3, -12.6, -1.3), (-20.4, 31.7, 0.7), (0.4, -0.7, 2.0), (24.0, 36.5, -0.5)]


@pytest.mark.parametrize("dy,dx,ev", SHIFTS)
def test_planted_shift_and_ev_generated(dy, dx, ev):
    rgb8 = synth.scene(11, 768, 512)
    a = rgb8.astype(np.float32) / 255.0
    b = displaced(linear.srgb_to_linear(a), dy, dx, ev)
    res = diffimages.compare(a, b)
    # skimage convention: the returned shift registers B onto A, i.e. minus the displacement
    assert res.aligned.dy == pytest.approx(-dy, abs=0.5)
    assert res.aligned.dx == pytest.approx(-dx, abs=0.5)
    assert res.delta.delta_ev == pytest.approx(ev, abs=0.05)
    assert res.ncc > 0.8  # linear-light NCC; clipping at +2 EV lowers it


@pytest.mark.parametrize("name,dy,dx,ev", [("kodim05", 25.0, -38.0, -1.3), ("kodim14", -11.6, 20.2, 0.7),
                                           ("kodim21", 3.5, 0.25, -2.0)])
def test_planted_shift_on_kodak(shared_data, name, dy, dx, ev):
    a = np.asarray(Image.open(shared_data / "photos" / "kodak" / f"{name}.png"), dtype=np.float32) / 255.0
    b = displaced(linear.srgb_to_linear(a), dy, dx, ev)
    res = diffimages.compare(a, b)
    assert (res.aligned.dy, res.aligned.dx) == (pytest.approx(-dy, abs=0.5), pytest.approx(-dx, abs=0.5))
    assert res.delta.delta_ev == pytest.approx(ev, abs=0.05)


def test_shift_image_mask_and_direction():
    img = np.zeros((10, 12), np.float32)
    img[2, 3] = 1.0
    out, mask = shift.shift_image(img, 2, -1)
    assert out[4, 2] == pytest.approx(1.0)
    assert not mask[:2].any()
    assert mask[2:, :-1].all() and not mask[:, -1].any()


def test_unrelated_images_correlate_poorly():
    a = synth.scene(1, 320, 240).astype(np.float32) / 255
    b = synth.scene(2, 320, 240).astype(np.float32) / 255
    assert diffimages.compare(a, b).ncc < 0.5


def test_difference_images_signs():
    a = np.full((8, 8, 3), 0.5, np.float32)
    b = a.copy()
    b[:4] = 0.25  # B darker on top: shows in A-B only
    b[4:] = 0.75  # B brighter at the bottom: shows in B-A only
    out = diffimages.difference_images(a, b)
    amb, bma, tot = (np.asarray(out[k]) for k in ("a_minus_b", "b_minus_a", "diff_sum"))
    assert amb[:4].min() > 0 and amb[4:].max() == 0
    assert bma[4:].min() > 0 and bma[:4].max() == 0
    assert np.array_equal(tot, np.maximum(amb, bma))


def test_render_and_write(tmp_path):
    rgb8 = synth.scene(4, 320, 240)
    a = rgb8.astype(np.float32) / 255
    b = displaced(linear.srgb_to_linear(a), 3.2, -4.7, -1.0)
    res = diffimages.compare(a, b)
    images = diffimages.render(res)
    assert set(images) == set(diffimages.OUTPUT_NAMES)
    assert images["a_minus_b"].size == (320, 240)
    plot = np.asarray(images["transfer_curve"])
    assert (plot[..., 0] > 180).any() and (plot[..., 0] < 100).any()  # curve and axes drawn
    assert len(np.unique(plot.reshape(-1, 3), axis=0)) > 5
    paths = diffimages.write_outputs(images, tmp_path / "out")
    assert [p.stem for p in paths] == list(diffimages.OUTPUT_NAMES)
    for p in paths:
        with Image.open(p) as im:
            assert im.format == "PNG"


def test_auto_encoding_picks_bt709_for_bt709_pair():
    rgb8 = synth.scene(9, 480, 320)
    a_lin = linear.srgb8_to_linear(rgb8)
    enc = lambda v: np.where(v < 0.018, 4.5 * v, 1.099 * np.clip(v, 0, 1) ** 0.45 - 0.099).astype(np.float32)
    a = enc(a_lin)
    b = enc(np.clip(ndimage.shift(a_lin, (4.2, -3.1, 0), order=3, mode="nearest") * 2.0**1.2, 0, 1))
    srgb = diffimages.compare(a, b)
    auto = diffimages.compare(a, b, encoding="auto")
    assert auto.encoding == "bt709" and auto.bend < srgb.bend
    assert auto.delta.delta_ev == pytest.approx(1.2, abs=0.05)
    assert abs(srgb.delta.delta_ev - 1.2) > abs(auto.delta.delta_ev - 1.2)
    assert (auto.aligned.dy, auto.aligned.dx) == (pytest.approx(-4.2, abs=0.5), pytest.approx(3.1, abs=0.5))
