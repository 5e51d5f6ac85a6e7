"""Walking folders and deciding what needs work, against what the database knows.

Symbolic links, one rule everywhere (``index`` walks and arguments, ``watch``): a file is
stored under the path it was found at, made absolute but not resolved, so a link keeps
its own name; links to files are followed (their target's bytes are indexed under the
link's path); links to folders are followed too, once: a folder reached again through
another link (a loop, or two links to one folder) is skipped with a warning on stderr.
"""
from __future__ import annotations

import logging
import os
import dataclasses
import stat
from dataclasses import dataclass, field
from pathlib import Path

from indexer.decode import arrays, sniff
from indexer.fileops import trash
from indexer.outcomes import Task


def is_hidden_or_partial(name: str) -> bool:
    lower = name.lower()
    return (name.startswith(".") or name.endswith("~")
            or lower.endswith((".tmp", ".part", ".crdownload", ".partial", ".download")))


def candidate(path: Path, *, stacks: bool = False) -> Task | None:
    """A Task for an image file (by content or name), None for anything else;
    ``stacks``: array stacks (``.npy``/``.npz``, by name) too (``index`` stores them
    frame by frame, ``watch`` too: its writer hands them to
    :class:`indexer.pipeline.stackrun.StackWatch`).

    A file named as an image is not opened here (one stat per file keeps a re-run over a
    large or networked tree cheap; an unreadable one still becomes a failure row); only
    files with other names have their first bytes sniffed.
    """
    if is_hidden_or_partial(path.name):
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    suffix = path.suffix.lower()
    if suffix in sniff.SIDECAR_EXTENSIONS:
        return None
    if suffix in arrays.ARRAY_EXTENSIONS:
        return Task(str(path), st.st_size, st.st_mtime_ns) if stacks else None
    if suffix not in sniff.IMAGE_EXTENSIONS and suffix not in sniff.RAW_EXTENSIONS:
        try:
            with open(path, "rb") as fh:
                head = fh.read(32)
        except OSError:
            return None
        if sniff.sniff(head) is None:
            return None
    return Task(str(path), st.st_size, st.st_mtime_ns)


log = logging.getLogger("photoqa.scan")


def absolute(path: Path | str) -> Path:
    """``path`` made absolute (``~`` expanded, ``..`` folded) without resolving links."""
    return Path(os.path.abspath(os.path.expanduser(path)))


def walk(roots: list[Path], *, stacks: bool = False) -> list[Task]:
    """Every candidate image under ``roots`` (files or folders), recursively, sorted by
    path; links followed by the module docstring's rule; array stacks when ``stacks``."""
    tasks: dict[str, Task] = {}
    seen: dict[tuple[int, int], str] = {}  # (device, inode) of each folder walked -> where
    for root in roots:
        root = absolute(root)
        if root.is_file():
            found = candidate(root, stacks=stacks)
            if found:
                tasks[found.path] = found
            continue
        for folder, dirs, files in os.walk(root, followlinks=True):
            try:
                st = os.stat(folder)
            except OSError:
                dirs[:] = []
                continue
            if (st.st_dev, st.st_ino) in seen:
                log.warning("photoqa: %s is %s again (a folder link loop or a second link): skipped",
                            folder, seen[(st.st_dev, st.st_ino)])
                dirs[:] = []
                continue
            seen[(st.st_dev, st.st_ino)] = folder
            if trash.in_trash(folder):  # files trashed by `dupes --apply` or a desktop are not photos to index
                dirs[:] = []
                continue
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in files:
                found = candidate(Path(folder) / name, stacks=stacks)
                if found:
                    tasks[found.path] = found
    return [tasks[p] for p in sorted(tasks)]


def under(path: str, roots: list[Path]) -> bool:
    """Whether ``path`` lies in one of ``roots`` (as absolute, unresolved paths)."""
    return within(path, _resolved(roots))


def _resolved(roots: list[Path]) -> list[str]:
    return [str(absolute(root)) for root in roots]


def within(path: str, folders: list[str]) -> bool:
    """Whether ``path`` is one of ``folders`` or lies below one (absolute path strings)."""
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in folders)


@dataclass
class Plan:
    """What an index run must do."""

    todo: list[Task] = field(default_factory=list)
    updates: set[str] = field(default_factory=set)  # paths known before, content changed
    unchanged: int = 0
    failed_unchanged: int = 0
    failed_paths: list[str] = field(default_factory=list)  # the failed_unchanged files
    gone: dict[str, int] = field(default_factory=dict)  # path -> image id, no longer on disk
    move_candidates: dict[str, list[int]] = field(default_factory=dict)  # sha256 -> gone image ids
    stale_failures: list[str] = field(default_factory=list)  # failure rows of files gone from the roots


def drop(todo: Plan, paths: set[str]) -> None:
    """Leave ``paths`` out of ``todo`` (files ``photoqa dupes --apply`` is putting there)."""
    if paths:
        todo.todo = [t for t in todo.todo if t.path not in paths]
        todo.updates -= paths


def plan(tasks: list[Task], known: dict, failures: dict, roots: list[Path], features_version: int) -> Plan:
    """Compare the walk with the database: skip unchanged files, find changed and gone ones."""
    result = Plan()
    on_disk = {t.path for t in tasks}
    for task in tasks:
        state = known.get(task.path)
        if state and not state.missing and (state.size, state.mtime_ns) == (task.size, task.mtime_ns) \
                and state.features_version == features_version:
            result.unchanged += 1
            continue
        if failures.get(task.path) == (task.size, task.mtime_ns):
            # failed before and unchanged since: no retry, even when an older version of
            # the file had indexed (its row would otherwise send it back to work each run)
            result.failed_unchanged += 1
            result.failed_paths.append(task.path)
            continue
        if state is not None:
            result.updates.add(task.path)
            if not state.missing and state.features_version == features_version:
                task = dataclasses.replace(task, sha256=state.sha256)  # touched? hashed, not decoded
        result.todo.append(task)
    resolved = _resolved(roots)  # once, not per known row
    for path, state in known.items():
        if path in on_disk:
            continue
        if state.missing or within(path, resolved):
            result.move_candidates.setdefault(state.sha256, []).append(state.id)
            if not state.missing:
                result.gone[path] = state.id
    result.stale_failures = sorted(p for p in failures if p not in on_disk and within(p, resolved))
    return result
