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
:func:`run_job` on a picklable :class:`Job`, so a caller may run it in worker processes
(:meth:`Matcher.add` returns the jobs, :meth:`Matcher.conclude` takes the result);
results are memoised by the content of both records (:func:`content_key`), so copies of
one picture whose bytes differ are aligned against a new image once.

Pairs are reported with ``a < b`` (ids) and ``transform`` = the D4 transform that turns
``a`` into ``b``'s orientation (``b ~ orient.apply(a, transform)``); ``shift``/``scale``
say where ``b`` sits on ``a``, in ``a``'s full-size display pixels (see
:class:`~indexer.match.verify.Evidence`).
"""
from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

import numpy as np

from indexer import orient
from indexer.hashes import CROP_SPECS
from indexer.match.mih import MultiIndex
from indexer.match.verdict import MatchThresholds, classify, decide, describe, informative, separate_shots
from indexer.match.verify import Evidence, compare

CROP_FRACTIONS = tuple(f for f, _, _ in CROP_SPECS)  # per stored crop hash, in order
PROBE_CROPS = 2  # the centred crops (CROP_SPECS[:2]) are probed; every crop is an entry
DEFAULT_RADIUS = 10
DEFAULT_CROP_RADIUS = 14
_COPY = ("derived", "exposure_variant")
_MAX_OTHER_HINTS = 2  # extra scale hints verified per transform before the full search
_CROP_CHANNEL = np.array([0, *range(8, 8 + PROBE_CROPS)])  # probe rows searched at crop_radius


@dataclass
class MatchRecord:
    """Per-image fields the engine needs (as stored by the indexer).

    ``phash``/``dhash``: signed int64; ``phash_d4``: int64 (8,) in ``orient.D4`` order;
    ``phash_crops``: int64 (10,) in ``hashes.CROP_SPECS`` order (a shorter prefix from an
    older features version is accepted); ``thumb``: uint8 (h, w) grey,
    long side 128, display orientation; ``hist``: uint32 (4, 256); ``width``/``height``:
    display size; ``entropy``: bits; ``luma_std``: 0..1.
    """

    id: int
    sha256: str
    phash: int
    phash_d4: np.ndarray
    phash_crops: np.ndarray
    thumb: np.ndarray
    hist: np.ndarray
    width: int
    height: int
    entropy: float
    luma_std: float
    dhash: int = 0
    captured_at: datetime | None = None
    format: str | None = None
    _content_key: bytes | None = field(default=None, compare=False, repr=False)


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


@dataclass(frozen=True)
class _Proposal:
    hamming: int
    transform: str  # e ~ apply(q, transform)
    scale_hint: float  # q thumbnail px per e thumbnail px
    other_hints: tuple[float, ...] = ()  # the scales other hits of this transform implied


def _probes(rec: MatchRecord) -> tuple[np.ndarray, list[tuple[str, float]]]:
    """Probe hashes of one image, int64 (8 + PROBE_CROPS,), and for each (transform, crop
    fraction). A missing crop hash (older record) is replaced by the canonical hash as a
    full-image probe: it only repeats row 0's hits."""
    crops = [int(h) for h in rec.phash_crops[:PROBE_CROPS]]
    kinds = [(t, 1.0) for t in orient.D4] + [("identity", f) for f in CROP_FRACTIONS[: len(crops)]]
    pad = PROBE_CROPS - len(crops)
    hashes = [int(h) for h in rec.phash_d4] + crops + [int(rec.phash)] * pad
    return np.array(hashes, dtype=np.int64), kinds + [("identity", 1.0)] * pad


def _entries(rec: MatchRecord) -> tuple[np.ndarray, tuple[float, ...]]:
    """Index entries of one image, int64 (1 + n_crops,), and their crop fractions."""
    crops = [int(h) for h in rec.phash_crops[: len(CROP_FRACTIONS)]]
    return np.array([rec.phash, *crops], dtype=np.int64), ENTRY_FRACTIONS[: 1 + len(crops)]


ENTRY_FRACTIONS = (1.0, *CROP_FRACTIONS)


class Matcher:
    """The index over a set of records; batch and incremental matching.

    ``pixels_equal(a_id, b_id) -> bool`` (optional) compares full-size decoded pixels; it
    is called only for pairs whose bytes differ but whose evidence looks untouched.
    """

    def __init__(self, *, radius: int = DEFAULT_RADIUS, crop_radius: int = DEFAULT_CROP_RADIUS,
                 thresholds: MatchThresholds = MatchThresholds(),
                 pixels_equal: Callable[[int, int], bool] | None = None, max_transforms: int = 2):
        self.radius, self.crop_radius, self.th = radius, max(crop_radius, radius), thresholds
        self.pixels_equal, self.max_transforms = pixels_equal, max_transforms
        self.records: dict[int, MatchRecord] = {}
        self.by_sha: dict[str, list[int]] = {}
        self.entry_owner: list[int] = []
        self.entry_fraction: list[float] = []
        self.index = MultiIndex(np.zeros(0, dtype=np.int64), radius=radius)
        # Crop-channel probes of the indexed records, so that an added record's off-centre
        # crop entries meet the probes of records indexed before it, as the batch join does.
        self.probe_owner: list[int] = []
        self.probe_kind: list[tuple[str, float]] = []
        self.crop_probes = MultiIndex(np.zeros(0, dtype=np.int64), radius=radius)
        self.memo = Memo()  # verifications by content: copies of one picture align once

    @classmethod
    def from_records(cls, records: Iterable[MatchRecord], **options) -> "Matcher":
        """Build the index in one go (batch start-up)."""
        m = cls(**options)
        hashes, probes = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
        for rec in records:
            m._remember(rec)
            if m.is_informative(rec):
                entries, fractions = _entries(rec)
                hashes.append(entries)
                m.entry_owner.extend([rec.id] * len(entries))
                m.entry_fraction.extend(fractions)
                probes.append(m._remember_probes(rec))
        m.index = MultiIndex(np.concatenate(hashes), radius=m.radius)
        m.crop_probes = MultiIndex(np.concatenate(probes), radius=m.radius)
        return m

    def is_informative(self, rec: MatchRecord) -> bool:
        return informative(rec.entropy, rec.luma_std, rec.thumb.shape, self.th)

    def _remember(self, rec: MatchRecord) -> None:
        self.records[rec.id] = rec
        self.by_sha.setdefault(rec.sha256, []).append(rec.id)

    def batch_pairs(self) -> list[PairEvidence]:
        """All accepted pairs among the indexed records (each pair once, sorted by (a, b))."""
        recs = [r for r in self.records.values() if self.is_informative(r)]
        proposals: dict[tuple[int, int], dict[str, _Proposal]] = {}
        if recs and len(self.index):
            probed = [_probes(r) for r in recs]
            probes = np.stack([p for p, _ in probed])  # (n, 8 + PROBE_CROPS)
            owners = [r.id for r in recs]
            for cols, radius in ((np.arange(8), self.radius), (_CROP_CHANNEL, self.crop_radius)):
                pi, ei, d = self.index.join(probes[:, cols].ravel(), radius=radius)
                for p, e, dist in zip(pi.tolist(), ei.tolist(), d.tolist()):
                    row, col = divmod(p, len(cols))
                    kind = probed[row][1][int(cols[col])]
                    if self._keep_hit(kind, e, dist):
                        self._propose(proposals, owners[row], kind, e, dist)
        self._propose_sha(proposals, self.records)
        return sorted(self._verify_all(proposals), key=lambda pe: (pe.a, pe.b))

    def add_and_match(self, rec: MatchRecord) -> list[PairEvidence]:
        """Match one new record against everything indexed, then add it (incremental)."""
        return sorted(self._verify_all(self._propose_and_add(rec)), key=lambda pe: (pe.a, pe.b))

    def _propose_and_add(self, rec: MatchRecord) -> dict:
        """Candidate proposals of ``rec`` against the index, then ``rec`` added to it."""
        proposals: dict[tuple[int, int], dict[str, _Proposal]] = {}
        if self.is_informative(rec) and len(self.index):
            probes, kinds = _probes(rec)
            for cols, radius in ((np.arange(8), self.radius), (_CROP_CHANNEL, self.crop_radius)):
                pi, ei, d = self.index.query(probes[cols], radius=radius)
                for p, e, dist in zip(pi.tolist(), ei.tolist(), d.tolist()):
                    if self._keep_hit(kinds[int(cols[p])], e, dist):
                        self._propose(proposals, rec.id, kinds[int(cols[p])], e, dist)
        if self.is_informative(rec) and len(self.crop_probes):
            self._reverse_hits(proposals, rec)
        self._propose_sha(proposals, {rec.id: rec}, pool=self.by_sha)
        self._remember(rec)
        if self.is_informative(rec):
            entries, fractions = _entries(rec)
            self.index.add(entries)
            self.entry_owner.extend([rec.id] * len(entries))
            self.entry_fraction.extend(fractions)
            self.crop_probes.add(self._remember_probes(rec))
        return proposals

    def _remember_probes(self, rec: MatchRecord) -> np.ndarray:
        """Note ``rec``'s crop-channel probes (owner, kind); returns their hashes."""
        probes, kinds = _probes(rec)
        self.probe_owner.extend([rec.id] * len(_CROP_CHANNEL))
        self.probe_kind.extend(kinds[int(c)] for c in _CROP_CHANNEL)
        return probes[_CROP_CHANNEL]

    def _reverse_hits(self, proposals, rec: MatchRecord) -> None:
        """Crop-channel probes of indexed records that hit ``rec``'s off-centre crop
        entries (the batch join finds these from the older record's side)."""
        entries, fractions = _entries(rec)
        off = slice(1 + PROBE_CROPS, len(entries))
        pi, qi, d = self.crop_probes.query(entries[off], radius=self.crop_radius)
        for p, j, dist in zip(pi.tolist(), qi.tolist(), d.tolist()):
            self._propose_to(proposals, self.probe_owner[j], self.probe_kind[j], rec.id,
                             fractions[off][p], dist)

    def _keep_hit(self, kind: tuple[str, float], entry: int, dist: int) -> bool:
        """Full-image hashes match within ``radius``; the crop channel (a crop hash on
        either side) within ``crop_radius``."""
        return dist <= self.radius or kind[1] < 1.0 or self.entry_fraction[entry] < 1.0

    def _propose(self, proposals, q: int, kind: tuple[str, float], entry: int, dist: int) -> None:
        self._propose_to(proposals, q, kind, self.entry_owner[entry], self.entry_fraction[entry], dist)

    def _propose_to(self, proposals, q: int, kind: tuple[str, float], e: int, fe: float, dist: int) -> None:
        """Probe ``kind`` = (transform, fraction) of ``q`` hit an entry of fraction ``fe`` of ``e``."""
        if e == q:
            return
        t, fq = kind
        prop = _Proposal(dist, t, fq / fe)
        if e > q:  # store as (a, b) = (q, e): q ~ apply(e, inverse(t)), scales inverted
            key, prop = (q, e), _Proposal(dist, orient.inverse(t), 1.0 / prop.scale_hint)
        else:
            key = (e, q)
        slot = proposals.setdefault(key, {})
        old = slot.get(prop.transform)
        if old is None:
            slot[prop.transform] = prop
            return
        best, other = (prop, old) if prop.hamming < old.hamming else (old, prop)
        hints = [h for h in (other.scale_hint, *old.other_hints, *prop.other_hints)
                 if not math.isclose(h, best.scale_hint, rel_tol=0.01)]
        kept = tuple(dict.fromkeys(round(h, 4) for h in hints))[: _MAX_OTHER_HINTS]
        slot[prop.transform] = _Proposal(best.hamming, best.transform, best.scale_hint, kept)

    def _propose_sha(self, proposals, new: dict[int, MatchRecord], pool: dict | None = None) -> None:
        groups = pool if pool is not None else self.by_sha
        for rec in new.values():
            for other in groups.get(rec.sha256, []):
                if other != rec.id:
                    key = (min(other, rec.id), max(other, rec.id))
                    proposals.setdefault(key, {}).setdefault("identity", _Proposal(0, "identity", 1.0))

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

    def jobs_of(self, proposals) -> list["Job"]:
        """One :class:`Job` per proposed pair, its proposals best (lowest distance) first."""
        return [Job(self.records[a], self.records[b], tuple(sorted(slot.values(), key=lambda p: p.hamming)))
                for (a, b), slot in proposals.items()]

    def add(self, rec: MatchRecord) -> list["Job"]:
        """Incremental mode, split for a caller that verifies elsewhere (worker processes):
        add ``rec`` and return the verification jobs of its candidate pairs."""
        return self.jobs_of(self._propose_and_add(rec))

    def verify_pair(self, ra: MatchRecord, rb: MatchRecord, props: list[_Proposal]) -> PairEvidence | None:
        """Verify proposals for (a, b) (``a ~ apply(b, t)`` each); the accepted pair or None."""
        job = Job(ra, rb, tuple(props))
        return self.conclude(job, run_job(job, self.th, self.max_transforms))

    def conclude(self, job: "Job", verified: "Verified") -> PairEvidence | None:
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
        ham = min(p.hamming for p in job.props)
        return _pair(ra, rb, verdict, ham, ev)


def content_key(rec: MatchRecord) -> bytes:
    """Digest of everything :func:`run_job` reads from a record (thumbnail, histogram,
    display size, information gate): records with equal keys verify identically, so
    byte-different copies of one picture (rewritten metadata, trailing bytes) are aligned
    once, not once per copy."""
    if rec._content_key is None:
        h = hashlib.blake2b(digest_size=16)
        thumb = np.ascontiguousarray(rec.thumb)
        for part in (repr((thumb.shape, rec.width, rec.height, rec.entropy, rec.luma_std)).encode(),
                     thumb.tobytes(), np.ascontiguousarray(rec.hist).tobytes()):
            h.update(part)
        rec._content_key = h.digest()
    return rec._content_key


@dataclass(frozen=True)
class Job:
    """One candidate pair to verify: records ``a`` < ``b`` and their proposals, best first.
    Picklable: :func:`run_job` may run it in a worker process."""

    a: MatchRecord
    b: MatchRecord
    props: tuple[_Proposal, ...]

    def key(self, max_transforms: int) -> tuple | None:
        """Memo key (equal keys give equal :class:`Verified`); None for byte-identical
        records, which need no pixels."""
        if self.a.sha256 == self.b.sha256:
            return None
        tried = tuple((p.transform, p.scale_hint, p.other_hints) for p in self.props[:max_transforms])
        return content_key(self.a), content_key(self.b), tried


@dataclass(frozen=True)
class Verified:
    """What the pixels said about a :class:`Job`: the best evidence (None when not
    compared: same bytes, or an uninformative image) and whether the pair is gated."""

    evidence: Evidence | None
    gated: bool = False


def run_job(job: Job, th: MatchThresholds, max_transforms: int) -> Verified:
    """Pixel evidence for a job (pure: no database, no files; runs in any process).

    Per proposal (at most ``max_transforms``, best first): the hinted scale, then the
    scales other hash hits implied (crop fractions are coarse: a 95% crop meets an 85%
    entry, and a hint 12% off can drop a copy to ``similar``), then a full scale search,
    stopping at the first copy verdict; the highest-peak evidence is kept.
    """
    ra, rb = job.a, job.b
    gated = not (informative(ra.entropy, ra.luma_std, ra.thumb.shape, th)
                 and informative(rb.entropy, rb.luma_std, rb.thumb.shape, th))
    if ra.sha256 == rb.sha256 or gated:
        return Verified(None, gated)
    best = None
    for prop in job.props[:max_transforms]:
        for hint in (prop.scale_hint, *prop.other_hints, None):
            ev = compare(ra.thumb, rb.thumb, ra.hist, rb.hist, transform=prop.transform,
                         size_a=(ra.width, ra.height), size_b=(rb.width, rb.height), scale_hint=hint)
            if best is None or ev.peak > best.peak:
                best = ev
            if classify(best, th) in _COPY:
                return Verified(best)  # the best-hashing transform verified; others cannot do better
    return Verified(best)


class Memo:
    """A bounded least-recently-used map from :meth:`Job.key` to :class:`Verified`."""

    def __init__(self, size: int = 50_000):
        self.size, self.items = size, OrderedDict()

    def get(self, key):
        if key is None or key not in self.items:
            return None
        self.items.move_to_end(key)
        return self.items[key]

    def put(self, key, value):
        if key is not None:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value


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
