"""What a decode worker does for the sensor statistics: which frames it learns from, and
the delta it computes from them (the writer only adds deltas: ``pipeline.sensorstage``).

A :class:`SensorPlan` travels to the workers with their settings. For each file that
names its camera the worker keeps the RAW CFA plane or a rendered frame when
``indexer.sensor.budget`` draws it (:meth:`SensorPlan.frame_filter`, asked after the
working image is decoded, before any full-size decode), turns it into a :class:`indexer.sensor.delta.FrameDelta` and drops
the full-size data, so only the delta crosses the process boundary. Before drawing, it
marks the frame's exposure (camera body, capture time; per sensor) in a folder shared by the run's
workers (:func:`exposure_marks`): a later file of the same exposure (a mirrored,
re-framed or re-saved copy of the shot) is not learnt, nor decoded at full size.
"""
from __future__ import annotations

import calendar
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np

from indexer.config import SensorSettings
from indexer.decode import Decoded, SensorData
from indexer.decode.exif import Metadata
from indexer.sensor import budget
from indexer.sensor.delta import FrameDelta, cfa_delta, rgb_delta


@dataclass(frozen=True)
class SensorPlan:
    """data: which full-size data to keep; settings: the [sensor] budget; known: each
    body's (make, model, serial) state when the workers started (frames learnt, frames
    since its defect list last changed; a body not in it is new)."""

    data: SensorData = SensorData.NONE
    settings: SensorSettings = field(default_factory=SensorSettings)
    known: dict[tuple[str, str, str], budget.BodyState] = field(default_factory=dict)
    # the folder of this run's exposure marks ('': none; :meth:`first_of_exposure`)
    marks: str = ""

    @classmethod
    def of(cls, value: "SensorPlan | SensorData | None") -> "SensorPlan":
        """A plan from a plan, or from a bare SensorData (every frame, as before budgets)."""
        if isinstance(value, SensorPlan):
            return value
        every = SensorSettings(learn_every_frame=True)
        return cls(value or SensorData.NONE, every)

    def learning_all(self, meta: Metadata) -> bool:
        """Whether the frame's body is still mapping (its map is not stable): it learns the
        larger ``learn_megapixels`` share, not the sample."""
        s, camera = self.settings, meta.camera
        if camera is None:
            return False
        state = self.known.get((camera.make, camera.model, camera.serial), budget.NEW_BODY)
        return budget.learning_all(state, learn_first=s.learn_first, stable_frames=s.stable_frames,
                                   limit=s.learn_all_limit)

    def learns(self, meta: Metadata, width: int, height: int, sha256: str,
               luminance: float | None = None, raw: bool = False) -> bool:
        """Whether this frame is learnt (see :mod:`indexer.sensor.budget`); ``luminance``:
        the mean luma in [0, 1] of its working image (None: unknown); ``raw``: a RAW
        file's CFA plane (sampled by ``raw_sample_megapixels``)."""
        s = self.settings
        if s.learn_every_frame:
            return True
        if not self.first_of_exposure(meta, width, height, raw):
            return False
        megapixels = width * height / 1e6
        if self.learning_all(meta):  # a map still settling: the larger mapping share
            share = budget.mapping_share(megapixels, learn_megapixels=s.learn_megapixels, raw=raw,
                                         raw_factor=s.raw_sample_megapixels / max(s.sample_megapixels, 1e-9))
            return budget.drawn(sha256, share)
        sample = s.raw_sample_megapixels if raw else s.sample_megapixels
        share = budget.learn_share(megapixels, sample_megapixels=sample,
                                   iso=meta.capture.iso, exposure_time=meta.capture.exposure_time,
                                   reveal_iso=s.reveal_iso, reveal_seconds=s.reveal_seconds,
                                   reveal_factor=s.reveal_factor, luminance=luminance,
                                   dark_luminance=s.dark_luminance)
        return budget.drawn(sha256, share)

    def first_of_exposure(self, meta: Metadata, width: int, height: int, raw: bool = False) -> bool:
        """Whether no other file of this frame's exposure (camera body, capture time with
        sub-seconds) and sensor (its size, RAW or rendered: a RAW+JPEG pair feeds two
        sensors) came to a worker of this run before: the first marks it (an empty file
        in :attr:`marks` created with O_EXCL, so two workers racing cannot both be first).
        A later copy of a shot is then not decoded at full size: the writer would not
        count it (``pipeline.sensorstage``), and on 12 MP JPEGs the full decode and
        residual are ~0.3 s of CPU a frame. True without marks, camera or capture time,
        or when the folder is not there (a worker on another machine: the writer decides)."""
        camera, when = meta.camera, meta.capture.captured_at
        if not self.marks or camera is None or when is None:
            return True
        key = repr((camera.make, camera.model, camera.serial, width, height, raw, when.isoformat()))
        name = hashlib.sha256(key.encode()).hexdigest()[:32]
        try:
            os.close(os.open(os.path.join(self.marks, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        except OSError:
            return True
        return True

    def frame_filter(self):
        """The ``frame_wanted`` callback of ``decode.decode_bytes`` (None: every frame)."""
        return None if self.settings.learn_every_frame else self.learns


class LivePlan:
    """The plan a long-lived writer (``watch``) sends with each file: the pool-start plan
    with each body's state re-read (``load()``: body -> :class:`budget.BodyState`, from
    the database) at most every ``seconds``. A daemon runs for months; without it a new
    camera's frames would be learnt at the mapping share (``learn_megapixels``) until the
    daemon restarts. A body whose map
    becomes stable switches to its sample within ``seconds`` plus a sensor flush
    (``flush_frames`` / ``flush_seconds``) plus the files in flight."""

    def __init__(self, plan: "SensorPlan | SensorData", load: Callable[[], dict], seconds: float = 30.0):
        self.plan, self.load, self.seconds = plan, load, seconds
        self._at = time.monotonic()

    def current(self) -> SensorPlan | None:
        """The plan to send with a task now; None when there is no budget to refresh (the
        workers' own plan is used)."""
        plan = self.plan
        if not isinstance(plan, SensorPlan) or plan.data is SensorData.NONE or plan.settings.learn_every_frame:
            return None
        now = time.monotonic()
        if now - self._at >= self.seconds:
            self.plan, self._at = replace(plan, known=self.load()), now
        return self.plan


@contextmanager
def exposure_marks(plan: "SensorPlan | SensorData") -> Iterator["SensorPlan | SensorData"]:
    """``plan`` with a fresh folder of exposure marks (:meth:`SensorPlan.first_of_exposure`)
    for the workers of one run or one daemon, removed afterwards; a plan that draws no
    frames (none, or every frame) as it is."""
    if not isinstance(plan, SensorPlan) or plan.data is SensorData.NONE or plan.settings.learn_every_frame:
        yield plan
        return
    with tempfile.TemporaryDirectory(prefix="photoqa-exposures-") as folder:
        yield replace(plan, marks=folder)


def capture_seconds(meta: Metadata) -> int | None:
    """The capture time as seconds since 1970, the camera's clock read as UTC (cameras
    record local time, mostly without a zone; dcraw/LibRaw compare a ``.badpixels`` date
    with the file's own timestamp read the same way), None when absent."""
    when = meta.capture.captured_at if meta is not None else None
    return calendar.timegm(when.timetuple()) if when is not None else None


def take_delta(decoded: Decoded) -> FrameDelta | None:
    """The delta of a decoded file's full-size sensor data, which it then drops (the
    outcome stays small); None when it has none, or it is too small or not Bayer 2x2."""
    cfa, frame = decoded.cfa, decoded.frame
    decoded.cfa, decoded.frame = None, None
    try:
        if cfa is not None and cfa.data.ndim == 2 and min(cfa.data.shape) >= 6 \
                and np.asarray(cfa.pattern).shape == (2, 2):  # X-Trans (6x6): no statistics (documented)
            return cfa_delta(cfa.data, cfa.pattern, black_level=list(cfa.black), white_level=cfa.white,
                             colors=cfa.colors, time=capture_seconds(decoded.meta))
        if frame is not None and min(frame.shape[:2]) >= 6:
            return rgb_delta(frame, time=capture_seconds(decoded.meta))
    except ValueError:  # data the statistics cannot take (checked shapes, dtypes): no delta
        return None
    return None
