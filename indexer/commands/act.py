"""Acting on duplicate groups: a plan, then apply (``photoqa dupes --apply``), a journal,
and ``photoqa undo``.

Nothing is touched without ``--yes``: the plan says what would happen to which file and
the bytes freed. Applying, each copy (never a keeper) is checked again first: its size,
modification time and SHA-256 must still be the indexed row's, its keeper must still
exist with its indexed SHA-256, and it must not lie under a reference folder
(``--reference`` and ``[dupes] reference``); a file that fails a check is skipped with
the reason. Every operation is journalled (:mod:`db.actions`) ``planned`` before the file
is touched and ``done`` after, and the index follows (a trashed or deleted file's row is
marked missing, a moved file's row moves, a linked one keeps its row with the new size
and time).

``trash`` follows the freedesktop.org Trash specification 1.0 (:mod:`indexer.fileops.trash`).
``move:DIR`` keeps the path below the files' common folder under ``DIR``; across file
systems the copy is checked against the SHA-256 before the original goes.
``hardlink`` / ``symlink`` replace a byte-identical copy by a link to its keeper (a copy
whose bytes differ is skipped: a link would lose them); a hard link never crosses file
systems. Undoing a link copies the keeper's bytes back, checked against the journalled
SHA-256, so it needs the keeper to still hold them. ``delete`` cannot be undone.

Sidecars (``NAME.EXT.xmp``, ``NAME.xmp``, ``NAME.THM``, ``NAME.AAE``:
:mod:`indexer.fileops.sidecars`) are trashed or moved with their photo, journalled as
rows of their own (no ``image_id``), and come back with it; ``delete`` and the links
leave them where they are.

A symbolic link is acted on as a link (renamed or unlinked itself, its target untouched).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from db import actions as dbactions
from indexer.decode import arrays
from indexer.fileops import files, trash
from indexer.fileops.sidecars import sidecars_of
from indexer.outcomes import Task, Unchanged
from indexer.pipeline.scan import within
from indexer.session import Session

ACTIONS = ("trash", "move", "hardlink", "symlink", "delete")
LINKS = ("hardlink", "symlink")
TRAVELLING = ("trash", "move")  # sidecars go with the photo
PAUSE_ENV = "PHOTOQA_TEST_APPLY_PAUSE"  # tests: seconds to sleep after each file (to kill a run between two)


class ActError(ValueError):
    """An --apply request that cannot be carried out at all (bad action or folder)."""


def parse_action(text: str) -> tuple[str, Path | None]:
    """``trash`` | ``hardlink`` | ``symlink`` | ``delete`` | ``move:DIR`` -> (action, destination folder)."""
    name, _, where = text.partition(":")
    if name not in ACTIONS:
        raise ActError(f"--apply {text}: choose trash, move:DIR, hardlink, symlink or delete")
    if name == "move":
        if not where:
            raise ActError("--apply move needs a folder: move:DIR")
        return name, Path(os.path.abspath(os.path.expanduser(where)))
    if where:
        raise ActError(f"--apply {name} takes no folder")
    return name, None


@dataclass
class Planned:
    action: str
    path: str
    keeper_path: str
    image_id: int | None  # None: a sidecar
    size: int
    mtime_ns: int
    sha256: str
    destination: str | None = None
    reason: str | None = None  # why it will be (or was) skipped
    sidecar_of: str | None = None  # the photo a sidecar travels with
    keeper_sha256: str | None = None


@dataclass
class Outcome:
    batch: str | None
    planned: list[Planned] = field(default_factory=list)
    done: int = 0
    skipped: int = 0
    bytes_freed: int = 0


def reference_folders(session: Session, extra=()) -> list[str]:
    """``[dupes] reference`` and ``extra`` (``--reference``) as absolute folders, each as
    written and with links resolved (a file is under one when either form contains it)."""
    folders = [*session.settings.dupes.reference_folders(), *(os.path.abspath(os.path.expanduser(r)) for r in extra)]
    return sorted({*folders, *map(os.path.realpath, folders)})


def _link_reason(action: str, path: str, sha: str, keeper: str, keeper_sha: str | None) -> str | None:
    """Why ``path`` cannot become a ``action`` link to ``keeper``, or None."""
    if keeper_sha is not None and sha != keeper_sha:
        return "not byte-identical to its keeper: a link would lose its own bytes (use trash or move)"
    if os.path.islink(path):
        return "already a symbolic link: it takes no space (use trash or delete to remove it)"
    if action == "hardlink":
        try:
            if os.lstat(path).st_dev != os.stat(keeper).st_dev:
                return ("on another file system than its keeper: a hard link cannot cross file systems "
                        "(use symlink, trash or move)")
        except OSError:
            return None  # gone: check() says so
    return None


def _already_linked(action: str, path: str, keeper: str) -> bool:
    """Whether ``path`` already is the link to ``keeper`` that ``action`` would make."""
    if action == "symlink":
        return os.path.islink(path) and files.same_file(path, keeper)
    return not os.path.islink(path) and not os.path.islink(keeper) and files.same_file(path, keeper)


def plan(session: Session, report: dict, action: str, dest: Path | None, *, reference=(),
         group: int | None = None) -> list[Planned]:
    """What ``action`` would do to the copies of the report's groups (keepers untouched;
    files under reference folders listed as skipped; sidecars listed after their photo)."""
    groups = [g for g in report["groups"] if group is None or g["id"] == group]
    copies = [(m["path"], g["keeper"]) for g in groups for m in g["members"] if m["role"] != "keeper"]
    facts = dbactions.indexed_files(session.engine, [p for p, _ in copies] + [k for _, k in copies])
    root = os.path.commonpath([os.path.dirname(p) for p, _ in copies]) if copies else ""
    refs = reference_folders(session, reference)
    if dest is not None and within(str(dest), refs):
        raise ActError(f"move:{dest} lies under a reference folder")
    out = []
    for path, keeper in copies:
        if path not in facts:
            continue
        image_id, size, mtime_ns, sha = facts[path]
        keeper_sha = facts[keeper][3] if keeper in facts else None
        if action in LINKS and _already_linked(action, path, keeper):
            continue  # nothing to do
        p = Planned(action, path, keeper, image_id, size, mtime_ns, sha, keeper_sha256=keeper_sha)
        if dest is not None:
            p.destination = str(dest / os.path.relpath(path, root))
        elif action in LINKS:
            p.destination = keeper
        if (stack := arrays.stack_of(path)) is not None:
            p.reason = f"a frame of the array stack {os.path.basename(stack)}: stacks are never rewritten"
        elif within(path, refs) or within(os.path.realpath(os.path.dirname(path)), refs):
            p.reason = "under a reference folder"
        elif action in LINKS:
            p.reason = _link_reason(action, path, sha, keeper, keeper_sha)
        out.append(p)
        if action in TRAVELLING and not p.reason:
            out += _sidecars(p, dest, root)
    return out


def _sidecars(photo: Planned, dest: Path | None, root: str) -> list[Planned]:
    out = []
    for sidecar in sidecars_of(Path(photo.path)):
        try:
            st = os.stat(sidecar)
            sha = files.sha256_file(sidecar)
        except OSError:
            continue
        s = Planned(photo.action, str(sidecar), photo.keeper_path, None, st.st_size, st.st_mtime_ns, sha,
                    sidecar_of=photo.path)
        if dest is not None:
            s.destination = str(dest / os.path.relpath(sidecar, root))
        out.append(s)
    return out


def check(p: Planned, keeper_sha: str | None, keepers_seen: dict[str, str] | None = None) -> str | None:
    """Why ``p`` must not be carried out now, or None. ``keepers_seen`` (keeper path ->
    its SHA-256 as read in this run) spares hashing one keeper for each of its copies."""
    if p.reason:
        return p.reason
    try:
        st = os.stat(p.path)  # a link: its target, as indexed
    except OSError:
        return "gone since indexing" if p.sidecar_of is None else "gone since the plan was made"
    if (st.st_size, st.st_mtime_ns) != (p.size, p.mtime_ns):
        return "changed since indexing (size or modification time)"
    if files.sha256_file(p.path) != p.sha256:
        return "changed since indexing (content)"
    if p.sidecar_of is None:
        seen = {} if keepers_seen is None else keepers_seen
        if keeper_sha is not None and os.path.exists(p.keeper_path) and p.keeper_path not in seen:
            seen[p.keeper_path] = files.sha256_file(p.keeper_path)
        if keeper_sha is None or seen.get(p.keeper_path) != keeper_sha or not os.path.exists(p.keeper_path):
            return "its keeper is gone or changed since indexing"
    if p.action in LINKS and (why := _link_reason(p.action, p.path, p.sha256, p.keeper_path, keeper_sha)):
        return why
    if p.action == "move" and p.destination and os.path.lexists(p.destination):
        return f"{p.destination} exists"
    return None


def apply(session: Session, planned: list[Planned]) -> Outcome:
    """Journal ``planned``, then carry each out that passes :func:`check`; a sidecar only
    when its photo was carried out. Holds the database's action lock
    (:func:`db.actions.exclusive`: raises :class:`db.actions.Busy` when another apply or
    undo runs)."""
    with dbactions.exclusive(session.engine):
        return _apply(session, planned)


def _apply(session: Session, planned: list[Planned]) -> Outcome:
    reconcile(session)
    batch = datetime.now().strftime("%Y%m%d-%H%M%S-") + os.urandom(2).hex()
    keepers = dbactions.indexed_files(session.engine, {p.keeper_path for p in planned})
    for p in planned:
        if p.action == "trash":
            p.destination = None  # chosen when carried out (unique in the trash)
    dbactions.plan(session.engine, batch, [dict(action=p.action, path=p.path, destination=p.destination,
                                                image_id=p.image_id, keeper_path=p.keeper_path, size=p.size,
                                                mtime_ns=p.mtime_ns, sha256=p.sha256) for p in planned])
    rows = dbactions.rows_of(session.engine, batch)
    out = Outcome(batch, planned)
    done: set[str] = set()
    keepers_seen: dict[str, str] = {}
    pause = float(os.environ.get(PAUSE_ENV) or 0)
    for p, row in zip(planned, rows):
        keeper = keepers.get(p.keeper_path)
        if p.sidecar_of is not None and p.sidecar_of not in done:
            p.reason = "its photo was not moved"
        else:
            p.reason = check(p, keeper[3] if keeper else None, keepers_seen)
        if p.reason:
            dbactions.mark(session.engine, row.id, "skipped", reason=p.reason)
            out.skipped += 1
            continue
        try:
            where = _carry_out(p, row.id, session)
        except OSError as exc:
            p.reason = f"{type(exc).__name__}: {exc.strerror or exc}"
            dbactions.mark(session.engine, row.id, "skipped", reason=p.reason)
            out.skipped += 1
            continue
        p.destination = where
        _index_follows(session, p, where)
        done.add(p.path)
        out.done += 1
        out.bytes_freed += p.size
        if pause:
            import time
            time.sleep(pause)
    return out


def _carry_out(p: Planned, action_id: int, session: Session) -> str | None:
    """Trash, move, link or delete one file; journal it done; returns where it went (the
    keeper for a link)."""
    engine = session.engine
    if p.action == "delete":
        os.unlink(p.path)
        dbactions.mark(engine, action_id, "done")
        return None
    if p.action in LINKS:
        dbactions.mark(engine, action_id, "planned", destination=p.keeper_path)
        files.replace_with_link(Path(p.path), Path(p.keeper_path), p.action)
        dbactions.mark(engine, action_id, "done", destination=p.keeper_path)
        return p.keeper_path
    if p.action == "trash":
        slot = trash.reserve(Path(p.path))  # the .trashinfo written: the name is ours
        target = str(slot.file)
        dbactions.mark(engine, action_id, "planned", destination=target)  # known before it moves
        try:
            files.move(Path(p.path), slot.file, sha256=p.sha256)
        except OSError:
            slot.release()
            raise
        dbactions.mark(engine, action_id, "done", destination=target)
        return target
    Path(p.destination).parent.mkdir(parents=True, exist_ok=True)
    files.move(Path(p.path), Path(p.destination), sha256=p.sha256)
    dbactions.mark(engine, action_id, "done", destination=p.destination)
    return p.destination


def _index_follows(session: Session, p: Planned, where: str | None) -> None:
    """Trashed or deleted: the row is marked missing; moved: the row moves with the file;
    linked: the row stays, with the link's size and time. Sidecars have no row."""
    if p.image_id is None:
        return
    if p.action in LINKS:
        st = os.stat(p.path)
        session.store.save_unchanged(Unchanged(Task(p.path, st.st_size, st.st_mtime_ns), p.sha256))
    elif p.action == "move" and where:
        st = os.lstat(where) if os.path.islink(where) else os.stat(where)
        session.store.save_moved(p.image_id, Task(where, st.st_size, st.st_mtime_ns, p.sha256))
    else:
        session.store.mark_missing([p.image_id])


def reconcile(session: Session) -> int:
    """Settle rows left ``planned`` by a run that was killed: a file still at its path is
    ``skipped`` (a reserved trash name, a partial copy or a temporary link is removed; a
    complete copy whose original was not yet removed too: the original stays the one
    copy); a file at its destination, or a path that is already the link, is ``done``.
    Returns how many rows it settled."""
    settled = 0
    for row in dbactions.rows_of(session.engine, states=["planned"]):
        planned = Planned(row.action, row.path, row.keeper_path, row.image_id, row.size, row.mtime_ns,
                          row.sha256, row.destination)
        if row.action in LINKS:
            files.link_temp_name(Path(row.path)).unlink(missing_ok=True)
            done = os.path.lexists(row.path) and files.is_link_to(Path(row.path), Path(row.keeper_path), row.action)
        elif row.action == "delete":
            done = not os.path.lexists(row.path)
        else:
            at_source = os.path.lexists(row.path)
            at_dest = bool(row.destination) and os.path.lexists(row.destination)
            if row.destination:
                files.partial_name(Path(row.destination)).unlink(missing_ok=True)
            if at_dest and at_source and not os.path.islink(row.destination) \
                    and files.sha256_file(row.destination) == row.sha256:
                os.unlink(row.destination)  # a cross-file-system copy, complete, the original not yet removed
            done = at_dest and not at_source
            if not done and row.action == "trash" and row.destination:
                trash.info_of(Path(row.destination)).unlink(missing_ok=True)
        if done:
            dbactions.mark(session.engine, row.id, "done", destination=row.destination)
            _index_follows(session, planned, row.destination)
        else:
            dbactions.mark(session.engine, row.id, "skipped", reason="interrupted before it was carried out")
        settled += 1
    return settled


@dataclass
class Undone:
    batch: str | None
    restored: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)


def undo(session: Session, batch: str | None = None) -> Undone:
    """Put the files of ``batch`` (default: the last) back where they were, byte for byte
    with their modification time, newest operation first; the rows follow. A path that
    was replaced by a link gets its bytes back from the keeper (checked against the
    journalled SHA-256: the keeper must still hold them). Holds the action lock, as
    :func:`apply` does."""
    with dbactions.exclusive(session.engine):
        return _undo(session, batch)


def _undo(session: Session, batch: str | None) -> Undone:
    reconcile(session)
    batch = batch or dbactions.last_batch(session.engine)
    out = Undone(batch)
    if batch is None:
        return out
    for row in reversed(dbactions.rows_of(session.engine, batch, states=["done"])):
        why = _undo_links(session, row) if row.action in LINKS else _undo_move(session, row)
        if why:
            out.skipped.append((row.path, why))
            continue
        dbactions.mark(session.engine, row.id, "undone")
        out.restored += 1
    return out


def _undo_move(session: Session, row) -> str | None:
    """Move a trashed or moved file back; None when done, else why not."""
    if row.action == "delete" or not row.destination:
        return "deleted: cannot be undone"
    if os.path.lexists(row.path):
        return "a file is back at that path already"
    if not os.path.lexists(row.destination):
        return f"{row.destination} is gone"
    is_link = os.path.islink(row.destination)
    if not is_link and (os.stat(row.destination).st_size != row.size
                        or files.sha256_file(row.destination) != row.sha256):
        return f"{row.destination} changed since it was put there; left there"
    Path(row.path).parent.mkdir(parents=True, exist_ok=True)
    files.move(Path(row.destination), Path(row.path), sha256=None if is_link else row.sha256)
    if not is_link:
        os.utime(row.path, ns=(os.stat(row.path).st_atime_ns, row.mtime_ns))
    if row.action == "trash":
        trash.info_of(Path(row.destination)).unlink(missing_ok=True)
    if row.image_id is not None:
        session.store.save_moved(row.image_id, Task(row.path, row.size, row.mtime_ns, row.sha256))
    return None


def _undo_links(session: Session, row) -> str | None:
    """Give a path that became a link its own bytes back, copied from the keeper."""
    path = Path(row.path)
    if os.path.lexists(path) and not files.is_link_to(path, Path(row.keeper_path), row.action):
        return f"{path} changed since it was linked; left as it is"
    try:
        files.restore_copy(Path(row.keeper_path), path, sha256=row.sha256, mtime_ns=row.mtime_ns)
    except OSError as exc:
        return (f"not restored: {exc.strerror or exc} (undoing a {row.action} copies the bytes back from "
                f"the keeper {row.keeper_path}, which must still hold them)")
    if row.image_id is not None:
        session.store.save_unchanged(Unchanged(Task(row.path, row.size, row.mtime_ns), row.sha256))
    return None
