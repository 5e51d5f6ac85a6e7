"""Near-duplicate engine: candidates from hashes, verified by pixels, classified.

Pure orchestration over in-memory :class:`MatchRecord` s (no database, no files).

Candidates. Every informative image puts eleven entries in one
:class:`~indexer.match.mih.MultiIndex`: its canonical pHash and the pHashes of its crops
(``hashes.CROP_SPECS``: centred 90% and 80%, and 85% anchored at the four corners and the
four edge midpoints). Every image probes with its 8 D4 variants (``phash_d4``, so rotated
and mirrored copies are found and the transform is known) and its two centred crop hashes:
a copy's canonical or centred-crop probe meets the original's off-centre crop entries, so
the off-centre crops are entries, not probes (probing with them too found no extra Kodak
pair and tripled the query time; an added record instead queries its off-centre hashes
against the crop-channel probes of the indexed records, so incremental matching finds
what the batch join finds from either side). A probe
``crop_fq(t(q))`` hitting entry ``crop_fe(e)`` proposes "``e ~ t(q)``, with ``q``'s
content at ``fq / fe`` times ``e``'s thumbnail scale"; crossing crop and full hashes is
what finds crops of 80-95% that a global hash misses. The 8 D4 probes search within
``radius``; pairs involving a crop hash within ``crop_radius`` (defaults:
:class:`~indexer.match.params.MatchParams`; 14 rather than 10 on the Kodak set lifts
crops found from 10/24 to 17/24 and 1-5% shifts from 13/24 to 21/24 with the centred
crops alone; the off-centre entries bring the crop channel's worst
distance for crops from 24 to 14 and for shifts from 18 to 10). Records stored with fewer
crop hashes (an older ``FEATURES_VERSION``) index and probe those they have. Equal
SHA-256 always pairs. For archives of millions, set ``crop_radius = radius``: search cost grows steeply with the radius.

Verification. Per image pair, the best (lowest Hamming distance) proposal of each
transform is verified by :func:`indexer.match.verify.compare` (at most ``max_transforms``
transforms, best evidence kept) with its scale hint, then up to two other scale hints the
other hits of that transform implied, then a full scale search, stopping at the first
copy verdict; then :func:`indexer.match.verdict.decide`. The pixel work is a pure
:func:`~indexer.match.jobs.run_job` on a picklable :class:`~indexer.match.jobs.Job`, so
a caller may run it in worker processes (:meth:`Matcher.add` returns the jobs,
:meth:`Matcher.conclude` takes the result); results are memoised by the content of both
records, so copies of one picture whose bytes differ are aligned against a new image once.

Copies. An image whose 19 hashes *and* content (thumbnail, histogram, size: what
verification reads) equal an indexed image's (a byte copy, a retagged or re-wrapped one)
is that image's twin: linked to it by one verified pair, neither indexed nor probed;
images sharing a SHA-256 are linked as a star. At start-up only rows sharing a hash
signature are fetched to tell twins apart. Later candidates meet the representative only, so a folder holding hundreds
of copies of a few pictures costs a few verifications per new file, not hundreds (groups
are connected components, so they are the same).

Memory. The candidate index (:class:`~indexer.match.hashindex.HashIndex`) keeps arrays
only; full records (thumbnails) are fetched for candidate pairs through a
:class:`~indexer.match.records.RecordCache`, so :meth:`Matcher.from_rows` starts on a
1 M-image archive from its index columns alone.

Changes. :meth:`Matcher.forget` takes images out (:meth:`Matcher.compact` drops their
entries later); :meth:`Matcher.insert` holds images matched elsewhere without proposing;
:meth:`Matcher.sync` applies rows changed in the database; adding an image held already
replaces it (a re-indexed file keeps no stale hashes). With these a saved index
(:mod:`indexer.match.snapshot`, :mod:`indexer.pipeline.matchindex`) is brought up to date
at start-up instead of rebuilt. A matcher built in one go is in batch mode
(:class:`Mode`) until it changes or :meth:`Matcher.end_batch` is called.

Pairs are reported with ``a < b`` (ids) and ``transform`` = the D4 transform that turns
``a`` into ``b``'s orientation (``b ~ orient.apply(a, transform)``); ``shift``/``scale``
say where ``b`` sits on ``a``, in ``a``'s full-size display pixels (see
:class:`~indexer.match.verify.Evidence`).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np

from indexer.measure import orient
from indexer.match.chance import ChanceRadius
from indexer.match.hashindex import (CROP_CHANNEL, CROP_FRACTIONS, ENTRY_FRACTIONS, PROBE_CROPS, HashIndex,
                                     probe_fractions, probe_hashes, signatures)
from indexer.match.jobs import Job, Memo, Proposal, Verified, run_job
from indexer.match.params import MatchParams
from indexer.match.records import IndexRows, Loader, MatchRecord, RecordCache, content_key, sha_prefix
from indexer.match.shots import ShotRelation, is_raw, relate, settle
from indexer.match.verdict import REFINED_VERDICTS, MatchThresholds, decide, describe, informative, needs_pixels
from indexer.match.verify import Evidence

__all__ = ["IndexRows", "Job", "MatchParams", "MatchRecord", "Matcher", "Memo", "Mode", "PairEvidence", "Verified",
           "run_job"]

_UNKNOWN = ShotRelation(None, None)  # no metadata consulted
_MAX_OTHER_HINTS = 2  # extra scale hints verified per transform before the full search
_PROPOSED_KEPT = 100_000  # incremental pairs awaiting a verdict remembered (oldest dropped; ~10 MB)
_PROBE_KINDS = [(t, 1.0) for t in orient.D4] + [("identity", f) for f in CROP_FRACTIONS[:PROBE_CROPS]]


@dataclass(frozen=True)
class PairEvidence:
    """One accepted pair and why (``a < b``; see module docstring for conventions)."""

    a: int
    b: int
    verdict: str
    hamming: int
    transform: str
    shift: tuple[float, float]
    scale: float
    correlation: float
    hist_sim: float
    delta_ev: float
    time_gap_s: float | None
    description: str = ""
    same_camera: bool | None = None  # shot identity from metadata (indexer.match.shots)
    same_shot: bool | None = None
    shot: str = field(default="", compare=False)  # the shot relation in words ("taken 26 s apart")
    evidence: Evidence | None = field(default=None, compare=False, repr=False)
    refined: bool = field(default=False, compare=False)  # delta_ev is the thumbnails' transfer-curve measure
    # the bigger side's detail at native size (indexer.measure.detail), set by the matching
    # stage for resized pairs of a group verdict; None: not measured
    detail_gain: float | None = field(default=None, compare=False)
    detail_above: float | None = field(default=None, compare=False)


def rows_of(records: list[MatchRecord], th: MatchThresholds) -> IndexRows:
    """The :class:`IndexRows` of in-memory records."""
    n, k = len(records), len(CROP_FRACTIONS)
    crops = np.zeros((n, k), dtype=np.int64)
    n_crops = np.zeros(n, dtype=np.int64)
    for i, r in enumerate(records):
        c = np.asarray(r.phash_crops[:k], dtype=np.int64)
        crops[i, :len(c)], crops[i, len(c):], n_crops[i] = c, r.phash, len(c)
    return IndexRows(
        ids=np.array([r.id for r in records], dtype=np.int64),
        sha=np.array([sha_prefix(r.sha256) for r in records], dtype=np.int64),
        phash=np.array([r.phash for r in records], dtype=np.int64),
        d4=np.array([r.phash_d4 for r in records], dtype=np.int64).reshape(n, 8),
        crops=crops, n_crops=n_crops,
        informative=np.array([informative(r.entropy, r.luma_std, r.thumb.shape, th) for r in records], dtype=bool))


class _Proposals(dict):
    """(a, b) -> {transform: Proposal}, and how many hash hits proposed each pair."""

    def __init__(self):
        super().__init__()
        self.hits: Counter[tuple[int, int]] = Counter()


class Mode(Enum):
    """What :meth:`Matcher.batch_pairs` joins."""

    BATCH = "batch"  # built in one go (from_rows) and unchanged since: the rows of the build
    INCREMENTAL = "incremental"  # images added, held or forgotten since, or never built: the records in memory


class Matcher:
    """The index over a set of images; batch and incremental matching.

    ``params``: what it searches and verifies with. ``pixels_equal(a_id, b_id) -> bool``
    (optional) compares full-size decoded pixels; it is called only for pairs whose bytes
    differ but whose evidence looks untouched. ``loader(ids) -> records`` (optional)
    fetches full records of indexed images that are not in memory (see :meth:`from_rows`).
    """

    def __init__(self, params: MatchParams = MatchParams(), *,
                 pixels_equal: Callable[[int, int], bool] | None = None, loader: Loader | None = None,
                 cache_size: int = 1024):
        self.params = params
        self.pixels_equal = pixels_equal
        self.records = RecordCache(loader, cache_size)
        self.memo = Memo()  # verifications by content: copies of one picture align once
        self._index = HashIndex.empty(params.radius)
        self._mode = Mode.INCREMENTAL
        self._built: tuple[IndexRows, np.ndarray] | None = None  # BATCH: the rows, and which of them are indexed
        # incremental candidates kept within a radius that tightens with N (indexer.match.chance)
        self.chance = (ChanceRadius(self.crop_radius, min(params.chance_floor, self.crop_radius),
                                    params.chance_budget) if params.chance_budget > 0 else None)
        self._proposed: dict[tuple[int, int], int] = {}  # incremental pair -> best distance, until concluded

    @property
    def th(self) -> MatchThresholds:
        return self.params.thresholds

    @property
    def max_transforms(self) -> int:
        return self.params.max_transforms

    @property
    def radius(self) -> int:
        return self.params.radius

    @property
    def crop_radius(self) -> int:
        return max(self.params.crop_radius, self.params.radius)

    @property
    def index(self) -> HashIndex:
        """The candidate index (read it; change it through the matcher)."""
        return self._index

    @property
    def mode(self) -> Mode:
        return self._mode

    def end_batch(self) -> None:
        """Incremental mode from here on: the rows of the build are let go (a matcher that
        only adds and never batch-joins the images it was built with)."""
        self._mode, self._built = Mode.INCREMENTAL, None

    @classmethod
    def from_records(cls, records: Iterable[MatchRecord], params: MatchParams = MatchParams(),
                     **keywords) -> "Matcher":
        """Build the index in one go from in-memory records (kept in memory); ``keywords``
        as for the constructor."""
        records = list(records)
        return cls.from_rows(rows_of(records, params.thresholds), params, records=records, **keywords)

    @classmethod
    def from_rows(cls, rows: IndexRows, params: MatchParams = MatchParams(),
                  records: list[MatchRecord] | None = None, **keywords) -> "Matcher":
        """Build the index in one go from index columns (start-up: full records come
        later, from ``loader``, for candidate pairs and hash-identical rows only);
        ``records``: all of them, kept in memory instead."""
        m = cls(params, **keywords)
        if records is not None:
            m.records.size = max(m.records.size, len(records))
            for rec in records:
                m.records.put(rec)
        sig = signatures(rows)
        ok, twin_of = m._representatives(rows, sig)
        m._index = HashIndex.build(rows, sig, ok, twin_of, params.radius)
        m._mode, m._built = Mode.BATCH, (rows, ok)
        return m

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], params: MatchParams = MatchParams(),
                   **keywords) -> "Matcher":
        """A matcher (incremental mode) over a saved index (:meth:`HashIndex.state`)."""
        m = cls(params, **keywords)
        m._index = HashIndex.from_state(state)
        return m

    def _representatives(self, rows: IndexRows, sig: np.ndarray,
                         against_index: bool = False) -> tuple[np.ndarray, dict[int, int]]:
        """Which informative ``rows`` (by id) are no twin of an earlier row, or (``against_index``)
        of an indexed image: bool (n,), and twin id -> representative. Only rows whose
        signature repeats are fetched, to compare their content."""
        ok = rows.informative.copy()
        twin_of: dict[int, int] = {}
        _, inverse, counts = np.unique(sig[ok], return_inverse=True, return_counts=True)
        repeated = np.zeros(len(rows), dtype=bool)
        repeated[ok] = counts[inverse] > 1
        listed = self._index.same_signature if against_index else (lambda key: [])
        suspects = [i for i in np.flatnonzero(ok).tolist() if repeated[i] or listed(int(sig[i]))]
        if not suspects:
            return ok, twin_of
        known = {r for i in suspects for r in listed(int(sig[i]))}
        recs = self.records.get_many([*known, *(int(rows.ids[i]) for i in suspects)])
        reps: dict[int, list[tuple[int, bytes]]] = {}
        for i in suspects:
            image_id, rec = int(rows.ids[i]), recs.get(int(rows.ids[i]))
            key = content_key(rec) if rec is not None else None  # unreadable: nobody's twin
            same = [r for r in listed(int(sig[i])) if key is not None and r in recs and content_key(recs[r]) == key]
            same += [r for r, k in reps.get(int(sig[i]), []) if key is not None and k == key]
            if same:
                ok[i] = False
                twin_of[image_id] = same[0]
            else:
                reps.setdefault(int(sig[i]), []).append((image_id, key))
        return ok, twin_of

    def _twin(self, rec: MatchRecord, sig: int) -> int | None:
        """The indexed image ``rec`` is a twin of (equal hashes and content), or None."""
        for rid in self._index.same_signature(sig):
            other = self.records.get(rid)
            if other is not None and content_key(other) == content_key(rec):
                return rid
        return None

    def is_informative(self, rec: MatchRecord) -> bool:
        return informative(rec.entropy, rec.luma_std, rec.thumb.shape, self.th)

    def batch_pairs(self, touching: set[int] | None = None) -> list[PairEvidence]:
        """All accepted pairs among the images the index was built with (each pair once,
        sorted by (a, b)); ``touching``: only pairs with a member among those ids are
        verified (the others were stored by an earlier run)."""
        return sorted(self.verify_jobs(self.batch_jobs(touching)), key=lambda pe: (pe.a, pe.b))

    def _batch_proposals(self) -> "_Proposals":
        proposals = _Proposals()
        if self._mode is Mode.BATCH:
            rows, ok = self._built
            twin_of = self._index.twin_links()
        else:  # records added since the build: find their twins again, among the records in memory
            rows = rows_of(self.records.values(), self.th)
            ok, twin_of = self._representatives(rows, signatures(rows))
        for twin, representative in twin_of.items():  # linked to its representative only
            self._propose_equal(proposals, twin, [representative])
        if ok.any() and self._index.entry_count:
            probes, fractions, owners = probe_hashes(rows)[ok], probe_fractions(rows)[ok], rows.ids[ok]
            for cols, radius in ((np.arange(8), self.radius), (CROP_CHANNEL, self.crop_radius)):
                hits = self._index.join(probes[:, cols].ravel(), radius)
                for p, owner, fe, dist in hits.rows():
                    row, col = divmod(p, len(cols))
                    kind = (_PROBE_KINDS[int(cols[col])][0], float(fractions[row, cols[col]]))
                    if self._keep_hit(kind, fe, dist):
                        self._propose_to(proposals, int(owners[row]), kind, owner, fe, dist)
        for ids in self._index.sha_groups():  # a star per set of identical files: groups need no more
            self._propose_equal(proposals, ids[0], ids[1:])
        return proposals

    def batch_jobs(self, touching: set[int] | None = None) -> list[Job]:
        """The verification jobs :meth:`batch_pairs` runs (``touching`` as there), for a
        caller that screens them first (:meth:`verify_jobs` runs the kept ones)."""
        kept = self._corroborated(self._batch_proposals())
        if touching is not None:
            kept = {k: v for k, v in kept.items() if k[0] in touching or k[1] in touching}
        return self.jobs_of(kept)

    def add_and_match(self, rec: MatchRecord) -> list[PairEvidence]:
        """Match one new record against everything indexed, then add it (incremental)."""
        return sorted(self._verify_all(self.propose_and_add(rec)), key=lambda pe: (pe.a, pe.b))

    def add(self, rec: MatchRecord) -> list[Job]:
        """Incremental mode, split for a caller that verifies elsewhere (worker processes):
        add ``rec`` and return the verification jobs of its candidate pairs."""
        return self.jobs_of(self.propose_and_add(rec))

    def propose_and_add(self, rec: MatchRecord) -> dict:
        """Candidate proposals of ``rec`` against the index ((a, b) -> {transform:
        :class:`~indexer.match.jobs.Proposal`}, not verified), then ``rec`` added to it."""
        self._forget_for_update([rec.id])
        proposals = _Proposals()
        rows = rows_of([rec], self.th)
        probes, fractions = probe_hashes(rows)[0], probe_fractions(rows)[0]
        sig, sha = signatures(rows), int(rows.sha[0])
        twin_of = self._twin(rec, int(sig[0])) if rows.informative[0] else None
        self._propose_equal(proposals, rec.id, self._index.same_sha(sha)[:1])
        self.records.put(rec)
        self.end_batch()
        if twin_of is not None:  # the same picture as an indexed image: link the two, nothing more
            self._propose_equal(proposals, rec.id, [twin_of])
            self._index.hold(rows, sig, np.zeros(1, dtype=bool), {rec.id: twin_of})
            self._index.promote_lowest({rec.id: twin_of})
            return proposals
        if rows.informative[0] and self._index.entry_count:
            for cols, radius in ((np.arange(8), self.radius), (CROP_CHANNEL, self.crop_radius)):
                for p, owner, fe, dist in self._index.query(probes[cols], radius).rows():
                    kind = (_PROBE_KINDS[int(cols[p])][0], float(fractions[cols[p]]))
                    if self._keep_hit(kind, fe, dist):
                        self._propose_to(proposals, rec.id, kind, owner, fe, dist)
        if rows.informative[0] and self._index.probe_count:
            self._reverse_hits(proposals, rec, rows)
        if rows.informative[0]:
            proposals = self._within_chance(proposals, len(self._index))
        self._index.hold(rows, sig, rows.informative.copy(), {})
        return self._corroborated(proposals)

    def _within_chance(self, proposals: "_Proposals", n_indexed: int) -> "_Proposals":
        """The pairs whose best hash distance is within the radius :attr:`chance` allows
        a query against ``n_indexed`` images (all of them when it is off); the kept ones
        are remembered until :meth:`conclude` says whether verification rejected them."""
        if self.chance is None:
            return proposals
        radius = self.chance.radius(n_indexed)
        self.chance.compared(n_indexed)
        out = _Proposals()
        for key, slot in proposals.items():
            best = min(p.hamming for p in slot.values())
            if best <= radius:
                out[key] = slot
                out.hits[key] = proposals.hits[key]
                self._proposed[key] = best
        while len(self._proposed) > _PROPOSED_KEPT:  # never concluded (capped, a group's reserve)
            self._proposed.pop(next(iter(self._proposed)))
        return out

    def insert(self, rows: IndexRows) -> None:
        """Hold images matched elsewhere (a saved index catching up on the database):
        indexed as at start-up, twins linked to their representative, nothing proposed.
        Images held already are replaced (their rows changed)."""
        self._forget_for_update(rows.ids.tolist())
        if not len(rows):
            return
        sig = signatures(rows)
        ok, twin_of = self._representatives(rows, sig, against_index=True)
        self.end_batch()
        self._index.hold(rows, sig, ok, twin_of)
        self._index.promote_lowest(twin_of)

    def sync(self, present: IndexRows, gone: Iterable[int] = ()) -> int:
        """Bring the index up to date with rows that changed in the database: images in
        ``gone`` are forgotten, rows of ``present`` that are new or whose hashes, SHA-256
        or information gate changed are held again (:meth:`insert`); rows equal to what
        is held are left alone. Returns how many images changed."""
        gone = [i for i in dict.fromkeys(int(i) for i in gone) if i in self._index]
        stale = self._index.stale(present)
        self.forget(gone)
        self.insert(present.take(stale))
        return len(gone) + int(stale.sum())

    def forget(self, ids: Iterable[int]) -> None:
        """Take images out of the index (gone from disk, re-indexed): see
        :meth:`HashIndex.forget`."""
        for image_id in self._index.forget(ids):
            self.records.drop(image_id)
        self.end_batch()

    def compact(self) -> None:
        """Drop the entries of forgotten images from the tables (:meth:`HashIndex.compact`)."""
        self._index.compact()

    def _forget_for_update(self, ids: list[int]) -> None:
        """Forget those of ``ids`` held now (their rows are about to be held again)."""
        held = [i for i in ids if i in self._index]
        if held:
            self.forget(held)

    def _corroborated(self, proposals: "_Proposals") -> "_Proposals":
        """Pairs whose best hash distance is within ``lone_radius`` (at least ``radius``),
        or that the crop channel found through at least ``crop_hits`` hash hits.

        Far out, a single hit is mostly chance: two uniform 64-bit hashes fall within 14
        bits of each other with probability 3.4e-6 (within 12: 2.3e-7), and with 11
        entries and 3 crop-channel probes per image a million random hashes propose ~250
        chance candidates per new image (bench/match_startup.py), each costing a
        verification; real pHashes collide ~7x more often (8 single-hit proposals among
        144 Kodak images and copies). A real crop or shift usually meets several of the
        original's overlapping crop entries: every Kodak 80-95% crop and 1-5% shift copy
        that no hash found within 10 bits had 2 to 14 hits within 14. The exceptions are
        extreme crops (80% at a corner: one hit at 12-14 bits), hence ``lone_radius``.
        """
        lone = max(self.radius, self.params.lone_radius)
        out = _Proposals()
        for key, slot in proposals.items():
            if min(p.hamming for p in slot.values()) <= lone or proposals.hits[key] >= self.params.crop_hits:
                out[key] = slot
                out.hits[key] = proposals.hits[key]  # kept: the fan-out ranks candidates by them
        return out

    def _reverse_hits(self, proposals, rec: MatchRecord, rows: IndexRows) -> None:
        """Crop-channel probes of indexed images that hit ``rec``'s off-centre crop
        entries (the batch join finds these from the older image's side)."""
        off = rows.crops[0, PROBE_CROPS:int(rows.n_crops[0])]
        for p, owner, fq, dist in self._index.query_probes(off, self.crop_radius).rows():
            self._propose_to(proposals, owner, ("identity", fq), rec.id, float(ENTRY_FRACTIONS[1 + PROBE_CROPS + p]),
                             dist)

    def _keep_hit(self, kind: tuple[str, float], fe: float, dist: int) -> bool:
        """Full-image hashes match within ``radius``; the crop channel (a crop hash on
        either side: ``kind``'s fraction or the entry's, ``fe``) within ``crop_radius``."""
        return dist <= self.radius or kind[1] < 1.0 or fe < 1.0

    def _propose_to(self, proposals, q: int, kind: tuple[str, float], e: int, fe: float, dist: int) -> None:
        """Probe ``kind`` = (transform, fraction) of ``q`` hit an entry of fraction ``fe`` of ``e``."""
        if e == q:
            return
        t, fq = kind
        prop = Proposal(dist, t, fq / fe)
        if e > q:  # store as (a, b) = (q, e): q ~ apply(e, inverse(t)), scales inverted
            key, prop = (q, e), Proposal(dist, orient.inverse(t), 1.0 / prop.scale_hint)
        else:
            key = (e, q)
        proposals.hits[key] += 1
        slot = proposals.setdefault(key, {})
        old = slot.get(prop.transform)
        if old is None:
            slot[prop.transform] = prop
            return
        best, other = (prop, old) if prop.hamming < old.hamming else (old, prop)
        hints = [h for h in (other.scale_hint, *old.other_hints, *prop.other_hints)
                 if not math.isclose(h, best.scale_hint, rel_tol=0.01)]
        kept = tuple(dict.fromkeys(round(h, 4) for h in hints))[: _MAX_OTHER_HINTS]
        slot[prop.transform] = Proposal(best.hamming, best.transform, best.scale_hint, kept)

    @staticmethod
    def _propose_equal(proposals, image_id: int, others: Iterable[int]) -> None:
        """Images whose SHA-256 prefix equals ``image_id``'s always pair (verified: same bytes)."""
        for other in others:
            if other != image_id:
                key = (min(other, image_id), max(other, image_id))
                proposals.setdefault(key, {}).setdefault("identity", Proposal(0, "identity", 1.0))

    def _verify_all(self, proposals) -> list[PairEvidence]:
        """Verify every proposed pair in this process (see :meth:`jobs_of`)."""
        return self.verify_jobs(self.jobs_of(proposals))

    def verify_jobs(self, jobs: Iterable[Job]) -> list[PairEvidence]:
        """Verify jobs in this process (memoised) and conclude them: the accepted pairs."""
        out = []
        for job in jobs:
            key = job.key(self.max_transforms)
            verified = self.memo.get(key)
            if verified is None:
                verified = self.memo.put(key, run_job(job, self.th, self.max_transforms))
            pe = self.conclude(job, verified)
            if pe is not None:
                out.append(pe)
        return out

    def jobs_of(self, proposals) -> list[Job]:
        """One :class:`Job` per proposed pair, its proposals best (lowest distance) first
        (the records of both images fetched, in one loader call for all pairs)."""
        recs = self.records.get_many(i for pair in proposals for i in pair)
        return [Job(recs[a], recs[b], tuple(sorted(slot.values(), key=lambda p: p.hamming)))
                for (a, b), slot in proposals.items() if a in recs and b in recs]

    def needs_pixels(self, job: Job, verified: Verified) -> bool:
        """Whether :meth:`conclude` would compare the pair's full-size pixels: evidence of
        an untouched copy, in the same orientation unless the two files' EXIF tags differ
        (a mirrored copy looks untouched once aligned, but its stored pixels cannot be
        equal: asking for them cost two full decodes of every mirrored 12 MP JPEG)."""
        ev = verified.evidence
        turned = ev is not None and ev.transform != "identity"
        if turned and job.a.orientation is not None and job.a.orientation == job.b.orientation:
            return False
        return needs_pixels(job.a.sha256, job.b.sha256, ev)

    def conclude(self, job: Job, verified: Verified, *,
                 pixels_equal: Callable[[], bool] | None = None) -> PairEvidence | None:
        """The verdict for a verified job. Full-size pixels are compared (when
        :meth:`needs_pixels`) by ``pixels_equal()`` if given, else by the matcher's own
        ``pixels_equal(a_id, b_id)`` in this process."""
        ra, rb = job.a, job.b
        ev = verified.evidence
        eq = pixels_equal or ((lambda: self.pixels_equal(ra.id, rb.id)) if self.pixels_equal else None)
        if eq is not None and not self.needs_pixels(job, verified):
            eq = None  # e.g. a mirrored copy: its pixels are not asked for
        verdict = decide(sha_a=ra.sha256, sha_b=rb.sha256, evidence=ev, pixels_equal=eq,
                         gated=verified.gated, th=self.th)
        distance = self._proposed.pop((ra.id, rb.id), None)
        if verdict is None:
            if distance is not None and self.chance is not None:
                self.chance.rejected(distance)  # a chance candidate: what tightens the radius
            return None
        rel = shot_relation(ra, rb) if self.th.shots_are_not_copies else _UNKNOWN
        verdict = settle(verdict, rel, raw_a=is_raw(ra.format), raw_b=is_raw(rb.format))
        refined = verified.thumb_ev is not None and verdict in REFINED_VERDICTS
        if refined:
            ev = replace(ev, delta_ev=verified.thumb_ev)
        pe = _pair(ra, rb, verdict, min(p.hamming for p in job.props), ev, rel)
        return replace(pe, refined=True) if refined else pe


def shot_relation(ra: MatchRecord, rb: MatchRecord) -> ShotRelation:
    """What the two records' camera bodies and capture times say (:func:`relate`)."""
    return relate(ra.camera, rb.camera, ra.captured_at, rb.captured_at,
                  raw_pair=is_raw(ra.format) != is_raw(rb.format))


def _pair(ra: MatchRecord, rb: MatchRecord, verdict: str, hamming: int, ev: Evidence | None,
          rel: ShotRelation = _UNKNOWN) -> PairEvidence:
    gap = None
    if ra.captured_at is not None and rb.captured_at is not None:
        gap = abs((rb.captured_at - ra.captured_at).total_seconds())
    if ev is None:  # same bytes: nothing to measure
        return PairEvidence(ra.id, rb.id, verdict, hamming, "identity", (0.0, 0.0), 1.0, 1.0, 1.0, 0.0, gap,
                            describe(None, verdict), rel.same_camera, rel.same_shot, rel.reason)
    return PairEvidence(
        a=ra.id, b=rb.id, verdict=verdict, hamming=hamming, transform=orient.inverse(ev.transform),
        shift=(round(ev.x, 2), round(ev.y, 2)), scale=round(ev.scale, 4), correlation=round(ev.corr_rank, 4),
        hist_sim=round(ev.hist_sim, 4), delta_ev=round(ev.delta_ev, 3), time_gap_s=gap,
        description=describe(ev, verdict, hamming=hamming, shot=rel.reason), same_camera=rel.same_camera,
        same_shot=rel.same_shot, shot=rel.reason, evidence=ev,
    )
