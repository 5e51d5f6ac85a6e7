"""Repair touches only defects and stays within local noise; export texts; file writing."""
from __future__ import annotations

import numpy as np
import pytest

from indexer.synthetic import camera as synthetic
from indexer.sensor.defects import Defect
from indexer.sensor.export import (MAP_COLOURS, dcraw_badpixels, defect_map, export_badpixels,
                                   rawtherapee_badpixels, rawtherapee_filename)
from indexer.sensor.repair import repair_cfa, repair_rgb, unrepaired
from indexer.sensor.residual import cfa_residual


@pytest.fixture(scope="module")
def camera():
    return synthetic.make_camera(seed=11)


@pytest.fixture(scope="module")
def frame_pair(camera):
    scene = synthetic.generated_scene(np.random.default_rng(3))
    bad = synthetic.render_cfa(camera, scene, np.random.default_rng(4))
    good = synthetic.render_cfa(camera, scene, np.random.default_rng(4), defects=False)
    return bad, good


def _mask(camera):
    mask = np.zeros((camera.height, camera.width), bool)
    for sites in (camera.hot, camera.dead, camera.stuck):
        mask[sites[:, 0], sites[:, 1]] = True
    return mask


def test_repair_cfa_changes_only_defects_and_fits_local_noise(camera, frame_pair):
    bad, good = frame_pair
    mask = _mask(camera)
    before = bad.copy()
    fixed = repair_cfa(bad, mask)
    np.testing.assert_array_equal(bad, before)  # input untouched
    changed = fixed != bad
    assert changed.any() and not (changed & ~mask).any()
    levels = dict(black_level=camera.black, white_level=camera.white)
    after = cfa_residual(fixed, camera.pattern, **levels)
    # no repaired site stands out from its same-colour neighbours any more...
    assert not (after.bright | after.dark)[mask].any()
    # ...it uses only non-defective neighbours: repairing the clean frame gives the same
    np.testing.assert_array_equal(fixed[mask], repair_cfa(good, mask)[mask])
    # ...and it sits within the local noise: error against the defect-free frame in units
    # of the camera's noise (read + shot) at that signal
    planted = np.abs(bad.astype(float) - good)[mask]
    err = np.abs(fixed.astype(float) - good)[mask]
    sigma = np.sqrt(camera.read_noise ** 2
                    + camera.dn_per_electron * np.maximum(good[mask].astype(float) - camera.black, 0))
    assert np.median(planted / sigma) > 20
    assert np.median(err / sigma) < 1.5
    assert np.max(err / sigma) < 5


def test_repair_cfa_skips_defective_neighbours():
    cfa = np.full((12, 12), 1000, np.uint16)
    cfa[6, 6] = cfa[6, 8] = 60000  # two hot sites, same colour, side by side
    mask = cfa > 5000
    fixed = repair_cfa(cfa, mask)
    assert fixed[6, 6] == 1000 and fixed[6, 8] == 1000
    boxed = np.zeros((12, 12), bool)
    boxed[0:10:2, 0:10:2] = True  # (4,4) has all same-colour neighbours within 2 rings bad
    assert [4, 4] in unrepaired(boxed).tolist()


def test_repair_rgb_normalised_convolution(camera, frame_pair):
    _, good = frame_pair
    rgb = synthetic.develop(good, camera)
    mask = np.zeros(rgb.shape[:2], bool)
    mask[50, 60] = mask[50, 61] = True  # adjacent defects must not feed each other
    bad = rgb.copy()
    bad[50, 60] = 255
    bad[50, 61] = 0
    fixed = repair_rgb(bad, mask)
    assert not (fixed != bad)[~mask].any()
    w = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 1]], float)
    w[0, 0] = w[0, 2] = w[2, 0] = w[2, 2] = 1 / np.sqrt(2)
    patch = rgb[49:52, 59:62].astype(float)
    expected = (patch * w[..., None]).sum(axis=(0, 1)) / w.sum()
    np.testing.assert_allclose(fixed[50, 60], np.round(expected), atol=0.5)
    assert np.abs(fixed[50, 60].astype(int) - rgb[50, 60]).max() < 25


def _defects():
    return [Defect(1919, 3, "hot", 1.0, 1200.0, 6), Defect(5, 2, "dead", 0.93, -80.0, 30),
            Defect(7, 2, "stuck", 1.0, 3.0, 30)]


def test_dcraw_text():
    text = dcraw_badpixels(_defects(), title="Canon PowerShot S40")
    lines = text.splitlines()
    assert lines[0].startswith("#") and "Canon PowerShot S40" in text
    body = [ln.split("#")[0].split() for ln in lines if not ln.startswith("#")]
    assert body == [["5", "2", "0"], ["7", "2", "0"], ["1919", "3", "0"]]  # col row time


def test_rawtherapee_text_and_name():
    assert rawtherapee_badpixels(_defects()) == "5 2\n7 2\n1919 3\n"
    assert rawtherapee_badpixels(_defects(), offset=4).splitlines()[0] == "4"
    assert rawtherapee_filename("Canon", "PowerShot S40") == "Canon PowerShot S40.badpixels"
    assert rawtherapee_filename("Canon", "EOS D30", "1235-02474") == "Canon EOS D30 1235-02474.badpixels"
    assert rawtherapee_filename("A/B", "C:D") == "A_B C_D.badpixels"
    with pytest.raises(ValueError):
        rawtherapee_filename("Canon", "")


def test_export_writes_both_files(tmp_path):
    dcraw, rt = export_badpixels(_defects(), tmp_path / "out", make="Photoqa",
                                 model="Synthetic S1", serial="42")
    assert rt.name == "Photoqa Synthetic S1 42.badpixels"
    assert dcraw.name == "Photoqa Synthetic S1 42.dcraw.badpixels"
    assert rt.read_text() == "5 2\n7 2\n1919 3\n"
    assert "1919 3 0" in dcraw.read_text()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([dcraw.name, rt.name])


def test_defect_map_marks_each_defect():
    image = defect_map(_defects(), 1080, 1920, max_side=960, radius=2)
    assert image.shape == (540, 960, 3) and image.dtype == np.uint8
    assert tuple(image[1, 959]) == MAP_COLOURS["hot"]  # (1919, 3) scaled by 1/2
    assert tuple(image[1, 3]) == MAP_COLOURS["stuck"]  # drawn after the dead site beside it
    assert tuple(image[270, 480]) == (40, 40, 40)
