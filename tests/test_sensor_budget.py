"""The learning budget's rule (issue 17, item 3), with planted answers.

A body maps until its map is stable (``learn_first`` frames and a defect list unchanged
for ``stable_frames`` frames), learning a frame of P MP with probability
min(1, learn_megapixels / P), then from a smaller sample drawn by content hash, dark / high-ISO / long frames ``reveal_factor`` times as often. The writer keeps the
stability clock (``sensors.stable_since``); the worker reads the dark frames' mean luma off
the draft decode.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pytest

from db import sensors as dbsensors
from db.engine import open_engine
from db.migrate import upgrade
from db.models import Camera
from indexer.config import SensorSettings
from indexer.decode import SensorData
from indexer.decode.exif import Camera as ExifCamera
from indexer.decode.exif import Capture, Metadata
from indexer.decode.image import decode_bytes
from indexer.pipeline.sensorplan import SensorPlan
from indexer.sensor import budget
from indexer.synthetic import camera as synthetic

BODY = ("PlantCam", "P1", "")
MP = 12.0  # a 12 MP frame: 1 in 48 with the default budget
SETTINGS = SensorSettings(learn_first=64, stable_frames=64, sample_megapixels=0.25)
# while mapping every 12 MP frame is learnt: the tests of the stability clock read clearer
EVERY_WHILE_MAPPING = SensorSettings(learn_first=64, stable_frames=64, sample_megapixels=0.25,
                                     learn_megapixels=MP)


def _sha(i: int, salt: str = "f") -> str:
    return hashlib.sha256(f"{salt}{i}".encode()).hexdigest()


def _meta(iso: int = 200, exposure: float = 1 / 125) -> Metadata:
    return Metadata(Capture(iso=iso, exposure_time=exposure), ExifCamera(*BODY))


@dataclass
class _Body:
    """The writer's side of one body: frames learnt, and the count at the last map change."""
    frames: int = 0
    stable_since: int = 0

    def plan(self, settings: SensorSettings = EVERY_WHILE_MAPPING) -> SensorPlan:
        state = budget.settled([(self.frames, self.stable_since)])
        return SensorPlan(SensorData.ALL, settings, {BODY: state})


def test_first_64_frames_learnt_then_a_sample():
    body, meta, learnt = _Body(), _meta(), []
    for i in range(400):
        if body.plan().learns(meta, 4000, 3000, _sha(i), 0.5):
            learnt.append(i)
            body.frames += 1
    share = 0.25 / MP
    drawn_later = [i for i in range(64, 400) if budget.drawn(_sha(i), share)]
    assert learnt == list(range(64)) + drawn_later
    assert 0 < len(drawn_later) < 30  # ~336/48 = 7: a sample, not every frame


def test_a_new_body_maps_at_the_learn_megapixels_share():
    """Shipped settings: a new 12 MP body learns 1 frame in 16 (0.75 / 12) while mapping,
    drawn by hash, dark frames no more often (the mapping share caps the cost), until it
    rests on 64 learnt frames; then 1 in 48. A 0.64 MP body learns every frame while
    mapping; a 12 MP RAW 1 in 4 (4x the share: learning a RAW costs that much less)."""
    body, learnt = _Body(), []
    for i in range(2400):
        luma = 0.05 if i % 2 else 0.5  # every other frame dark: no reveal factor while mapping
        if body.plan(SETTINGS).learns(_meta(), 4000, 3000, _sha(i, "m"), luma):
            learnt.append(i)
            body.frames += 1
    switch = learnt[63]  # the 64th learnt frame: mapping ends after it
    assert learnt[:64] == [i for i in range(switch + 1) if budget.drawn(_sha(i, "m"), 0.75 / MP)]
    assert 64 * 10 < switch < 64 * 24  # ~16 frames per learnt one
    later = [i for i in range(switch + 1, 2400)
             if budget.drawn(_sha(i, "m"), 0.25 / MP * (8 if i % 2 else 1))]
    assert learnt[64:] == later
    small = [i for i in range(100) if _Body().plan(SETTINGS).learns(_meta(), 800, 800, _sha(i), 0.5)]
    assert small == list(range(100))
    raw = [i for i in range(400) if _Body().plan(SETTINGS).learns(_meta(), 4000, 3000, _sha(i), 0.5, raw=True)]
    assert raw == [i for i in range(400) if budget.drawn(_sha(i), 0.25)]


def test_a_changed_map_resets_the_stability_count():
    """Stable at 100 frames learnt in full; at frame 150 a defect appears (the writer sets
    stable_since = 150): the next 64 frames are all learnt, then the sample resumes."""
    body, meta, learnt = _Body(frames=100, stable_since=0), _meta(), []
    for i in range(400):
        if i == 150:
            body.stable_since = body.frames  # the flush that saw the new defect
        if body.plan().learns(meta, 4000, 3000, _sha(i), 0.5):
            learnt.append(i)
            body.frames += 1
    share = 0.25 / MP
    assert [i for i in range(150, 214)] == [i for i in learnt if 150 <= i < 214]
    assert [i for i in learnt if i < 150] == [i for i in range(150) if budget.drawn(_sha(i), share)]
    assert [i for i in learnt if i >= 214] == [i for i in range(214, 400) if budget.drawn(_sha(i), share)]
    assert len([i for i in learnt if i >= 214]) < 186 // 4


def test_a_map_that_never_settles_is_sampled_past_the_limit():
    """A defect list that changes at every flush of 32 frames keeps a body learning every
    frame up to learn_all_limit (here 200) frames, then the sample takes over."""
    settings = SensorSettings(learn_first=64, stable_frames=64, learn_all_limit=200, learn_megapixels=MP)
    frames, since, learnt = 0, 0, []
    for i in range(600):
        plan = SensorPlan(SensorData.ALL, settings, {BODY: budget.settled([(frames, since)])})
        if plan.learns(_meta(), 4000, 3000, _sha(i, "n"), 0.5):
            learnt.append(i)
            frames += 1
            if frames % 32 == 0:
                since = frames  # every flush changes the list
    assert learnt[:200] == list(range(200))
    assert learnt[200:] == [i for i in range(200, 600) if budget.drawn(_sha(i, "n"), 0.25 / MP)]
    assert budget.learning_all(budget.BodyState(5000, 0), learn_first=64, stable_frames=64, limit=None)


def test_dark_frames_are_drawn_more_often():
    """4000 seeded frames of a stable body, every other one dark (mean luma 0.05): the dark
    ones are drawn with reveal_factor (8) times the share, exactly those below it."""
    plan = _Body(frames=500, stable_since=0).plan()
    meta, share = _meta(), 0.25 / MP
    dark = [i for i in range(0, 4000, 2) if plan.learns(meta, 4000, 3000, _sha(i, "d"), 0.05)]
    bright = [i for i in range(1, 4000, 2) if plan.learns(meta, 4000, 3000, _sha(i, "d"), 0.5)]
    assert dark == [i for i in range(0, 4000, 2) if budget.drawn(_sha(i, "d"), 8 * share)]
    assert bright == [i for i in range(1, 4000, 2) if budget.drawn(_sha(i, "d"), share)]
    assert len(dark) > 4 * len(bright) > 0
    # high ISO and long exposures count alike; a bright frame at ISO 100 does not
    assert budget.learn_share(MP, sample_megapixels=0.25, iso=3200, exposure_time=None, reveal_iso=1600,
                              reveal_seconds=1.0, reveal_factor=8.0) == pytest.approx(8 * share)
    assert budget.learn_share(MP, sample_megapixels=0.25, iso=100, exposure_time=0.01, reveal_iso=1600,
                              reveal_seconds=1.0, reveal_factor=8.0, luminance=0.3,
                              dark_luminance=0.12) == pytest.approx(share)


def test_the_worker_sees_the_draft_decodes_mean_luma(tmp_path):
    """decode_bytes hands the budget the working image's mean luma before any full-size
    decode: a night JPEG (values ~15) reads dark, a day one (~150) does not."""
    rng = np.random.default_rng(1)
    seen = {}
    for name, level in (("night", 15), ("day", 150)):
        pixels = np.clip(rng.normal(level, 4, size=(600, 800, 3)), 0, 255).astype(np.uint8)
        path = synthetic.write_frame(tmp_path / f"{name}.jpg", pixels)
        decoded = decode_bytes(path.read_bytes(), path, sensor_data=SensorData.ALL,
                               frame_wanted=lambda m, w, h, s, lum, raw, name=name: seen.update({name: lum}) or raw)
        assert decoded.frame is None  # not wanted: no full-size frame kept
    assert seen["night"] == pytest.approx(15 / 255, abs=0.01) and seen["night"] <= SETTINGS.dark_luminance
    assert seen["day"] == pytest.approx(150 / 255, abs=0.01)


@dataclass(frozen=True)
class _Defect:
    x: int
    y: int
    kind: str
    rate: float = 1.0
    mean_residual: float = 50.0
    frames: int = 10
    first_seen: int | None = None
    last_seen: int | None = None


def test_the_writer_moves_stable_since_only_when_the_defect_list_changes(tmp_path):
    engine = open_engine(f"sqlite:///{tmp_path / 's.db'}")
    upgrade(engine)
    with engine.begin() as conn:
        camera = conn.execute(Camera.__table__.insert().values(make=BODY[0], model=BODY[1], serial=BODY[2])
                              .returning(Camera.id)).scalar_one()
    sid = dbsensors.sensor_id(engine, camera, 40, 30, "rgb", None, 1)
    hot = [_Defect(3, 4, "hot"), _Defect(10, 11, "dead")]
    steps = [(32, hot, 32), (64, list(reversed(hot)), 32), (96, hot + [_Defect(20, 5, "hot")], 96),
             (128, hot + [_Defect(20, 5, "hot")], 96), (160, hot + [_Defect(20, 5, "dead")], 160)]
    for frames, defects, since in steps:
        dbsensors.record_flush(engine, sid, frames, [], defects)
        (row,) = dbsensors.list_sensors(engine, sid)
        assert (row.frames, row.stable_since) == (frames, since)
    assert dbsensors.frames_per_body(engine) == {BODY: [(160, 160)]}
    assert budget.settled(dbsensors.frames_per_body(engine)[BODY]) == budget.BodyState(160, 0)


def test_a_raw_file_keeps_its_cfa_plane_only_when_drawn(shared_data):
    """RAW frames are budgeted too: the filter is asked with raw=True after the decode,
    and a frame it turns down carries no CFA plane (so no delta, no residual work)."""
    path = shared_data / "raw" / "digicam_corpus" / "Canon" / "PowerShot_S40" / "CRW_0101.CRW"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    asked = []
    for answer in (True, False):
        decoded = decode_bytes(path.read_bytes(), path, sensor_data=SensorData.RAW,
                               frame_wanted=lambda m, w, h, s, lum, raw, a=answer: asked.append((w, h, raw)) or a)
        assert (decoded.cfa is not None) is answer
    assert asked == [(decoded.width, decoded.height, True)] * 2


def test_a_live_plan_lets_a_daemon_switch_once_the_map_is_stable():
    """watch sends LivePlan.current() with each file: the body state is re-read (here at
    every call), so a body that becomes stable mid-run samples from then on."""
    from indexer.pipeline.sensorplan import LivePlan

    states = [{}]
    live = LivePlan(SensorPlan(SensorData.ALL, EVERY_WHILE_MAPPING), lambda: states[0], seconds=0)
    meta, shas = _meta(), [_sha(i, "w") for i in range(300)]
    assert all(live.current().learns(meta, 4000, 3000, sha, 0.5) for sha in shas)  # new body
    states[0] = {BODY: budget.BodyState(frames=200, unchanged=150)}
    learnt = [sha for sha in shas if live.current().learns(meta, 4000, 3000, sha, 0.5)]
    assert learnt == [sha for sha in shas if budget.drawn(sha, 0.25 / MP)] and len(learnt) < 30
    assert LivePlan(SensorData.RAW, lambda: states[0]).current() is None  # no budget: the workers' own


def test_index_sends_the_live_plan_with_each_file(tmp_path):
    """``run_outcomes`` hands each file the plan ``plan_now()`` gives at that moment (a
    long first import of a new camera switches to its sample mid-run), in process and
    in the worker pool alike."""
    from indexer.config import IndexSettings
    from indexer.outcomes import Task
    from indexer.pipeline.run import run_outcomes

    tasks = [Task(str(tmp_path / f"{i}.jpg"), 1, 1) for i in range(6)]
    plans = iter(["first", "first", "second", "second", "third", "third"])
    seen = [o for o in run_outcomes(tasks, IndexSettings(), 1, frozenset(), work=_echo_plan,
                                    plan_now=lambda: next(plans), inline=True)]
    assert seen == ["first", "first", "second", "second", "third", "third"]
    plans = iter(["first", "first", "second", "second", "third", "third"])
    pooled = [o for o in run_outcomes(tasks, IndexSettings(), 1, frozenset(), work=_echo_plan,
                                      plan_now=lambda: next(plans))]  # one worker process
    assert sorted(pooled) == ["first", "first", "second", "second", "third", "third"]


def _echo_plan(task, settings=None, moves=None, plan=None):
    return plan
