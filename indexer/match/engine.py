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
``radius`` (default 10); pairs involving a crop hash within ``crop_radius`` (default 14:
on the Kodak set it lifts crops found from 10/24 to 17/24 and 1-5% shifts from 13/24 to
21/24 with the centred crops alone; the off-centre entries bring the crop channel's worst
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

Memory. The index keeps arrays only (entry hashes, owners, crop fractions; a few hundred
bytes per image); full records (thumbnails) are fetched for candidate pairs through a
:class:`~indexer.match.records.RecordCache`, so :meth:`Matcher.from_rows` starts on a
1 M-image archive from its index columns alone.

Changes. :meth:`Matcher.forget` takes images out (their entries stay in the tables with
no owner until :meth:`Matcher.compact`; a forgotten representative's twin takes its
entries over, having the same hashes); :meth:`Matcher.insert` holds images matched
elsewhere without proposing; :meth:`Matcher.sync` applies rows changed in the database;
adding an image held already replaces it (a re-indexed file keeps no stale hashes). With
these a saved index (:mod:`indexer.match.snapshot`, :mod:`indexer.pipeline.matchindex`) is brought
up to date at start-up instead of rebuilt.

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

import numpy as np

from indexer.measure import orient
from indexer.measure.hashes import CROP_SPECS
from indexer.match.jobs import Job, Memo, Proposal, Verified, content_key, run_job
from indexer.match.mih import MultiIndex
from indexer.match.records import IndexRows, Loader, MatchRecord, RecordCache, sha_prefix
from indexer.match.tables import Column, Held, HeldTable, KeyIndex, TwinLinks
from indexer.match.verdict import REFINED_VERDICTS, MatchThresholds, decide, describe, informative, separate_shots
from indexer.match.verify import Evidence

__all__ = ["DEFAULT_CROP_RADIUS", "DEFAULT_RADIUS", "IndexRows", "Job", "MatchRecord", "Matcher", "Memo",
           "PairEvidence", "Verified", "run_job"]

CROP_FRACTIONS = tuple(f for f, _, _ in CROP_SPECS)  # per stored crop hash, in order
ENTRY_FRACTIONS = np.array((1.0, *CROP_FRACTIONS))
PROBE_CROPS = 2  # the centred crops (CROP_SPECS[:2]) are probed; every crop is an entry
DEFAULT_RADIUS = 10
DEFAULT_CROP_RADIUS = 14
_MAX_OTHER_HINTS = 2  # extra scale hints verified per transform before the full search
CROP_CHANNEL = np.array([0, *range(8, 8 + PROBE_CROPS)])  # probe rows searched at crop_radius
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
    evidence: Evidence | None = field(default=None, compare=False, repr=False)
    refined: bool = field(default=False, compare=False)  # delta_ev is the thumbnails' transfer-curve measure


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


def _probe_hashes(rows: IndexRows) -> np.ndarray:
    """Probe hashes, int64 (n, 8 + PROBE_CROPS): the 8 D4 pHashes, then the centred crop
    hashes (a missing one, from an older record, repeats the canonical hash: it only
    repeats row 0's hits)."""
    crops = np.where(np.arange(PROBE_CROPS) < rows.n_crops[:, None], rows.crops[:, :PROBE_CROPS],
                     rows.phash[:, None])
    return np.concatenate([rows.d4, crops], axis=1)


def _probe_fractions(rows: IndexRows) -> np.ndarray:
    """Crop fraction of each probe, float (n, 8 + PROBE_CROPS) (padding probes: 1.0)."""
    f = np.ones((len(rows), 8 + PROBE_CROPS))
    f[:, 8:] = np.where(np.arange(PROBE_CROPS) < rows.n_crops[:, None], ENTRY_FRACTIONS[1:1 + PROBE_CROPS], 1.0)
    return f


def _entries(rows: IndexRows, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Index entries of rows ``sel`` (bool (n,)): canonical pHash then stored crop hashes.
    Returns (hashes int64, owners int64, fractions float64, entries per row int64 (n,),
    0 for rows not selected); a row's entries are consecutive, rows in order."""
    entries = np.concatenate([rows.phash[sel, None], rows.crops[sel]], axis=1)
    width = entries.shape[1]
    counts = np.zeros(len(rows), dtype=np.int64)
    counts[sel] = 1 + rows.n_crops[sel]
    if (counts[sel] == width).all():  # the usual case: no padding to drop
        return (entries.ravel(), np.repeat(rows.ids[sel], width), np.tile(ENTRY_FRACTIONS[:width], len(entries)),
                counts)
    real = np.arange(width) < counts[sel][:, None]  # drop padding of old rows
    return (entries[real], np.broadcast_to(rows.ids[sel, None], entries.shape)[real],
            np.broadcast_to(ENTRY_FRACTIONS[:width], entries.shape)[real], counts)


def _crop_channel(rows: IndexRows, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop-channel probes of rows ``sel`` (3 a row, in order) and their fractions."""
    return (_probe_hashes(rows)[sel][:, CROP_CHANNEL].ravel(),
            _probe_fractions(rows)[sel][:, CROP_CHANNEL].ravel())


def _held_columns(rows: IndexRows, sig: np.ndarray, indexed: np.ndarray, counts: np.ndarray,
                  first_entry: int, first_probe: int) -> dict[str, np.ndarray]:
    """:class:`~indexer.match.tables.Held` columns of ``rows`` whose ``indexed`` ones had
    their entries appended from ``first_entry`` and probes from ``first_probe``."""
    starts = first_entry + np.cumsum(counts) - counts
    probe_starts = first_probe + len(CROP_CHANNEL) * (np.cumsum(indexed) - indexed)
    return dict(sig=sig, sha=rows.sha, estart=np.where(indexed, starts, -1), ecount=np.where(indexed, counts, 0),
                pstart=np.where(indexed, probe_starts, -1))


class _Proposals(dict):
    """(a, b) -> {transform: Proposal}, and how many hash hits proposed each pair."""

    def __init__(self):
        super().__init__()
        self.hits: Counter[tuple[int, int]] = Counter()


def _signatures(rows: IndexRows) -> np.ndarray:
    """A 64-bit digest of each row's 19 hashes (pHash, 8 D4, 10 crops), int64 (n,):
    equal for images the Hamming index cannot tell apart (copies whose pixels measure the
    same). Multiply-xor mixing with the 64-bit golden-ratio constant, wrapping."""
    acc = rows.phash.astype(np.uint64)
    with np.errstate(over="ignore"):
        for col in (*rows.d4.T, *rows.crops.T):
            acc = (acc ^ col.astype(np.uint64)) * np.uint64(0x9E3779B97F4A7C15)
    return acc.view(np.int64)


class Matcher:
    """The index over a set of images; batch and incremental matching.

    ``pixels_equal(a_id, b_id) -> bool`` (optional) compares full-size decoded pixels; it
    is called only for pairs whose bytes differ but whose evidence looks untouched.
    ``loader(ids) -> records`` (optional) fetches full records of indexed images that are
    not in memory (see :meth:`from_rows`).
    """

    def __init__(self, *, radius: int = DEFAULT_RADIUS, crop_radius: int = DEFAULT_CROP_RADIUS,
                 thresholds: MatchThresholds = MatchThresholds(),
                 pixels_equal: Callable[[int, int], bool] | None = None, max_transforms: int = 2,
                 loader: Loader | None = None, cache_size: int = 1024, crop_hits: int = 2,
                 lone_radius: int = 12):
        self.radius, self.crop_radius, self.th = radius, max(crop_radius, radius), thresholds
        self.crop_hits, self.lone_radius = crop_hits, lone_radius
        self.pixels_equal, self.max_transforms = pixels_equal, max_transforms
        self.records = RecordCache(loader, cache_size)
        self.by_sha = KeyIndex(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        # indexed images by hash signature: a copy with an indexed image's 19 hashes and
        # content (what verification reads) is its twin: linked to it, not indexed, not probed
        self.twins = KeyIndex(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        self.twin_of = TwinLinks()  # twin id -> representative id
        self.indexed: np.ndarray | None = None  # batch mode: rows of self.rows in the index
        # index entries (canonical and crop hashes of informative images): owner, fraction
        self.index = MultiIndex(np.zeros(0, dtype=np.int64), radius=radius)
        self.entry_owner, self.entry_fraction = Column(np.int64), Column(np.float64)
        # crop-channel probes of the indexed images, so that an added image's off-centre
        # crop entries meet the probes of images indexed before it, as the batch join does
        self.crop_probes = MultiIndex(np.zeros(0, dtype=np.int64), radius=radius)
        self.probe_owner, self.probe_fraction = Column(np.int64), Column(np.float64)
        self.memo = Memo()  # verifications by content: copies of one picture align once
        self.rows: IndexRows | None = None  # batch mode: the rows it was built from
        self.held = HeldTable.empty()  # every image it holds: signature, SHA-256, entries
        self.dead_entries = 0  # entries of forgotten images still in the tables (owner -1)

    @classmethod
    def from_records(cls, records: Iterable[MatchRecord], **options) -> "Matcher":
        """Build the index in one go from in-memory records (kept in memory)."""
        records = list(records)
        return cls.from_rows(rows_of(records, options.get("thresholds", MatchThresholds())), records=records,
                             **options)

    @classmethod
    def from_rows(cls, rows: IndexRows, records: list[MatchRecord] | None = None, **options) -> "Matcher":
        """Build the index in one go from index columns (start-up: full records come
        later, from ``loader``, for candidate pairs and hash-identical rows only);
        ``records``: all of them, kept in memory instead."""
        m = cls(**options)
        if records is not None:
            m.records.size = max(m.records.size, len(records))
            for rec in records:
                m.records.put(rec)
        m.by_sha = KeyIndex(rows.sha, rows.ids)
        sig = _signatures(rows)
        ok, twin_of = m._representatives(rows, sig)
        m.twin_of = TwinLinks(twin_of.items())
        m.twins, m.indexed = KeyIndex(sig[ok], rows.ids[ok]), ok
        entries, owners, fractions, counts = _entries(rows, ok)
        m.index = MultiIndex(entries, radius=m.radius)
        m.entry_owner, m.entry_fraction = Column(np.int64, owners), Column(np.float64, fractions)
        probes, probe_fractions = _crop_channel(rows, ok)
        m.crop_probes = MultiIndex(probes, radius=m.radius)
        m.probe_owner = Column(np.int64, np.repeat(rows.ids[ok], len(CROP_CHANNEL)))
        m.probe_fraction = Column(np.float64, probe_fractions)
        m.held = HeldTable(rows.ids, **_held_columns(rows, sig, ok, counts, 0, 0))
        m.rows = rows
        return m

    def _representatives(self, rows: IndexRows, sig: np.ndarray,
                         indexed: KeyIndex | None = None) -> tuple[np.ndarray, dict[int, int]]:
        """Which informative ``rows`` (by id) are no twin of an earlier row, or of an image
        in ``indexed`` (by signature): bool (n,), and twin id -> representative. Only rows
        whose signature repeats are fetched, to compare their content."""
        ok = rows.informative.copy()
        twin_of: dict[int, int] = {}
        _, inverse, counts = np.unique(sig[ok], return_inverse=True, return_counts=True)
        repeated = np.zeros(len(rows), dtype=bool)
        repeated[ok] = counts[inverse] > 1
        listed = (lambda key: indexed.get(key)) if indexed is not None else (lambda key: [])
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
        for rid in self.twins.get(sig):
            other = self.records.get(rid)
            if other is not None and content_key(other) == content_key(rec):
                return rid
        return None

    def is_informative(self, rec: MatchRecord) -> bool:
        return informative(rec.entropy, rec.luma_std, rec.thumb.shape, self.th)

    def batch_pairs(self) -> list[PairEvidence]:
        """All accepted pairs among the images the index was built with (each pair once,
        sorted by (a, b))."""
        # built by from_rows and not added to since: its rows; else the records in memory
        rows = self.rows if self.rows is not None else rows_of(self.records.values(), self.th)
        proposals = _Proposals()
        if self.rows is None:  # records added since the build: find their twins again
            ok, twin_of = self._representatives(rows, _signatures(rows))
            self.twin_of = TwinLinks(twin_of.items())
        else:
            ok = self.indexed
        for twin, representative in self.twin_of.items():  # linked to its representative only
            self._propose_equal(proposals, twin, [representative])
        if ok.any() and len(self.index):
            probes, fractions, owners = _probe_hashes(rows)[ok], _probe_fractions(rows)[ok], rows.ids[ok]
            for cols, radius in ((np.arange(8), self.radius), (CROP_CHANNEL, self.crop_radius)):
                pi, ei, d = self.index.join(probes[:, cols].ravel(), radius=radius)
                for p, e, dist in zip(pi.tolist(), ei.tolist(), d.tolist()):
                    row, col = divmod(p, len(cols))
                    kind = (_PROBE_KINDS[int(cols[col])][0], float(fractions[row, cols[col]]))
                    if self._keep_hit(kind, e, dist):
                        self._propose(proposals, int(owners[row]), kind, e, dist)
        for ids in self.by_sha.groups():  # a star per set of identical files: groups need no more
            self._propose_equal(proposals, ids[0], ids[1:])
        return sorted(self._verify_all(self._corroborated(proposals)), key=lambda pe: (pe.a, pe.b))

    def add_and_match(self, rec: MatchRecord) -> list[PairEvidence]:
        """Match one new record against everything indexed, then add it (incremental)."""
        return sorted(self._verify_all(self._propose_and_add(rec)), key=lambda pe: (pe.a, pe.b))

    def add(self, rec: MatchRecord) -> list[Job]:
        """Incremental mode, split for a caller that verifies elsewhere (worker processes):
        add ``rec`` and return the verification jobs of its candidate pairs."""
        return self.jobs_of(self._propose_and_add(rec))

    def _propose_and_add(self, rec: MatchRecord) -> dict:
        """Candidate proposals of ``rec`` against the index, then ``rec`` added to it."""
        self._forget_for_update([rec.id])
        proposals = _Proposals()
        rows = rows_of([rec], self.th)
        probes, fractions = _probe_hashes(rows)[0], _probe_fractions(rows)[0]
        sig, sha = _signatures(rows), int(rows.sha[0])
        twin_of = self._twin(rec, int(sig[0])) if rows.informative[0] else None
        self._propose_equal(proposals, rec.id, self.by_sha.get(sha)[:1])
        self.records.put(rec)
        self.rows = None
        if twin_of is not None:  # the same picture as an indexed image: link the two, nothing more
            self._propose_equal(proposals, rec.id, [twin_of])
            self._hold(rows, sig, np.zeros(1, dtype=bool), {rec.id: twin_of})
            self._lowest_represents({rec.id: twin_of})
            return proposals
        if rows.informative[0] and len(self.index):
            for cols, radius in ((np.arange(8), self.radius), (CROP_CHANNEL, self.crop_radius)):
                pi, ei, d = self.index.query(probes[cols], radius=radius)
                for p, e, dist in zip(pi.tolist(), ei.tolist(), d.tolist()):
                    kind = (_PROBE_KINDS[int(cols[p])][0], float(fractions[cols[p]]))
                    if self._keep_hit(kind, e, dist):
                        self._propose(proposals, rec.id, kind, e, dist)
        if rows.informative[0] and len(self.crop_probes):
            self._reverse_hits(proposals, rec, rows)
        self._hold(rows, sig, rows.informative.copy(), {})
        return self._corroborated(proposals)

    def _hold(self, rows: IndexRows, sig: np.ndarray, indexed: np.ndarray, twin_of: dict[int, int]) -> None:
        """Hold new ``rows`` (none held now): index the entries and crop-channel probes of
        the ``indexed`` ones, link the twins in ``twin_of`` (id -> representative)."""
        entries, owners, fractions, counts = _entries(rows, indexed)
        first_entry = int(self.index.add(entries)[0]) if len(entries) else len(self.index)
        self.entry_owner.extend(owners)
        self.entry_fraction.extend(fractions)
        probes, probe_fractions = _crop_channel(rows, indexed)
        first_probe = int(self.crop_probes.add(probes)[0]) if len(probes) else len(self.crop_probes)
        self.probe_owner.extend(np.repeat(rows.ids[indexed], len(CROP_CHANNEL)))
        self.probe_fraction.extend(probe_fractions)
        cols = _held_columns(rows, sig, indexed, counts, first_entry, first_probe)
        for i, image_id in enumerate(rows.ids.tolist()):
            self.held.set(image_id, Held(*(int(cols[f][i]) for f in Held._fields)))
            self.by_sha.add(int(rows.sha[i]), image_id)
            if indexed[i]:
                self.twins.add(int(sig[i]), image_id)
        self.twin_of.update(twin_of)

    def insert(self, rows: IndexRows) -> None:
        """Hold images matched elsewhere (a saved index catching up on the database):
        indexed as at start-up, twins linked to their representative, nothing proposed.
        Images held already are replaced (their rows changed)."""
        self._forget_for_update(rows.ids.tolist())
        if not len(rows):
            return
        sig = _signatures(rows)
        ok, twin_of = self._representatives(rows, sig, self.twins)
        self.rows = None
        self._hold(rows, sig, ok, twin_of)
        self._lowest_represents(twin_of)

    def _lowest_represents(self, twin_of: dict[int, int]) -> None:
        """Of images with equal hashes and content the lowest id is the representative
        (as at start-up): a new twin with a lower id than its representative takes over."""
        for twin in sorted(twin_of):
            rep = self.twin_of.get(twin)
            if rep is not None and twin < rep:
                self._hand_over(rep, twin)

    def sync(self, present: IndexRows, gone: Iterable[int] = ()) -> int:
        """Bring the index up to date with rows that changed in the database: images in
        ``gone`` are forgotten, rows of ``present`` that are new or whose hashes, SHA-256
        or information gate changed are held again (:meth:`insert`); rows equal to what
        is held are left alone. Returns how many images changed."""
        gone = [i for i in dict.fromkeys(int(i) for i in gone) if i in self.held]
        sig = _signatures(present)
        found, held = self.held.lookup(present.ids)
        twins = np.fromiter(self.twin_of, dtype=np.int64, count=len(self.twin_of))
        gated_in = (held["estart"] >= 0) | np.isin(present.ids, twins)  # indexed, or a twin of one that is
        stale = ~found | (held["sig"] != sig) | (held["sha"] != present.sha) | (gated_in != present.informative)
        self.forget(gone)
        self.insert(present.take(stale))
        return len(gone) + int(stale.sum())

    def forget(self, ids: Iterable[int]) -> None:
        """Take images out of the index (gone from disk, re-indexed): their entries stay in
        the tables with no owner (:meth:`compact` drops them) and a representative's
        lowest-id twin takes them over (it has the same hashes)."""
        ids = [i for i in dict.fromkeys(int(i) for i in ids) if i in self.held]
        gone = set(ids)
        for image_id in ids:
            held = self.held.get(image_id)
            if held.estart >= 0:  # a representative: its entries go to a twin, or to nobody
                heirs = [t for t in self.twin_of.twins_of(image_id) if t not in gone]
                if heirs:
                    self._hand_over(image_id, heirs[0])
                    held = self.held.get(image_id)
                else:
                    self._own(held, -1)
                    self.twins.remove(held.sig, image_id)
                    self.dead_entries += held.ecount
            self.by_sha.remove(held.sha, image_id)
            self.held.set(image_id, None)
            self.twin_of.pop(image_id, None)
            self.records.items.pop(image_id, None)
        self.rows = None

    def _own(self, held: Held, owner: int) -> None:
        """Give the entries and crop-channel probes ``held`` describes to ``owner`` (-1: none)."""
        self.entry_owner.view()[held.estart:held.estart + held.ecount] = owner
        self.probe_owner.view()[held.pstart:held.pstart + len(CROP_CHANNEL)] = owner

    def _hand_over(self, rep: int, twin: int) -> None:
        """``twin`` (equal hashes and content) becomes the representative instead of
        ``rep``, which becomes its twin: entries, twin table and links move over."""
        old, new = self.held.get(rep), self.held.get(twin)
        self._own(old, twin)
        self.held.set(twin, new._replace(estart=old.estart, ecount=old.ecount, pstart=old.pstart))
        self.held.set(rep, old._replace(estart=-1, ecount=0, pstart=-1))
        self.twins.remove(old.sig, rep)
        self.twins.add(old.sig, twin)
        for other in self.twin_of.twins_of(rep):
            self.twin_of[other] = twin
        del self.twin_of[twin]
        self.twin_of[rep] = twin

    def compact(self) -> None:
        """Rebuild the tables without the entries of forgotten images (``dead_entries``);
        entry numbers change, each image's entries stay consecutive."""
        if not self.dead_entries:
            return
        alive, probe_alive = self.entry_owner.view() >= 0, self.probe_owner.view() >= 0
        moved, probe_moved = np.cumsum(alive) - 1, np.cumsum(probe_alive) - 1
        self.index = MultiIndex(self.index.all_hashes()[alive], radius=self.radius)
        self.entry_owner = Column(np.int64, self.entry_owner.view()[alive])
        self.entry_fraction = Column(np.float64, self.entry_fraction.view()[alive])
        self.crop_probes = MultiIndex(self.crop_probes.all_hashes()[probe_alive], radius=self.radius)
        self.probe_owner = Column(np.int64, self.probe_owner.view()[probe_alive])
        self.probe_fraction = Column(np.float64, self.probe_fraction.view()[probe_alive])
        ids, cols = self.held.arrays()
        on = cols["estart"] >= 0
        cols["estart"][on], cols["pstart"][on] = moved[cols["estart"][on]], probe_moved[cols["pstart"][on]]
        self.held = HeldTable(ids, **cols)
        self.dead_entries = 0

    def _forget_for_update(self, ids: list[int]) -> None:
        """Forget those of ``ids`` held now (their rows are about to be held again)."""
        held = [i for i in ids if i in self.held]
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
        lone = max(self.radius, self.lone_radius)
        out = _Proposals()
        for key, slot in proposals.items():
            if min(p.hamming for p in slot.values()) <= lone or proposals.hits[key] >= self.crop_hits:
                out[key] = slot
        return out

    def _reverse_hits(self, proposals, rec: MatchRecord, rows: IndexRows) -> None:
        """Crop-channel probes of indexed images that hit ``rec``'s off-centre crop
        entries (the batch join finds these from the older image's side)."""
        off = rows.crops[0, PROBE_CROPS:int(rows.n_crops[0])]
        pi, qi, d = self.crop_probes.query(off, radius=self.crop_radius)
        for p, j, dist in zip(pi.tolist(), qi.tolist(), d.tolist()):
            if self.probe_owner[j] < 0:
                continue
            self._propose_to(proposals, int(self.probe_owner[j]), ("identity", float(self.probe_fraction[j])),
                             rec.id, float(ENTRY_FRACTIONS[1 + PROBE_CROPS + p]), dist)

    def _keep_hit(self, kind: tuple[str, float], entry: int, dist: int) -> bool:
        """Full-image hashes match within ``radius``; the crop channel (a crop hash on
        either side) within ``crop_radius``."""
        return dist <= self.radius or kind[1] < 1.0 or self.entry_fraction[entry] < 1.0

    def _propose(self, proposals, q: int, kind: tuple[str, float], entry: int, dist: int) -> None:
        owner = int(self.entry_owner[entry])
        if owner >= 0:  # -1: an entry of a forgotten image
            self._propose_to(proposals, q, kind, owner, float(self.entry_fraction[entry]), dist)

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
        out = []
        for job in self.jobs_of(proposals):
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

    def conclude(self, job: Job, verified: Verified) -> PairEvidence | None:
        """The verdict for a verified job (this process: it may compare full-size pixels)."""
        ra, rb = job.a, job.b
        ev = verified.evidence
        eq = (lambda: self.pixels_equal(ra.id, rb.id)) if self.pixels_equal else None
        verdict = decide(sha_a=ra.sha256, sha_b=rb.sha256, evidence=ev, pixels_equal=eq,
                         gated=verified.gated, th=self.th)
        if verdict is None:
            return None
        if verdict == "derived" and self.th.shots_are_not_copies and separate_shots(ra.captured_at, rb.captured_at):
            verdict = "similar"  # two exposures of one scene, not a copy of one file
        refined = verified.thumb_ev is not None and verdict in REFINED_VERDICTS
        if refined:
            ev = replace(ev, delta_ev=verified.thumb_ev)
        pe = _pair(ra, rb, verdict, min(p.hamming for p in job.props), ev)
        return replace(pe, refined=True) if refined else pe

def _pair(ra: MatchRecord, rb: MatchRecord, verdict: str, hamming: int, ev: Evidence | None) -> PairEvidence:
    gap = None
    if ra.captured_at is not None and rb.captured_at is not None:
        gap = abs((rb.captured_at - ra.captured_at).total_seconds())
    if ev is None:  # same bytes: nothing to measure
        return PairEvidence(ra.id, rb.id, verdict, hamming, "identity", (0.0, 0.0), 1.0, 1.0, 1.0, 0.0, gap,
                            describe(None, verdict))
    return PairEvidence(
        a=ra.id, b=rb.id, verdict=verdict, hamming=hamming, transform=orient.inverse(ev.transform),
        shift=(round(ev.x, 2), round(ev.y, 2)), scale=round(ev.scale, 4), correlation=round(ev.corr_rank, 4),
        hist_sim=round(ev.hist_sim, 4), delta_ev=round(ev.delta_ev, 3), time_gap_s=gap,
        description=describe(ev, verdict, hamming=hamming), evidence=ev,
    )
