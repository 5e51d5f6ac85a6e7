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
memory_mb`` bounds what the deltas of all bodies take together (young bodies' kept
frame deltas too, below): past it young bodies' deltas are dropped from memory (the
spool has them), then the least recently fed body is flushed early and dropped; its next frame starts a new delta,
resuming from the body's last frame values (``prev``, kept at 2 bytes a site while the
budget allows) so consecutive pairs count as in one pass: the statistics are those of an
unbounded run. Four 12 MP cameras fed alternately: peak RSS 1,366 MB unbounded, 1,044 MB
at the default 640 (bench/sensor_memory.py, docs/BENCHMARKS.md).

A *young* body (fewer than ``min_frames`` frames stored and new together: nothing to
report yet) has no accumulator at all: its frames are kept as the deltas they arrive as
(``pipeline.sensoryoung``, ~2.4 bytes a site, counted in ``memory_mb``) and replayed, in
arrival order, into one when the body reaches ``min_frames``: bit for bit the statistics
of adding them one by one. A body still young when the stage closes is not flushed: no
accumulator is made or saved for it (on a new 12 MP camera that allocation, its faults
and the end-of-run merge and save were ~1 s of CPU after the last image was stored). Its
frames stay in the spool, parked for the next writer. A body's kept deltas never take
more than its accumulator would (noisy 16-bit frames: ~6.8 bytes a site each): past that
it gets its accumulator early, but below ``min_frames`` at close is still not saved.

The spool (``pipeline.sensorspool``; SQLite databases: ``<database>.sensors/pending/``;
PostgreSQL ones: the rows of ``sensor_spool``) keeps a young body's frames on disk until
a flush counts them: a writer that dies (kill -9) would otherwise lose them, as the next
run finds their files indexed and never decodes them again. A new stage on the same
store first adopts the frames writers left there, dead or closed with bodies still young,
and counts them as if they had just arrived, before any new frame (claimed in
``sensor_claims`` as any frame is: counted once, by one writer). ``photoqa hotpixels``
shows how many frames of a sensor wait there (``sensorspool.waiting_frames``).
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
from indexer.pipeline.sensorspool import Spool, Spooled, TableSpool, recover, recover_table, spool_root
from indexer.pipeline.sensoryoung import YoungBodies, replay
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
    None: not kept (then a body still young at :meth:`close` is flushed). Frames that
    writers left in the spool (dead, or closed with a young body: parked) are adopted
    and counted here, first.
    """

    def __init__(self, engine: Engine, settings: SensorSettings, store: FolderStore | TableStore | Path, *,
                 report=_stderr, spool: Path | None | str = "default"):
        self.engine, self.settings = engine, settings
        self.store = FolderStore(engine, Path(store)) if isinstance(store, (str, Path)) else store
        self.report = report
        self.errors: list[tuple[int, str]] = []
        # least recently fed first: the order evictions take
        self._deltas: OrderedDict[int, SensorAccumulator] = OrderedDict()
        self._young = YoungBodies()  # bodies below min_frames: their frames' deltas (module docstring)
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
            spool = spool_root(Path(home)) if home is not None else "table" if isinstance(self.store, TableStore) else None
        self.spool = (TableSpool(engine, lambda: self._owner) if spool == "table"
                      else Spool(Path(spool)) if spool is not None else None)
        self.recovered = 0  # frames writers left in the spool (dead or parked), adopted by this stage
        self.parked = 0  # frames of bodies still young at close, left in the spool for the next writer
        self.copies = 0  # learnt frames not counted: another image of the exposure stands for it
        self._run_from = dbsensors.next_image_id(engine)  # images stored from now on: this run's
        if self.spool is not None:
            self._recover()

    @property
    def folder(self) -> Path | None:
        return getattr(self.store, "folder", None)

    def resident(self) -> list[int]:
        """Sensor ids whose accumulators are in memory, least recently fed first."""
        return list(self._deltas)

    def young(self) -> list[int]:
        """Sensor ids whose frames are kept as deltas (below ``min_frames``), least recently fed first."""
        return list(self._young)

    def resident_bytes(self) -> int:
        """Bytes of the accumulators, young bodies' frame deltas and kept ``prev`` arrays in
        memory (what ``memory_mb`` bounds)."""
        return (sum(acc.nbytes for acc in self._deltas.values()) + sum(p.nbytes for p in self._chains.values())
                + self._young.nbytes())

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
        """Adopt and count the frames writers left in the spool (see the class); those not
        counted here (counted or claimed elsewhere, of another database) are removed."""
        left = (recover_table(self.engine, self.store.claimer_alive, self._token)
                if isinstance(self.spool, TableSpool) else recover(self.spool.root))
        for frame in left:
            if self._belongs(frame) and self._accept(frame.sid, frame.sha256, frame.image_id, frame.delta,
                                                     frame.where):
                self.recovered += 1
            else:
                self.spool.discard(frame.where)

    def _belongs(self, frame: Spooled) -> bool:
        """Whether a frame read back from the spool is still to count, in this database."""
        sid, sha, image_id, delta = frame.sid, frame.sha256, frame.image_id, frame.delta
        if sha in self._seen or dbsensors.frame_counted(self.engine, sha) \
                or not dbsensors.list_sensors(self.engine, only=sid):
            return False
        # the frame's image must still be that content of that sensor (a spool left
        # beside a database since rebuilt could meet reused ids)
        camera_id = dbsensors.image_camera_of_frame(self.engine, image_id, sha)
        return camera_id is not None and sid == dbsensors.sensor_id(
            self.engine, camera_id, delta.width, delta.height, delta.layout,
            pattern_name(delta.pattern, delta.colors), FORMAT_VERSION)

    def _accept(self, sid: int, sha: str, image_id: int, delta, where=None) -> bool:
        """Count one frame's delta for sensor ``sid`` (kept, and spooled, while the body is
        young; ``where``: its place in another writer's spool, adopted); False when it
        does not fit the sensor, or when it was counted meanwhile or is being counted by
        another writer (another machine: its claim, :meth:`_claim`)."""
        if not self._claim(sha, sid):
            return False
        if sid not in self._stored:
            rows = dbsensors.list_sensors(self.engine, only=sid)
            self._stored[sid] = rows[0].frames if rows else 0
        try:
            self._add(sid, sha, delta)
        except (ValueError, OverflowError):
            dbsensors.release_claims(self.engine, self._owner, [sha])
            return False
        self.peak_bytes = max(self.peak_bytes, self.resident_bytes())
        self._since.setdefault(sid, time.monotonic())
        self._seen.add(sha)
        self._ledger.setdefault(sid, []).append((sha, image_id))
        if self.spool is not None and where is not None:
            self.spool.adopt(sid, sha, where)  # stays on disk, now this writer's, until a flush counts it
        elif self.spool is not None and isinstance(delta, FrameDelta) \
                and self._stored.get(sid, 0) < self.settings.min_frames:
            # young: not flushed on the clock nor at close, so a crash would lose it
            # (module docstring); a delta left on a Dask cluster is not here to keep
            self.spool.keep(sid, sha, image_id, delta)
        if len(self._ledger[sid]) >= self.settings.flush_frames:
            self.flush(sid)
        return True

    def _add(self, sid: int, sha: str, delta) -> None:
        """Keep the frame's delta while its body stays young, else add it to the body's
        accumulator (made on the first frame past young: the kept ones replayed into it).
        Raises ValueError or OverflowError (the delta does not fit) with nothing counted
        but the kept frames (then in the accumulator)."""
        acc = self._deltas.get(sid)
        if acc is None and isinstance(delta, FrameDelta) \
                and self._stored[sid] + self._young.count(sid) + 1 < self.settings.min_frames \
                and self._young.size(sid) + delta.nbytes <= SITE_BYTES * delta.width * delta.height:
            # young, and its deltas no bigger than an accumulator (noisy 16-bit frames:
            # ~6.8 bytes a site each, so from the 4th one on an accumulator is smaller)
            self._make_room(delta.nbytes, sid)
            self._young.keep(sid, sha, delta)
            return
        if acc is None:
            # less the body's own kept deltas, freed once replayed into the accumulator
            self._make_room(SITE_BYTES * delta.width * delta.height - self._young.nbytes(sid), sid)
            acc = self._grown(sid, delta)
        acc = pending_for(acc, delta)  # a delta left on a Dask cluster: merged there at the flush
        acc.add(delta)
        self._deltas[sid] = acc
        self._deltas.move_to_end(sid)

    def _take_young(self, sid: int) -> list[FrameDelta]:
        """A young body's frames, those written out read back from the spool; one that
        cannot be is not counted (its claim released, its frame out of the ledger)."""
        kept, lost = self._young.take(sid, self.spool.load if self.spool is not None else None)
        if lost:
            self._ledger[sid] = [(sha, i) for sha, i in self._ledger.get(sid, []) if sha not in lost]
            self._seen.difference_update(lost)
            dbsensors.release_claims(self.engine, self._owner, lost)
            message = f"sensor {sid}: {len(lost)} frame(s) not counted: the spool could not give them back"
            self.errors.append((sid, message))
            self.report(message)
        return kept

    def _grown(self, sid: int, like) -> SensorAccumulator:
        """Sensor ``sid``'s new accumulator: its young frames replayed (then it is already
        resident, whatever becomes of the next frame), or empty of ``like``'s geometry;
        resuming from the body's kept last frame values when there are some."""
        kept, prev = self._take_young(sid), self._chains.pop(sid, None)
        if kept:
            self._deltas[sid] = acc = replay(kept, prev=prev)
            return acc
        chained = prev is not None and prev.shape == (like.height, like.width)
        return SensorAccumulator(like.height, like.width, layout=like.layout, pattern=like.pattern,
                                 params=like.params, prev=prev if chained else None, chained=chained)

    @property
    def owner(self) -> int | None:
        """This stage's token in ``sensor_claims`` (None before its first claim)."""
        return self._owner

    def _token(self) -> int:
        """This stage's token in ``sensor_claims``, made on first use: from then on this
        stage is a writer others see alive (``store.hold_claims``) until :meth:`close`."""
        if self._owner is None:
            import secrets

            self._owner = 1 + secrets.randbelow(2**31 - 2)
            self.store.hold_claims(self._owner)
        return self._owner

    def _claim(self, sha: str, sid: int) -> bool:
        """Claim the frame for this stage (:func:`db.sensors.claim_frame`)."""
        return dbsensors.claim_frame(self.engine, sha, sid, self._token(), self.store.claimer_alive)

    def _make_room(self, needed: int, sid: int) -> None:
        """Until ``needed`` more bytes fit in the budget (or nothing is left: one body is
        always allowed), free, cheapest loss first: young bodies' deltas the spool holds
        (dropped from memory, read back when the body grows: nothing lost), the oldest
        kept ``prev`` arrays (but ``sid``'s own: one consecutive pair then not counted),
        then the least recently fed bodies, flushed (an accumulator frees 26 bytes a site;
        a young body without a spool is flushed as any)."""
        while self.resident_bytes() + needed > self.budget:
            young = self._young.least_recent(but=sid)
            if young is not None and self.spool is not None \
                    and self.spool.safe(young, [sha for sha, _ in self._ledger.get(young, [])]):
                self._young.write_out(young)
                continue
            old = next((k for k in self._chains if k != sid), None)
            if old is not None:
                del self._chains[old]
                continue
            victim = next((k for k in self._deltas if k != sid), young)
            if victim is None:
                return
            self.evictions += 1
            self.flush(victim)

    def flush_due(self) -> None:
        """Flush every sensor whose oldest unflushed frame is ``flush_seconds`` old. Runs on
        each new frame; a daemon should also call it when idle, or frames wait for the next
        frame of the same sensor (or the daemon's stop) to reach the store.

        A young sensor (stored and unflushed frames together fewer than ``min_frames``)
        waits: a flush would have no defects to report, and each one writes the whole
        accumulator (26 bytes a site: 312 MB, ~0.8 s of CPU for 12 MP) and makes the
        next one load and merge it again. Its frames reach the store when it has
        ``min_frames``, at ``flush_frames`` or when evicted; at :meth:`close` they are
        left in the spool (parked)."""
        now = time.monotonic()
        due = [s for s, since in self._since.items() if now - since >= self.settings.flush_seconds
               and self._stored.get(s, 0) + len(self._ledger.get(s, ())) >= self.settings.min_frames]
        for sid in due:
            self.flush(sid)

    def path(self, sid: int) -> Path:
        """The sensor's accumulator file (a :class:`FolderStore` only)."""
        return self.store.path(sid)

    def flush(self, sid: int) -> None:
        """Merge the sensor's frames since its last flush into its stored statistics (a
        young body's kept frames replayed into an accumulator first)."""
        if sid in self._young:
            kept = self._take_young(sid)
            if kept:
                self._deltas[sid] = replay(kept, prev=self._chains.pop(sid, None))
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

    def _park(self, sid: int) -> None:
        """Leave a young body's frames in the spool for the next writer (its claims end
        with the others' at :meth:`close`): nothing saved, an accumulator dropped."""
        ledger = self._ledger.pop(sid, [])
        self._young.take(sid, lambda *_: None)  # nothing read back: they stay where they are
        self._deltas.pop(sid, None)
        self._since.pop(sid, None)
        self._seen.difference_update(sha for sha, _ in ledger)
        self.parked += len(ledger)

    def _advice(self) -> str:
        if isinstance(self.store, FolderStore):
            return "the file is left as it was; move it away to start this sensor afresh"
        return "the stored statistics are left as they were"

    def close(self) -> None:
        """Park the bodies still below ``min_frames`` (stored and new frames together)
        whose frames are all in the spool; flush the others (and those: no spool, or a
        write that failed). A body may have an accumulator below ``min_frames`` (its
        deltas grew bigger than one, or it was flushed early): it is not saved either."""
        for sid in list(self._young) + list(self._deltas):
            ledger = self._ledger.get(sid, [])
            if self._stored.get(sid, 0) + len(ledger) < self.settings.min_frames and self.spool is not None \
                    and self.spool.safe(sid, [sha for sha, _ in ledger]):
                self._park(sid)
        for sid in list(self._deltas) + list(self._young):
            self.flush(sid)
        self._chains.clear()
        if self.spool is not None:
            self.spool.close()
        if self._owner is not None:  # every claim was counted or released by now
            dbsensors.release_claims(self.engine, self._owner)
            self.store.release_hold()
            self._owner = None
