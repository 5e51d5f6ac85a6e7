"""The matching stage of ``index``/``watch``, and ``rematch`` (batch mode over the database).

The engine (:mod:`indexer.match`) is pure; this module feeds it records from the
database, has candidate pairs verified (:mod:`indexer.pipeline.verifypool`), stores the
pairs it accepts; each write of pairs refreshes the groups it touches in its transaction
(:mod:`db.groups`). The report is :mod:`indexer.commands.dupes`.
"""
from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from db import pairs as dbpairs
from indexer import decode
from indexer.measure import orient
from indexer.outcomes import Indexed
from indexer.pipeline import detailstage
from indexer.pipeline.exposurestage import refine_pairs
from indexer.match import fanout
from indexer.match.engine import MatchRecord, Matcher, PairEvidence, shot_relation
from indexer.match.groups import UnionFind
from indexer.match.params import MatchParams
from indexer.match.shots import body_key
from indexer.pipeline.matchindex import IndexKeeper, index_file
from indexer.pipeline.pixelproof import PixelProof
from indexer.pipeline.pools import worker_count
from indexer.session import Session
from indexer.pipeline.verifypool import Verifier


def record_of(image_id: int, result: Indexed) -> MatchRecord:
    """The engine's view of a freshly analysed image."""
    d, f = result.decoded, result.features
    swap = orient.swaps_axes(orient.from_exif(d.orientation))
    cam = d.meta.camera
    return MatchRecord(id=image_id, sha256=d.sha256, phash=f.phash, phash_d4=f.phash_d4,
                       phash_crops=f.phash_crops, thumb=f.thumb, hist=f.hist,
                       width=d.height if swap else d.width, height=d.width if swap else d.height,
                       entropy=f.entropy, luma_std=f.luma_std, dhash=f.dhash,
                       captured_at=d.meta.capture.captured_at, format=d.format,
                       camera=None if cam is None else body_key(cam.make, cam.model, cam.serial),
                       orientation=d.orientation)


def pixels_equal_for(session: Session):
    """A callable comparing two images' full-size decoded pixels (digests cached in SQL)."""
    return pixel_equality(session.engine, session.settings.index.max_pixels)


def pixel_equality(engine, limit: int):
    """:func:`pixels_equal_for` on ``engine``, decoding at most ``limit`` pixels (a stack
    frame's digest is always stored: :func:`indexer.decode.array_pixel_digest`)."""

    def digest(image_id: int) -> str | None:
        path, stored = dbpairs.pixel_digest_of(engine, image_id)
        if stored:
            return stored
        try:
            value = decode.pixel_digest(path, max_pixels=limit)
        except (decode.DecodeError, OSError):
            return None
        dbpairs.set_pixel_digest(engine, image_id, value)
        return value

    payloads: dict[int, str | None] = {}

    def payload(image_id: int) -> str | None:
        if image_id not in payloads:
            path, _ = dbpairs.pixel_digest_of(engine, image_id)
            try:
                payloads[image_id] = decode.payload_digest(path)
            except (decode.DecodeError, OSError):
                payloads[image_id] = None
        return payloads[image_id]

    def equal(a: int, b: int) -> bool:
        pa, pb = payload(a), payload(b)
        if pa is not None and pa == pb:
            return True  # same coded JPEG data: same pixels, no decode needed
        da, db = digest(a), digest(b)
        return da is not None and da == db

    return equal


def matcher_params(session: Session) -> MatchParams:
    return session.settings.match.params(session.settings.verdict)


def new_matcher(session: Session, records: Iterable[MatchRecord] = ()) -> Matcher:
    return Matcher.from_records(records, matcher_params(session), pixels_equal=pixels_equal_for(session))


def regroup(session: Session) -> int:
    """Recompute every stored group (``[match] group_verdicts``); returns how many.

    Writers keep ``image_groups`` current in their transactions; this full
    recomputation is for ``rematch`` and repair (e.g. after ``group_verdicts`` changed)."""
    return dbpairs.rebuild_groups(session.engine, group_rule=session.settings.group_rule())


EQUAL_VERDICTS = ("same_file", "same_pixels")
EXPOSURES_KEPT = 4096  # images whose EXIF exposure the stage keeps for their pairs (~0.2 kB each)


def spanning_equal(pairs: list[PairEvidence], *, new_id: int | None = None) -> list[PairEvidence]:
    """Keep every pair except redundant equalities: of the ``same_file``/``same_pixels``
    pairs, only a spanning forest (lowest ids first) is kept.

    k byte- or pixel-identical copies form k(k-1)/2 pairs that say nothing the k-1 edges
    of a tree do not (equality is transitive); storing all of them grows quadratically
    with a much-copied file. Groups are connected components, so they are unchanged.
    ``new_id``: incremental mode, all pairs involve this image and its equal partners are
    already linked to each other, so one equality edge attaches it.
    """
    forest = UnionFind()
    if new_id is not None:
        partners = [p.a if p.b == new_id else p.b for p in pairs if p.verdict in EQUAL_VERDICTS]
        for other in partners[1:]:
            forest.union(partners[0], other)
    kept = []
    for pe in sorted(pairs, key=lambda p: (p.verdict not in EQUAL_VERDICTS, p.a, p.b)):
        if pe.verdict in EQUAL_VERDICTS:
            if forest.find(pe.a) == forest.find(pe.b):
                continue
            forest.union(pe.a, pe.b)
        kept.append(pe)
    return sorted(kept, key=lambda p: (p.a, p.b))


class MatchStage:
    """Post-store hook: match each stored image against everything indexed before it.

    Candidates are found here, in the writer; their pixel verification runs in a
    :class:`~indexer.pipeline.verifypool.Verifier` (worker processes once it costs more than a
    second), so the writer goes on storing the next files meanwhile. An image's pairs
    are stored when all its candidates are verified: at a later call, at
    :meth:`flush_due` (the daemon's heartbeat) or at :meth:`close`, which waits for all.
    """

    save_idle = 10.0  # seconds without a new image before a running daemon saves its index (if due)
    # seconds between two catch-ups with rows other writers stored (see _catch_up_if_due):
    # one costs a read of the rows changed since the last (~REPLAY of them at least)
    catch_up_every = 2.0

    def __init__(self, session: Session):
        self.session = session
        self.matcher: Matcher | None = None
        self.keeper: IndexKeeper | None = None
        self.verifier: Verifier | None = None
        self.waiting: dict[int, _Waiting] = {}  # image id -> its pairs being verified
        self.parked: list = []  # (image id, job, verified) waiting for a pixel digest
        self.saving: dict[int, list[PairEvidence]] = {}  # image id -> its final pairs, stored at _flush
        self.batching = False  # inside a writer's batch (prepare .. end_batch): flush at its end
        self.released: list[int] = []  # images stored whose waiting partners are being advanced
        self.detailing: dict[int, list[PairEvidence]] = {}  # image id -> its pairs, waiting for detail measures
        self.proof: PixelProof | None = None
        self.looked = False
        self.mark = None  # what the saved index is up to date with
        self.unsaved = 0  # images changed since the saved index (the catch-up's, then each match)
        self.last_add = time.monotonic()
        self.caught_up = time.monotonic()  # when the index last caught up with other writers' rows
        self.group_rule = session.settings.group_rule()
        # the related verdicts whose stored pairs imply a copy's (those not grouping)
        self.implied_verdicts = [v for v in fanout.IMPLIED_VERDICTS if v not in self.group_rule.verdicts]
        self.pool_first = False  # verification in the pool from the first job (expect)
        # group ids (None: no group) the stage's own writes stored in the current _flush:
        # read instead of image_groups while nothing else wrote (None outside a flush)
        self.known: dict[int, int | None] | None = None
        # id -> (exposure_time, iso, f_number) of the images indexed lately, for their
        # pairs' EXIF-predicted delta EV (db.pairs.save_pairs reads the others): one
        # statement less per store of pairs (~290 in a 432-image run of the dense set)
        self.exposures: OrderedDict[int, tuple] = OrderedDict()

    def expect(self, files: int) -> None:
        """``index`` will analyse ``files`` files: at ``[match] pool_files`` or more, the
        verification pool starts at the first job and the writer verifies none itself
        (it would load numba for it: see the setting)."""
        pool_files = self.session.settings.match.pool_files
        self.pool_first = bool(pool_files) and files >= pool_files
        if self.pool_first and self.verifier is not None:
            self.verifier.pool_after, self.verifier.patient = 0.0, True

    def __call__(self, image_id: int, result: Indexed) -> None:
        if self.matcher is None:
            self._start(skip=image_id)
        elif not self.batching:
            self._catch_up_if_due()
        cap = result.decoded.meta.capture
        self.exposures[image_id] = (cap.exposure_time, cap.iso, cap.f_number)  # as the store stored them
        self.exposures.move_to_end(image_id)
        while len(self.exposures) > EXPOSURES_KEPT:
            self.exposures.popitem(last=False)
        self._match(record_of(image_id, result))

    def prepare(self) -> None:
        """Open the index before the writer stores a batch of rows (their records come
        through :meth:`__call__`, one at a time, as when stored alone)."""
        if self.matcher is None:
            self._start()
        else:
            self._catch_up_if_due()
        self.batching = True

    def _catch_up_if_due(self) -> None:
        """Hold the rows other writers stored since the index was opened or last caught
        up (at most every :attr:`catch_up_every` seconds, before new images are matched).

        The index is read once, when the stage starts; a ``watch`` daemon runs for days.
        Without this, a photo that ``photoqa index`` (or a second daemon) stored after the
        daemon started was never a candidate for the daemon's new images: a flipped copy
        of it landing in the watched folder was stored with no pair (seen 2026-12-08).
        Rows are held as at start-up (:meth:`IndexKeeper.catch_up`: nothing proposed for
        them; their own writer matched them). Two writers that store copies of each other
        within one interval can still both miss the pair: each holds the other's rows
        only from its next catch-up on."""
        now = time.monotonic()
        if self.keeper is None or self.mark is None or now - self.caught_up < self.catch_up_every:
            return
        self.caught_up = now
        self.mark, changed = self.keeper.catch_up(self.matcher, self.mark)
        self.unsaved += changed

    def end_batch(self) -> None:
        """The writer's batch went through the stages: store its images' pairs (one
        transaction for the batch, not one per image)."""
        self.batching = False
        if self.matcher is not None:
            self._flush()

    def _match(self, rec: MatchRecord) -> None:
        """Forget ``rec``'s old pairs, index it, and plan the verification of its
        candidates (:meth:`_plan`): those still being matched themselves later."""
        self.proof.forget(rec.id)
        self.saving.pop(rec.id, None)  # indexed again before its pairs were stored: matched afresh
        proposals = self.matcher.propose_and_add(rec)
        self.unsaved += 1
        self.last_add = time.monotonic()
        # A candidate whose own pairs are not stored yet may be about to join a group:
        # planned now, the new image would be verified against every member of that
        # group-to-be (a folder of 18 copies in a row: 1,789 verifications for 432
        # images instead of ~1 each). Those pairs wait for them (held); the others are
        # verified at once, so a burst of copies of one original is verified against it
        # side by side instead of one after another (:meth:`_plan`).
        blockers = {x for key in proposals for x in key
                    if x != rec.id and (x in self.waiting or x in self.detailing or x in self.saving)}
        self._plan(rec.id, proposals, blockers if self.session.settings.match.group_tries else set(), fresh=True)
        self._store(self.verifier.results())
        self._unpark()
        self._detailed()
        if not self.batching:
            self._flush()

    def _plan(self, image_id: int, proposals: dict, blockers: set[int], *, fresh: bool = False) -> None:
        """Send ``image_id``'s candidates to verification: one member of each stored
        group they hit at a time (:mod:`indexer.match.fanout`), every other candidate.
        ``fresh``: ``image_id`` was just (re)indexed: its old pairs, if any, are forgotten
        first (they are found again), in the round trip that reads its candidates' groups.

        Pairs with ``blockers`` (candidates whose own pairs are not stored yet: they may
        be about to join a group) are held (:meth:`_advance`): while ``image_id`` has
        joined no group, the closest held pair is verified at once (one at a time) and
        each held pair is decided when its partner is stored; once it joined a partner,
        the held pairs are decided when every blocker is stored, and verified only where
        the partner did not end in a group ``image_id`` joined. Before,
        the whole image waited for its blockers: the 17 copies of each photo of the dense
        set were verified one after another, a writer round trip each (in a 42 s run at
        load 10, 6.8 s after the last file was stored went to that chain, writer idle).

        Loose candidates related to a group being verified by a clear exposure_variant
        pair wait for that group's verdict (``implied``, :meth:`_implied_known`): dropped
        if ``image_id`` joins it, verified if not. On the dense set of
        bench/end_to_end.py this and the related-verdict rules of :meth:`_conclude`,
        :meth:`_advance` and :meth:`_plan_ready` took the jobs from 754 to 441 (stored
        exposure_variant pairs 335 -> 26), the same 24 groups of 407 images."""
        tries = self.session.settings.match.group_tries
        loose = self.session.settings.match.loose_tries
        hits = getattr(proposals, "hits", None)
        best = {key: min(p.hamming for p in slot.values()) for key, slot in proposals.items()}
        held = {key for key in best if fanout.partner(key, image_id) in blockers}
        partners = {fanout.partner(key, image_id) for key in best} - blockers
        lookup = partners if tries else set()
        facts = self._facts(lookup, linked=lookup, forget=image_id if fresh else None)
        if facts.paired:  # indexed again: its old pairs and the groups they made go first
            dbpairs.forget_pairs_of(self.session.engine, image_id, group_rule=self.group_rule)
            facts = self._facts(lookup, linked=lookup)
        grouped = facts.groups
        # loose candidates related to a group this image is verified against wait for
        # that verdict: joined, their pair is implied (fanout.implied)
        implied = fanout.implied(image_id, [k for k in best if k not in held], self._links(
            image_id, partners - set(grouped), facts.links), set(grouped.values())) if tries else {}
        now = fanout.unheld(image_id, best, grouped, held | set(implied), loose=loose, hits=hits)
        stands_for = {g: self.matcher.index.representative(g) for g in set(grouped.values())}
        plan = fanout.plan(image_id, now, grouped, tries=max(tries, 1), stands_for=stands_for,
                           loose=loose, hits=hits)
        self.waiting[image_id] = _Waiting(0, plan=plan, proposals=proposals, blockers=set(blockers), held=held,
                                          best=best, implied=implied)
        self._send(image_id, plan.now, {k for k in plan.now if fanout.partner(k, image_id) not in grouped})
        self._advance(image_id)

    def _links(self, image_id: int, loose: set[int], links: dict[int, list[tuple]]) -> dict[int, set[int]]:
        """Loose candidate -> the groups of the members its stored pairs of
        :data:`~indexer.match.fanout.IMPLIED_VERDICTS` reach, where those pairs imply the
        verdict for a copy of the member (:func:`~indexer.match.fanout.implies`) and
        metadata does not say ``image_id`` and the candidate are one shot (an exposure
        edit of one shot is ``derived``: it would join the group). ``links``: those
        stored pairs, as :func:`db.pairs.plan_facts` read them."""
        if not loose or not self.implied_verdicts:
            return {}
        th = self.matcher.th
        stored = {x: [g for _, dev, corr, _, g in links.get(x, ())
                      if fanout.implies(dev, corr, exposure_ev=th.exposure_ev, exposure_corr_rank=th.exposure_corr_rank)]
                  for x in loose}
        stored = {x: gs for x, gs in stored.items() if gs}
        if not stored:
            return {}
        recs = self.matcher.records.get_many([image_id, *stored])
        return {x: {g for g in gs if g is not None} for x, gs in stored.items()
                if image_id in recs and x in recs and shot_relation(recs[image_id], recs[x]).same_shot is not True}

    def _facts(self, ids: set[int], *, linked: set[int] = frozenset(), forget: int | None = None) -> dbpairs.PlanFacts:
        """The groups of ``ids`` and the implying links of ``linked`` (and whether
        ``forget`` has pairs) in one round trip (:func:`db.pairs.plan_facts`); in a
        :meth:`_flush`, the groups its refreshes rewrote are not read again (in a run of
        the dense set, images released by a store read their partners' groups at once:
        ~1,000 lookups, most of them of the component just refreshed)."""
        return dbpairs.plan_facts(self.session.engine, ids, linked=linked, verdicts=self.implied_verdicts,
                                  forget=forget, known=self.known)

    def _implies(self, pe: PairEvidence | None) -> bool:
        """Whether ``pe`` is a related pair another copy of its partner would measure
        alike (:func:`~indexer.match.fanout.implies`; not one shot by metadata)."""
        th = self.matcher.th
        return (pe is not None and pe.verdict in fanout.IMPLIED_VERDICTS and pe.verdict not in self.group_rule.verdicts
                and pe.same_shot is not True
                and fanout.implies(pe.delta_ev, pe.correlation, exposure_ev=th.exposure_ev,
                                   exposure_corr_rank=th.exposure_corr_rank))

    def _implied_known(self, image_id: int, waiting: "_Waiting", group: int, joined: bool) -> None:
        """``image_id``'s verdict against ``group`` is known: the pairs waiting on it
        (:attr:`_Waiting.implied`) are dropped if it joined (implied), else verified once
        no other group they wait on is left (within ``[match] loose_tries``)."""
        release = []
        for key, groups in list(waiting.implied.items()):
            if group not in groups:
                continue
            if joined:
                del waiting.implied[key]
                waiting.implied_dropped += 1
                continue
            groups.discard(group)
            if not groups:
                del waiting.implied[key]
                release.append(key)
        self._send_loose(image_id, waiting, release)

    def _send_loose(self, image_id: int, waiting: "_Waiting", keys: list) -> None:
        """Verify ``keys`` (partners in no group), the closest first, within what is left
        of ``[match] loose_tries``."""
        loose = self.session.settings.match.loose_tries
        keys = sorted(keys, key=lambda k: (waiting.best[k], fanout.partner(k, image_id)))
        if loose:
            keys = keys[:max(loose - waiting.lone, 0)]
        if keys:
            self._send(image_id, keys, set(keys))

    def _send(self, image_id: int, keys, lone: set) -> None:
        """Submit the jobs of ``image_id``'s pairs ``keys`` (``lone``: those whose partner is
        in no group, counted against ``[match] loose_tries``)."""
        waiting = self.waiting[image_id]
        jobs = self.matcher.jobs_of({key: waiting.proposals[key] for key in keys})
        waiting.left += len(jobs)
        waiting.tried.update(keys)
        waiting.lone += len(lone)
        for job in jobs:
            self.verifier.submit(image_id, job)

    def _advance(self, image_id: int) -> None:
        """Go on with ``image_id`` once its jobs in flight concluded (at a result, or when
        a blocker was stored): plan its held pairs whose partners are stored
        (:meth:`_plan_ready`); while it joined no group, verify its closest held pair
        (within the ``loose_tries`` cap) instead of waiting; finish when nothing is left."""
        waiting = self.waiting.get(image_id)
        if waiting is None or waiting.left:
            return
        if waiting.implied:  # a group's verdict never came (no job): verify as any other pair
            keys, waiting.implied = list(waiting.implied), {}
            self._send_loose(image_id, waiting, keys)
            if waiting.left:
                return
        joined = self._joined(image_id, waiting)
        # joined to some partner, the ready pairs are decided when every blocker is stored
        # (one look at the groups, not one per blocker: 1,385 lookups on the dense set)
        if waiting.ready and (not joined or not waiting.blockers) and self._plan_ready(image_id, waiting, joined):
            return
        if not waiting.blockers and not waiting.ready:
            self._finish(image_id)
            return
        loose = self.session.settings.match.loose_tries
        # related to a partner by an implying pair, the held pairs wait for their partners'
        # groups: those in that partner's group are implied (_plan_ready)
        if waiting.held and not joined and not (loose and waiting.lone >= loose) and not self._related(image_id, waiting):
            first = min(waiting.held, key=lambda k: (waiting.best[k], fanout.partner(k, image_id)))
            waiting.held.discard(first)
            self._send(image_id, [first], {first})

    def _related(self, image_id: int, waiting: "_Waiting") -> set[int]:
        """The partners ``image_id`` was paired with by an implying related verdict so far
        (:meth:`_implies`)."""
        return {fanout.partner((pe.a, pe.b), image_id) for pe in waiting.found if self._implies(pe)}

    def _joined(self, image_id: int, waiting: "_Waiting") -> set[int]:
        """The partners ``image_id`` was paired with by a group verdict so far."""
        return {fanout.partner((pe.a, pe.b), image_id) for pe in waiting.found if pe.verdict in self.group_rule.verdicts}

    def _plan_ready(self, image_id: int, waiting: "_Waiting", joined: set[int]) -> int:
        """Plan ``image_id``'s held pairs whose partners are stored now (``ready``): those
        whose partner is in no group ``image_id`` joined through its verified pairs, by the
        rules of :meth:`_plan` (members of a group tried ``group_tries`` times and the
        candidates in no group verified count); returns how many jobs were sent."""
        m = self.session.settings.match
        ready, waiting.ready = waiting.ready, set()
        partners = {fanout.partner(key, image_id) for key in ready}
        tried = {fanout.partner(key, image_id) for key in waiting.tried}
        related = self._related(image_id, waiting)
        # the links are read only when a group was joined (connected below)
        facts = self._facts(partners | joined | tried | related, linked=partners if joined else set())
        grouped = facts.groups
        connected = joined | {grouped[x] for x in joined if x in grouped}
        # the groups of partners it is related to by an implying pair: their other members
        # would measure the same relation (fanout.implies)
        near = related | {grouped[x] for x in related if x in grouped}
        skipped = {key for key in ready if fanout.partner(key, image_id) in near
                   or grouped.get(fanout.partner(key, image_id)) in near}
        waiting.implied_dropped += len(skipped)
        ready = ready - skipped
        # a loose partner related to a group joined: the pair is implied (fanout.implied)
        links = self._links(image_id, {x for x in partners if x not in grouped}, facts.links) if connected else {}
        dropped = fanout.implied(image_id, ready, links, connected)
        waiting.implied_dropped += len(dropped)
        ready = ready - set(dropped)
        spent = Counter(grouped[x] for x in tried if x in grouped)
        tries = max(m.group_tries, 1)
        best = {key: waiting.best[key] for key in ready
                if fanout.partner(key, image_id) not in connected and grouped.get(fanout.partner(key, image_id)) not in connected
                and spent[grouped.get(fanout.partner(key, image_id))] < tries}
        loose = m.loose_tries
        if loose:  # the candidates verified that ended in no group spent the cap
            loose -= sum(1 for x in tried if x not in grouped)
            if loose <= 0:
                best = {key: d for key, d in best.items() if fanout.partner(key, image_id) in grouped}
                loose = 0
        if not best:
            return 0
        grouped = {x: g for x, g in grouped.items() if x in partners}
        stands_for = {g: self.matcher.index.representative(g) for g in set(grouped.values())}
        waiting.plan = fanout.plan(image_id, best, grouped, tries=tries, stands_for=stands_for,
                                   loose=loose, hits=getattr(waiting.proposals, "hits", None))
        self._send(image_id, waiting.plan.now, set())
        return waiting.left

    def _start(self, skip: int | None = None) -> None:
        """Open the index (the saved one brought up to date, else built from every row),
        then match the images whose pairs were never stored (an earlier run stopped while
        verifying them, or matched with matching off)."""
        engine = self.session.engine
        waiting = sorted(set(dbpairs.unmatched_ids(engine)) - {skip})
        m = self.session.settings.match
        # no pixels_equal for the matcher: the stage proves same_pixels itself (self.proof)
        self.keeper = IndexKeeper(engine, index_file(self.session.url, m.index_file), matcher_params(self.session),
                                  min_images=m.index_file_min,
                                  resave_after=m.index_file_resave)
        started = self.keeper.open()
        self.matcher, self.mark, self.unsaved = started.matcher, started.mark, started.changed
        self.verifier = Verifier(self.matcher.th, self.matcher.max_transforms, memo=self.matcher.memo,
                                 workers=worker_count(m.verify_workers),
                                 pool_after=0.0 if self.pool_first else m.pool_after, patient=self.pool_first,
                                 executor=self.session.verify_executor)
        self.proof = PixelProof(engine, self.verifier, max_pixels=self.session.settings.index.max_pixels,
                                inline_pixels=m.digest_inline_pixels)
        for rec in dbpairs.load_records(engine, waiting):
            self._match(rec)

    def _store(self, done) -> None:
        """Conclude verified jobs; a pair that needs a pixel digest not computed yet
        waits (parked) until :meth:`_unpark` finds it."""
        for image_id, job, verified in done:
            if self.matcher.needs_pixels(job, verified):
                equal = self.proof.answer(job.a, job.b)
                if equal is None:
                    self.parked.append((image_id, job, verified))
                    continue
                self._conclude(image_id, job, verified, lambda equal=equal: equal)
            else:
                self._conclude(image_id, job, verified, None)

    def _unpark(self, *, block: bool = False) -> None:
        """Conclude the parked pairs whose digests arrived."""
        if not self.proof.collect(block=block):
            return
        parked, self.parked = self.parked, []
        self._store(parked)

    def _conclude(self, image_id: int, job, verified, pixels_equal) -> None:
        waiting = self.waiting[image_id]
        pe = self.matcher.conclude(job, verified, pixels_equal=pixels_equal or (lambda: False))
        if pe is not None:
            waiting.found.append(pe)
        joined = pe is not None and pe.verdict in self.group_rule.verdicts
        key = (job.a.id, job.b.id)
        following = waiting.plan.concluded(key, joined, related=self._implies(pe)) if waiting.plan else None
        if following is not None:  # that member gave no group verdict: try the next one
            self._send(image_id, [following], set())
        elif waiting.implied and waiting.plan and key in waiting.plan.group:  # that group's verdict is known
            group = waiting.plan.group[key]
            self._implied_known(image_id, waiting, group, group in waiting.plan.settled)
        waiting.left -= 1
        self._advance(image_id)

    def _finish(self, image_id: int) -> None:
        """All of ``image_id``'s candidates are verified: store its pairs, or first have
        the resized ones' detail measured in the verification pool (full-size decodes,
        never in the writer: :mod:`indexer.pipeline.detailstage`)."""
        found = spanning_equal(self.waiting.pop(image_id).found, new_id=image_id)
        found = refine_pairs(self.session, self.matcher.records, found)
        tasks = detailstage.tasks_of(self.session.engine, self.matcher.records, found,
                                     verdicts=self.group_rule.verdicts)
        if not tasks:
            self._save(image_id, found)
            return
        self.detailing[image_id] = found
        self.verifier.submit_detail(image_id, tasks, max_pixels=self.session.settings.index.max_pixels)

    def _detailed(self, *, block: bool = False) -> bool:
        """Store the pairs whose detail measures arrived; True if any did."""
        arrived = self.verifier.details(block=block)
        for image_id, measured in arrived:
            self._save(image_id, detailstage.with_detail(self.detailing.pop(image_id), measured))
        return bool(arrived)

    def _save(self, image_id: int, found: list[PairEvidence]) -> None:
        """``image_id``'s pairs are final: stored at the next :meth:`_flush`."""
        self.saving[image_id] = found

    def _flush(self) -> None:
        """Store the finished images' pairs, all of them in one transaction and one group
        refresh, then advance the images held on them; again for those that finish
        meanwhile. Called at the end of a writer batch (:meth:`end_batch`), after an
        image stored alone, and by :meth:`flush_due`/:meth:`close`. Each image alone cost
        the writer ~10 SQL statements and a rebuild of its group: 432 transactions and
        383 refreshes for the 432 images of the dense set, ~120 of each per batch.

        The images released read the group ids the refreshes stored (:attr:`known`): nothing
        else in this process writes groups meanwhile (the writer's store runs between
        stage calls), and another writer's commit may come a moment later as well as
        earlier: a plan is only a choice of what to verify, groups are always rebuilt
        from the stored pairs."""
        if not self.saving:
            return
        self.known = {}
        try:
            while self.saving:
                batch, self.saving = self.saving, {}
                self.known.update(dbpairs.save_pairs(self.session.engine, [pe for found in batch.values() for pe in found],
                                                     matched=list(batch), group_rule=self.group_rule,
                                                     exif=self.exposures))
                for image_id in batch:
                    self._release(image_id)
        finally:
            self.known = None

    def _release(self, done: int) -> None:
        """Advance the images whose held pairs waited for ``done`` (in arrival order; a
        loop, not recursion: an image with nothing left to verify finishes and releases
        at once)."""
        self.released.append(done)
        if len(self.released) > 1:
            return  # an outer call is draining the list
        while self.released:
            finished = self.released[0]
            for other, waiting in list(self.waiting.items()):
                if finished in waiting.blockers:
                    waiting.blockers.discard(finished)
                    key = (min(other, finished), max(other, finished))
                    if key in waiting.held:
                        waiting.held.discard(key)
                        waiting.ready.add(key)
                    self._advance(other)
            self.released.pop(0)

    def flush_due(self) -> None:
        """Store the pairs verified meanwhile (an idle daemon's heartbeat).
        At the first call, a daemon that has stored nothing yet matches the images an
        earlier run left unmatched."""
        if self.matcher is None and not self.looked:
            self.looked = True
            if dbpairs.unmatched_ids(self.session.engine):
                self._start()
        if self.verifier is not None:
            self._store(self.verifier.results())
            self._unpark()
            self._detailed()
            self._flush()
        if (self.keeper is not None and not self.waiting and not self.detailing
                and time.monotonic() - self.last_add >= self.save_idle):
            mark = self.keeper.save_if_due(self.matcher, self.mark, self.unsaved, background=True)
            if mark is not None:  # a daemon saves its index when idle, not only when it stops
                self.mark, self.unsaved = mark, 0

    def close(self) -> None:
        if self.verifier is None and dbpairs.unmatched_ids(self.session.engine):
            self._start()  # no new image this run, but some wait for their pairs
        if self.verifier is not None:
            try:
                # a result may send more jobs, ask for digests or detail, release
                while self.waiting or self.detailing:
                    done = self.verifier.results(block=True)
                    self._store(done)
                    digests = self.proof.collect(block=True)
                    detailed = self._detailed(block=not done and not digests)
                    if not done and not digests and not detailed and not self.saving:
                        break  # nothing in flight: those left keep matched_at NULL, matched next run
                    parked, self.parked = self.parked, []
                    self._store(parked)
                    self._flush()
                self._flush()
            finally:
                # also when storing failed (a damaged database): a pool left running met
                # Python 3.11's exit handler racing its manager thread, and the one-line
                # error came with an "OSError: Bad file descriptor" traceback
                self.verifier.close()
        if self.keeper is not None:
            self.keeper.close(self.matcher, self.mark, self.unsaved)


@dataclass
class _Waiting:
    left: int  # candidate pairs not verified yet
    found: list[PairEvidence] = field(default_factory=list)
    plan: fanout.Plan | None = None  # which group members are left to try
    proposals: dict = field(default_factory=dict)  # pair key -> its hash proposals
    blockers: set[int] = field(default_factory=set)  # candidates whose own pairs are not stored yet
    held: set = field(default_factory=set)  # pair keys whose partner is a blocker
    ready: set = field(default_factory=set)  # held pair keys whose partner is stored now
    best: dict = field(default_factory=dict)  # pair key -> its lowest Hamming distance
    tried: set = field(default_factory=set)  # pair keys sent to verification
    lone: int = 0  # of those, pairs with a partner in no group (``loose_tries`` cap)
    implied: dict = field(default_factory=dict)  # pair key -> groups whose verdict it waits for (fanout.implied)
    implied_dropped: int = 0  # pairs left unverified: implied by a group joined


def rematch(session: Session) -> int:
    """Batch mode: forget every pair, search all pairs of the database again; returns the count."""
    matcher = new_matcher(session, dbpairs.load_records(session.engine))
    found = refine_pairs(session, matcher.records, spanning_equal(matcher.batch_pairs()))
    found = detailstage.measure_pairs(session.engine, matcher.records, found,
                                      verdicts=session.settings.group_rule().verdicts,
                                      max_pixels=session.settings.index.max_pixels)
    dbpairs.clear_pairs(session.engine)
    dbpairs.save_pairs(session.engine, found, matched=list(matcher.records),
                       group_rule=session.settings.group_rule())
    regroup(session)
    return len(found)
