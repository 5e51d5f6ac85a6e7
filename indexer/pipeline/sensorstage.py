"""The sensor stage of the pipeline: add each learnt frame's delta to its sensor's statistics.

Runs in the writer process after a frame is stored. The decode worker has already done
the per-site work (``pipeline.sensorplan``: residual, noise, outliers, as a compact
:class:`indexer.sensor.delta.FrameDelta`); here the delta is only added (a Welford step).
Each process keeps, per sensor, a *delta* accumulator of the frames it has seen since its
last flush; a flush merges the delta into the stored statistics under the sensor's lock
(``pipeline.sensorstore``: a file beside a SQLite database, ``sensor_tiles`` rows of a
PostgreSQL one; Chan et al. 1979: exact whatever the split, which is what lets several
workers, runs, daemons and machines share one sensor), reclassifies the defects and
records the frames in the SQL ledger. A frame (by SHA-256) is counted once: identical
frames would make every site look permanent. Across writers too (two machines, or a
``watch`` beside an ``index``, holding the same frame unflushed): a frame is claimed in
``sensor_claims`` before it is counted, and a live writer's claim is respected
(:func:`db.sensors.claim_frame`). On a Dask cluster a delta may be a
:class:`~indexer.pipeline.clustersensor.DeltaRef` (left on a worker): the stage keeps the
ledger as always, and the flush gathers the accepted frames' deltas, tree-reduced on the
workers (:mod:`indexer.pipeline.clustersensor`).

An *exposure* is counted once too (by each sensor: the RAW and the JPEG of a RAW+JPEG
shot feed two), through one image of it: an image whose camera and capture time
(sub-seconds kept) equal another's is a copy of that shot (mirrored, re-framed, resized,
recompressed or re-tagged: its bytes differ, so the SHA-256 ledger does not see it), not
a new exposure of the sensor. Counted, a copy either repeats the original's noise (its
transients then look persistent, and a pair of them looks stuck) or, transformed, puts
every site's sighting at another position (a mirrored frame's hot pixel at x shows at
W-1-x), diluting the rate a real defect reaches: on the camera set of
bench/end_to_end.py the budget drew 6 of 72 frames, 4 of them mirrored or re-framed
copies whose shots were not drawn. Which image stands for an exposure: one stored by an
earlier run (drawn or not: a copy indexed after its shot is never learnt), else within a
run the first the decode workers saw (``pipeline.sensorplan``: they mark each exposure
before deciding on a full decode, so a later copy is not even decoded at full size), and
here, whatever the workers knew, one already counted or claimed
(:func:`db.sensors.exposure_taken`). Capture identity, not the near-duplicate verdict,
is the evidence: it is known before the full decode (verification runs after storing),
also with matching off, and a copy that lost its EXIF lost its camera too, so is never
learnt. Two exposures of one body within the same second without sub-seconds (a burst)
count as one: a lost sample, not a biased one. Which of two images of one exposure is
the camera's own cannot be told from them, so a copy indexed before its shot stands for
it.

Memory: a delta takes 26 bytes a photosite (312 MB for a 12 MP body). ``[sensor]
memory_mb`` bounds what the deltas of all bodies take together: past it the least
recently fed body is flushed early and dropped; its next frame starts a new delta,
resuming from the body's last frame values (``prev``, kept at 2 bytes a site while the
budget allows) so consecutive pairs count as in one pass: the statistics are those of an
unbounded run. Four 12 MP cameras fed alternately: peak RSS 1,366 MB unbounded, 1,044 MB
at the default 640 (bench/sensor_memory.py, docs/BENCHMARKS.md).

A young body's frames (until its first flush) are also kept on disk
(``pipeline.sensorspool``) and dropped once flushed: a writer that dies before then
(kill -9) would otherwise lose them, as the next run finds their files indexed and never
decodes them again. The next stage on the same store reads back the frames of writers
that died and counts them as if they had just arrived (SQLite databases: the spool sits
in ``<database>.sensors/pending/``; PostgreSQL ones: the rows of ``sensor_spool``).
"""
from __future__ import annotations

import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from db import sensors as dbsensors
from indexer.outcomes import Indexed
from indexer.pipeline.clustersensor import DeltasLost, pending_for, settle
from indexer.pipeline.sensorplan import take_delta
from indexer.pipeline.sensorspool import Spool, TableSpool, recover, recover_table
from indexer.pipeline.sensorstore import FolderStore, TableStore, locked, sensor_folder  # noqa: F401 (re-exported)
from indexer.sensor.delta import FrameDelta
from indexer.config import SensorSettings
from indexer.sensor import AccumulatorFileError, NotEnoughFrames, SensorAccumulator, classify_defects
from indexer.sensor.accumulator import FORMAT_VERSION
from indexer.sensor.tiles import SITE_BYTES


def pattern_name(pattern: np.ndarray | None, colors: str = "RGBG") -> str | None:
    """rawpy (2, 2) colour indices -> e.g. 'RGGB'."""
    if pattern is None:
        return None
    return "".join(colors[int(i)] if int(i) < len(colors) else "?" for i in np.asarray(pattern).ravel())


def delta_of(result: Indexed) -> FrameDelta | None:
    """The frame delta a worker computed, or (a frame decoded in this process with its
    full-size data kept) one computed here; None if the file has none."""
    if result.sensor is not None:
        return result.sensor
    return take_delta(result.decoded)


def _stderr(message: str) -> None:
    sys.stderr.write(f"photoqa: {message}\n")
    sys.stderr.flush()


class SensorStage:
    """Post-store hook; call :meth:`close` at the end of a run (flushes everything).

    ``store``: where the statistics live (``pipeline.sensorstore``; a folder Path means a
    :class:`FolderStore` of it). A sensor whose stored statistics cannot be merged
    (unreadable, truncated, of another geometry or parameters) never stops the run and is
    never reset: they are left exactly as they were, the frames of this flush are not
    counted (nor entered in the ledger), and the problem is reported through ``report``
    (default: stderr) and kept in :attr:`errors` as (sensor id, message).

    ``spool``: where young bodies' frames are kept (``pipeline.sensorspool``); default
    ``pending/`` in the accumulator folder of a SQLite database, "table" (the rows of
    ``sensor_spool``) on PostgreSQL, whose statistics keep nothing on a machine's disk (a
    per-user folder there would split one database's state across machines and users);
    None: not kept. Frames that writers which died left in the spool are counted here,
    first.
    """

    def __init__(self, engine: Engine, settings: SensorSettings, store: FolderStore | TableStore | Path, *,
                 report=_stderr, spool: Path | None | str = "default"):
        self.engine, self.settings = engine, settings
        self.store = FolderStore(engine, Path(store)) if isinstance(store, (str, Path)) else store
        self.report = report
        self.errors: list[tuple[int, str]] = []
        # least recently fed first: the order evictions take
        self._deltas: OrderedDict[int, SensorAccumulator] = OrderedDict()
        self._ledger: dict[int, list[tuple[str, int]]] = {}
        self._since: dict[int, float] = {}
        self._seen: set[str] = set()
        self._stored: dict[int, int] = {}  # frames of each sensor's stored statistics, as last seen
        # per flushed body, its delta's last frame values (``prev``, 2 bytes a site): the
        # next delta resumes from them, so consecutive pairs (stuck sites) are counted as
        # one pass counts them although the statistics are flushed in pieces; dropped
        # first, oldest first, when the budget is short (then one pair is not counted)
        self._chains: OrderedDict[int, np.ndarray] = OrderedDict()
        self.budget = int(settings.memory_mb * 1e6)
        self.evictions = 0  # flushes made early to stay within the budget
        self.peak_bytes = 0  # most delta bytes resident at once
        # this stage's token in sensor_claims: frames it is counting, which another writer
        # (another machine) must not count too; set at the first claim
        self._owner: int | None = None
        if spool == "default":
            home = getattr(self.store, "folder", None)
            spool = Path(home) / "pending" if home is not None else "table" if isinstance(self.store, TableStore) else None
        self.spool = (TableSpool(engine, lambda: self._owner) if spool == "table"
                      else Spool(Path(spool)) if spool is not None else None)
        self.recovered = 0  # frames of writers that died, counted by this stage
        self.copies = 0  # learnt frames not counted: another image of the exposure stands for it
        self._run_from = dbsensors.next_image_id(engine)  # images stored from now on: this run's
        if self.spool is not None:
            self._recover()

    @property
    def folder(self) -> Path | None:
        return getattr(self.store, "folder", None)

    def resident(self) -> list[int]:
        """Sensor ids whose deltas are in memory, least recently fed first."""
        return list(self._deltas)

    def resident_bytes(self) -> int:
        """Bytes of the deltas and kept ``prev`` arrays in memory (what ``memory_mb`` bounds)."""
        return sum(acc.nbytes for acc in self._deltas.values()) + sum(p.nbytes for p in self._chains.values())

    def __call__(self, image_id: int, result: Indexed) -> None:
        sha = result.decoded.sha256
        if sha in self._seen:
            return
        delta = delta_of(result)
        if delta is None:
            return
        camera_id = dbsensors.image_camera(self.engine, image_id)
        if camera_id is None or dbsensors.frame_counted(self.engine, sha):
            return
        sid = dbsensors.sensor_id(self.engine, camera_id, delta.width, delta.height, delta.layout,
                                  pattern_name(delta.pattern, delta.colors), FORMAT_VERSION)
        if dbsensors.exposure_taken(self.engine, image_id, sid, self._run_from):
            self.copies += 1  # another image of this exposure stands for it (module docstring)
            return
        if self._accept(sid, sha, image_id, delta):
            self.flush_due()

    def _recover(self) -> None:
        """Count the frames that writers which died left in the spool (see the class)."""
        left = (recover_table(self.engine, self.store.claimer_alive) if isinstance(self.spool, TableSpool)
                else recover(self.spool.root))
        for sid, sha, image_id, delta in left:
            if sha in self._seen or dbsensors.frame_counted(self.engine, sha) \
                    or not dbsensors.list_sensors(self.engine, only=sid):
                continue
            # the frame's image must still be that content of that sensor (a spool left
            # beside a database since rebuilt could meet reused ids)
            camera_id = dbsensors.image_camera_of_frame(self.engine, image_id, sha)
            if camera_id is None or sid != dbsensors.sensor_id(
                    self.engine, camera_id, delta.width, delta.height, delta.layout,
                    pattern_name(delta.pattern, delta.colors), FORMAT_VERSION):
                continue
            if self._accept(sid, sha, image_id, delta):
                self.recovered += 1

    def _accept(self, sid: int, sha: str, image_id: int, delta) -> bool:
        """Add one frame's delta to sensor ``sid``'s (spooled while the body is young);
        False when it does not fit the sensor, or when it was counted meanwhile or is being
        counted by another writer (another machine: its claim, :meth:`_claim`)."""
        if not self._claim(sha, sid):
            return False
        if sid not in self._stored:
            rows = dbsensors.list_sensors(self.engine, only=sid)
            self._stored[sid] = rows[0].frames if rows else 0
        acc = self._deltas.get(sid)
        if acc is None:
            self._make_room(SITE_BYTES * delta.width * delta.height, sid)
        try:
            if acc is None:
                prev = self._chains.pop(sid, None)
                chained = prev is not None and prev.shape == (delta.height, delta.width)
                acc = SensorAccumulator(delta.height, delta.width, layout=delta.layout, pattern=delta.pattern,
                                        params=delta.params, prev=prev if chained else None, chained=chained)
            acc = pending_for(acc, delta)  # a delta left on a Dask cluster: merged there at the flush
            acc.add(delta)
        except (ValueError, OverflowError):
            dbsensors.release_claims(self.engine, self._owner, [sha])
            return False
        if sid not in self._deltas:
            self._deltas[sid], self._since[sid] = acc, time.monotonic()
            self.peak_bytes = max(self.peak_bytes, self.resident_bytes())
        self._deltas.move_to_end(sid)
        self._seen.add(sha)
        self._ledger.setdefault(sid, []).append((sha, image_id))
        if self.spool is not None and isinstance(delta, FrameDelta) \
                and self._stored.get(sid, 0) < self.settings.min_frames:
            # young: not flushed on the clock, so a crash would lose it (module docstring);
            # a delta left on a Dask cluster is not here to keep
            self.spool.keep(sid, sha, image_id, delta)
        if len(self._ledger[sid]) >= self.settings.flush_frames:
            self.flush(sid)
        return True

    @property
    def owner(self) -> int | None:
        """This stage's token in ``sensor_claims`` (None before its first claim)."""
        return self._owner

    def _claim(self, sha: str, sid: int) -> bool:
        """Claim the frame for this stage (:func:`db.sensors.claim_frame`); the first claim
        makes this stage a writer others see alive (``store.hold_claims``) until :meth:`close`."""
        if self._owner is None:
            import secrets

            self._owner = 1 + secrets.randbelow(2**31 - 2)
            self.store.hold_claims(self._owner)
        return dbsensors.claim_frame(self.engine, sha, sid, self._owner, self.store.claimer_alive)

    def _make_room(self, needed: int, sid: int) -> None:
        """Until ``needed`` more bytes fit in the budget (or nothing is left: one body is
        always allowed): drop the oldest kept ``prev`` arrays (but ``sid``'s own), then
        flush and drop the least recently fed bodies."""
        while self.resident_bytes() + needed > self.budget:
            old = next((k for k in self._chains if k != sid), None)
            if old is not None:
                del self._chains[old]
            elif self._deltas:
                self.evictions += 1
                self.flush(next(iter(self._deltas)))
            else:
                return

    def flush_due(self) -> None:
        """Flush every sensor whose oldest unflushed frame is ``flush_seconds`` old. Runs on
        each new frame; a daemon should also call it when idle, or frames wait for the next
        frame of the same sensor (or the daemon's stop) to reach the store.

        A young sensor (stored and unflushed frames together fewer than ``min_frames``)
        waits: a flush would have no defects to report, and each one writes the whole
        accumulator (26 bytes a site: 312 MB, ~0.8 s of CPU for 12 MP) and makes the
        next one load and merge it again. Its frames reach the store when it has
        ``min_frames``, at ``flush_frames``, when evicted, or at the end of the run."""
        now = time.monotonic()
        due = [s for s, since in self._since.items() if now - since >= self.settings.flush_seconds
               and self._stored.get(s, 0) + len(self._ledger.get(s, ())) >= self.settings.min_frames]
        for sid in due:
            self.flush(sid)

    def path(self, sid: int) -> Path:
        """The sensor's accumulator file (a :class:`FolderStore` only)."""
        return self.store.path(sid)

    def flush(self, sid: int) -> None:
        ledger = self._ledger.get(sid, [])
        try:
            self._flush(sid)
        finally:  # counted, or refused (then never counted): either way no longer pending
            if self.spool is not None:
                self.spool.drop(sid, [sha for sha, _ in ledger])

    def _flush(self, sid: int) -> None:
        delta = self._deltas.pop(sid, None)
        ledger = self._ledger.pop(sid, [])
        self._since.pop(sid, None)
        self._seen.difference_update(sha for sha, _ in ledger)  # the SQL ledger has them from now on
        if delta is None or not ledger:
            return
        try:
            delta = settle(delta)  # deltas left on a cluster: tree-reduced there, one accumulator back
        except DeltasLost as exc:
            dbsensors.release_claims(self.engine, self._owner, [sha for sha, _ in ledger])
            message = f"sensor {sid}: statistics not updated, {len(ledger)} new frame(s) not counted: {exc}"
            self.errors.append((sid, message))
            self.report(message)
            return

        def record(bind, merged: SensorAccumulator) -> None:
            try:
                defects = classify_defects(merged, rate=self.settings.rate, min_frames=self.settings.min_frames,
                                           stuck_tests=self.settings.stuck_tests())
            except NotEnoughFrames:
                defects = []
            dbsensors.record_flush(bind, sid, merged.frames, ledger, defects)

        try:
            merged = self.store.merge(sid, delta, record)
            self._stored[sid] = merged.frames
            self._chains[sid] = delta.prev
        except (AccumulatorFileError, ValueError, OverflowError, OSError) as exc:
            dbsensors.release_claims(self.engine, self._owner, [sha for sha, _ in ledger])
            message = (f"sensor {sid}: statistics not updated, {len(ledger)} new frame(s) not counted: "
                       f"{exc} ({self._advice()})")
            self.errors.append((sid, message))
            self.report(message)

    def _advice(self) -> str:
        if isinstance(self.store, FolderStore):
            return "the file is left as it was; move it away to start this sensor afresh"
        return "the stored statistics are left as they were"

    def close(self) -> None:
        for sid in list(self._deltas):
            self.flush(sid)
        self._chains.clear()
        if self.spool is not None:
            self.spool.close()
        if self._owner is not None:  # every claim was counted or released by now
            dbsensors.release_claims(self.engine, self._owner)
            self.store.release_hold()
            self._owner = None
