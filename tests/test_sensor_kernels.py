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
