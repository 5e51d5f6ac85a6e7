"""Detail of resized pairs at native size, measured before the matching stage stores them.

For each pair of a group verdict whose sides differ in size by
:data:`indexer.match.upscale.MIN_SCALE` or more, both files are decoded at full size and
:func:`indexer.measure.detail.detail` tells whether the bigger side holds detail above
the smaller's; the pair carries ``detail_gain``/``detail_above`` into ``pairs`` and the
keeper rule reads them (:mod:`indexer.match.upscale`). The cost is per resized pair of
a group, not per image: two full-size grey decodes and the spectra (a 12 MP frame and
its 27 MP upscale: 53 + 192 + 13 ms CPU, 4.7x the draft decode the index spends on the
frame, measured in one run), in the writer like the exposure refinement of
:mod:`indexer.pipeline.exposurestage`. RAW
files are not measured (RAW ranks before its renderings anyway), nor files that cannot
be decoded (the pixel count decides, as before).
"""
from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterable

from db import pairs as dbpairs
from indexer import decode
from indexer.match.engine import MatchRecord, PairEvidence
from indexer.match.shots import is_raw
from indexer.match.upscale import bigger_side

_KEEP_DECODED = 4  # grey images kept between pairs (a group's source is paired with each copy)


def measure_pairs(engine, records: dict[int, MatchRecord], found: list[PairEvidence], *,
                  verdicts: Iterable[str], max_pixels: int) -> list[PairEvidence]:
    """``found`` with the detail of each resized group-verdict pair measured (others unchanged)."""
    from indexer.measure import detail  # NumPy: only a run that measures pays for it

    chosen = set(verdicts)
    todo = [pe for pe in found if pe.verdict in chosen and pe.detail_gain is None and bigger_side(pe)
            and not any(is_raw((records[x].format if x in records else None) or "") for x in (pe.a, pe.b))]
    if not todo:
        return found
    paths = dbpairs.paths(engine, {x for pe in todo for x in (pe.a, pe.b)})
    decoded: OrderedDict[int, object] = OrderedDict()

    def grey(image_id: int):
        if image_id not in decoded:
            try:
                decoded[image_id] = decode.load_grey(paths[image_id], max_pixels=max_pixels)
            except (decode.DecodeError, OSError, MemoryError, KeyError):
                decoded[image_id] = None
            while len(decoded) > _KEEP_DECODED:
                decoded.popitem(last=False)
        decoded.move_to_end(image_id)
        return decoded[image_id]

    out = {}
    for pe in todo:
        big, scale = bigger_side(pe)
        small = pe.a if big == pe.b else pe.b
        g_big, g_small = grey(big), grey(small)
        if g_big is None or g_small is None:
            continue
        d = detail.detail(g_small, g_big, scale)
        if d is None:
            continue
        out[(pe.a, pe.b)] = dataclasses.replace(pe, detail_gain=round(d.gain, 4), detail_above=round(d.above, 4))
    return [out.get((pe.a, pe.b), pe) for pe in found]
