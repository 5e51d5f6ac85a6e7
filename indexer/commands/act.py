"""Acting on duplicate groups: a plan, then apply (``photoqa dupes --apply``), a journal,
and ``photoqa undo``.

Nothing is touched without ``--yes``: the plan says what would happen to which file and
the bytes freed. Applying, each copy (never a keeper) is checked again first: its size,
modification time and SHA-256 must still be the indexed row's, its keeper must still
exist with its indexed SHA-256, and it must not lie under a reference folder; a file
that fails a check is skipped with the reason. Every operation is journalled
(:mod:`db.actions`) ``planned`` before the file moves and ``done`` after, and the index
follows (a trashed or deleted file's row is marked missing, a moved file's row moves).

``trash`` follows the freedesktop.org Trash specification 1.0: the file goes to
``$XDG_DATA_HOME/Trash/files`` (default ``~/.local/share/Trash``) when it lives on the
same file system as that folder, else to ``$topdir/.Trash-$uid`` at the top of its own
file system; ``info/NAME.trashinfo`` (``Path=`` the URL-quoted original path,
``DeletionDate=``) is written before the file is renamed, under a name unique in both
folders, so desktop trash tools list and restore it too. ``move:DIR`` keeps the path
below the files' common folder under ``DIR``. ``delete`` cannot be undone.

A symbolic link is acted on as a link (renamed or unlinked itself, its target untouched).
"""
from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from db import actions as dbactions
from indexer.outcomes import Task
from indexer.session import Session

ACTIONS = ("trash", "move", "delete")


class ActError(ValueError):
    """An --apply request that cannot be carried out at all (bad action or folder)."""


def parse_action(text: str) -> tuple[str, Path | None]:
    """``trash`` | ``delete`` | ``move:DIR`` -> (action, destination folder)."""
    name, _, where = text.partition(":")
    if name not in ACTIONS:
        raise ActError(f"--apply {text}: choose trash, move:DIR or delete")
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
    image_id: int
    size: int
    mtime_ns: int
    sha256: str
    destination: str | None = None
    reason: str | None = None  # why it will be (or was) skipped


@dataclass
class Outcome:
    batch: str | None
    planned: list[Planned] = field(default_factory=list)
    done: int = 0
    skipped: int = 0
    bytes_freed: int = 0


def _under(path: str, folders) -> bool:
    return any(path == str(f) or path.startswith(str(f).rstrip(os.sep) + os.sep) for f in folders)


def plan(session: Session, report: dict, action: str, dest: Path | None, *, reference=(),
         group: int | None = None) -> list[Planned]:
    """What ``action`` would do to the copies of the report's groups (keepers untouched;
    files under ``reference`` folders listed as skipped)."""
    groups = [g for g in report["groups"] if group is None or g["id"] == group]
    copies = [(m["path"], g["keeper"]) for g in groups for m in g["members"] if m["role"] != "keeper"]
    facts = dbactions.indexed_files(session.engine, [p for p, _ in copies])
    root = os.path.commonpath([os.path.dirname(p) for p, _ in copies]) if copies else ""
    refs = [os.path.abspath(os.path.expanduser(r)) for r in reference]
    out = []
    for path, keeper in copies:
        if path not in facts:
            continue
        image_id, size, mtime_ns, sha = facts[path]
        p = Planned(action, path, keeper, image_id, size, mtime_ns, sha)
        if dest is not None:
            p.destination = str(dest / os.path.relpath(path, root))
        if _under(path, refs):
            p.reason = "under a reference folder"
        out.append(p)
    return out


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check(p: Planned, keeper_sha: str | None) -> str | None:
    """Why ``p`` must not be carried out now, or None."""
    if p.reason:
        return p.reason
    try:
        st = os.stat(p.path)  # a link: its target, as indexed
    except OSError:
        return "gone since indexing"
    if (st.st_size, st.st_mtime_ns) != (p.size, p.mtime_ns):
        return "changed since indexing (size or modification time)"
    if _sha256(p.path) != p.sha256:
        return "changed since indexing (content)"
    if keeper_sha is None or not os.path.exists(p.keeper_path) or _sha256(p.keeper_path) != keeper_sha:
        return "its keeper is gone or changed since indexing"
    if p.destination and os.path.lexists(p.destination):
        return f"{p.destination} exists"
    return None


def apply(session: Session, planned: list[Planned]) -> Outcome:
    """Journal ``planned``, then carry each out that passes :func:`check`."""
    reconcile(session)
    batch = datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    keepers = dbactions.indexed_files(session.engine, {p.keeper_path for p in planned})
    for p in planned:
        if p.action == "trash":
            p.destination = None  # chosen when carried out (unique in the trash)
    dbactions.plan(session.engine, batch, [dict(action=p.action, path=p.path, destination=p.destination,
                                                image_id=p.image_id, keeper_path=p.keeper_path, size=p.size,
                                                mtime_ns=p.mtime_ns, sha256=p.sha256) for p in planned])
    rows = dbactions.rows_of(session.engine, batch)
    out = Outcome(batch, planned)
    for p, row in zip(planned, rows):
        keeper = keepers.get(p.keeper_path)
        p.reason = check(p, keeper[3] if keeper else None)
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
        out.done += 1
        out.bytes_freed += p.size
        if os.environ.get("PHOTOQA_TEST_APPLY_PAUSE"):  # tests kill a run between two files
            import time
            time.sleep(float(os.environ["PHOTOQA_TEST_APPLY_PAUSE"]))
    return out


def _carry_out(p: Planned, action_id: int, session: Session) -> str | None:
    """Move, trash or delete one file; journal it done; returns where it went."""
    if p.action == "delete":
        os.unlink(p.path)
        dbactions.mark(session.engine, action_id, "done")
        return None
    if p.action == "trash":
        target, info = _trash_slot(p.path)
        dbactions.mark(session.engine, action_id, "planned", destination=target)  # known before it moves
        info.write_text(f"[Trash Info]\nPath={quote(p.path)}\nDeletionDate="
                        f"{datetime.now().strftime('%Y-%m-%dT%H:%M:%S')}\n")
        _move(p.path, target)
        dbactions.mark(session.engine, action_id, "done", destination=target)
        return target
    dbactions.mark(session.engine, action_id, "planned", destination=p.destination)
    _move(p.path, p.destination)
    dbactions.mark(session.engine, action_id, "done", destination=p.destination)
    return p.destination


def _move(src: str, dst: str) -> None:
    """Rename (a link stays a link); across file systems copy then remove, keeping times."""
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno != 18:  # EXDEV: another file system
            raise
        shutil.move(src, dst, copy_function=shutil.copy2)


def trash_dir(path: str) -> Path:
    """The trash a file goes to (module docstring: home trash on its file system, else
    ``$topdir/.Trash-$uid``)."""
    home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "Trash"
    home.mkdir(parents=True, exist_ok=True)
    if os.stat(home).st_dev == os.lstat(os.path.dirname(path) or ".").st_dev:
        return home
    top = Path(path).parent
    while not os.path.ismount(top) and top.parent != top:
        top = top.parent
    return top / f".Trash-{os.getuid()}"


def _trash_slot(path: str) -> tuple[str, Path]:
    """A name free in the trash's files/ and info/ (the info file created, O_EXCL)."""
    trash = trash_dir(path)
    (trash / "files").mkdir(parents=True, exist_ok=True)
    (trash / "info").mkdir(parents=True, exist_ok=True)
    stem, suffix = os.path.splitext(os.path.basename(path))
    for n in range(1, 10_000):
        name = f"{stem}{suffix}" if n == 1 else f"{stem}.{n}{suffix}"
        info = trash / "info" / f"{name}.trashinfo"
        try:
            os.close(os.open(info, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            continue
        if os.path.lexists(trash / "files" / name):
            info.unlink()
            continue
        return str(trash / "files" / name), info
    raise OSError(f"no free name in {trash} for {path}")


def _index_follows(session: Session, p: Planned, where: str | None) -> None:
    """Trashed or deleted: the row is marked missing; moved: the row moves with the file."""
    if p.action == "move" and where:
        st = os.lstat(where) if os.path.islink(where) else os.stat(where)
        session.store.save_moved(p.image_id, Task(where, st.st_size, st.st_mtime_ns, p.sha256))
    else:
        session.store.mark_missing([p.image_id])


def reconcile(session: Session) -> int:
    """Settle rows left ``planned`` by a run that was killed: a file back at its path
    (or never moved) is ``skipped``; a file at its destination is ``done``. Returns how
    many rows it settled."""
    settled = 0
    for row in dbactions.rows_of(session.engine, states=["planned"]):
        at_source = os.path.lexists(row.path)
        at_dest = bool(row.destination) and os.path.lexists(row.destination)
        if at_dest and not at_source:
            dbactions.mark(session.engine, row.id, "done", destination=row.destination)
            if row.image_id is not None:
                planned = Planned(row.action, row.path, row.keeper_path, row.image_id, row.size, row.mtime_ns,
                                  row.sha256, row.destination)
                _index_follows(session, planned, row.destination)
        else:
            if row.action == "trash" and row.destination:
                _drop_info(row.destination)
            dbactions.mark(session.engine, row.id, "skipped", reason="interrupted before it moved")
        settled += 1
    return settled


def _drop_info(trashed: str) -> None:
    info = Path(trashed).parent.parent / "info" / (Path(trashed).name + ".trashinfo")
    info.unlink(missing_ok=True)


@dataclass
class Undone:
    batch: str | None
    restored: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)


def undo(session: Session, batch: str | None = None) -> Undone:
    """Put the files of ``batch`` (default: the last) back where they were, byte for byte
    with their modification time, newest operation first; the rows follow."""
    reconcile(session)
    batch = batch or dbactions.last_batch(session.engine)
    out = Undone(batch)
    if batch is None:
        return out
    for row in reversed(dbactions.rows_of(session.engine, batch, states=["done"])):
        if row.action == "delete" or not row.destination:
            out.skipped.append((row.path, "deleted: cannot be undone"))
            continue
        if os.path.lexists(row.path):
            out.skipped.append((row.path, "a file is back at that path already"))
            continue
        if not os.path.lexists(row.destination):
            out.skipped.append((row.path, f"{row.destination} is gone"))
            continue
        _move(row.destination, row.path)
        if not os.path.islink(row.path):
            os.utime(row.path, ns=(os.stat(row.path).st_atime_ns, row.mtime_ns))
        if row.action == "trash":
            _drop_info(row.destination)
        dbactions.mark(session.engine, row.id, "undone")
        if row.image_id is not None:
            session.store.save_moved(row.image_id, Task(row.path, row.size, row.mtime_ns, row.sha256))
        out.restored += 1
    return out
