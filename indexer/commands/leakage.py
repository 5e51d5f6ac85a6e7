"""``photoqa leakage``: near-duplicates whose members lie in different dataset splits.

A training image with a copy (or a resized, mirrored, recompressed one) in the test split
inflates every score measured on it. The pairs come from the database (``photoqa index``
of the split folders first: :func:`leakage` does it unless told not to); a pair leaks
when its verdict is among ``verdicts`` (default: copies and derived, ``same_file``,
``same_pixels``, ``derived``; add ``similar`` to count burst neighbours) and its two
images belong to different splits. Splits are folders (the split is the folder's name)
or a manifest (CSV with ``path,split`` columns, or JSON ``{path: split}`` or
``[{"path": ..., "split": ...}]``; relative paths are relative to the manifest; an
array stack's frames take its file's split, so ``train.npy,train`` names them all).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from db.pairs import all_pairs, paths
from indexer.match.verdict import COPY_VERDICTS
from indexer.pipeline.scan import absolute, within

DEFAULT_VERDICTS = COPY_VERDICTS


class ManifestError(ValueError):
    """A manifest that cannot be read as path -> split."""


@dataclass
class Leak:
    split_a: str
    split_b: str
    path_a: str
    path_b: str
    verdict: str
    hamming: int | None
    transform: str
    correlation: float | None
    description: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class LeakageReport:
    splits: dict[str, int]  # split -> images in it
    verdicts: tuple[str, ...]
    leaks: list[Leak] = field(default_factory=list)

    def by_split_pair(self) -> dict[str, list[Leak]]:
        out: dict[str, list[Leak]] = {}
        for leak in self.leaks:
            out.setdefault(f"{leak.split_a}/{leak.split_b}", []).append(leak)
        return out

    @property
    def verdict(self) -> str:
        return "leakage" if self.leaks else "clean"

    def as_dict(self) -> dict:
        return {"verdict": self.verdict, "verdicts": list(self.verdicts), "splits": self.splits,
                "pairs": {k: [x.as_dict() for x in v] for k, v in self.by_split_pair().items()},
                "leaks": len(self.leaks)}


def read_manifest(path: Path) -> dict[str, str]:
    """Absolute path -> split from a CSV or JSON manifest (see module docstring)."""
    base = path.parent
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            data = json.loads(text)
            items = data.items() if isinstance(data, dict) else [(d["path"], d["split"]) for d in data]
        else:
            rows = list(csv.DictReader(text.splitlines()))
            items = [(r["path"], r["split"]) for r in rows]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{path}: not a manifest of path and split ({type(exc).__name__}: {exc})") from exc
    return {str(absolute(base / p)): str(s) for p, s in items}


def split_of_folders(folders: list[Path]):
    """A function path -> split name (the folder's name) or None."""
    named = [(str(absolute(f)), absolute(f).name) for f in folders]

    def split(path: str) -> str | None:
        for folder, name in named:
            if within(path, [folder]):
                return name
        return None

    return split


def of_frames(split):
    """``split`` that also names a frame's split by its stack file: a manifest lists
    ``train.npy``, not each ``train.npy#12``."""
    from indexer.decode.arrays import stack_of

    def named(path: str) -> str | None:
        found = split(path)
        if found is None and (container := stack_of(path)) is not None:
            found = split(container)
        return found

    return named


def find_leaks(engine, split, verdicts=DEFAULT_VERDICTS) -> LeakageReport:
    """Pairs of the database whose images lie in different splits (``split(path)``; a
    frame of an array stack by its stack file's split when its own path has none)."""
    split = of_frames(split)
    pairs = [p for p in all_pairs(engine) if p.verdict in verdicts]
    where = paths(engine, {p.a for p in pairs} | {p.b for p in pairs})
    report = LeakageReport({}, tuple(verdicts))
    for p in pairs:
        sa, sb = split(where[p.a]), split(where[p.b])
        if sa is None or sb is None or sa == sb:
            continue
        (sa, pa), (sb, pb) = sorted([(sa, where[p.a]), (sb, where[p.b])])
        report.leaks.append(Leak(sa, sb, pa, pb, p.verdict, p.hamming, p.transform, p.correlation,
                                 p.description or ""))
    report.leaks.sort(key=lambda x: (x.split_a, x.split_b, x.path_a, x.path_b))
    return report


def count_splits(engine, split) -> dict[str, int]:
    from db.queries import present_paths

    out: dict[str, int] = {}
    split = of_frames(split)
    for path in present_paths(engine):
        s = split(path)
        if s is not None:
            out[s] = out.get(s, 0) + 1
    return dict(sorted(out.items()))


def render_text(report: LeakageReport) -> str:
    lines = ["splits: " + ", ".join(f"{k} ({v} images)" for k, v in report.splits.items())]
    for key, leaks in report.by_split_pair().items():
        lines.append(f"{key}: {len(leaks)} leaked pair(s)")
        for x in leaks:
            why = f" ({x.description})" if x.description else ""
            lines.append(f"  {x.verdict:12} {x.path_a}  <->  {x.path_b}{why}")
    lines.append(f"verdict: {report.verdict} ({len(report.leaks)} pair(s) across splits; "
                 f"counting {', '.join(report.verdicts)})")
    return "\n".join(lines)
