"""The compiled residual of rendered frames equals its NumPy definition, element for element."""
from __future__ import annotations

import numpy as np
import pytest

from indexer.sensor.residual import ResidualParams, iter_rgb_strips, reference_rgb_strips
from indexer.synthetic import camera as synthetic

FIELDS = ("y0", "y1", "residual", "noise_rows", "bright", "dark", "value", "judgeable", "strong")


def _frames():
    rng = np.random.default_rng(3)
    cam = synthetic.make_camera(96, 130, hot=6, dead=4, stuck=2, seed=1)
    scene = synthetic.generated_scene(rng, 120, 160)
    raw = synthetic.render_cfa(cam, scene, rng)
    rgb = synthetic.develop(raw, cam)
    yield "developed rgb", rgb, ResidualParams()
    yield "odd sides", rgb[:77, :101], ResidualParams()
    yield "clipped", np.clip(rgb.astype(int) * 3, 0, 255).astype(np.uint8), ResidualParams()
    yield "16-bit grey mosaic", raw, ResidualParams()
    yield "two channels", rgb[:, :, :2].copy(), ResidualParams()
    yield "tiny", rgb[:7, :9], ResidualParams()
    yield "step 1, tile 16", rgb, ResidualParams(rgb_step=1, tile=16, rgb_margin=2.5)
    # RGB with a width a multiple of 8 takes the fused row loop (kernels._row3); the rest the generic one
    yield "fused rgb", rgb[:, :128], ResidualParams()
    yield "fused clipped", np.clip(rgb[:, :128].astype(int) * 3, 0, 255).astype(np.uint8), ResidualParams()
    yield "fused 16-bit, step 1, tile 16", rgb[:, :120].astype(np.uint16) * 257, ResidualParams(rgb_step=1, tile=16)


@pytest.mark.parametrize("name, image, params", list(_frames()), ids=lambda v: v if isinstance(v, str) else "")
def test_kernel_equals_reference(name, image, params):
    fast = list(iter_rgb_strips(image, params=params))
    slow = list(reference_rgb_strips(image, params=params))
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow):
        for field in FIELDS:
            x, y = getattr(a, field), getattr(b, field)
            assert np.array_equal(x, y), (name, field, a.y0)
            assert np.asarray(x).dtype == np.asarray(y).dtype, (name, field)
    assert any(s.bright.any() for s in fast)  # the planted hot sites stand out somewhere


@pytest.mark.parametrize("width", [128, 130])  # fused row loop, generic loop
def test_samples_are_the_sites_beyond_twice_the_threshold(width):
    """The kernel's stuck-fit sample is every site whose |r| / noise exceeds SAMPLE x the
    margin in some channel (the NumPy definition, channel by channel), with each channel's
    value and ninther there."""
    from indexer.sensor.kernels import rgb_strip_arrays, site_ninthers
    from indexer.sensor.residual import SAMPLE

    rgb = next(_frames())[1][:, :width]
    params = ResidualParams()
    zmin = np.float32(params.rgb_margin) * SAMPLE
    expected = np.zeros(rgb.shape[:2], bool)
    for c in range(3):
        for s in reference_rgb_strips(rgb[:, :, c], params=params):
            expected[s.y0 : s.y1] |= np.abs(s.residual) / s.noise_rows[0] > zmin
    out = rgb_strip_arrays(rgb, tile=params.tile, step=params.rgb_step, floor=params.noise_floor,
                           margin=params.rgb_margin, white=255, samples=float(SAMPLE))
    sampled, sv, sm = out[-3:]
    assert np.array_equal(np.unpackbits(sampled, count=expected.size).view(bool), expected.reshape(-1))
    assert 10 < expected.sum() < expected.size // 4
    v, m = site_ninthers(rgb, np.flatnonzero(expected), params.rgb_step)
    assert np.array_equal(sv, v) and np.array_equal(sm, m)
