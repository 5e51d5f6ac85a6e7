"""``photoqa dupes``: duplicate groups with their keeper and the evidence of every pair."""
from __future__ import annotations

from collections.abc import Iterable

from db import pairs as dbpairs
from indexer.match.groups import build_groups
from indexer.pipeline.matchstage import rematch
from indexer.session import Session

__all__ = ["dupes_report", "rematch"]


def _pair_json(p, paths: dict[int, str]) -> dict:
    return {"a": paths[p.a], "b": paths[p.b], "verdict": p.verdict, "hamming": p.hamming,
            "transform": p.transform, "shift": [p.shift_x, p.shift_y], "scale": p.scale,
            "correlation": p.correlation, "histogram_similarity": p.hist_similarity,
            "delta_ev": p.delta_ev, "delta_ev_exif": p.delta_ev_exif, "time_gap_s": p.time_gap_s,
            "evidence": p.description}


def dupes_report(session: Session, *, verdicts: Iterable[str] | None = None, min_size: int = 2) -> dict:
    """``{"groups": [{"id", "keeper", "files", "pairs": [...]}]}`` for the chosen verdicts
    (``[match] group_verdicts`` of the session's settings when None)."""
    if verdicts is None:
        verdicts = session.settings.match.group_verdicts
    pairs = dbpairs.all_pairs(session.engine)
    ids = {p.a for p in pairs} | {p.b for p in pairs}
    groups = build_groups(pairs, dbpairs.keeper_infos(session.engine, ids), verdicts=verdicts)
    paths = dbpairs.paths(session.engine, ids)
    out = []
    for g in groups:
        if len(g.members) < min_size:
            continue
        out.append({"id": g.id, "keeper": paths[g.keeper],
                    "files": sorted(paths[m] for m in g.members),
                    "pairs": [_pair_json(p, paths) for p in g.pairs]})
    return {"groups": out}
