"""Duplicate groups as the pages show them: :func:`indexer.commands.dupes.dupes_report`
(the report ``photoqa dupes`` prints) paged, sorted, and given image ids and facts.

Nothing here decides anything about a group: keepers, reasons, relations and verdicts
are the report's own, so the page and the command cannot disagree.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from db import browse
from indexer.commands.dupes import SORTS, dupes_report
from indexer.match.verdict import VERDICTS
from indexer.session import Session

PAGE_SIZES = (10, 25, 50, 100)
PER_PAGE = 25  # groups a page shows unless ?per= (or report --per-page) says otherwise
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


class ReportCache:
    """The dupes report per sort order, kept while :func:`db.browse.change_token` stays
    the same (the ``verdict`` order, which only the whole report gives): paging then
    costs a slice, not a report each time. Safe across threads (one report at a time)."""

    def __init__(self):
        self.token = None
        self.reports: dict[str, dict] = {}
        self.lock = threading.Lock()

    def order(self, session: Session, sort: str) -> tuple[list[int], dict]:
        """Every group id in ``sort`` order and the totals (:func:`db.browse.group_order`),
        kept while the change token holds: a later page is a slice of a list."""
        token = browse.change_token(session.engine)
        with self.lock:
            if token != self.token:
                self.token, self.reports = token, {}
            key = ("order", sort)
            if key not in self.reports:
                self.reports[key] = browse.group_order(session.engine, sort)
            return self.reports[key]

    def report(self, session: Session, sort: str) -> dict:
        token = browse.change_token(session.engine)
        with self.lock:
            if token != self.token:
                self.token, self.reports = token, {}
            if sort not in self.reports:
                report = dupes_report(session, sort=sort if sort in SORTS else "bytes")
                if sort == "verdict":
                    report["groups"].sort(key=lambda g: (-verdict_rank(g), g["keeper"]))
                self.reports[sort] = report
            return self.reports[sort]


SQL_SORTS = ("bytes", "size", "count", "path")  # orders the database gives a page of directly


def page_of_groups(session: Session, *, page: int = 1, per_page: int = PER_PAGE, sort: str = "bytes",
                   cache: ReportCache | None = None) -> GroupPage:
    """One page of the groups (1-based; clamped to the last page), each with ids and facts.

    For the orders SQL can give (:data:`SQL_SORTS`) the page's group ids come from
    ``image_groups`` (:func:`db.browse.group_order`, cached while nothing changes) and the
    report is made for their members only, so a page costs its own groups, not the archive's (100,000 groups: the
    first page took 25-43 s when it computed the whole report). ``verdict`` needs every
    group's pairs: the cached whole report."""
    if sort not in SQL_SORTS:
        report = (cache or ReportCache()).report(session, sort)
        groups = report["groups"]
        pages = max(1, math.ceil(len(groups) / per_page))
        page = min(max(1, page), pages)
        shown = groups[(page - 1) * per_page: page * per_page]
        return GroupPage([with_ids(session, g) for g in shown], report["summary"], page, pages, per_page, sort)
    every, totals = (cache or ReportCache()).order(session, sort)
    pages = max(1, math.ceil(len(every) / per_page))
    page = min(max(1, page), pages)
    ids = every[(page - 1) * per_page: page * per_page]
    report = dupes_report(session, sort=sort, members=browse.members_of_groups(session.engine, ids))
    by_id = {g["id"]: g for g in report["groups"]}
    shown = [by_id.pop(i) for i in ids if i in by_id] + list(by_id.values())
    return GroupPage([with_ids(session, g) for g in shown], {**totals, "root": report["summary"]["root"]},
                     page, pages, per_page, sort)


def find_group(session: Session, group_id: int, cache: ReportCache | None = None) -> dict | None:
    """One group of the report by its id (its keeper's image id), with ids and facts: the
    report of its own members (``image_groups``), not of the archive."""
    members = browse.members_of_groups(session.engine, [group_id])
    if len(members) < 2:
        return None
    found = next((g for g in dupes_report(session, members=members)["groups"] if g["id"] == group_id), None)
    return None if found is None else with_ids(session, found)


def with_ids(session: Session, group: dict) -> dict:
    """The report's group plus ``id`` on every member and ``a_id``/``b_id`` on every pair,
    and each member's ``facts`` (format, displayed size, camera, capture time)."""
    paths = [m["path"] for m in group["members"]]
    ids = browse.ids_of(session.engine, paths)
    facts = browse.image_facts(session.engine, ids.values())
    members = [{**m, "id": ids.get(m["path"]), "facts": facts.get(ids.get(m["path"]), {})} for m in group["members"]]
    pairs = [{**p, "a_id": ids.get(p["a"]), "b_id": ids.get(p["b"])} for p in group["pairs"]]
    return {**group, "members": members, "pairs": pairs}
