"""Pixel verification of candidate pairs as picklable jobs (any process may run them).

:class:`Job`: two records and their hash proposals; :func:`run_job`: the pixel evidence
(pure: no database, no files); :class:`Memo`: results by the content of both records,
so copies of one picture whose bytes differ are aligned against a new image once.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


from indexer.measure import orient
from indexer.exposure.pairev import thumb_delta_ev
from indexer.match.records import MatchRecord, content_key
from indexer.match.verdict import REFINED_VERDICTS, MatchThresholds, classify, informative
from indexer.match.verify import Evidence, compare

COPY_VERDICTS = ("derived", "exposure_variant")


@dataclass(frozen=True)
class Proposal:
    """One hash hit behind a candidate pair (a, b): ``a ~ apply(b, transform)``."""

    hamming: int
    transform: str
    scale_hint: float  # b thumbnail px per a thumbnail px, as the hashes' crop fractions imply
    other_hints: tuple[float, ...] = ()  # the scales other hits of this transform implied


@dataclass(frozen=True)
class Job:
    """One candidate pair to verify: records ``a`` < ``b`` and their proposals, best first."""

    a: MatchRecord
    b: MatchRecord
    props: tuple[Proposal, ...]

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
    thumb_ev: float | None = None  # delta EV from the thumbnails' transfer curve, see run_job


def run_job(job: Job, th: MatchThresholds, max_transforms: int) -> Verified:
    """Pixel evidence for a job.

    Per proposal (at most ``max_transforms``, best first): the hinted scale, then the
    scales other hash hits implied (crop fractions are coarse: a 95% crop meets an 85%
    entry, and a hint 12% off can drop a copy to ``similar``), then a full scale search,
    stopping at the first copy verdict; the highest-peak evidence is kept. A hint that
    fails falls back to the full search, which is run once per transform however many
    hints fail (``compare``'s ``searched``): the same Evidence, ~12 ms less per failed
    hint after the first.
    """
    ra, rb = job.a, job.b
    gated = not (informative(ra.entropy, ra.luma_std, ra.thumb.shape, th)
                 and informative(rb.entropy, rb.luma_std, rb.thumb.shape, th))
    if ra.sha256 == rb.sha256 or gated:
        return Verified(None, gated)
    best = None
    searched: dict = {}  # the unhinted search's Evidence per transform, once (see compare)
    for prop in job.props[:max_transforms]:
        for hint in (prop.scale_hint, *prop.other_hints, None):
            ev = compare(ra.thumb, rb.thumb, ra.hist, rb.hist, transform=prop.transform,
                         size_a=(ra.width, ra.height), size_b=(rb.width, rb.height), scale_hint=hint,
                         searched=searched)
            if best is None or ev.peak > best.peak:
                best = ev
            if classify(best, th) in COPY_VERDICTS:
                return _with_exposure(job, best, th)  # the best-hashing transform verified
    return _with_exposure(job, best, th)


def _with_exposure(job: Job, ev: Evidence | None, th: MatchThresholds) -> Verified:
    """The result, with the thumbnails' transfer-curve delta EV for a pair of one scene
    (:func:`indexer.exposure.pairev.thumb_delta_ev`, in the pair's stored geometry), so
    the writer does not measure it again."""
    if ev is None or classify(ev, th) not in REFINED_VERDICTS:
        return Verified(ev)
    try:
        value = thumb_delta_ev(job.a, job.b, transform=orient.inverse(ev.transform),
                               shift=(round(ev.x, 2), round(ev.y, 2)), scale=round(ev.scale, 4))
    except Exception:  # noqa: BLE001 - a refinement never loses the pair: the rough value stays
        value = None
    return Verified(ev, thumb_ev=value)


class Memo:
    """A bounded least-recently-used map from :meth:`Job.key` to :class:`Verified`."""

    def __init__(self, size: int = 10_000):  # ~1 KB an entry
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
