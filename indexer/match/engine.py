"""Near-duplicate engine: candidates from hashes, verified by pixels, classified.

Pure orchestration over in-memory :class:`MatchRecord` s (no database, no files).

Candidates. Every informative image puts three entries in one
:class:`~indexer.match.mih.MultiIndex`: its canonical pHash and the pHashes of its centred
90% and 80% crops. Every image probes with its 8 D4 variants (``phash_d4``, so rotated and
mirrored copies are found and the transform is known) and its two crop hashes. A probe
``crop_fq(t(q))`` hitting entry ``crop_fe(e)`` proposes "``e ~ t(q)``, with ``q``'s
content at ``fq / fe`` times ``e``'s thumbnail scale"; crossing crop and full hashes is
what finds crops of 80-95% that a global hash misses. The 8 D4 probes search within
``radius`` (default 10); pairs involving a crop hash within ``crop_radius`` (default 14:
on the Kodak set it lifts crops found from 10/24 to 17/24 and 1-5% shifts from 13/24 to
21/24; verification keeps precision). Equal SHA-256 always pairs. For archives of
millions, set ``crop_radius = radius``: search cost grows steeply with the radius.

Verification. Per image pair, the best (lowest Hamming distance) proposal of each
transform is verified by :func:`indexer.match.verify.compare` (at most ``max_transforms``
transforms, best evidence kept), then :func:`indexer.match.verdict.decide`.

Pairs are reported with ``a < b`` (ids) and ``transform`` = the D4 transform that turns
``a`` into ``b``'s orientation (``b ~ orient.apply(a, transform)``); ``shift``/``scale``
say where ``b`` sits on ``a``, in ``a``'s full-size display pixels (see
:class:`~indexer.match.verify.Evidence`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

import numpy as np

from indexer import orient
from indexer.match.mih import MultiIndex
from indexer.match.verdict import MatchThresholds, classify, decide, describe, informative, separate_shots
from indexer.match.verify import Evidence, compare

CROP_FRACTIONS = (0.9, 0.8)  # must match hashes.crop_phashes as stored
DEFAULT_RADIUS = 10
DEFAULT_CROP_RADIUS = 14
_COPY = ("derived", "exposure_variant")
_CROP_CHANNEL = np.array([0, 8, 9])  # probe rows searched at crop_radius: canonical + 2 crops


@dataclass
class MatchRecord:
    """Per-image fields the engine needs (as stored by the indexer).

    ``phash``/``dhash``: signed int64; ``phash_d4``: int64 (8,) in ``orient.D4`` order;
    ``phash_crops``: int64 (2,) for centred 90%/80% crops; ``thumb``: uint8 (h, w) grey,
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


def _probes(rec: MatchRecord) -> tuple[np.ndarray, list[tuple[str, float]]]:
    """Probe hashes of one image and, for each, (transform, crop fraction)."""
    hashes = [int(h) for h in rec.phash_d4] + [int(h) for h in rec.phash_crops]
    kinds = [(t, 1.0) for t in orient.D4] + [("identity", f) for f in CROP_FRACTIONS]
    return np.array(hashes, dtype=np.int64), kinds


def _entries(rec: MatchRecord) -> np.ndarray:
    return np.array([rec.phash, *[int(h) for h in rec.phash_crops]], dtype=np.int64)


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

    @classmethod
    def from_records(cls, records: Iterable[MatchRecord], **options) -> "Matcher":
        """Build the index in one go (batch start-up)."""
        m = cls(**options)
        hashes = []
        for rec in records:
            m._remember(rec)
            if m.is_informative(rec):
                hashes.append(_entries(rec))
                m.entry_owner.extend([rec.id] * 3)
                m.entry_fraction.extend(ENTRY_FRACTIONS)
        all_hashes = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.int64)
        m.index = MultiIndex(all_hashes, radius=m.radius)
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
            probes = np.stack([_probes(r)[0] for r in recs])  # (n, 10)
            owners = [r.id for r in recs]
            _, kinds = _probes(recs[0])
            for cols, radius in ((np.arange(8), self.radius), (_CROP_CHANNEL, self.crop_radius)):
                pi, ei, d = self.index.join(probes[:, cols].ravel(), radius=radius)
                for p, e, dist in zip(pi.tolist(), ei.tolist(), d.tolist()):
                    col = int(cols[p % len(cols)])
                    if self._keep_hit(col, e, dist):
                        self._propose(proposals, owners[p // len(cols)], kinds[col], e, dist)
        self._propose_sha(proposals, self.records)
        return sorted(self._verify_all(proposals), key=lambda pe: (pe.a, pe.b))

    def add_and_match(self, rec: MatchRecord) -> list[PairEvidence]:
        """Match one new record against everything indexed, then add it (incremental)."""
        proposals: dict[tuple[int, int], dict[str, _Proposal]] = {}
        if self.is_informative(rec) and len(self.index):
            probes, kinds = _probes(rec)
            for cols, radius in ((np.arange(8), self.radius), (_CROP_CHANNEL, self.crop_radius)):
                pi, ei, d = self.index.query(probes[cols], radius=radius)
                for p, e, dist in zip(pi.tolist(), ei.tolist(), d.tolist()):
                    if self._keep_hit(int(cols[p]), e, dist):
                        self._propose(proposals, rec.id, kinds[int(cols[p])], e, dist)
        self._propose_sha(proposals, {rec.id: rec}, pool=self.by_sha)
        self._remember(rec)
        if self.is_informative(rec):
            self.index.add(_entries(rec))
            self.entry_owner.extend([rec.id] * 3)
            self.entry_fraction.extend(ENTRY_FRACTIONS)
        return sorted(self._verify_all(proposals), key=lambda pe: (pe.a, pe.b))

    def _keep_hit(self, col: int, entry: int, dist: int) -> bool:
        """Full-image hashes match within ``radius``; the crop channel (a crop hash on
        either side) within ``crop_radius``."""
        return dist <= self.radius or col >= 8 or self.entry_fraction[entry] < 1.0

    def _propose(self, proposals, q: int, kind: tuple[str, float], entry: int, dist: int) -> None:
        e = self.entry_owner[entry]
        if e == q:
            return
        t, fq = kind
        prop = _Proposal(dist, t, fq / self.entry_fraction[entry])
        if e > q:  # store as (a, b) = (q, e): q ~ apply(e, inverse(t)), scales inverted
            key, prop = (q, e), _Proposal(dist, orient.inverse(t), 1.0 / prop.scale_hint)
        else:
            key = (e, q)
        slot = proposals.setdefault(key, {})
        if prop.transform not in slot or prop.hamming < slot[prop.transform].hamming:
            slot[prop.transform] = prop

    def _propose_sha(self, proposals, new: dict[int, MatchRecord], pool: dict | None = None) -> None:
        groups = pool if pool is not None else self.by_sha
        for rec in new.values():
            for other in groups.get(rec.sha256, []):
                if other != rec.id:
                    key = (min(other, rec.id), max(other, rec.id))
                    proposals.setdefault(key, {}).setdefault("identity", _Proposal(0, "identity", 1.0))

    def _verify_all(self, proposals) -> list[PairEvidence]:
        out = []
        for (a, b), slot in proposals.items():
            pe = self.verify_pair(self.records[a], self.records[b], sorted(slot.values(), key=lambda p: p.hamming))
            if pe is not None:
                out.append(pe)
        return out

    def verify_pair(self, ra: MatchRecord, rb: MatchRecord, props: list[_Proposal]) -> PairEvidence | None:
        """Verify proposals for (a, b) (``a ~ apply(b, t)`` each); the accepted pair or None."""
        gated = not (self.is_informative(ra) and self.is_informative(rb))
        best = None
        if ra.sha256 != rb.sha256 and not gated:
            for prop in props[: self.max_transforms]:
                # The hinted scale first; a full scale search when that does not verify as a
                # copy (a crop found through the full-image hash carries the hint 1.0).
                for hint in (prop.scale_hint, None):
                    ev = compare(ra.thumb, rb.thumb, ra.hist, rb.hist, transform=prop.transform,
                                 size_a=(ra.width, ra.height), size_b=(rb.width, rb.height), scale_hint=hint)
                    if best is None or ev.peak > best[1].peak:
                        best = (prop, ev)
                    if classify(best[1], self.th) in _COPY:
                        break
                if classify(best[1], self.th) in _COPY:
                    break  # the best-hashing transform verified; others cannot do better
        ev = best[1] if best else None
        eq = (lambda: self.pixels_equal(ra.id, rb.id)) if self.pixels_equal else None
        verdict = decide(sha_a=ra.sha256, sha_b=rb.sha256, evidence=ev, pixels_equal=eq, gated=gated, th=self.th)
        if verdict is None:
            return None
        if verdict == "derived" and self.th.shots_are_not_copies and separate_shots(ra.captured_at, rb.captured_at):
            verdict = "similar"  # two exposures of one scene, not a copy of one file
        ham = min(p.hamming for p in props)
        return _pair(ra, rb, verdict, ham, ev)


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
