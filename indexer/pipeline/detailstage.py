"""Detail of resized pairs at native size, measured before the matching stage stores them.

For each pair of a group verdict whose sides differ in size by
:data:`indexer.match.upscale.MIN_SCALE` or more, both files are decoded at full size and
:func:`indexer.measure.detail.detail` tells whether the bigger side holds detail above
the smaller's; the pair carries ``detail_gain``/``detail_above`` into ``pairs`` and the
keeper rule reads them (:mod:`indexer.match.upscale`). The cost is per resized pair of
a group, not per image: two full-size grey decodes and the spectra (a 12 MP frame and
its 27 MP upscale: 53 + 192 + 13 ms CPU, 4.7x the draft decode the index spends on the
frame, measured in one run). ``index`` and ``watch`` run it in the verification pool
(:meth:`indexer.pipeline.verifypool.Verifier.submit_detail`, :func:`measure_detail`),
never in the writer: on the dense set of ``bench/end_to_end.py`` it was 1.06 s of the
writer's 11 s of CPU (2026-12-07); ``rematch`` (:func:`measure_pairs`) runs it in its
own process. RAW files are not measured (RAW ranks before its renderings anyway), nor
files that cannot be decoded (the pixel count decides, as before).
"""
from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterable

from indexer import decode
from indexer.match.engine import MatchRecord, PairEvidence
from indexer.match.shots import is_raw
from indexer.match.upscale import bigger_side

_KEEP_DECODED = 4  # grey images kept between pairs (a group's source is paired with each copy)


Task = tuple[tuple[int, int], str, str, float]  # (pair key (a, b), big side's path, small side's, scale)


def tasks_of(engine, records: dict[int, MatchRecord], found: list[PairEvidence], *,
             verdicts: Iterable[str]) -> list[Task]:
    """The detail measures ``found`` needs: its resized group-verdict pairs not measured
    yet whose sides are no RAW file, with the paths of both sides (read here, in the
    writer: a worker never opens the database)."""
    from db import pairs as dbpairs  # SQLAlchemy: not in a worker that only measures

    chosen = set(verdicts)
    todo = [pe for pe in found if pe.verdict in chosen and pe.detail_gain is None and bigger_side(pe)
            and not any(is_raw((records[x].format if x in records else None) or "") for x in (pe.a, pe.b))]
    if not todo:
        return []
    paths = dbpairs.paths(engine, {x for pe in todo for x in (pe.a, pe.b)})
    out = []
    for pe in todo:
        big, scale = bigger_side(pe)
        small = pe.a if big == pe.b else pe.b
        if big in paths and small in paths:
            out.append(((pe.a, pe.b), paths[big], paths[small], scale))
    return out


def measure_detail(tasks: list[Task], max_pixels: int) -> dict[tuple[int, int], tuple[float, float]]:
    """``{pair key: (gain, above)}`` of each task (rounded to 4 places), decoding each
    path at most once while it is needed (a group's source is paired with each copy);
    a pair with a side that cannot be decoded or is too small is left out. Pure but for
    reading the files: runs in a verification worker."""
    from indexer.measure import detail  # NumPy: only a run that measures pays for it

    decoded: OrderedDict[str, object] = OrderedDict()

    def grey(path: str):
        if path not in decoded:
            try:
                decoded[path] = decode.load_grey(path, max_pixels=max_pixels)
            except (decode.DecodeError, OSError, MemoryError):
                decoded[path] = None
            while len(decoded) > _KEEP_DECODED:
                decoded.popitem(last=False)
        decoded.move_to_end(path)
        return decoded[path]

    out = {}
    for key, big, small, scale in tasks:
        g_big, g_small = grey(big), grey(small)
        if g_big is None or g_small is None:
            continue
        d = detail.detail(g_small, g_big, scale)
        if d is not None:
            out[key] = (round(d.gain, 4), round(d.above, 4))
    return out


def with_detail(found: list[PairEvidence], measured: dict[tuple[int, int], tuple[float, float]]) -> list[PairEvidence]:
    """``found`` with the measures of :func:`measure_detail` put on their pairs."""
    return [dataclasses.replace(pe, detail_gain=measured[(pe.a, pe.b)][0], detail_above=measured[(pe.a, pe.b)][1])
            if (pe.a, pe.b) in measured else pe for pe in found]


def measure_pairs(engine, records: dict[int, MatchRecord], found: list[PairEvidence], *,
                  verdicts: Iterable[str], max_pixels: int) -> list[PairEvidence]:
    """``found`` with the detail of each resized group-verdict pair measured here (others
    unchanged): ``rematch``, a batch in its own process."""
    tasks = tasks_of(engine, records, found, verdicts=verdicts)
    return with_detail(found, measure_detail(tasks, max_pixels)) if tasks else found
