"""``photoqa index`` for array stacks: frames measured and stored in vectorised batches.

A stack file (:mod:`indexer.decode.arrays`) is not one task per frame for the worker
pool: per-frame tasks would pickle 96,108 tiny arrays and make 96,108 transactions. Each
stack is read in batches of :data:`BATCH` frames from its memory map, measured with
:func:`indexer.stacks.frames.measure_batch`, stored with one executemany per batch
(:mod:`db.frames`), and, with ``--sensor NAME``, reduced to per-pixel statistics
(:mod:`indexer.stacks.pixelstats`) whose hot and dead sites go to ``sensor_defects``.

Frames with equal pixels (equal ``sha256``, here or in rows already stored) become
``same_pixels`` pairs, so they group like copies of a file. Near-duplicate (perceptual)
matching of frames is not run: their hashes are stored, and ``matched_at`` is set.
QA flags (``image_flags``, thresholds of ``[flags]``) are evaluated per frame, except
for raw sensor data (``--sensor``: a 7x7 frame of photon counts is "dark" and "odd
size" by every photo's measure, and 96,108 frames would cost ~100 us each).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from db import flags as dbflags
from db import frames as dbframes
from db import sensors as dbsensors
from db.pairs import save_pairs
from db.store import Store, pack_hist, pack_thumb, utcnow
from indexer.decode import arrays
from indexer.errors import DecodeError
from indexer.exposure.flags import FLAGS_VERSION, FlagThresholds, fired
from indexer.match.engine import PairEvidence
from indexer.measure import hashes
from indexer.measure.features import FEATURES_VERSION
from indexer.outcomes import Failed, Task
from indexer.pipeline import scan
from indexer.stacks import pixelstats, sites
from indexer.stacks.frames import FrameBatch, measure_batch

BATCH = 4096  # frames per batch: the hashes hold ~20 float64 (n, 32, 32) arrays (4096: ~35 MB each); 8192 peaked at 559 MB RSS
STATS_VERSION = 1


@dataclass
class StackSummary:
    files: int = 0
    frames: int = 0
    unchanged_frames: int = 0
    failed: int = 0
    duplicate_pairs: int = 0
    sensor_frames: int = 0
    defects: list = field(default_factory=list)


def batch_size(stack: arrays.ArrayStack, budget_bytes: int = 64 << 20) -> int:
    """Frames per batch: :data:`BATCH`, fewer when frames are large (~64 MB of float32)."""
    per_frame = max(1, stack.shape.channels * stack.shape.height * stack.shape.width * 4 * 6)
    return max(1, min(BATCH, budget_bytes // per_frame))


def frame_rows(stack: arrays.ArrayStack, start: int, fb: FrameBatch, task: Task, fmt: str) -> list[dict]:
    """``images`` rows of one measured batch (columns as :func:`db.store.image_values`)."""
    s, now = stack.shape, utcnow()
    thumbs = fb.thumbs
    common = dict(size=task.size, mtime_ns=task.mtime_ns, missing_since=None, format=fmt,
                  width=s.width, height=s.height, display_width=s.width, display_height=s.height,
                  bit_depth=stack.dtype.itemsize * 8, orientation=1, camera_id=None, captured_at=None,
                  utc_offset=None, exposure_time=None, f_number=None, iso=None, focal_length=None,
                  decoder="numpy", features_version=FEATURES_VERSION, indexed_at=now, matched_at=now,
                  thumb_width=int(thumbs.shape[2]), thumb_height=int(thumbs.shape[1]),
                  container=task.path, array_key=stack.key)
    cols = {name: getattr(fb, name).tolist() for name in (
        "phash", "dhash", "luma_mean", "luma_std", "luma_p1", "luma_p50", "luma_p99", "clip_high",
        "clip_low", "entropy", "sharpness", "colourfulness", "ev")}
    rows = []
    for i, sha in enumerate(fb.sha256):
        frame = start + i
        row = dict(common, path=arrays.frame_path(task.path, stack.key, frame), frame=frame, sha256=sha,
                   pixel_sha256=sha, phash_d4=hashes.pack(fb.phash_d4[i]), phash_crops=hashes.pack(fb.phash_crops[i]),
                   hist=pack_hist(fb.hist[i]), thumb=pack_thumb(thumbs[i]))
        row.update({name: values[i] for name, values in cols.items()})
        rows.append(row)
    return rows


def equal_pixel_pairs(ids_by_sha: dict[str, list[int]]) -> list[PairEvidence]:
    """A ``same_pixels`` pair from the first row of each sha256 to every other one (a
    spanning star: the groups are the same as with all pairs, at n-1 rows, not n^2/2)."""
    out = []
    for ids in ids_by_sha.values():
        for other in ids[1:]:
            out.append(PairEvidence(ids[0], other, "same_pixels", 0, "identity", (0.0, 0.0), 1.0, 1.0, 1.0,
                                    0.0, None, description="identical frame pixels"))
    return out


def frame_flags(stack: arrays.ArrayStack, fb: FrameBatch, thresholds: FlagThresholds) -> list[list]:
    """The fired QA flags of each frame of a measured batch (exposure.flags per frame)."""
    s = stack.shape
    out = []
    for i in range(len(fb.sha256)):
        m = SimpleNamespace(hist=fb.hist[i], luma_p1=fb.luma_p1[i], luma_p99=fb.luma_p99[i],
                            clip_high=fb.clip_high[i], clip_low=fb.clip_low[i], sharpness=fb.sharpness[i],
                            colourfulness=fb.colourfulness[i], ev=fb.ev[i])
        out.append(fired(m, s.width, s.height, thresholds=thresholds))
    return out


def index_stack_file(task: Task, store: Store, summary: StackSummary, sensor: "SensorSink | None",
                     thresholds: FlagThresholds | None = None) -> None:
    """Store every frame of one stack file (its old rows replaced); ``thresholds``: QA
    flags of every frame (None: no flags)."""
    stacks = arrays.open_stacks(task.path)
    dbframes.forget_stack(store.engine, task.path, store.group_rule)
    fmt = "npz" if task.path.lower().endswith(".npz") else "npy"
    shas: set[str] = set()
    flags: dict[tuple[str, int], list] = {}
    for stack in stacks:
        integer = stack.dtype.kind in "biu"
        stats = pixelstats.PixelStats.empty((stack.shape.channels, stack.shape.height, stack.shape.width),
                                            integer=integer) if sensor else None
        for start, batch in stack.batches(batch_size(stack)):
            batch = np.asarray(batch)
            fb = measure_batch(batch)
            dbframes.insert_frames(store.engine, frame_rows(stack, start, fb, task, fmt))
            shas.update(fb.sha256)
            if thresholds is not None:
                for i, found in enumerate(frame_flags(stack, fb, thresholds)):
                    if found:
                        flags[(stack.key, start + i)] = found
            summary.frames += len(batch)
            if stats is not None:
                stats = stats.merge(pixelstats.PixelStats.of_batch(batch))
        if sensor is not None:
            sensor.add(task, stack, stats)
    if flags:
        ids = dbframes.frame_ids(store.engine, task.path)
        dbflags.add_flags(store.engine, {ids[k]: found for k, found in flags.items()}, FLAGS_VERSION)
    dupes = {sha: ids for sha, ids in dbframes.ids_by_sha(store.engine, shas).items() if len(ids) > 1}
    pairs = equal_pixel_pairs(dupes)
    save_pairs(store.engine, pairs, group_rule=store.group_rule)
    summary.duplicate_pairs += len(pairs)
    summary.files += 1


def stack_pixelstats(stack: arrays.ArrayStack) -> pixelstats.PixelStats:
    """Per-pixel statistics of a whole stack, batch by batch from its memory map."""
    s = stack.shape
    return pixelstats.stack_statistics((b for _, b in stack.batches(batch_size(stack))),
                                       (s.channels, s.height, s.width), integer=stack.dtype.kind in "biu")


class SensorSink:
    """Per-pixel statistics of the stacks of one named detector, merged into its file
    beside the database and classified into ``sensor_defects`` (:meth:`close`)."""

    def __init__(self, store: Store, name: str, folder: Path):
        self.store, self.name, self.folder = store, name, folder
        self.stats: dict[tuple[int, int, int], pixelstats.PixelStats] = {}
        self.ledger: dict[tuple[int, int, int], list[str]] = {}

    def add(self, task: Task, stack: arrays.ArrayStack, stats: pixelstats.PixelStats) -> None:
        key = stats.mean.shape
        self.stats[key] = self.stats[key].merge(stats) if key in self.stats else stats
        self.ledger.setdefault(key, []).append(f"{task.path}#{stack.key}@{task.size}:{task.mtime_ns}")

    def close(self, summary: StackSummary) -> None:
        from indexer.atomicfile import replace_with
        from indexer.sensor.defects import Defect

        for shape, stats in self.stats.items():
            _, h, w = shape
            sensor = dbframes.stack_sensor(self.store.engine, self.name, w, h, STATS_VERSION)
            path = self.folder / dbsensors.accumulator_name(self.store.engine, sensor)
            self.folder.mkdir(parents=True, exist_ok=True)
            replace_with(path, lambda fh, s=stats: np.savez(fh, **s.as_arrays()))
            found = sites.classify(stats.mean, stats.variance())
            frames = stats.frames
            defects = [Defect(s.x, s.y, s.kind, 1.0, s.mean - s.centre, frames) for s in found if s.channel == 0]
            ledger = [(hash_key(k), None) for k in self.ledger[shape]]
            dbsensors.record_flush(self.store.engine, sensor, frames, ledger, defects)
            summary.sensor_frames += frames
            summary.defects.extend(found)


def hash_key(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def index_stacks(tasks: Iterable[Task], store: Store, roots: list[Path], *, sensor_name: str | None = None,
                 sensor_dir: Path | None = None, thresholds: FlagThresholds | None = None) -> StackSummary:
    """Index the stack files ``tasks`` (found under ``roots``): unchanged ones skipped,
    changed ones replaced, gone ones marked missing. One bad file becomes a failure row.
    ``thresholds``: QA flags per frame, unless ``sensor_name`` says the frames are raw
    sensor data."""
    summary = StackSummary()
    known = dbframes.known_stacks(store.engine)
    sink = SensorSink(store, sensor_name, sensor_dir) if sensor_name else None
    seen = set()
    for task in tasks:
        seen.add(task.path)
        state = known.get(task.path)
        unchanged = (state is not None and not state.missing and state.features_version == FEATURES_VERSION
                     and (state.size, state.mtime_ns) == (task.size, task.mtime_ns))
        try:
            if unchanged:
                summary.unchanged_frames += state.frames
                if sink is not None:  # its rows stand; the detector's statistics read it again
                    for stack in arrays.open_stacks(task.path):
                        sink.add(task, stack, stack_pixelstats(stack))
                continue
            index_stack_file(task, store, summary, sink, None if sink is not None else thresholds)
        except (DecodeError, MemoryError, OSError, ValueError) as exc:
            # a file that breaks half-way (truncated member) keeps no half of its frames
            dbframes.forget_stack(store.engine, task.path, store.group_rule)
            kind, message = (exc.kind, exc.message) if isinstance(exc, DecodeError) else (
                "internal", f"{type(exc).__name__}: {exc}")
            store.save_failure(Failed(task, kind, message))
            summary.failed += 1
    resolved = [str(scan.absolute(r)) for r in roots]
    gone = [c for c, st in known.items() if c not in seen and not st.missing and scan.within(c, resolved)]
    dbframes.mark_stacks_missing(store.engine, gone, store.group_rule)
    if sink is not None:
        sink.close(summary)
    return summary
