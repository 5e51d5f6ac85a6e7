"""Decisions and file actions from the pages, through the code the CLI runs.

* keep this one      -> :func:`indexer.commands.dupes.decide` ``keep``       (``dupes --keep FILE``)
* not duplicates     -> :func:`indexer.commands.dupes.decide` ``not_duplicates`` (``--not-duplicates A B``)
* trash the others   -> :func:`indexer.commands.act.plan` then :func:`act.apply` (``--apply trash --group ID --yes``)
* undo               -> :func:`indexer.commands.act.undo`                    (``photoqa undo [BATCH]``)

Every action is a POST (the CSRF and Origin checks are in :class:`indexer.web.app.Guard`)
and takes two steps: the first renders what would happen and changes nothing; only the
second, carrying ``confirm=yes``, acts. A trash confirmation carries a digest of the
plan it showed: if the plan differs when confirmed (files changed meanwhile), it is
shown again instead of carried out.
"""
from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db import actions as dbactions
from db import browse
from indexer.commands import act
from indexer.commands.dupes import DecisionError, decide, dupes_report
from indexer.web.app import page, state_of


def form_of(request: Request):
    """The form the guard already read and checked (its CSRF field matched)."""
    return request.state.form


def refuse_unless_enabled(request: Request) -> Response | None:
    if state_of(request).options.actions_enabled:
        return None
    return Response("refused: actions are off (the server is not bound to localhost; "
                    "start it with --allow-actions to allow them)", status_code=403, media_type="text/plain")


def form_int(form, name: str) -> int | None:
    try:
        return int(form.get(name, ""))
    except ValueError:
        return None


def confirm_page(request: Request, action: str, title: str, lines: list[str], fields: dict, **extra) -> Response:
    return page(request, "confirm.html", {"action": action, "title": title, "lines": lines, "fields": fields, **extra})


def done_page(request: Request, title: str, lines: list[str], back: str, status_code: int = 200) -> Response:
    return page(request, "done.html", {"title": title, "lines": lines, "back": back}, status_code=status_code)


def keep(request: Request) -> Response:
    refused = refuse_unless_enabled(request)
    if refused:
        return refused
    s, form = state_of(request), form_of(request)
    image_id, group_id = form_int(form, "image"), form_int(form, "group")
    path = None if image_id is None else browse.present_path(s.session.engine, image_id)
    if path is None:
        return done_page(request, "Nothing recorded", ["no such image"], "/groups", 404)
    if form.get("confirm") != "yes":
        return confirm_page(request, "/act/keep", "Keep this one?",
                            [f"Record {path} as its group's keeper (lasts across runs; same as "
                             f"photoqa dupes --keep)."], {"image": image_id, "group": group_id or ""})
    try:
        decide(s.session, "keep", [path])
    except DecisionError as exc:
        return done_page(request, "Nothing recorded", [str(exc)], "/groups", 400)
    new_group = browse.group_of(s.session.engine, image_id)
    return done_page(request, "Recorded: keep", [f"keeper: {path}"],
                     f"/groups/{new_group[0]}" if new_group else "/groups")


def not_duplicates(request: Request) -> Response:
    refused = refuse_unless_enabled(request)
    if refused:
        return refused
    s, form = state_of(request), form_of(request)
    ids = [form_int(form, "a"), form_int(form, "b")]
    paths = [None if i is None else browse.present_path(s.session.engine, i) for i in ids]
    if None in paths or ids[0] == ids[1]:
        return done_page(request, "Nothing recorded", ["two different indexed images are needed"], "/groups", 404)
    if form.get("confirm") != "yes":
        return confirm_page(request, "/act/not-duplicates", "Not duplicates?",
                            [f"Record that {paths[0]} and {paths[1]} are not duplicates: they never share a "
                             "group again (same as photoqa dupes --not-duplicates A B)."],
                            {"a": ids[0], "b": ids[1]})
    try:
        decide(s.session, "not_duplicates", paths)
    except DecisionError as exc:
        return done_page(request, "Nothing recorded", [str(exc)], "/groups", 400)
    return done_page(request, "Recorded: not duplicates", paths, "/groups")


def plan_digest(planned: list[act.Planned]) -> str:
    text = "\n".join(f"{p.action}\t{p.path}\t{p.destination}\t{p.reason}\t{p.sha256}" for p in planned)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def trash(request: Request) -> Response:
    refused = refuse_unless_enabled(request)
    if refused:
        return refused
    s, form = state_of(request), form_of(request)
    group_id = form_int(form, "group")
    report = dupes_report(s.session)
    if group_id is None or not any(g["id"] == group_id for g in report["groups"]):
        return done_page(request, "Nothing done", ["no such duplicate group"], "/groups", 404)
    planned = act.plan(s.session, report, "trash", None, group=group_id)
    digest = plan_digest(planned)
    lines = [f"{p.path} -> trash" + (f" (sidecar of {p.sidecar_of})" if p.sidecar_of else "")
             + (f": skipped, {p.reason}" if p.reason else "") for p in planned]
    if form.get("confirm") != "yes" or form.get("plan") != digest:
        note = "" if form.get("confirm") != "yes" else "The files changed since the plan was shown; here it is again."
        return confirm_page(request, "/act/trash", f"Trash the copies of group {group_id}?",
                            lines or ["nothing to do"], {"group": group_id, "plan": digest}, note=note,
                            keeper=planned[0].keeper_path if planned else "")
    try:
        outcome = act.apply(s.session, planned)
    except dbactions.Busy as exc:
        return done_page(request, "Nothing done", [str(exc)], "/groups", 409)
    return done_page(request, f"Trashed: batch {outcome.batch}",
                     [f"{outcome.done} done, {outcome.skipped} skipped"] + lines +
                     [f"undo on the actions page, or: photoqa undo {outcome.batch}"], "/actions")


def undo(request: Request) -> Response:
    refused = refuse_unless_enabled(request)
    if refused:
        return refused
    s, form = state_of(request), form_of(request)
    batch = str(form.get("batch", "")).strip() or dbactions.last_batch(s.session.engine)
    if batch is None:
        return done_page(request, "Nothing to undo", ["no batch in the journal"], "/actions", 400)
    if form.get("confirm") != "yes":
        rows = dbactions.rows_of(s.session.engine, batch, states=["done"])
        return confirm_page(request, "/act/undo", f"Undo batch {batch}?",
                            [f"put back {r.path}" for r in rows] or ["nothing of it is done"], {"batch": batch})
    try:
        done = act.undo(s.session, batch)
    except dbactions.Busy as exc:
        return done_page(request, "Nothing undone", [str(exc)], "/actions", 409)
    return done_page(request, f"Undone: batch {done.batch}",
                     [f"{done.restored} files restored, {len(done.skipped)} skipped"]
                     + [f"skipped: {p} ({why})" for p, why in done.skipped], "/actions")


def actions(request: Request) -> Response:
    s = state_of(request)
    return page(request, "actions.html", {"batches": dbactions.batches(s.reader.engine)})


ROUTES = [
    Route("/actions", actions),
    Route("/act/keep", keep, methods=["POST"]),
    Route("/act/not-duplicates", not_duplicates, methods=["POST"]),
    Route("/act/trash", trash, methods=["POST"]),
    Route("/act/undo", undo, methods=["POST"]),
]
