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

Keeper rule (:func:`keeper_key`; only a suggestion, nothing is moved or deleted), the
first difference decides:

1. most pixels (width x height);
2. RAW before other formats (the negative holds more than any rendering of it);
3. least compressed: lossless formats (PNG, TIFF, BMP, ...) before lossy (JPEG, WebP,
   HEIF), then the larger file (more bytes per pixel);
4. sharpest (larger variance of the Laplacian);
5. earliest capture time (an original predates its copies); unknown times last;
6. smallest id (stable).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Sequence

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
    """Whether metadata shows ``a`` and ``b`` to be two shots (never one group)."""
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
    for p in sorted(pairs, key=_strength):
        ra, rb = uf.find(p.a), uf.find(p.b)
        if ra != rb:
            left, right = members.get(ra, [p.a]), members.get(rb, [p.b])
            if any(apart(infos[x], infos[y]) for x in left if x in infos for y in right if y in infos):
                continue
            uf.union(ra, rb)
            members[uf.find(ra)] = left + right
        kept.append(p)
    comps: dict = {}
    for x in uf.parent:
        comps.setdefault(uf.find(x), []).append(x)
    out = sorted((tuple(sorted(c)) for c in comps.values() if len(c) > 1), key=lambda c: (-len(c), c))
    return out, kept


def keeper_key(info: KeeperInfo) -> tuple:
    """Sort key: the smallest key is the suggested keeper (module docstring rule)."""
    fmt = (info.format or "").lower()
    return (
        -(info.width * info.height),
        0 if is_raw(fmt) else 1,
        0 if fmt in LOSSLESS or is_raw(fmt) else 1,
        -(info.bytes or 0),
        -(info.sharpness or 0.0),
        info.captured_at is None,
        info.captured_at.timestamp() if info.captured_at else 0.0,
        info.id,
    )


# what each position of keeper_key means, said when it decided
KEEPER_REASONS = ("most pixels", "RAW", "lossless", "largest file", "sharpest", "capture time known",
                  "earliest capture", "indexed first")


def keeper_reason(keeper: KeeperInfo, others: Iterable[KeeperInfo]) -> str:
    """Why ``keeper`` won over ``others``, in words: the rule that decided against each
    other member (:data:`KEEPER_REASONS`), most important first ("most pixels, RAW")."""
    mine = keeper_key(keeper)
    decided = set()
    for other in others:
        theirs = keeper_key(other)
        decided.add(next((i for i, (x, y) in enumerate(zip(mine, theirs)) if x != y), len(mine) - 1))
    return ", ".join(KEEPER_REASONS[i] for i in sorted(decided))


def keeper_of(members: Iterable[int], infos: dict[int, KeeperInfo] | None = None) -> int:
    """The suggested keeper of ``members`` by :func:`keeper_key` (smallest id without ``infos``)."""
    members = list(members)
    if not infos:
        return min(members)
    return min(members, key=lambda i: keeper_key(infos[i]) if i in infos else (1,) * 7 + (i,))


def build_groups(pairs: Sequence, infos: dict[int, KeeperInfo] | None = None, *,
                 verdicts: Iterable[str] = DEFAULT_GROUP_VERDICTS) -> list[Group]:
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
    keepers = [keeper_of(members, infos) for members in comps]
    gid_of = {m: keeper for keeper, members in zip(keepers, comps) for m in members}
    inside: dict[int, list] = {}
    for p in kept:
        inside.setdefault(gid_of[p.a], []).append(p)
    return [Group(id=keeper, members=members, keeper=keeper, pairs=tuple(inside[keeper]))
            for keeper, members in zip(keepers, comps)]
