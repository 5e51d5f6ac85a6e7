"""Exposure QA inside ``index``/``watch``: per-image flags, and the measured delta EV of
stored pairs refined by :mod:`indexer.exposure.transfer`.

Flags. :class:`FlagStage` is a post-store hook: every stored image gets the checks of
:func:`indexer.exposure.flags.evaluate` on its features, and the fired ones replace its
rows in ``image_flags``. ``odd_size`` needs the dataset's size quartiles: read from the
database when the stage starts (a run's own files count from the next run, or after
:func:`refresh_flags`, which re-evaluates every image from its stored columns).

Pairs. The matcher measures a rough delta EV on grey thumbnails (sRGB-decoded, fixed
clip levels). :func:`refine_pairs` replaces it, for pairs of one scene, with the
transfer-curve measure on the same thumbnails aligned by the pair's transform and shift
(decoding chosen by the straightest curve, so BT.709-encoded camera JPEGs read right),
and, for two RAW frames of one geometry judged exposure variants, with the median log
ratio of their black-subtracted CFA data (:func:`indexer.exposure.transfer.delta_ev_cfa`).
Cost: the thumbnail path works on stored thumbnails and stays cheap; the CFA path
unpacks both RAW files (a full LibRaw unpack each, far dearer), so it runs only for RAW
exposure variants (figures: docs/BENCHMARKS.md).
"""
from __future__ import annotations

import dataclasses
import math
import re
from types import SimpleNamespace

import numpy as np

from db import flags as dbflags
from db import pairs as dbpairs
from db.health import fatal_message
from db.store import unpack_hist
from indexer.exposure import transfer
from indexer.exposure.pairev import thumb_delta_ev
from indexer.exposure.flags import FLAGS_VERSION, FlagThresholds, fired
from indexer.match.engine import MatchRecord, PairEvidence
from indexer.match.verdict import REFINED_VERDICTS, describe
from indexer.session import Session

_UNSET = object()


class FlagStage:
    """A :class:`~indexer.pipeline.stages.Stage`: store the fired flags of each image (replacing its old ones).

    ``requery_every``: the size quartiles are read at the first image and again after
    this many images, so a long-running ``watch`` follows its growing dataset (one
    ``SELECT width, height`` over the images each time).
    """

    def __init__(self, session: Session, *, requery_every: int = 1000):
        self.engine = session.engine
        self.thresholds: FlagThresholds = session.settings.flags
        self.quartiles = _UNSET
        self.requery_every, self.seen = requery_every, 0
        self.held: dict[int, list] | None = None  # a batch's flags, written at end_batch

    def __call__(self, image_id: int, result) -> None:
        if self.quartiles is _UNSET or self.seen >= self.requery_every:
            self.quartiles = dbflags.size_quartiles(self.engine)
            self.seen = 0
        self.seen += 1
        d = result.decoded
        found = fired(result.features, d.width, d.height, thresholds=self.thresholds,
                      size_quartiles=self.quartiles)
        if self.held is not None:
            self.held[image_id] = list(found)
        else:
            dbflags.replace_flags(self.engine, image_id, found, FLAGS_VERSION)

    def prepare(self) -> None:
        """The first quartiles are read before the writer stores a batch, as before its
        first image stored alone (fewer than 20 images: none). The batch's flags are held
        until :meth:`end_batch`: one transaction per batch instead of one per image
        (nothing reads an image's flags while the writer is still on its batch)."""
        if self.quartiles is _UNSET:
            self.quartiles = dbflags.size_quartiles(self.engine)
        self.held = {}

    def end_batch(self) -> None:
        """Write the flags of the batch's images (one transaction). When that transaction
        is refused (an image deleted by another process meanwhile: its foreign key), each
        image's flags are written alone, so only the images that fail lose theirs; they are
        named in the error the stage reports."""
        held, self.held = self.held, None
        if not held:
            return
        try:
            dbflags.replace_flags_of(self.engine, held, FLAGS_VERSION)
            return
        except Exception as exc:
            if fatal_message(exc):
                raise
        failed = []
        for image_id, found in held.items():
            try:
                dbflags.replace_flags(self.engine, image_id, found, FLAGS_VERSION)
            except Exception as exc:
                if fatal_message(exc):
                    raise
                failed.append(f"{image_id} ({type(exc).__name__})")
        if failed:
            raise RuntimeError(f"flags not stored for {len(failed)} image(s), ids: {', '.join(failed[:10])}")

    def flush_due(self) -> None:
        """Nothing waits: each image's flags are stored with its batch."""

    def close(self) -> None:
        """Write what a batch left held (none when :meth:`end_batch` ran)."""
        self.end_batch()


def _stored_features(row: tuple) -> SimpleNamespace:
    (_, _, _, hist, p1, p99, clip_high, clip_low, sharpness, colourfulness, ev) = row
    return SimpleNamespace(hist=unpack_hist(hist), luma_p1=p1, luma_p99=p99, clip_high=clip_high,
                           clip_low=clip_low, sharpness=sharpness, colourfulness=colourfulness, ev=ev)


def refresh_flags(session: Session) -> int:
    """Re-evaluate every present image's flags from its stored measurements with fresh
    size quartiles and the session's thresholds (no decoding); returns how many images
    have at least one flag."""
    engine = session.engine
    quartiles = dbflags.size_quartiles(engine)
    out = {}
    for row in dbflags.flag_inputs(engine):
        out[row[0]] = fired(_stored_features(row), row[1], row[2], thresholds=session.settings.flags,
                            size_quartiles=quartiles)
    dbflags.replace_all_flags(engine, out, FLAGS_VERSION)
    return sum(1 for f in out.values() if f)


def _cfa_signal(path: str):
    """(black-subtracted float32 CFA plane, white - black) of a RAW file, or None."""
    from pathlib import Path

    from indexer import decode

    from indexer.decode import raw as rawdecode

    try:
        plane = rawdecode.read_cfa(decode.read_bytes(Path(path)))
    except (decode.DecodeError, OSError):
        return None
    if plane is None:
        return None
    h, w = plane.data.shape
    black = plane.black[np.tile(plane.pattern, (h // 2 + 1, w // 2 + 1))[:h, :w]]
    return plane.data.astype(np.float32) - black, float(plane.white - plane.black.max())


def _overlap(a: np.ndarray, b: np.ndarray, ky: int, kx: int):
    """Views of A and B where ``A[y, x]`` meets ``B[y - ky, x - kx]``."""
    h, w = a.shape
    ya, yb = slice(max(ky, 0), min(h, h + ky)), slice(max(-ky, 0), min(h, h - ky))
    xa, xb = slice(max(kx, 0), min(w, w + kx)), slice(max(-kx, 0), min(w, w - kx))
    return a[ya, xa], b[yb, xb]


def cfa_delta_ev(path_a: str, path_b: str, *, shift: tuple[float, float] = (0.0, 0.0),
                 cache: dict | None = None, min_pixels: int = 1000) -> float | None:
    """Delta EV (B over A) of two RAW frames of one sensor geometry from their
    black-subtracted CFA data, B displaced by ``shift`` (x, y) sensor pixels rounded to
    even numbers (so same-colour sites meet). None when a file cannot be unpacked, has no
    CFA, the geometries differ, or too few sites are usable. ``cache``: path -> signal,
    so a file paired several times is unpacked once."""
    cache = {} if cache is None else cache
    for p in (path_a, path_b):
        if p not in cache:
            cache[p] = _cfa_signal(p)
    sa, sb = cache[path_a], cache[path_b]
    if sa is None or sb is None or sa[0].shape != sb[0].shape:
        return None
    ky, kx = 2 * round(shift[1] / 2), 2 * round(shift[0] / 2)
    a, b = _overlap(sa[0], sb[0], ky, kx)
    res = transfer.delta_ev_cfa(a, b, white=sa[1], min_pixels=min_pixels).pooled
    return None if math.isnan(res.delta_ev) else float(res.delta_ev)


def cfa_eligible(src_a: tuple, src_b: tuple, verdict: str, transform: str) -> bool:
    """Two RAW frames (format ``RAW-*``), same stored size and orientation, no rotation
    between them, judged an exposure variant."""
    return (verdict == "exposure_variant" and transform == "identity"
            and src_a[1].startswith("RAW-") and src_b[1].startswith("RAW-")
            and src_a[2:] == src_b[2:])


def _sensor_shift(shift: tuple[float, float], orientation: int) -> tuple[float, float] | None:
    """A display-pixel shift in sensor pixels; None for a rotated frame with a real shift."""
    if orientation == 1 or max(abs(shift[0]), abs(shift[1])) < 1.0:
        return shift if orientation == 1 else (0.0, 0.0)
    return None


def refined_delta_ev(ra: MatchRecord, rb: MatchRecord, *, verdict: str,
                     transform: str, shift: tuple[float, float], scale: float,
                     sources: dict[int, tuple], cache: dict, thumbs_done: bool = False) -> float | None:
    """The best delta EV available for one pair (CFA, else thumbnails), or None to keep
    the engine's value. ``sources``: id -> (path, format, width, height, orientation);
    ``thumbs_done``: the engine's value is already the thumbnail measure (computed with
    the verification, in a worker), so only the CFA path is tried."""
    try:
        value = None if thumbs_done else thumb_delta_ev(ra, rb, transform=transform, shift=shift, scale=scale)
        src_a, src_b = sources.get(ra.id), sources.get(rb.id)
        if src_a and src_b and cfa_eligible(src_a, src_b, verdict, transform):
            sensor_shift = _sensor_shift(shift or (0.0, 0.0), src_a[4])
            if sensor_shift is not None:
                cfa = cfa_delta_ev(src_a[0], src_b[0], shift=sensor_shift, cache=cache)
                value = cfa if cfa is not None else value
    except Exception:  # noqa: BLE001 - a refinement must never lose the pair it refines
        return None
    return value


def refine_pairs(session: Session, records: dict[int, MatchRecord],
                 found: list[PairEvidence]) -> list[PairEvidence]:
    """``found`` with ``delta_ev`` (and the description's EV) refined for pairs of one
    scene; other pairs, and pairs that cannot be refined, are returned unchanged."""
    todo = [pe for pe in found if pe.verdict in REFINED_VERDICTS
            and not (pe.refined and pe.verdict != "exposure_variant")  # only those may go on to CFA
            and pe.a in records and pe.b in records]
    if not todo:
        return found
    sources = dbflags.pair_sources(session.engine, {p.a for p in todo} | {p.b for p in todo})
    cache: dict = {}
    refined = {}
    for pe in todo:
        value = refined_delta_ev(records[pe.a], records[pe.b], verdict=pe.verdict,
                                 transform=pe.transform, shift=pe.shift, scale=pe.scale,
                                 sources=sources, cache=cache, thumbs_done=pe.refined)
        if value is not None:
            text = pe.description
            if pe.evidence is not None:
                text = describe(dataclasses.replace(pe.evidence, delta_ev=value), pe.verdict,
                                hamming=pe.hamming, shot=pe.shot)
            refined[(pe.a, pe.b)] = dataclasses.replace(pe, delta_ev=round(value, 3), description=text)
    return [refined.get((pe.a, pe.b), pe) for pe in found]


_EV_WORDS = re.compile(r"(brighter|darker) by [0-9.]+ EV")


def _redescribe(text: str | None, value: float) -> str | None:
    if not text or not _EV_WORDS.search(text):
        return None
    return _EV_WORDS.sub(f"{'brighter' if value > 0 else 'darker'} by {abs(value):.1f} EV", text)


def refresh_pair_ev(session: Session) -> int:
    """Refine the measured delta EV of every stored pair of one scene (after a
    ``dupes --rematch``, or pairs stored before this stage existed); returns the count."""
    engine = session.engine
    stored = [p for p in dbpairs.all_pairs(engine) if p.verdict in REFINED_VERDICTS]
    if not stored:
        return 0
    ids = {p.a for p in stored} | {p.b for p in stored}
    records = {r.id: r for r in dbpairs.load_records(engine, ids)}
    sources = dbflags.pair_sources(engine, ids)
    cache: dict = {}
    values = {}
    for p in stored:
        if p.a not in records or p.b not in records:
            continue
        value = refined_delta_ev(records[p.a], records[p.b], verdict=p.verdict,
                                 transform=p.transform, shift=(p.shift_x, p.shift_y), scale=p.scale,
                                 sources=sources, cache=cache)
        if value is not None:
            values[(p.a, p.b)] = (round(value, 3), _redescribe(p.description, value))
    dbpairs.set_delta_ev(engine, values)
    return len(values)
