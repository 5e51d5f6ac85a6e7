"""Stuck photosites on rendered frames (issue 17, item 7): diagnosed as stuck, not hot/dead.

A synthetic RGGB camera (112 x 160, 12 hot + 6 dead sites) with three planted stuck sites,
one under each filter colour (raw value 18,000 DN of 1,024..65,535: mid-grey once
developed, never clipped), shoots 30 frames of varied scenes and exposures; they are
developed (bilinear demosaic, white balance, sRGB) into 8-bit RGB PNGs with camera EXIF.
A plain `photoqa index` and `photoqa hotpixels` must report each stuck site as ``stuck``
(read in the channel it stands out in: the red site keeps its red value while green and
blue are interpolated from its neighbours), with no hot/dead record of its demosaic blob
beside it, and the hot and dead sites as before.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from indexer.synthetic import camera as synthetic
from test_sensor_pipeline import defect_set, hotpixels_json, index, make_scenes

HEIGHT, WIDTH, FRAMES = 112, 160, 30
# (y, x) under R (even, even), G (even, odd) and B (odd, odd) of RGGB, far from the rest
STUCK = np.array([[40, 60], [70, 101], [91, 131]])


@pytest.fixture(scope="module")
def camera():
    base = synthetic.make_camera(HEIGHT, WIDTH, hot=12, dead=6, stuck=0, seed=9)
    taken = np.concatenate([base.hot, base.dead])
    keep = [all(max(abs(y - ty), abs(x - tx)) > 6 for ty, tx in STUCK) for y, x in taken]
    hot, dead = base.hot[keep[: len(base.hot)]], base.dead[keep[len(base.hot):]]
    return replace(base, hot=hot, dead=dead, stuck=STUCK, stuck_value=np.full(len(STUCK), 18000.0))


def test_stuck_sites_on_rendered_frames_are_reported_stuck(monkeypatch, camera, tmp_path):
    monkeypatch.delenv("PHOTOQA_CONFIG", raising=False)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, raw in enumerate(synthetic.camera_frames(camera, make_scenes(seed=4), FRAMES, seed=2)):
        developed = synthetic.develop(raw, camera)
        own = developed[tuple(STUCK.T) + (np.array([0, 1, 2]),)]  # each site's own colour
        assert ((own > 0) & (own < 255)).all()  # the planted value renders unclipped
        synthetic.write_frame(folder / f"f{i:03d}.png", developed, make=camera.make, model=camera.model)
    db = tmp_path / "s.db"
    index(db, folder)
    (sensor,) = hotpixels_json(db)
    assert sensor["layout"] == "rgb" and sensor["frames"] == FRAMES
    found = defect_set(sensor)
    stuck = {(int(x), int(y), "stuck") for y, x in STUCK}
    assert {d for d in found if d[2] == "stuck"} == stuck
    near = [d for d in found if d[2] != "stuck" and any(max(abs(d[0] - x), abs(d[1] - y)) <= 3 for x, y, _ in stuck)]
    assert near == []  # the blob around each stuck site is one record, the stuck one
    hot_dead = camera.truth(("hot", "dead"))
    assert found - stuck == hot_dead, sorted((found - stuck) ^ hot_dead)
