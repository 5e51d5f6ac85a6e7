"""Duplicate groups as the pages show them: :func:`indexer.commands.dupes.dupes_report`
(the report ``photoqa dupes`` prints) paged, sorted, and given image ids and facts.

Nothing here decides anything about a group: keepers, reasons, relations and verdicts
are the report's own, so the page and the command cannot disagree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from db import browse
from indexer.commands.dupes import SORTS, dupes_report
from indexer.match.verdict import VERDICTS
from indexer.session import Session

PAGE_SIZES = (10, 25, 50, 100)
WEB_SORTS = (*SORTS, "verdict")  # verdict: groups with the loosest copies (derived) first


@dataclass
class GroupPage:
    groups: list[dict]
    summary: dict
    page: int
    pages: int
    per_page: int
    sort: str


def verdict_rank(group: dict) -> int:
    """How loose the group's weakest copy is (derived > same_pixels > same_file)."""
    return max((VERDICTS.index(m["verdict"]) for m in group["members"] if m["verdict"] in VERDICTS), default=-1)


def page_of_groups(session: Session, *, page: int = 1, per_page: int = 25, sort: str = "bytes") -> GroupPage:
    """One page of the groups (1-based; clamped to the last page), each with ids and facts."""
    report = dupes_report(session, sort=sort if sort in SORTS else "bytes")
    groups = report["groups"]
    if sort == "verdict":
        groups = sorted(groups, key=lambda g: (-verdict_rank(g), g["keeper"]))
    pages = max(1, math.ceil(len(groups) / per_page))
    page = min(max(1, page), pages)
    shown = groups[(page - 1) * per_page: page * per_page]
    return GroupPage([with_ids(session, g) for g in shown], report["summary"], page, pages, per_page, sort)


def find_group(session: Session, group_id: int) -> dict | None:
    """One group of the report by its id (its keeper's image id), with ids and facts."""
    for g in dupes_report(session)["groups"]:
        if g["id"] == group_id:
            return with_ids(session, g)
    return None


def with_ids(session: Session, group: dict) -> dict:
    """The report's group plus ``id`` on every member and ``a_id``/``b_id`` on every pair,
    and each member's ``facts`` (format, displayed size, camera, capture time)."""
    paths = [m["path"] for m in group["members"]]
    ids = browse.ids_of(session.engine, paths)
    facts = browse.image_facts(session.engine, ids.values())
    members = [{**m, "id": ids.get(m["path"]), "facts": facts.get(ids.get(m["path"]), {})} for m in group["members"]]
    pairs = [{**p, "a_id": ids.get(p["a"]), "b_id": ids.get(p["b"])} for p in group["pairs"]]
    return {**group, "members": members, "pairs": pairs}
