"""``photoqa dupes``: duplicate groups, each file once with its relation to the keeper;
``--related``: related shots (brackets, RAW+JPEG, bursts), never given a keeper.

The report is data (:func:`dupes_report`, :func:`related_report`); ``cli.py`` renders it
with :func:`render_groups` / :func:`render_related` or as JSON/CSV. JSON keeps the shape
scripts used before (``{"groups": [{"id", "keeper", "files", "pairs"}]}``, absolute
paths, every pair with its evidence) and adds ``members``, ``keeper_reason``,
``bytes_reclaimable`` and a ``summary``.
"""
from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.config import Settings
from indexer.match.groups import GroupContext, build_groups, components, keeper_reason
from indexer.fileops import files
from indexer.match.relation import composed_geometry, path_to, relation_to_keeper, words_from
from indexer.match.shots import gap_words
from indexer.match.verdict import RELATED_VERDICTS

if TYPE_CHECKING:  # indexer.session imports SQLAlchemy: a report on SQLite reads without it
    from indexer.session import Session

__all__ = ["SORTS", "dupes_report", "related_report", "rematch", "render_groups", "render_related"]

SORTS = ("bytes", "size", "count", "path")
_KINDS = {"raw_jpeg": "RAW+JPEG pair", "exposure_variant": "exposures (bracket, HDR)",
          "similar": "shots of one scene (burst, re-shoot)"}


_LINK_WORDS = {"hardlink": "hard link", "symlink": "symbolic link"}


@dataclass
class SqliteSession:
    """What a report reads on a SQLite file without SQLAlchemy: the settings and a
    :class:`db.sqlite_reads.SqliteReads` (the same queries as :class:`EngineReads`)."""

    settings: Settings
    reads: Any


class EngineReads:
    """The report's queries through SQLAlchemy (db.pairs, db.queries), on any database."""

    def __init__(self, engine):
        from db import pairs as dbpairs
        from db import queries

        self.engine, self.pairs, self.queries = engine, dbpairs, queries

    def all_pairs(self, among: Iterable[int] | None = None) -> list:
        return self.pairs.all_pairs(self.engine, among=among)

    def keeper_infos(self, ids: Iterable[int]) -> dict:
        return self.pairs.keeper_infos(self.engine, ids)

    def paths(self, ids: Iterable[int]) -> dict[int, str]:
        return self.pairs.paths(self.engine, ids)

    def pair_overlaps(self, among: Iterable[int] | None = None) -> dict:
        return self.queries.pair_overlaps(self.engine, among=among)


def reads_of(session: Session | SqliteSession):
    """The report's queries: a SqliteSession's own, else SQLAlchemy's on the session's engine."""
    return session.reads if isinstance(session, SqliteSession) else EngineReads(session.engine)


def rematch(session: Session) -> int:
    """Forget every pair and match the whole database again (imported on demand: the
    matcher loads numba and scipy, which a report does not need)."""
    from indexer.pipeline.matchstage import rematch as run

    return run(session)


class DecisionError(ValueError):
    """A --keep / --not-duplicates naming a file that is not an indexed image."""


def decide(session: Session, kind: str, paths: list[str]) -> None:
    """Record a user's decision: ``not_duplicates`` (two files never share a group) or
    ``keep`` (this file is its group's keeper); groups are regrouped at once, and later
    matching, re-indexing and ``--rematch`` never undo it."""
    from db import actions as dbactions
    from db import groups as dbgroups

    wanted = [os.path.abspath(os.path.expanduser(p)) for p in paths]
    known = dbactions.indexed_files(session.engine, wanted)
    missing = [p for p in wanted if p not in known]
    if missing:
        raise DecisionError(f"not an indexed image: {missing[0]}")
    ids = [known[p][0] for p in wanted]
    dbgroups.save_decision(session.engine, kind, ids[0], ids[1] if len(ids) > 1 else None,
                           session.settings.group_rule())


def split_group(session: Session, group_id: int) -> int:
    """Record that no two members of group ``group_id`` are duplicates (``dupes
    --not-duplicates-group``): the group falls apart for good, whatever matching finds
    later; returns how many files it held."""
    from db import groups as dbgroups

    ids = dbgroups.members_of(session.engine, group_id)
    if len(ids) < 2:
        raise DecisionError(f"no duplicate group {group_id} (its id is its keeper's image id, as listed)")
    dbgroups.save_apart(session.engine, ids, session.settings.group_rule())
    return len(ids)


def _pair_json(p, paths: dict[int, str]) -> dict:
    return {"a": paths[p.a], "b": paths[p.b], "verdict": p.verdict, "hamming": p.hamming,
            "transform": p.transform, "shift": [p.shift_x, p.shift_y], "scale": p.scale,
            "correlation": p.correlation, "histogram_similarity": p.hist_similarity,
            "delta_ev": p.delta_ev, "delta_ev_exif": p.delta_ev_exif, "time_gap_s": p.time_gap_s,
            "evidence": p.description, "detail_gain": p.detail_gain, "detail_above": p.detail_above}


def _under(path: str, root: str | None) -> bool:
    if root is None:
        return True
    # imported here: indexer.pipeline.scan pulls in the array-stack reader and NumPy (~0.12 s
    # CPU), which listing groups does not need; --under is the only user
    from indexer.pipeline.scan import within

    return within(path, [root])


def _common_root(paths: Iterable[str]) -> str:
    dirs = [os.path.dirname(p) for p in paths]
    return os.path.commonpath(dirs) if dirs else ""


def _with_format(relation: str, keeper_format: str | None, member_format: str | None) -> str:
    """Say the file format when it differs from the keeper's: "same pixels, re-encoded as
    PNG", "rotated 90° clockwise, re-encoded as PNG", "resized 50%, as WEBP"."""
    if not relation or not member_format or not keeper_format or member_format == keeper_format:
        return relation
    name = member_format.split("-")[0]
    if relation.startswith("same pixels, different file"):
        return f"same pixels, re-encoded as {name}"
    if relation == "identical file" or "; then " in relation:
        return relation
    if relation.endswith("re-encoded"):
        return f"{relation} as {name}"
    return f"{relation}, as {name}"


def _weakest(hops) -> str:
    """The verdict a member is reached by: ``derived`` if any hop is, else the last hop's."""
    verdicts = [p.verdict for _, p in hops]
    return "derived" if "derived" in verdicts else (verdicts[-1] if verdicts else "")


def dupes_report(session: Session | SqliteSession, *, verdicts: Iterable[str] | None = None, min_size: int = 2,
                 sort: str = "bytes", under: str | Path | None = None, prefer_in: Iterable[str] = (),
                 members: Iterable[int] | None = None) -> dict:
    """Groups of the chosen verdicts (``[match] group_verdicts`` when None), each with its
    keeper and every member once: ``members`` = [{path, role, relation, bytes, verdict}],
    keeper first; each also has ``transform`` and ``scale`` (keeper to member, composed
    along the stored pairs that link them) and ``via`` (the paths in between, [] for a
    direct pair) and ``linked`` ("hardlink"/"symlink" when it already is a link to the
    keeper's file: it frees nothing and is not counted in ``bytes_reclaimable``). ``under``: only groups with a member under that folder; such a group is
    shown whole, and ``outside_under`` counts its members outside the folder (0 otherwise).
    ``prefer_in``: folders whose files are preferred as keepers, besides ``[dupes] prefer_in``.
    ``summary``: groups, files, files that could be removed, bytes they hold, and the
    common folder of every listed path (``root``). ``members``: only the groups made of
    these images (whole stored groups: a page of ``photoqa serve``), the summary theirs."""
    if verdicts is None:
        verdicts = session.settings.match.group_verdicts
    root = None if under is None else os.path.abspath(under)
    reads = reads_of(session)
    pairs = reads.all_pairs(among=members)
    ids = {p.a for p in pairs} | {p.b for p in pairs}
    infos = reads.keeper_infos(ids)
    paths = reads.paths(ids)
    overlaps = reads.pair_overlaps(among=None if members is None else ids)
    out = []
    preferred = (*session.settings.dupes.folders(), *(os.path.abspath(os.path.expanduser(p)) for p in prefer_in))
    for g in build_groups(pairs, infos, verdicts=verdicts, prefer_in=preferred):
        if len(g.members) < min_size or not any(_under(paths[m], root) for m in g.members):
            continue
        names = {m: Path(paths[m]).name for m in g.members}
        others = sorted((m for m in g.members if m != g.keeper), key=lambda m: paths[m])
        members = [{"path": paths[g.keeper], "role": "keeper", "relation": "", "verdict": "", "linked": None,
                    "bytes": infos[g.keeper].bytes, "transform": "identity", "scale": 1.0, "via": []}]
        for m in others:
            relation = relation_to_keeper(g.keeper, m, g.pairs, names, overlaps)
            hops = path_to(g.keeper, m, g.pairs)
            turn, scale = composed_geometry(g.keeper, m, g.pairs) or ("identity", 1.0)
            linked = files.link_to(paths[m], paths[g.keeper])
            relation = _with_format(relation, infos[g.keeper].format, infos[m].format)
            if linked:
                relation = f"already a {_LINK_WORDS[linked]} to the keeper"
            members.append({"path": paths[m], "role": "copy", "bytes": infos[m].bytes, "linked": linked,
                            "relation": relation,
                            "verdict": _weakest(hops), "transform": turn, "scale": round(scale, 4),
                            "via": [paths[p.b if p.a == start else p.a] for start, p in hops[:-1]]})
        out.append({"id": g.id, "keeper": paths[g.keeper], "files": sorted(paths[m] for m in g.members),
                    "pairs": [_pair_json(p, paths) for p in g.pairs],
                    "keeper_reason": keeper_reason(infos[g.keeper], [infos[m] for m in others],
                                                   GroupContext.of(g.members, infos, g.pairs, preferred)),
                    "bytes_reclaimable": sum(x["bytes"] or 0 for x in members[1:] if not x["linked"]),
                    "members": members,
                    "outside_under": sum(not _under(paths[m], root) for m in g.members)})
    out.sort(key={"bytes": lambda g: (-g["bytes_reclaimable"], g["keeper"]),
                  "size": lambda g: (-(g["members"][0]["bytes"] or 0), g["keeper"]),
                  "count": lambda g: (-len(g["members"]), g["keeper"]),
                  "path": lambda g: g["keeper"]}[sort])
    listed = [m["path"] for g in out for m in g["members"]]
    summary = {"groups": len(out), "files": len(listed), "removable_files": len(listed) - len(out),
               "bytes_reclaimable": sum(g["bytes_reclaimable"] for g in out), "root": _common_root(listed)}
    return {"summary": summary, "groups": out}


def related_report(session: Session | SqliteSession, *, under: str | Path | None = None) -> dict:
    """Related shots: components of the ``raw_jpeg``, ``exposure_variant`` and ``similar``
    pairs whose metadata names one camera body (``same_camera`` true: look-alikes from
    two bodies are not related shots, and a file without EXIF, which resembles every
    camera's photo of a colour chart, cannot be told to be one). Each set lists its members by capture
    time with the time from the first and the exposure relative to it (delta EV summed
    along the pairs' path, EV), and the pair that links each to the set in words; no
    keeper: every frame of a bracket is kept. A member in a duplicate group lists the
    group's other files (``copies``: paths; [] for the others), each related to the set
    as that member is (:func:`_copies_of`)."""
    root = None if under is None else os.path.abspath(under)
    reads = reads_of(session)
    stored = reads.all_pairs()
    pairs = [p for p in stored if p.verdict in RELATED_VERDICTS and p.same_camera]
    ids = {p.a for p in pairs} | {p.b for p in pairs}
    infos = reads.keeper_infos(ids)
    paths = reads.paths(ids)
    overlaps = reads.pair_overlaps()
    sets = []
    copies = _copies_of(session, reads, stored, ids)
    copy_paths = reads.paths({x for group in copies.values() for x in group})
    comps = components((p.a, p.b) for p in pairs)
    comp_of = {m: i for i, comp in enumerate(comps) for m in comp}
    pairs_of: dict[int, list] = {}
    for p in pairs:  # each component's pairs in one pass, not a scan of all pairs per component
        pairs_of.setdefault(comp_of[p.a], []).append(p)
    for i, comp in enumerate(comps):
        if not any(_under(paths[m], root) for m in comp):
            continue
        inside = pairs_of.get(i, [])
        order = sorted(comp, key=lambda m: (infos[m].captured_at is None, infos[m].captured_at or 0, paths[m]))
        first = order[0]
        ev, t0 = _ev_from(first, inside), infos[first].captured_at
        names = {m: Path(paths[m]).name for m in comp}
        members = []
        for m in order:
            t = infos[m].captured_at
            members.append({"path": paths[m], "captured_at": t, "bytes": infos[m].bytes,
                            "seconds_from_first": None if t is None or t0 is None else (t - t0).total_seconds(),
                            "delta_ev": None if m not in ev else round(ev[m], 2),
                            "relation": "" if m == first else _last_hop(first, m, inside, names, overlaps)})
        listed = set(comp)
        for m, member in zip(order, members):  # a duplicate group's copies, once per set, at its first member
            mine = [x for x in copies.get(m, ()) if x not in listed]
            listed.update(mine)
            member["copies"] = sorted(copy_paths[x] for x in mine)
        kinds = sorted({p.verdict for p in inside}, key=RELATED_VERDICTS.index)
        sets.append({"kind": ", ".join(_KINDS[k] for k in kinds), "verdicts": kinds, "members": members,
                     "pairs": [_pair_json(p, paths) for p in inside]})
    sets.sort(key=lambda s: s["members"][0]["path"])
    listed = [m["path"] for s in sets for m in s["members"]]
    return {"summary": {"sets": len(sets), "files": len(listed), "root": _common_root(listed)}, "related": sets}


def _copies_of(session, reads, stored: list, ids: set[int]) -> dict[int, list[int]]:
    """Image of ``ids`` -> the other members of its duplicate group (``[match]
    group_verdicts``), for those in one. Matching does not verify a copy that joins a
    group against the group's related shots again (their relation is implied through
    the member they were verified with: indexer.match.fanout.implied), so a related set
    names the copies of its members through their groups, not through pairs."""
    verdicts = set(session.settings.match.group_verdicts)
    kept = [p for p in stored if p.verdict in verdicts]
    wanted = [comp for comp in components((p.a, p.b) for p in kept) if ids.intersection(comp)]
    if not wanted:
        return {}
    inside = set().union(*wanted)
    kept = [p for p in kept if p.a in inside]
    out = {}
    for g in build_groups(kept, reads.keeper_infos(inside), verdicts=verdicts):
        for m in g.members:
            if m in ids:
                out[m] = [x for x in g.members if x != m]
    return out


# "another exposure (taken 1 s apart), ": the set's kind and the time column say it already
_RELATED_LEAD = re.compile(r"^(?:RAW\+JPEG pair|another exposure|another shot) \([^)]*\)(?:, )?")


def _last_hop(first: int, member: int, pairs, names: dict[int, str], overlaps=None) -> str:
    """The pair that links ``member`` to its set, in words without the related-shot lead
    (and the file it links to, when that is not the set's first)."""
    hops = path_to(first, member, pairs)
    if not hops:
        return ""
    start, p = hops[-1]
    ref = "the first" if start == first else names.get(start, f"image {start}")
    text = _RELATED_LEAD.sub("", words_from(p, start, ref=ref, overlaps=overlaps))
    return text if start == first or not text else f"{text} (from {names.get(start, start)})"


def _ev_from(start: int, pairs) -> dict[int, float]:
    """Exposure of every image reachable from ``start`` relative to it: delta EV (log2 of
    B over A) summed along a breadth-first path; pairs without a measure are not crossed."""
    links: dict[int, list] = {}
    for p in pairs:
        if p.delta_ev is not None:
            links.setdefault(p.a, []).append((p.b, p.delta_ev))
            links.setdefault(p.b, []).append((p.a, -p.delta_ev))
    ev, todo = {start: 0.0}, deque([start])
    while todo:
        x = todo.popleft()
        for y, step in links.get(x, ()):
            if y not in ev:
                ev[y] = ev[x] + step
                todo.append(y)
    return ev


def human_bytes(n: int | None) -> str:
    """1234567 -> '1.2 MB' (decimal units, as file managers show them)."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _shown(path: str, root: str, absolute: bool) -> str:
    return path if absolute or not root else os.path.relpath(path, root)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _summary_line(s: dict) -> str:
    return (f"{_count(s['groups'], 'group')} · {_count(s['removable_files'], 'file')} could be removed · "
            f"{human_bytes(s['bytes_reclaimable'])} would be freed")


def _root_lines(s: dict, absolute: bool) -> list[str]:
    """The folder the shown paths are relative to, on a line of its own (it may be long)."""
    return [] if absolute or not s["root"] else [f"paths under {s['root']}"]


def render_groups(report: dict, *, absolute: bool = False) -> list[str]:
    """The table: a summary line and the folder paths are shown under, then per group a
    header, the keeper and each other member once with its size and relation to the
    keeper, then the summary again."""
    s = report["summary"]
    if not report["groups"]:
        return ["no duplicate groups"]
    lines = [_summary_line(s), *_root_lines(s, absolute)]
    for g in report["groups"]:
        lines.append("")
        outside = f" · {g['outside_under']} outside --under" if g.get("outside_under") else ""
        lines.append(f"group {g['id']} · {_count(len(g['members']), 'file')} · {human_bytes(g['bytes_reclaimable'])} to free"
                     f" · keeper: {g['keeper_reason'] or 'the only candidate'}{outside}")
        shown = [_shown(m["path"], s["root"], absolute) for m in g["members"]]
        width = max(len(p) for p in shown)
        for m, p in zip(g["members"], shown):
            role = "keep" if m["role"] == "keeper" else "copy"
            lines.append(f"  {role}  {p:<{width}}  {human_bytes(m['bytes']):>8}  {m['relation']}".rstrip())
    lines += ["", _summary_line(s)]
    return lines


def render_related(report: dict, *, absolute: bool = False) -> list[str]:
    """Related shots: per set, its kind and each member with the time from the first
    frame and its exposure relative to it; no keeper."""
    s = report["summary"]
    if not report["related"]:
        return ["no related shots"]
    lines = [f"{_count(s['sets'], 'set')} of related shots · {_count(s['files'], 'file')} · nothing to remove",
             *_root_lines(s, absolute)]
    for r in report["related"]:
        lines += ["", f"related · {_count(len(r['members']), 'file')} · {r['kind']}"]
        shown = [_shown(m["path"], s["root"], absolute) for m in r["members"]]
        width = max(len(p) for p in shown)
        for m, p in zip(r["members"], shown):
            gap = "" if m["seconds_from_first"] is None else f"+{gap_words(abs(m['seconds_from_first']))}"
            dev = "" if m["delta_ev"] is None else f"{m['delta_ev']:+.1f} EV" if round(m["delta_ev"], 1) else "0.0 EV"
            lines.append(f"  {p:<{width}}  {gap:>9}  {dev:>8}  {m['relation']}".rstrip())
            if m.get("copies"):
                n = len(m["copies"])
                lines.append(f"    + {n} {'copy' if n == 1 else 'copies'} of it in its duplicate group (photoqa dupes)")
    return lines


def csv_rows(report: dict) -> tuple[list[str], list[tuple]]:
    """One row per file: group, role, path (absolute), relation, bytes, verdict."""
    rows = [(g["id"], m["role"], m["path"], m["relation"], m["bytes"], m["verdict"])
            for g in report["groups"] for m in g["members"]]
    return ["group", "role", "path", "relation", "bytes", "verdict"], rows


def related_csv_rows(report: dict) -> tuple[list[str], list[tuple]]:
    """One row per file of each related set (numbered from 1 in report order); a member's
    duplicate-group copies follow it, related to the set through it."""
    rows = []
    for i, r in enumerate(report["related"], start=1):
        for m in r["members"]:
            rows.append((i, r["kind"], m["path"], m["captured_at"], m["seconds_from_first"], m["delta_ev"],
                         m["relation"]))
            rows += [(i, r["kind"], c, None, None, None, f"copy of {m['path']} (duplicate group)")
                     for c in m.get("copies", ())]
    return ["set", "kind", "path", "captured_at", "seconds_from_first", "delta_ev", "relation"], rows
