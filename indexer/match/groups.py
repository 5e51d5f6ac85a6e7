"""Duplicate groups: connected components over accepted pairs, and a suggested keeper.

Groups are the connected components (union-find with path halving and union by size,
Tarjan 1975) of the graph whose edges are the pairs with a chosen verdict (default: the
copies of one shot, ``same_file``, ``same_pixels``, ``derived``), with one constraint: a
group never holds two images that metadata shows to be different shots
(:func:`indexer.match.shots.relate`: other camera body, or capture times apart). A copy
without EXIF can match several shots of a still scene equally well (the Sony Mavica
e-mail copy ``MVC-177E`` correlates 0.995-0.996 with the three frames ``MVC-176F``,
``177F``, ``178F`` taken 14-35 s apart); edges are therefore joined strongest first
(equal bytes or pixels, then by correlation, then histogram similarity) and an edge that
would bring two different shots together is left out, so the copy joins the one shot it
matches best (``177F``: correlation 0.9956 against 0.9950 and 0.9953).

Keeper rule (:func:`keeper_key`; only a suggestion, nothing is moved or deleted): the
file a photographer shot and kept, not the largest copy. The first difference decides:

0. chosen by the user (``photoqa dupes --keep FILE``);
1. in a folder the user prefers (``[dupes] prefer_in``);
2. RAW before its renderings (the negative holds more than any of them);
3. carrying the camera's EXIF (a body and a capture time) before files without: exports,
   conversions and downloads lose it, an upscale made from the camera JPEG included;
4. in colour when a member is (a greyscale conversion is a copy);
5. not an upscale: the bigger side of a resized pair whose full-size spectra show no
   detail above the smaller side's (:mod:`indexer.match.upscale`; a 1.5x export of the
   camera JPEG with its EXIF copied has more pixels, not more detail);
6. most pixels;
7. oriented as most members are (a mirrored or rotated copy of a group is the outlier:
   each member's D4 orientation relative to one of them, composed along the pairs);
8. lossless, unless it is a conversion of a lossy member (a PNG of the same pixel size as
   a JPEG of the group holds the JPEG's pixels, no more);
9. a name that does not say copy ("Copy of ...", "... (1)", "..._copy", "_mirror",
   "_small", "_edited" ...);
10. earliest capture time, then earliest file modification time;
11. largest file, sharpest, smallest id (stable).

Measured before this rule (issue 14): ``photoqa demo`` kept a mirrored PNG over the JPEG
it came from, a 1.5x upscaled export won over the Canon CRW and the camera JPEG, a
greyscale PNG over its colour original, mirrored copies won 13 of 26 groups of a dataset
folder on file size.
"""
from __future__ import annotations

import functools
import re
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath
from typing import Iterable, Sequence

from indexer.exposure.thresholds import FlagThresholds  # NumPy-free: dupes and status read groups
from indexer.measure import orient

from indexer.match import upscale
from indexer.match.shots import Body, is_raw, relate, same_body
from indexer.match.verdict import DEFAULT_GROUP_VERDICTS

LOSSLESS = frozenset({"png", "tiff", "tif", "bmp", "gif", "ppm", "pgm", "pbm", "pnm"})


@dataclass(frozen=True)
class KeeperInfo:
    """What the keeper rule looks at, per image. ``format`` is a name like ``"JPEG"``."""

    id: int
    width: int
    height: int
    format: str | None = None
    bytes: int | None = None
    sharpness: float | None = None
    captured_at: datetime | None = None
    camera: Body | None = None  # shots.body_key of its camera, None when unknown
    path: str | None = None
    mtime_ns: int | None = None
    colourfulness: float | None = None  # Hasler & Suesstrunk M; below the grayscale flag's threshold: grey
    apart_from: frozenset = frozenset()  # ids the user declared not its duplicates
    keep: bool = False  # the user chose it as its group's keeper


KEEPER_RULE_VERSION = 3  # 2: the original first (issue 14), 3: not an upscale; stored groups of another version are rebuilt


@dataclass(frozen=True)
class GroupRule:
    """What decides the stored groups: the verdicts whose pairs join images, and folders
    whose files are preferred as keepers (absolute paths)."""

    verdicts: tuple[str, ...] = DEFAULT_GROUP_VERDICTS
    prefer_in: tuple[str, ...] = ()

    def key(self) -> str:
        """The rule as text (stored beside ``image_groups``: another rule rebuilds them)."""
        return (f"keeper{KEEPER_RULE_VERSION}:" + ",".join(sorted(set(self.verdicts)))
                + ("|" + "|".join(sorted(self.prefer_in)) if self.prefer_in else ""))


@dataclass(frozen=True)
class Group:
    """One group: member ids (sorted), the suggested keeper, and the pairs inside it."""

    id: int
    members: tuple[int, ...]
    keeper: int
    pairs: tuple = ()


class UnionFind:
    """Disjoint sets over arbitrary hashable ids."""

    def __init__(self) -> None:
        self.parent: dict = {}
        self.size: dict = {}

    def find(self, x):
        self.parent.setdefault(x, x)
        self.size.setdefault(x, 1)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]  # path halving
            x = self.parent[x]
        return x

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]


def components(edges: Iterable[tuple[int, int]]) -> list[tuple[int, ...]]:
    """Connected components (each sorted, size >= 2) of an edge list, largest first."""
    uf = UnionFind()
    for a, b in edges:
        uf.union(a, b)
    comps: dict = {}
    for x in uf.parent:
        comps.setdefault(uf.find(x), []).append(x)
    return sorted((tuple(sorted(c)) for c in comps.values() if len(c) > 1), key=lambda c: (-len(c), c))


def different_shots(a: KeeperInfo, b: KeeperInfo) -> bool:
    """Whether ``a`` and ``b`` must never share a group: the user said they are not
    duplicates, or metadata shows them to be two shots."""
    if b.id in a.apart_from or a.id in b.apart_from:
        return True
    rel = relate(a.camera, b.camera, a.captured_at, b.captured_at,
                 raw_pair=is_raw(a.format) != is_raw(b.format))
    return rel.same_shot is False


def _strength(pair) -> tuple:
    """Sort key, strongest edge first: equal bytes, equal pixels, then correlation and
    histogram similarity (None, as for equal files: 1)."""
    rank = {"same_file": 0, "same_pixels": 1}.get(pair.verdict, 2)
    corr = getattr(pair, "correlation", None)
    hist = getattr(pair, "hist_similarity", getattr(pair, "hist_sim", None))
    return (rank, -(1.0 if corr is None else corr), -(1.0 if hist is None else hist), pair.a, pair.b)


def different_cameras(a: KeeperInfo, b: KeeperInfo) -> bool:
    """Whether metadata shows ``a`` and ``b`` to come from two camera bodies."""
    return same_body(a.camera, b.camera) is False


def shot_components(pairs: Sequence, infos: dict[int, KeeperInfo],
                    apart=different_shots) -> tuple[list[tuple[int, ...]], list]:
    """Components of ``pairs`` joined strongest first, leaving out every edge that would
    put two images ``apart`` says must stay apart (default: two different shots) in one
    component; returns (components as in :func:`components`, the pairs kept)."""
    uf = UnionFind()
    members: dict = {}
    kept = []
    # only images with metadata can be two shots: the others need no look (each join
    # compares every member on one side with every one on the other, n^2/2 for a group
    # of n; 18,000 calls for the 432 images of bench/end_to_end.py's dense set, none of
    # them with EXIF)
    bound = _bound(infos) if apart is different_shots else infos
    for p in sorted(pairs, key=_strength):
        ra, rb = uf.find(p.a), uf.find(p.b)
        if ra != rb:
            left, right = members.get(ra, [p.a]), members.get(rb, [p.b])
            if any(apart(infos[x], infos[y]) for x in left if x in bound for y in right if y in bound):
                continue
            uf.union(ra, rb)
            members[uf.find(ra)] = left + right
        kept.append(p)
    comps: dict = {}
    for x in uf.parent:
        comps.setdefault(uf.find(x), []).append(x)
    out = sorted((tuple(sorted(c)) for c in comps.values() if len(c) > 1), key=lambda c: (-len(c), c))
    return out, kept


def _bound(infos: dict[int, KeeperInfo]) -> set[int]:
    """The ids of ``infos`` that :func:`different_shots` may find apart from another:
    with a camera body or a capture time, or named in a not-duplicates decision (one
    with neither, in no decision, is never apart: :func:`indexer.match.shots.relate`
    says nothing of a pair without a body and a time on the same side)."""
    named = {x for info in infos.values() for x in info.apart_from}
    return {i for i, info in infos.items()
            if info.camera is not None or info.captured_at is not None or info.apart_from or i in named}


_COPY_NAME = re.compile(
    r"(^copy of |^copy_|\bcopy\b|\(\d+\)$|[ _-](\d|copy\d*|mirror(ed)?|flip(ped)?|rot(ated)?\d*|small|thumb(nail)?|"
    r"resized?|scaled|crop(ped)?|gr[ae]y(scale)?|edit(ed)?|export(ed)?|web|upscaled?|large)$)")


@functools.lru_cache(maxsize=4096)
def copy_like_name(path: str | None) -> bool:
    """Whether a file's name says it is a copy: "Copy of x.jpg", "x (1).jpg",
    "x_copy.jpg", "x_mirror.png", "x_small.jpg", "x-edited.jpg"...

    Cached: the writer regroups a component at each pair stored into it, the keeper
    rule reading every member's name each time (3,300 calls, a path parse and a regular
    expression each, for the 432 images of the dense set)."""
    return bool(path) and bool(_COPY_NAME.search(PurePath(path).stem.lower()))


@dataclass(frozen=True)
class GroupContext:
    """What the keeper rule compares across a group's members (:meth:`of`)."""

    colour: bool = False  # some member is in colour
    lossy_sizes: frozenset = frozenset()  # pixel sizes (w, h) of lossy members, either way round
    outliers: frozenset = frozenset()  # members oriented unlike the plurality
    preferred: frozenset = frozenset()  # members under a preferred folder
    upscaled: tuple = ()  # (member, its scale over its source) of the upscales (indexer.match.upscale)

    @classmethod
    def of(cls, members: Iterable[int], infos: dict[int, KeeperInfo], pairs: Sequence = (),
           prefer_in: Iterable[str] = ()) -> "GroupContext":
        members = [m for m in members if m in infos]
        grey = FlagThresholds.grayscale
        colour = any((infos[m].colourfulness or 0.0) >= grey for m in members)
        lossy = frozenset(s for m in members if not _lossless(infos[m].format)
                          for s in ((infos[m].width, infos[m].height), (infos[m].height, infos[m].width)))
        roots = [r.rstrip("/") + "/" for r in prefer_in]
        preferred = frozenset(m for m in members if infos[m].path and any(infos[m].path.startswith(r) for r in roots))
        inside = set(members)
        upscaled = tuple(sorted((m, s) for m, s in upscale.upscales(pairs).items() if m in inside))
        return cls(colour, lossy, frozenset(_orientation_outliers(members, pairs)), preferred, upscaled)

    def upscale_of(self, member: int) -> float | None:
        """``member``'s scale over its source when it is an upscale, else None."""
        return dict(self.upscaled).get(member)


def _lossless(fmt: str | None) -> bool:
    name = (fmt or "").lower()
    return name in LOSSLESS or is_raw(name)


def _orientation_outliers(members: list[int], pairs: Sequence) -> set[int]:
    """Members whose D4 orientation (relative to the first member, composed along the
    pairs' ``transform``: b = apply(a, transform)) is not the plurality's; none when no
    orientation has a strict plurality."""
    if len(members) < 3 or not pairs:
        return set()
    links: dict[int, list] = {}
    for p in pairs:
        t = getattr(p, "transform", None) or "identity"
        links.setdefault(p.a, []).append((p.b, t))
        links.setdefault(p.b, []).append((p.a, orient.inverse(t)))
    start = members[0]
    seen, todo = {start: "identity"}, deque([start])
    while todo:
        x = todo.popleft()
        for y, t in links.get(x, ()):
            if y not in seen:
                seen[y] = orient.compose(seen[x], t)
                todo.append(y)
    counts = Counter(seen.values()).most_common()
    if len(counts) < 2 or counts[0][1] == counts[1][1]:
        return set()
    return {m for m, o in seen.items() if o != counts[0][0]}


_NO_CONTEXT = GroupContext()


def keeper_key(info: KeeperInfo, ctx: GroupContext = _NO_CONTEXT) -> tuple:
    """Sort key: the smallest key is the suggested keeper (module docstring rule; the
    positions are named by :data:`KEEPER_REASONS`)."""
    fmt = (info.format or "").lower()
    grey = (info.colourfulness or 0.0) < FlagThresholds.grayscale if info.colourfulness is not None else False
    conversion = not is_raw(fmt) and (info.width, info.height) in ctx.lossy_sizes
    return (
        not info.keep,
        info.id not in ctx.preferred if ctx.preferred else False,
        0 if is_raw(fmt) else 1,
        0 if info.camera is not None and info.captured_at is not None else 1,
        ctx.colour and grey,
        ctx.upscale_of(info.id) is not None,
        -(info.width * info.height),
        info.id in ctx.outliers,
        0 if _lossless(fmt) and not conversion else 1,
        copy_like_name(info.path),
        info.captured_at is None,
        info.captured_at.timestamp() if info.captured_at else 0.0,
        info.mtime_ns if info.mtime_ns is not None else 2**63,
        -(info.bytes or 0),
        -(info.sharpness or 0.0),
        info.id,
    )


# what each position of keeper_key means, said when it decided
KEEPER_REASONS = ("chosen by you", "in a preferred folder", "RAW", "camera EXIF", "in colour", "not an upscale",
                  "most pixels",
                  "oriented as the others", "lossless", "original name", "capture time known",
                  "earliest capture", "oldest file", "largest file", "sharpest", "indexed first")


def keeper_reason(keeper: KeeperInfo, others: Iterable[KeeperInfo], ctx: GroupContext = _NO_CONTEXT) -> str:
    """Why ``keeper`` won over ``others``, in words: the rule that decided against each
    other member (:data:`KEEPER_REASONS`), most important first ("RAW, camera EXIF")."""
    mine = keeper_key(keeper, ctx)
    decided: dict[int, list[KeeperInfo]] = {}
    for other in others:
        theirs = keeper_key(other, ctx)
        decided.setdefault(next((i for i, (x, y) in enumerate(zip(mine, theirs)) if x != y), len(mine) - 1),
                           []).append(other)
    return ", ".join(_reason(i, decided[i], ctx) for i in sorted(decided))


def _reason(position: int, others: list[KeeperInfo], ctx: GroupContext) -> str:
    """The words of one rule position; an upscale is named with its scale ("not an
    upscale: big.jpg is an upscale (1.5x, no detail above the source's)")."""
    if KEEPER_REASONS[position] != "not an upscale":
        return KEEPER_REASONS[position]
    named = "; ".join(f"{PurePath(o.path).name if o.path else f'image {o.id}'} is "
                      f"{upscale.words(ctx.upscale_of(o.id) or 0.0)}" for o in others)
    return f"not an upscale: {named}"


def keeper_of(members: Iterable[int], infos: dict[int, KeeperInfo] | None = None, pairs: Sequence = (),
              prefer_in: Iterable[str] = ()) -> int:
    """The suggested keeper of ``members`` by :func:`keeper_key` in the context of the
    group's ``pairs`` (smallest id without ``infos``)."""
    members = list(members)
    if not infos:
        return min(members)
    ctx = GroupContext.of(members, infos, pairs, prefer_in)
    return min(members, key=lambda i: keeper_key(infos[i], ctx) if i in infos else (True,) * 15 + (i,))


def build_groups(pairs: Sequence, infos: dict[int, KeeperInfo] | None = None, *,
                 verdicts: Iterable[str] = DEFAULT_GROUP_VERDICTS, prefer_in: Iterable[str] = ()) -> list[Group]:
    """Groups from pairs (objects with ``a``, ``b``, ``verdict``) of the chosen verdicts.

    ``infos`` maps id -> :class:`KeeperInfo`; without it the smallest id is the keeper.
    A group's id is its keeper's id (stable while the keeper stays, the same in the
    report and in ``image_groups``); largest group first.
    """
    chosen = set(verdicts)
    kept = [p for p in pairs if p.verdict in chosen]
    if infos:
        comps, kept = shot_components(kept, infos)
    else:
        comps = components((p.a, p.b) for p in kept)
    index_of = {m: i for i, members in enumerate(comps) for m in members}
    inside: list[list] = [[] for _ in comps]
    for p in kept:
        inside[index_of[p.a]].append(p)
    keepers = [keeper_of(members, infos, inside[i], prefer_in) for i, members in enumerate(comps)]
    return [Group(id=keeper, members=members, keeper=keeper, pairs=tuple(pairs))
            for keeper, members, pairs in zip(keepers, comps, inside)]
