"""``image_groups`` kept current: recomputed inside the transaction of every write that
changes it, for the groups it touches only.

A group is a connected component (size >= 2) of the pairs whose verdict is one of the
group verdicts (``[match] group_verdicts``) and whose two images are present
(``images.missing_since`` NULL); its id is its keeper's image id
(:func:`indexer.match.groups.keeper_of`), so ``photoqa dupes`` prints the same ids and an
id survives a move, a rename or a new member that does not outrank the keeper.

Writers call :func:`refresh_groups` with the images whose pairs, presence or keeper
facts they changed, on the connection of their open transaction (``engine.begin()``).
The cost is proportional to the affected components (their members and pairs), never
to the archive. :func:`rebuild_groups` is the full recomputation (``rematch``, repair).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlalchemy import Connection, Engine, delete, insert, select

from db.models import Image, ImageGroup, Meta, Pair
from indexer.match.groups import Group, KeeperInfo, build_groups, components, keeper_of

CHUNK = 500  # ids per IN list: far below every database's parameter limit
VERDICTS_KEY = "group_verdicts"  # photoqa_meta: the verdicts image_groups was computed with

_A, _B = Image.__table__.alias("ga"), Image.__table__.alias("gb")


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    ids = sorted(set(ids))
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def old_members(conn: Connection, image_ids: Iterable[int]) -> set[int]:
    """``image_ids`` and every member of the stored groups they belong to.

    Call it before deleting image rows (their ``image_groups`` rows go with them, and
    with them the only record of which groups they were in)."""
    out = set(image_ids)
    group_ids: set[int] = set()
    for chunk in _chunks(out):
        group_ids.update(conn.execute(select(ImageGroup.group_id).where(ImageGroup.image_id.in_(chunk))).scalars())
    for chunk in _chunks(group_ids):
        out.update(conn.execute(select(ImageGroup.image_id).where(ImageGroup.group_id.in_(chunk))).scalars())
    return out


def _present(conn: Connection, ids: set[int]) -> set[int]:
    found: set[int] = set()
    for chunk in _chunks(ids):
        found.update(conn.execute(select(Image.id).where(Image.id.in_(chunk) & Image.missing_since.is_(None)))
                     .scalars())
    return found


def _edges(conn: Connection, ids: list[int], verdicts: list[str]) -> list[tuple[int, int]]:
    """Group-verdict pairs of present images with an end in ``ids`` (two queries, so
    each uses its index: ``uq_pairs_a_id_b_id`` and ``ix_pairs_b_id``)."""
    both_present = _A.c.missing_since.is_(None) & _B.c.missing_since.is_(None)
    base = (select(Pair.a_id, Pair.b_id).join(_A, _A.c.id == Pair.a_id).join(_B, _B.c.id == Pair.b_id)
            .where(Pair.verdict.in_(verdicts) & both_present))
    return [(int(a), int(b)) for where in (Pair.a_id.in_(ids), Pair.b_id.in_(ids))
            for a, b in conn.execute(base.where(where))]


def _walk(conn: Connection, start: set[int], verdicts: list[str], seen: set[int],
          edges: set[tuple[int, int]]) -> set[int]:
    """Breadth first from ``start`` over the group-verdict pairs of present images, adding
    to ``seen`` and ``edges``; returns the images reached (``start`` included)."""
    frontier = set(start) - seen
    reached = set(frontier)
    seen |= frontier
    while frontier:
        found = [e for chunk in _chunks(frontier) for e in _edges(conn, chunk, verdicts)]
        edges.update(found)
        frontier = {x for e in found for x in e} - seen
        seen |= frontier
        reached |= frontier
    return reached


def keeper_infos(conn: Connection, ids: Iterable[int]) -> dict[int, KeeperInfo]:
    """What the keeper rule reads of each image (``width``/``height``: stored pixels)."""
    cols = (Image.id, Image.width, Image.height, Image.format, Image.size, Image.sharpness, Image.captured_at)
    out: dict[int, KeeperInfo] = {}
    for chunk in _chunks(ids):
        out.update((r[0], KeeperInfo(*r)) for r in conn.execute(select(*cols).where(Image.id.in_(chunk))))
    return out


def _write(conn: Connection, groups: Iterable[tuple[int, Iterable[int]]]) -> None:
    rows = [dict(image_id=m, group_id=keeper, is_keeper=(m == keeper)) for keeper, members in groups
            for m in members]
    for start in range(0, len(rows), CHUNK):
        conn.execute(insert(ImageGroup), rows[start:start + CHUNK])


def refresh_groups(conn: Connection, image_ids: Iterable[int], verdicts: Iterable[str]) -> None:
    """Recompute the groups touching ``image_ids`` in the caller's transaction.

    ``image_ids``: every image whose pairs (an end of a pair inserted, deleted or whose
    verdict changed), presence or keeper facts changed, plus, for deleted rows, their
    :func:`old_members` taken before the delete. Their old groups' members and the
    components now reachable from them are regrouped; the rest is not read.
    """
    verdicts = sorted(set(verdicts))
    affected = old_members(conn, image_ids)  # rows to replace
    reached: set[int] = set()
    edges: set[tuple[int, int]] = set()
    todo = set(affected)
    while todo:  # an image reached that is still filed under another old group: regroup that too
        new = _walk(conn, _present(conn, todo), verdicts, reached, edges)
        more = old_members(conn, new) - affected
        affected |= new | more
        todo = more - reached
    for chunk in _chunks(affected):
        conn.execute(delete(ImageGroup).where(ImageGroup.image_id.in_(chunk)))
    comps = components(sorted(edges))
    infos = keeper_infos(conn, {m for c in comps for m in c})
    _write(conn, ((keeper_of(c, infos), c) for c in comps))


def clear_groups(conn: Connection) -> None:
    conn.execute(delete(ImageGroup))


def rebuild_groups(conn: Connection, verdicts: Iterable[str]) -> list[Group]:
    """Replace every stored group by a full recomputation (``rematch``, repair); returns them."""
    verdicts = sorted(set(verdicts))
    both_present = _A.c.missing_since.is_(None) & _B.c.missing_since.is_(None)
    query = (select(Pair.a_id.label("a"), Pair.b_id.label("b"), Pair.verdict)
             .join(_A, _A.c.id == Pair.a_id).join(_B, _B.c.id == Pair.b_id)
             .where(Pair.verdict.in_(verdicts) & both_present))
    pairs = list(conn.execute(query))
    groups = build_groups(pairs, keeper_infos(conn, {p.a for p in pairs} | {p.b for p in pairs}),
                          verdicts=verdicts)
    clear_groups(conn)
    _write(conn, ((g.keeper, g.members) for g in groups))
    conn.execute(delete(Meta).where(Meta.key == VERDICTS_KEY))
    conn.execute(insert(Meta).values(key=VERDICTS_KEY, value=_verdicts_value(verdicts)))
    return groups


def _verdicts_value(verdicts: Iterable[str]) -> str:
    return ",".join(sorted(set(verdicts)))


def ensure_groups(engine: Engine, verdicts: Iterable[str]) -> bool:
    """Rebuild every group if ``image_groups`` was computed with other verdicts than
    ``verdicts`` (``[match] group_verdicts`` changed), or by a version that numbered groups
    1..n instead of by keeper (no record in ``photoqa_meta``): an incremental refresh must
    start from groups of the same rule. Returns whether it rebuilt. Writers call it once
    when they open the database."""
    verdicts = sorted(set(verdicts))
    with engine.begin() as conn:
        if conn.execute(select(Meta.value).where(Meta.key == VERDICTS_KEY)).scalar() == _verdicts_value(verdicts):
            return False
        rebuild_groups(conn, verdicts)
        return True
