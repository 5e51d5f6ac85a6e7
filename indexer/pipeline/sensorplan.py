"""What a decode worker does for the sensor statistics: which frames it learns from, and
the delta it computes from them (the writer only adds deltas: ``pipeline.sensorstage``).

A :class:`SensorPlan` travels to the workers with their settings. For each file that
names its camera the worker keeps the RAW CFA plane (always) or a rendered frame (when
``indexer.sensor.budget`` draws it: :meth:`SensorPlan.frame_filter`, asked before the
pixels are decoded), turns it into a :class:`indexer.sensor.delta.FrameDelta` and drops
the full-size data, so only the delta crosses the process boundary.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass, field

import numpy as np

from indexer.config import SensorSettings
from indexer.decode import Decoded, SensorData
from indexer.decode.exif import Metadata
from indexer.sensor import budget
from indexer.sensor.delta import FrameDelta, cfa_delta, rgb_delta


@dataclass(frozen=True)
class SensorPlan:
    """data: which full-size data to keep; settings: the [sensor] budget; known: frames
    learnt per body (make, model, serial) when the workers started (``learn_first``)."""

    data: SensorData = SensorData.NONE
    settings: SensorSettings = field(default_factory=SensorSettings)
    known: dict[tuple[str, str, str], int] = field(default_factory=dict)

    @classmethod
    def of(cls, value: "SensorPlan | SensorData | None") -> "SensorPlan":
        """A plan from a plan, or from a bare SensorData (every frame, as before budgets)."""
        if isinstance(value, SensorPlan):
            return value
        every = SensorSettings(learn_every_frame=True)
        return cls(value or SensorData.NONE, every)

    def learns(self, meta: Metadata, width: int, height: int, sha256: str) -> bool:
        """Whether this rendered frame is learnt (see :mod:`indexer.sensor.budget`)."""
        s = self.settings
        if s.learn_every_frame:
            return True
        camera = meta.camera
        if camera is not None and self.known.get((camera.make, camera.model, camera.serial), 0) < s.learn_first:
            return True
        share = budget.learn_share(width * height / 1e6, sample_megapixels=s.sample_megapixels,
                                   iso=meta.capture.iso, exposure_time=meta.capture.exposure_time,
                                   reveal_iso=s.reveal_iso, reveal_seconds=s.reveal_seconds,
                                   reveal_factor=s.reveal_factor)
        return budget.drawn(sha256, share)

    def frame_filter(self):
        """The ``frame_wanted`` callback of ``decode.decode_bytes`` (None: every frame)."""
        return None if self.settings.learn_every_frame else self.learns


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
