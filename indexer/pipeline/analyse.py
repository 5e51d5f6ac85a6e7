"""The worker stage: one file path in, one outcome out (indexed, moved, or failed).

Runs in worker processes (spawn/forkserver: rawpy's OpenMP and fork do not mix). It
never touches the database: outcomes go back to the single writer.
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

from db.blobs import pack_hist, pack_thumb
from indexer import decode
from indexer.decode import SensorData
from indexer.config import IndexSettings
from indexer.errors import DecodeError
from indexer.measure import features
from indexer.outcomes import Failed, Indexed, Moved, Outcome, Task, Unchanged
from indexer.pipeline.sensorplan import SensorPlan, take_delta

_MOVE_CANDIDATES: frozenset[str] = frozenset()
_SETTINGS = IndexSettings()
_SENSOR_PLAN = SensorPlan()


def init_worker(settings: IndexSettings, move_candidates: frozenset[str],
                sensor_data: SensorPlan | SensorData = SensorData.NONE) -> None:
    """Process initialiser: settings, the SHA-256s of rows whose files are gone, and
    which frames to learn sensor statistics from (a bare SensorData: every frame)."""
    global _SETTINGS, _MOVE_CANDIDATES, _SENSOR_PLAN
    _SETTINGS, _MOVE_CANDIDATES, _SENSOR_PLAN = settings, move_candidates, SensorPlan.of(sensor_data)


def analyse(task: Task, settings: IndexSettings | None = None,
            move_candidates: frozenset[str] | None = None,
            sensor_data: SensorPlan | SensorData | None = None) -> Outcome:
    """Decode and measure one file; every error becomes a :class:`Failed` outcome."""
    settings = settings or _SETTINGS
    moves = _MOVE_CANDIDATES if move_candidates is None else move_candidates
    path = Path(task.path)
    try:
        data = decode.read_bytes(path)
        if moves or task.sha256:
            digest = hashlib.sha256(data).hexdigest()
            if digest == task.sha256:
                return Unchanged(task, digest)
            if digest in moves:
                return Moved(task, digest)
        plan = _SENSOR_PLAN if sensor_data is None else SensorPlan.of(sensor_data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            decoded = decode.decode_bytes(
                data, path, work_size=settings.work_size, raw_preview_min=settings.raw_preview_min,
                max_pixels=settings.max_pixels, sensor_data=plan.data, frame_wanted=plan.frame_filter(),
                digest_pixels=settings.digest_pixels)
            measured = features.measure(decoded.rgb, thumb_size=settings.thumb_size)
        decoded.rgb = decoded.rgb[:0, :0]
        sensor = take_delta(decoded)  # the per-site work here, in the worker; frames dropped
        return Indexed(task, decoded, measured, sorted({str(w.message)[:200] for w in caught}), sensor=sensor,
                       blobs=(pack_thumb(measured.thumb), pack_hist(measured.hist)))
    except DecodeError as exc:
        return Failed(task, exc.kind, exc.message)
    except MemoryError:
        return Failed(task, "bomb", "out of memory while decoding")
    except Exception as exc:  # noqa: BLE001 - one bad file never stops a run
        return Failed(task, "internal", f"{type(exc).__name__}: {exc}")
