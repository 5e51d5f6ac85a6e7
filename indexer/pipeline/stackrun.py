"""``photoqa index`` for array stacks: frames measured and stored in vectorised batches.

A stack file (:mod:`indexer.decode.arrays`) is not one task per frame for the worker
pool: per-frame tasks would pickle 96,108 tiny arrays and make 96,108 transactions. Each
stack is read in batches of :data:`BATCH` frames from its memory map, measured with
:func:`indexer.stacks.frames.measure_batch`, stored with one executemany per batch
(:mod:`db.frames`), and, with ``--sensor NAME``, reduced to per-pixel statistics
(:mod:`indexer.stacks.pixelstats`) whose hot and dead sites go to ``sensor_defects``.

Frames with equal pixels (equal ``sha256``, here or in rows already stored) become
``same_pixels`` pairs, so they group like copies of a file. Frames of at least
``[stacks] match_min_side`` pixels a side are also matched as near-duplicates against
every present frame of that size and every present photo (:func:`match_frames`; a photo
indexed later meets them in the photos' own matching, which holds every present row), so
a dataset's frame that leaks a photo of a folder is found either way: the photos' candidate search
(:class:`indexer.match.engine.Matcher` over their stored hashes) and verification (the
shift/scale-aligned correlation of :mod:`indexer.match.verify` on the frames' thumbnails,
which for frames up to 128 px are the frames themselves), with the same verdicts, so a
mirrored, resized or shifted frame in another split is found. Smaller frames (a 7x7
detector's counts) get exact pairs only. A frame with the pixels of a photo is
``same_pixels``: a matchable frame's ``pixel_sha256`` is the digest the photo's decoded
pixels get (:func:`indexer.decode.pixel_digest`, over the pixels as Pillow holds them:
mode, size, interleaved channels), computed from the frame by
:func:`indexer.decode.array_pixel_digest` (uint8 grey or RGB, uint16 grey), and a pair
that looks untouched compares the two (its ``sha256`` stays the digest of its array, which
equal frames share). Frames of other dtypes (float, a 16-bit RGB a PNG would store
big-endian and Pillow not as one array) keep their ``sha256`` there, and a copy of a photo
among them stays ``derived`` ("same picture, re-encoded"): no file holds those values.
QA flags (``image_flags``, thresholds of ``[flags]``) are evaluated per frame, except
for raw sensor data (``--sensor``: a 7x7 frame of photon counts is "dark" and "odd
size" by every photo's measure, and 96,108 frames would cost ~100 us each).
"""
from __future__ import annotations

import dataclasses
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
from indexer import decode
from indexer.decode import arrays
from indexer.decode.limits import MAX_PIXELS
from indexer.config import StackSettings
from indexer.errors import DecodeError
from indexer.exposure.flags import FLAGS_VERSION, FlagThresholds, fired
from indexer.match.engine import PairEvidence
from indexer.match.params import MatchParams
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
    near_pairs: int = 0  # near-duplicate pairs of frames (match_frames)
    sensor_frames: int = 0
    defects: list = field(default_factory=list)


def batch_size(stack: arrays.ArrayStack, budget_bytes: int = 64 << 20) -> int:
    """Frames per batch: :data:`BATCH`, fewer when frames are large (~64 MB of float32)."""
    per_frame = max(1, stack.shape.channels * stack.shape.height * stack.shape.width * 4 * 6)
    return max(1, min(BATCH, budget_bytes // per_frame))


def frame_rows(stack: arrays.ArrayStack, start: int, fb: FrameBatch, task: Task, fmt: str,
               pixel_shas: list[str | None] | None = None) -> list[dict]:
    """``images`` rows of one measured batch (columns as :func:`db.store.image_values`).
    ``pixel_sha256``: the frame's entry of ``pixel_shas`` (a photo's pixel digest:
    :func:`indexer.decode.array_pixel_digest`) when given and not None, else its ``sha256``."""
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
        pixel_sha = pixel_shas[i] if pixel_shas is not None and pixel_shas[i] is not None else sha
        row = dict(common, path=arrays.frame_path(task.path, stack.key, frame), frame=frame, sha256=sha,
                   pixel_sha256=pixel_sha, phash_d4=hashes.pack(fb.phash_d4[i]), phash_crops=hashes.pack(fb.phash_crops[i]),
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
                     thresholds: FlagThresholds | None = None, match_min_side: int | None = None) -> list[int]:
    """Store every frame of one stack file (its old rows replaced); ``thresholds``: QA
    flags of every frame (None: no flags). Returns the ids of its frames of at least
    ``match_min_side`` pixels a side (None: none), for :func:`match_frames`."""
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
            # frames that meet photos in matching carry a photo's pixel digest (see the module docstring)
            like_photo = match_min_side is not None and min(stack.shape.height, stack.shape.width) >= match_min_side
            pixel_shas = [decode.array_pixel_digest(f) for f in batch] if like_photo else None
            dbframes.insert_frames(store.engine, frame_rows(stack, start, fb, task, fmt, pixel_shas))
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
    matchable = match_min_side is not None and any(
        min(st.shape.height, st.shape.width) >= match_min_side for st in stacks)
    ids = dbframes.frame_ids(store.engine, task.path) if flags or matchable else {}
    if flags:
        dbflags.add_flags(store.engine, {ids[k]: found for k, found in flags.items()}, FLAGS_VERSION)
    dupes = {sha: ids for sha, ids in dbframes.ids_by_sha(store.engine, shas).items() if len(ids) > 1}
    pairs = equal_pixel_pairs(dupes)
    save_pairs(store.engine, pairs, group_rule=store.group_rule)
    summary.duplicate_pairs += len(pairs)
    summary.files += 1
    if not matchable:
        return []
    sizes = {st.key: min(st.shape.height, st.shape.width) for st in stacks}
    return [i for (key, _), i in ids.items() if sizes.get(key, 0) >= match_min_side]


def match_frames(store: Store, new_ids: list[int], params: MatchParams, min_side: int,
                 max_pixels: int = MAX_PIXELS) -> list[PairEvidence]:
    """Near-duplicate pairs between the frames ``new_ids`` and every present frame of at
    least ``min_side`` pixels a side (themselves included) or present photo, stored
    (groups refreshed); frames of equal pixels are left to :func:`equal_pixel_pairs`.

    The photos' engine: an index of every such row's hashes built in one go
    (:meth:`Matcher.from_rows`, records fetched from the database for candidate pairs
    only) and joined; the candidate pairs touching a new frame are screened at once by
    :func:`indexer.stacks.screen.screen` (shift-aligned correlation of the frames) and
    the survivors verified in this process as photos are (:meth:`Matcher.verify_jobs`),
    a pair that looks untouched proven ``same_pixels`` by pixel digests as there (a
    photo's computed here when not stored yet: ``max_pixels`` bounds that decode).
    """
    from db import pairs as dbpairs
    from db.indexrows import load_index_rows
    from indexer.match.engine import Matcher
    from indexer.pipeline.matchstage import pixel_equality

    if not new_ids:
        return []
    # the crop channel searched at the global radius: at its own (14 bits) 800 smooth
    # 96x96 frames proposed 420 pairs, 288 of them single far crop hits at another
    # scale, which the screen cannot judge; at 10 bits, 54 pairs, 49 of them screened
    params = dataclasses.replace(params, crop_radius=params.radius)
    # every present row's index columns, then the photos and large frames kept: an id list
    # of 100,000 frames would exceed SQLite's limit on bound variables
    rows = load_index_rows(store.engine, params.thresholds)
    rows = rows.take(np.isin(rows.ids, np.array(dbframes.matchable_rows(store.engine, min_side), np.int64)))
    matcher = Matcher.from_rows(rows, params, loader=dbpairs.loader(store.engine),
                                pixels_equal=pixel_equality(store.engine, max_pixels))
    jobs = [j for j in matcher.batch_jobs(touching=set(new_ids)) if j.a.sha256 != j.b.sha256]
    found = matcher.verify_jobs(screened(jobs, params.max_transforms))
    save_pairs(store.engine, found, group_rule=store.group_rule)
    return found


def screened(jobs: list, max_transforms: int) -> list:
    """The jobs worth verifying: those whose frames correlate at one of their proposed
    transforms (:mod:`indexer.stacks.screen`), and those it cannot judge (another scale
    or shape), unscreened."""
    from indexer.measure import orient
    from indexer.stacks import screen

    triples, owner, judged = [], [], set()
    for k, job in enumerate(jobs):
        props = job.props[:max_transforms]
        a = job.a.thumb
        if all(abs(p.scale_hint - 1.0) <= screen.SAME_SCALE and not p.other_hints
               and (orient.apply(job.b.thumb, p.transform).shape == a.shape) for p in props):
            judged.add(k)
            for p in props:
                triples.append((a, job.b.thumb, p.transform))
                owner.append(k)
    best = np.full(len(jobs), -np.inf)
    if triples:
        np.maximum.at(best, owner, screen.screen(triples))
    return [job for k, job in enumerate(jobs) if k not in judged or best[k] >= screen.MIN_CORRELATION]


def stack_pixelstats(stack: arrays.ArrayStack) -> pixelstats.PixelStats:
    """Per-pixel statistics of a whole stack, batch by batch from its memory map."""
    s = stack.shape
    return pixelstats.stack_statistics((b for _, b in stack.batches(batch_size(stack))),
                                       (s.channels, s.height, s.width), integer=stack.dtype.kind in "biu")


class SensorSink:
    """Per-pixel statistics of the stacks of one named detector, kept across runs.

    Each stack's statistics are a *part*, named by the stack (container path and member)
    and tagged with the file's size and mtime it was computed from: files in
    ``<accumulator>.parts/`` beside a SQLite database, rows of ``stack_parts`` in a
    PostgreSQL one (:mod:`indexer.pipeline.stackstore`). The detector's statistics are
    the Chan merge of all its parts (:meth:`PixelStats.merge`: exact up to float
    rounding, any order), so a second stack (the detector's next file, another run, on
    another machine) adds its frames to the sites' mean and variance instead of
    replacing them; a stack indexed again unchanged is not counted again (its part
    stands), and a changed one replaces its own part only. Parts of stacks deleted since
    stay: the frames were measured on that detector. Hot and dead sites are classified on
    the merged statistics (:meth:`close`)."""

    def __init__(self, store: Store, name: str, folder: Path):
        from indexer.pipeline.stackstore import open_parts

        self.store, self.name = store, name
        self.parts = open_parts(store.engine, folder)
        self.sensors: dict[tuple[int, int, int], int] = {}  # (C, H, W) -> sensors.id
        self.ledger: dict[tuple[int, int, int], list[str]] = {}  # shapes whose parts changed

    def _sensor(self, shape: tuple[int, int, int]) -> int:
        if shape not in self.sensors:
            _, h, w = shape
            self.sensors[shape] = dbframes.stack_sensor(self.store.engine, self.name, w, h, STATS_VERSION)
        return self.sensors[shape]

    @staticmethod
    def _shape(stack: arrays.ArrayStack) -> tuple[int, int, int]:
        return stack.shape.channels, stack.shape.height, stack.shape.width

    @staticmethod
    def tag(task: Task) -> str:
        return f"{task.size}:{task.mtime_ns}"

    def has(self, task: Task, stack: arrays.ArrayStack) -> bool:
        """Whether this stack's statistics, of the file as it is now, are a part already."""
        return self.parts.source(self._sensor(self._shape(stack)), f"{task.path}#{stack.key}") == self.tag(task)

    def add(self, task: Task, stack: arrays.ArrayStack, stats: pixelstats.PixelStats) -> None:
        """Store ``stats`` as the stack's part (replacing its older one)."""
        name = f"{task.path}#{stack.key}"
        arrays_ = {**stats.as_arrays(), "source": np.array(self.tag(task)), "stack": np.array(name)}
        self.parts.put(self._sensor(self._shape(stack)), name, arrays_)
        self.ledger.setdefault(self._shape(stack), []).append(f"{name}@{self.tag(task)}")

    def merged(self, shape: tuple[int, int, int]) -> pixelstats.PixelStats:
        """The Chan merge of every part of the detector of this shape (by name)."""
        total = None
        for part in self.parts.parts(self._sensor(shape)):
            try:
                stats = pixelstats.PixelStats.from_arrays(part)
            except (KeyError, ValueError):
                continue  # a damaged part is left out; its stack's next change rewrites it
            if stats.mean.shape == shape and (total is None or (total.hist is None) == (stats.hist is None)):
                total = stats if total is None else total.merge(stats)
        return total

    def close(self, summary: StackSummary) -> None:
        from indexer.sensor.defects import Defect

        for shape, ledger in self.ledger.items():
            stats = self.merged(shape)
            if stats is None:
                continue
            sensor = self.sensors[shape]
            self.parts.save_merged(sensor, stats.as_arrays())
            found = sites.classify(stats.mean, stats.variance())
            frames = stats.frames
            defects = [Defect(s.x, s.y, s.kind, 1.0, s.mean - s.centre, frames) for s in found if s.channel == 0]
            dbsensors.record_flush(self.store.engine, sensor, frames, [(hash_key(k), None) for k in ledger], defects)
            summary.sensor_frames += frames
            summary.defects.extend(found)


def hash_key(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def index_stacks(tasks: Iterable[Task], store: Store, roots: list[Path], *, sensor_name: str | None = None,
                 sensor_dir: Path | None = None, thresholds: FlagThresholds | None = None,
                 match: MatchParams | None = None, match_min_side: int = StackSettings.match_min_side) -> StackSummary:
    """Index the stack files ``tasks`` (found under ``roots``): unchanged ones skipped,
    changed ones replaced, gone ones marked missing. One bad file becomes a failure row.
    ``thresholds``: QA flags per frame, unless ``sensor_name`` says the frames are raw
    sensor data. ``match``: near-duplicate matching of the new frames of at least
    ``match_min_side`` pixels a side (None: exact pairs only)."""
    summary = StackSummary()
    new_ids: list[int] = []
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
                if sink is not None:  # its rows stand; its statistics join the detector's unless they have
                    for stack in arrays.open_stacks(task.path):
                        if not sink.has(task, stack):
                            sink.add(task, stack, stack_pixelstats(stack))
                continue
            new_ids += index_stack_file(task, store, summary, sink, None if sink is not None else thresholds,
                                        match_min_side if match is not None else None)
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
    if match is not None:
        summary.near_pairs += len(match_frames(store, new_ids, match, match_min_side))
    if sink is not None:
        sink.close(summary)
    return summary


class StackWatch:
    """``photoqa watch`` for array stacks: a complete stack file indexed as ``index`` does
    (:func:`index_stacks`: unchanged skipped, changed replaced, new frames matched), a
    deleted one's frames marked missing. Called by the daemon's writer thread only."""

    def __init__(self, store: Store, *, thresholds: FlagThresholds | None = None, match: MatchParams | None = None,
                 match_min_side: int = StackSettings.match_min_side):
        self.store, self.thresholds, self.match, self.min_side = store, thresholds, match, match_min_side

    def index(self, task: Task) -> StackSummary:
        """Index one stack file (no other stack is marked missing: no roots)."""
        return index_stacks([task], self.store, [], thresholds=self.thresholds, match=self.match,
                            match_min_side=self.min_side)

    def gone(self, container: str) -> int:
        """Mark the present frames of ``container`` missing; returns how many."""
        state = dbframes.known_stacks(self.store.engine).get(container)
        if state is None or state.missing:
            return 0
        dbframes.mark_stacks_missing(self.store.engine, [container], self.store.group_rule)
        return state.frames

    def catch_up(self, tasks: list[Task], roots: list[Path]) -> list[str]:
        """After a walk of ``roots`` that found the stack files ``tasks``: the stacks known
        under ``roots`` that are gone, marked missing (their paths)."""
        seen = {t.path for t in tasks}
        resolved = [str(scan.absolute(r)) for r in roots]
        gone = [c for c, st in dbframes.known_stacks(self.store.engine).items()
                if c not in seen and not st.missing and scan.within(c, resolved)]
        dbframes.mark_stacks_missing(self.store.engine, gone, self.store.group_rule)
        return gone
