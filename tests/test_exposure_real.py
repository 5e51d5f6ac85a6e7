"""Exposure differences on real camera files: a bracket and camera-HDR pairs.

Measured values (printed with ``pytest -s``) are quoted in the closing report.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import ExifTags, Image

from indexer.exposure import diffimages, transfer
from indexer.measure.linear import srgb_to_linear

BRACKET = ("IMG_2600.jpg", "IMG_2601.jpg", "IMG_2602.jpg")  # 1/8 s, 1 s, 8 s at f/8


def load(path):
    """(float RGB in [0, 1] sRGB-encoded, (exposure_time, iso, f_number)) via Pillow."""
    with Image.open(path) as im:
        exif = im.getexif().get_ifd(ExifTags.IFD.Exif)
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    def num(tag):
        v = exif.get(tag)
        return None if v is None else float(v)
    return rgb, (num(0x829A), num(0x8827), num(0x829D))


@pytest.fixture(scope="module")
def bracket(shared_data):
    return [load(shared_data / "scenes" / "brackets" / "frobisher_001" / n) for n in BRACKET]


def test_bracket_exif_is_what_the_readme_says(bracket):
    assert [e[0] for _, e in bracket] == pytest.approx([0.125, 1.0, 8.0])
    assert {e[2] for _, e in bracket} == {8.0}


@pytest.mark.parametrize("i,j", [(0, 1), (1, 2), (0, 2)])
def test_bracket_steps_match_exif(bracket, i, j):
    (a, ea), (b, eb) = bracket[i], bracket[j]
    predicted = transfer.delta_ev_exif(ea[0], ea[1], ea[2], eb[0], eb[1], eb[2])
    res = transfer.delta_ev_encoded(a, b)
    plain = transfer.delta_ev(srgb_to_linear(a), srgb_to_linear(b), with_curve=False)
    print(f"\nframes {i}->{j}: exif {predicted:+.2f}, measured {res.delta.delta_ev:+.3f} "
          f"({res.encoding}, n={res.delta.n_used}, bends {res.bends}); sRGB-decoded {plain.delta_ev:+.3f}")
    assert res.delta.n_used > 10_000  # enough pixels unclipped in both frames
    assert res.delta.delta_ev > 0 and plain.delta_ev > 0  # longer exposure is brighter
    assert abs(res.delta.delta_ev - predicted) < 0.5
    assert res.encoding == "bt709"  # these JPEGs were written with the BT.709 curve


def test_bracket_is_ordered(bracket):
    evs = [0.0] + [transfer.delta_ev_encoded(bracket[0][0], bracket[k][0]).delta.delta_ev
                   for k in (1, 2)]
    assert evs == sorted(evs) and evs[2] - evs[1] > 2.0


@pytest.mark.parametrize("camera", ["canon", "iphone"])
def test_hdr_pairs_report_delta_ev(shared_data, camera):
    folder = shared_data / "exif-samples" / "jpg" / "hdr"
    (a, ea), (b, eb) = load(folder / f"{camera}_hdr_NO.jpg"), load(folder / f"{camera}_hdr_YES.jpg")
    res = diffimages.compare(a, b)
    predicted = transfer.delta_ev_exif(ea[0], ea[1], ea[2], eb[0], eb[1], eb[2])
    print(f"\n{camera} HDR off->on: shift ({res.aligned.dy:+.2f}, {res.aligned.dx:+.2f}) "
          f"peak {res.aligned.peak:.3f} ncc {res.ncc:.3f} delta EV {res.delta.delta_ev:+.3f} "
          f"spread {res.delta.spread_ev:.3f} used {res.delta.fraction_used:.2f} exif {predicted:+.3f} "
          f"bend {transfer.curve_bend(res.delta.curve):.3f}")
    assert math.isfinite(res.delta.delta_ev) and res.delta.fraction_used > 0.5
    assert res.ncc > 0.8  # same scene once aligned
    # HDR-on renders darker overall on both cameras (tone-mapped highlights)
    assert -2.5 < res.delta.delta_ev < -0.5
