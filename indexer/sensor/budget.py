"""Which frames a camera body learns from: a budget that keeps learning cheap.

Learning from a rendered frame (JPEG, HEIC, PNG, TIFF) costs a full-size decode plus the
per-site residual: on a 12 MP JPEG about as much again as indexing the file otherwise
costs (a draft decode at 1/8 scale and the features; bench/sensor_cost.py). So a body learns a bounded share of its
frames while its map is new, and a smaller *sample* once the map is stable:

- **mapping** while the body's map is new or changing: until it rests on ``learn_first``
  frames (64 by default) *and* its defect list has not changed for ``stable_frames``
  learnt frames (64), a rendered frame of ``P`` megapixels is learnt with probability
  ``min(1, learn_megapixels / P)`` (0.75: every frame up to 0.75 MP, a 12 MP frame 1 in
  16). Learning a 12 MP JPEG costs ~0.74 s of CPU, 2.1x what indexing it otherwise costs
  (bench/sensor_cost.py, CPU of every process of the run), so 1 in 16 adds ~13%, where
  learning all of a new camera's first ~128 frames cost 3.1x. Frames of one body come
  in bursts of nearly one scene a second apart, so consecutive frames add little that a
  sample of them does not, and a hot or dead site stands out in (nearly) every frame: a
  sample of a burst maps it as a full pass does (stuck sites need ~15 learnt frame
  pairs, so they take longer). The stable map needs the same 64 *learnt* frames
  (~1,000 12 MP photos). RAW frames map with ``learn_megapixels`` scaled by
  ``raw_sample_megapixels / sample_megapixels`` (4: every frame up to 3 MP, a 24 MP RAW
  1 in 8): a RAW's CFA plane comes with its decode, learning it costs ~1/15 of a 12 MP
  JPEG's. No reveal factor while mapping: the share is a cost cap, and a folder of
  night shots would otherwise be learnt in full.

  The stability clock is kept by the writer, per sensor, at flush granularity (a
  classification per frame would cost a 12 MP classify per learnt frame):
  ``sensors.stable_since`` is the frame count at the end of the last flush whose defect
  list differed from the previous flush's (0: never). It is the per-frame change rounded
  up to the flush that saw it, so a body settles at most ``flush_frames - 1`` learnt
  frames later than a per-frame check would say, and a change that comes and goes within
  one flush is not seen (``tests/test_sensor_dates.py`` checks both against a one-pass
  accumulator classified after every frame). A body is as settled as its least settled
  sensor (:func:`settled`, :func:`learning_all`). A change brings back
  mapping while the body rests on fewer than ``learn_all_limit`` frames (1024: a map that
  never settles still ends up sampled; a late defect is found from the sample);
- **then sampling**: a frame of ``P`` megapixels is learnt with probability
  ``min(1, sample_megapixels / P)``: on average each indexed frame pays for
  ``sample_megapixels`` of learning, whatever the camera. Small frames are always learnt
  (0.25 MP: every frame up to 500x500); a 12 MP phone learns 1 frame in 48, so a
  10,000-photo archive rests on ~200 frames. RAW files are sampled the same way with
  ``raw_sample_megapixels`` (1.0): their CFA plane comes with the decode, so a learnt RAW
  costs ~+40% of indexing it, not ~6x (figures in :class:`indexer.config.SensorSettings`);
- frames where defects show most are ``reveal_factor`` times as likely: ``iso >=
  reveal_iso`` or an exposure of at least ``reveal_seconds`` (hot pixels grow with gain
  and exposure time), and *dark* frames, whose mean luma is at most ``dark_luminance``
  (a hot site stands out against a dark scene, and in a bright one the camera's tone curve
  and JPEG quantisation hide it). The mean is that of the working image the worker
  decodes anyway (a JPEG's 1/8-scale draft decode), taken before the full-size decode
  is decided, so it costs nothing;
- the draw is the frame's SHA-256 read as a number in [0, 1): the same frames are learnt
  in every run, every process, and by ``index`` and ``watch`` alike, and a copy of a
  frame is never learnt twice (the writer's ledger counts each content once, and each
  exposure once: a copy of a shot, mirrored, re-framed or re-saved, is drawn by its own
  hash but not counted when an image of the same camera and capture time came first,
  ``pipeline.sensorstage``).

The state of each body (frames learnt, frames since its map last changed) is read when an
``index`` run starts, so the same run draws the same frames whatever the workers' timing;
a body that becomes stable during a run switches to sampling at the next run (a new
body's first run is mapped at the mapping share). ``watch`` runs for months: it re-reads the state
every 30 s and sends it with each file (``pipeline.sensorplan.LivePlan``).

Defaults live in ``[sensor]`` (:class:`indexer.config.SensorSettings`).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BodyState:
    """What the budget knows of a camera body: ``frames`` learnt (all its sensors), and
    ``unchanged``: frames learnt since its defect list last changed (its least settled
    sensor's)."""

    frames: int = 0
    unchanged: int = 0


NEW_BODY = BodyState()


def settled(sensors: list[tuple[int, int]]) -> BodyState:
    """A body's state from its sensors' ``(frames, stable_since)``: ``stable_since`` is
    the sensor's frame count when its defect list last changed (0: never)."""
    if not sensors:
        return NEW_BODY
    return BodyState(sum(f for f, _ in sensors), min(f - s for f, s in sensors))


def learning_all(state: BodyState, *, learn_first: int, stable_frames: int,
                 limit: int | None = None) -> bool:
    """Whether a body still maps (learns the ``learn_megapixels`` share, not the sample):
    fewer than ``learn_first`` frames,
    or a defect list changed within its last ``stable_frames`` frames while it rests on
    fewer than ``limit`` frames (None: no limit). The limit bounds the cost of a map that
    never settles: a site standing out in about ``rate`` of the frames enters and leaves
    the list from flush to flush, and would keep its body learning every frame forever."""
    if state.frames < learn_first:
        return True
    return state.unchanged < stable_frames and (limit is None or state.frames < limit)


def mapping_share(megapixels: float, *, learn_megapixels: float, raw: bool = False,
                  raw_factor: float = 4.0) -> float:
    """Probability in [0, 1] that a frame of ``megapixels`` (> 0) is learnt while its body
    maps (its map not stable yet): ``learn_megapixels / P``, times ``raw_factor`` for a
    RAW frame (its learning costs that much less per megapixel)."""
    budget = learn_megapixels * (raw_factor if raw else 1.0)
    return min(1.0, budget / max(megapixels, 1e-9))


def learn_share(megapixels: float, *, sample_megapixels: float, iso: int | None,
                exposure_time: float | None, reveal_iso: int, reveal_seconds: float,
                reveal_factor: float, luminance: float | None = None,
                dark_luminance: float = 0.0) -> float:
    """Probability in [0, 1] that a frame of ``megapixels`` (> 0) is learnt once its body
    samples. ``luminance``: the frame's mean luma in [0, 1] (None: unknown)."""
    share = sample_megapixels / max(megapixels, 1e-9)
    revealing = (iso is not None and iso >= reveal_iso) or (
        exposure_time is not None and exposure_time >= reveal_seconds) or (
        luminance is not None and luminance <= dark_luminance)
    if revealing:
        share *= reveal_factor
    return min(1.0, share)


def drawn(sha256: str, share: float) -> bool:
    """Whether the frame with this SHA-256 (hex) falls in a sample of ``share``: its first
    64 bits as a fraction of 2**64 below ``share`` (SHA-256 bits are uniform)."""
    if share >= 1.0:
        return True
    return int(sha256[:16], 16) < share * 2.0**64
