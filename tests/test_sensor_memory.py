"""``[sensor] memory_mb`` bounds the writer's in-memory sensor deltas (issue 17).

Three camera bodies' frames arrive alternately (A, B, C, A, B, C, ...) through the real
``photoqa index``; with a budget for two bodies the least recently fed one is flushed and
dropped each time the third comes. The final statistics equal those of an unbounded run
(merges are exact, and a flushed body's next delta resumes from its last frame values,
so even the consecutive-frame pairs of stuck detection are counted as one pass counts
them) and never more than two bodies are resident.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.pipeline.sensorstage import SensorStage
from indexer.sensor.accumulator import SensorAccumulator
from indexer.synthetic import camera as synthetic
from test_sensor_pipeline import HEIGHT, WIDTH, defect_set, hotpixels_json, make_camera, raw_frames, run

PER_BODY = 12
BODY_BYTES = 26 * HEIGHT * WIDTH  # 465,920; 2 of them and 3 kept prev arrays (35,840 each) fit 1.1 MB


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("three_bodies") / "frames"
    root.mkdir()
    for k, model in enumerate(("Body A", "Body B", "Body C")):
        camera = make_camera(seed=10 + k, model=model)
        for i, frame in enumerate(raw_frames(camera, PER_BODY, seed=20 + k)):
            synthetic.write_frame(root / f"f{3 * i + k:03d}.png", frame, make=camera.make, model=camera.model)
    return root


def _index(tmp_path: Path, folder: Path, memory_mb: float, monkeypatch) -> tuple[Path, list[int], int]:
    """Index ``folder`` into a new database; (db, bodies resident after each frame, evictions)."""
    config = tmp_path / f"budget-{memory_mb}.toml"
    config.write_text(f"[sensor]\nrendered_frames = true\nlearn_every_frame = true\nmemory_mb = {memory_mb}\n")
    resident, stages = [], []
    original = SensorStage.__call__

    def watched(self, image_id, result):
        original(self, image_id, result)
        resident.append(len(self.resident()))
        assert self.resident_bytes() <= max(self.budget, BODY_BYTES)
        stages.append(self)

    monkeypatch.setattr(SensorStage, "__call__", watched)
    db = tmp_path / f"budget-{memory_mb}.db"
    result = run(db, "index", folder, "--workers", "1", config=config)
    assert result.exit_code == 0, result.output
    monkeypatch.undo()
    return db, resident, stages[-1].evictions


def test_small_budget_gives_the_statistics_of_an_unbounded_one(folder, tmp_path, monkeypatch):
    free_db, free_resident, free_evictions = _index(tmp_path, folder, 1000.0, monkeypatch)
    tight_db, tight_resident, tight_evictions = _index(tmp_path, folder, 1.1, monkeypatch)  # two bodies
    assert len(tight_resident) == len(free_resident) == 3 * PER_BODY
    assert max(free_resident) == 3 and free_evictions == 0
    # a body's first min_frames - 1 = 4 frames are kept as deltas (young: ~3 bytes a site),
    # which fit beside two accumulators: from the 5th on, each frame of a body not
    # resident flushes one (the first two bodies to reach 5 find room)
    assert max(tight_resident) == 2 and tight_evictions >= 3 * (PER_BODY - 4) - 2

    free, tight = hotpixels_json(free_db), hotpixels_json(tight_db)
    assert [s["frames"] for s in tight] == [s["frames"] for s in free] == [PER_BODY] * 3
    assert [defect_set(s) for s in tight] == [defect_set(s) for s in free]
    assert all(defect_set(s) for s in free)
    for sid in (1, 2, 3):
        (a,) = free_db.with_name(free_db.name + ".sensors").glob(f"sensor-{sid}-*.npz")
        (b,) = tight_db.with_name(tight_db.name + ".sensors").glob(f"sensor-{sid}-*.npz")
        a, b = SensorAccumulator.load(a), SensorAccumulator.load(b)
        assert a.frames == b.frames == PER_BODY
        for name in ("bright", "dark", "strong", "first", "last", "prev", "unchanged"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
        np.testing.assert_allclose(b.mean, a.mean, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(b.m2, a.m2, rtol=1e-4, atol=1e-2)
        assert a.pairs == b.pairs == PER_BODY - 1
