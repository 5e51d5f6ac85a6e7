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
    the same: paging through 100,000 groups then costs a slice, not a report each time.
    Safe across threads (one report is computed at a time)."""

    def __init__(self):
        self.token = None
        self.reports: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.index: dict[int, dict] = {}
        self.index_of: dict | None = None  # the report ``index`` was built from

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

    def group_by_id(self, session: Session) -> dict[int, dict]:
        """The report's groups by id: a group page is a look-up, not a scan (report --html
        writes every group page: a scan each would be quadratic in the groups)."""
        report = self.report(session, "bytes")
        with self.lock:
            if self.index_of is not report:
                self.index, self.index_of = {g["id"]: g for g in report["groups"]}, report
            return self.index


def page_of_groups(session: Session, *, page: int = 1, per_page: int = PER_PAGE, sort: str = "bytes",
                   cache: ReportCache | None = None) -> GroupPage:
    """One page of the groups (1-based; clamped to the last page), each with ids and facts."""
    report = (cache or ReportCache()).report(session, sort)
    groups = report["groups"]
    pages = max(1, math.ceil(len(groups) / per_page))
    page = min(max(1, page), pages)
    shown = groups[(page - 1) * per_page: page * per_page]
    return GroupPage([with_ids(session, g) for g in shown], report["summary"], page, pages, per_page, sort)


def find_group(session: Session, group_id: int, cache: ReportCache | None = None) -> dict | None:
    """One group of the report by its id (its keeper's image id), with ids and facts."""
    found = (cache or ReportCache()).group_by_id(session).get(group_id)
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
