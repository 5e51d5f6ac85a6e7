"""``image_groups`` kept current: recomputed inside the transaction of every write that
changes it, for the groups it touches only.

Groups are :func:`indexer.match.groups.build_groups` over the pairs whose verdict is one
of the group verdicts (``[match] group_verdicts``) and whose two images are present
(``images.missing_since`` NULL): connected components, split where metadata shows two
different shots (joined strongest edge first, so a component's groups depend on all of
its pairs). A group's id is its keeper's image id, so ``photoqa dupes`` prints the same
ids and an id survives a move, a rename or a new member that does not outrank the keeper.

Writers call :func:`refresh_groups` with the images whose pairs, presence or keeper
facts they changed, on the connection of their open transaction (``engine.begin()``).
It recomputes whole connected components (the unit on which ``build_groups`` decides),
those of these images, of their pair partners and of their old groups' members: the
cost is proportional to the affected components, never to the archive.
:func:`rebuild_groups` is the full recomputation (``rematch``, repair).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlalchemy import Connection, Engine, bindparam, delete, insert, literal_column, select, union_all

from db.models import Camera, Decision, Image, ImageGroup, Meta, Pair
from db.records import fold_decisions
from indexer.match.groups import Group, GroupRule, KeeperInfo, build_groups
from indexer.match.shots import body_key

CHUNK = 500  # ids per IN list: far below every database's parameter limit
VERDICTS_KEY = "group_verdicts"  # photoqa_meta: the verdicts image_groups was computed with

_A, _B = Image.__table__.alias("ga"), Image.__table__.alias("gb")


def chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    ids = sorted(set(ids))
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


# Statements built once, the id and verdict lists passed as expanding parameters: built
# per call, the statements of a refresh cost ~190 SQLAlchemy coercions each time (72,000
# in a 432-image run of the dense set, ~7 s of the writer's CPU under cProfile, 2026-12-07)
_IDS, _VERDICTS = bindparam("ids", expanding=True), bindparam("verdicts", expanding=True)
_MATES = ImageGroup.__table__.alias("mates")
_OLD_MEMBERS = (select(_MATES.c.image_id).join(ImageGroup, ImageGroup.group_id == _MATES.c.group_id)
                .where(ImageGroup.image_id.in_(_IDS)))
_FILED = ImageGroup.__table__.alias("filed")  # the stored group of a partner
# what a refresh reads first about its seeds, in one statement (one round trip instead
# of two per refresh: ~300 refreshes in a 432-image run of the dense set): the members
# of their stored groups (tag 0) and their group-verdict partners (tag 1), each with
# the group it is filed under (None: none)
_SEED_FACTS = union_all(
    select(_MATES.c.image_id, literal_column("0").label("tag"), _MATES.c.group_id)
    .join(ImageGroup, ImageGroup.group_id == _MATES.c.group_id).where(ImageGroup.image_id.in_(_IDS)),
    select(Pair.b_id, literal_column("1"), _FILED.c.group_id).outerjoin(_FILED, _FILED.c.image_id == Pair.b_id)
    .where(Pair.verdict.in_(_VERDICTS) & Pair.a_id.in_(_IDS)),
    select(Pair.a_id, literal_column("1"), _FILED.c.group_id).outerjoin(_FILED, _FILED.c.image_id == Pair.a_id)
    .where(Pair.verdict.in_(_VERDICTS) & Pair.b_id.in_(_IDS)))
_DELETE_GROUPS = delete(ImageGroup).where(ImageGroup.image_id.in_(_IDS))
_INSERT_GROUPS = insert(ImageGroup)


def old_members(conn: Connection, image_ids: Iterable[int]) -> set[int]:
    """``image_ids`` and every member of the stored groups they belong to (one statement
    per 500 ids: their groups' rows joined to the rows of those groups).

    Call it before deleting image rows (their ``image_groups`` rows go with them, and
    with them the only record of which groups they were in)."""
    out = set(image_ids)
    for chunk in chunks(out):
        out.update(conn.execute(_OLD_MEMBERS, {"ids": chunk}).scalars())
    return out


_EDGE_COLS = (Pair.a_id.label("a"), Pair.b_id.label("b"), Pair.verdict, Pair.correlation, Pair.hist_similarity,
              Pair.transform, Pair.scale, Pair.detail_gain, Pair.detail_above)


def _pairs_query(verdicts):
    """Pairs of the group verdicts between present images, with what ``build_groups`` reads."""
    both_present = _A.c.missing_since.is_(None) & _B.c.missing_since.is_(None)
    return (select(*_EDGE_COLS).join(_A, _A.c.id == Pair.a_id).join(_B, _B.c.id == Pair.b_id)
            .where(Pair.verdict.in_(verdicts) & both_present))


_FA, _FB = ImageGroup.__table__.alias("fa"), ImageGroup.__table__.alias("fb")


def _filed_query():
    """:func:`_pairs_query` with the group each end is filed under (``a_group``, ``b_group``)."""
    return (_pairs_query(_VERDICTS).add_columns(_FA.c.group_id.label("a_group"), _FB.c.group_id.label("b_group"))
            .outerjoin(_FA, _FA.c.image_id == Pair.a_id).outerjoin(_FB, _FB.c.image_id == Pair.b_id))


_EDGES = union_all(_filed_query().where(Pair.a_id.in_(_IDS)), _filed_query().where(Pair.b_id.in_(_IDS)))


def _edges(conn: Connection, ids: list[int], verdicts: list[str]) -> list:
    """Group-verdict pairs of present images with an end in ``ids``, with the groups the
    ends are filed under (one statement, a UNION ALL of two selects so each uses its
    index: ``uq_pairs_a_id_b_id`` and ``ix_pairs_b_id``; a pair with both ends in ``ids``
    comes twice, callers key by (a, b))."""
    return list(conn.execute(_EDGES, {"ids": ids, "verdicts": verdicts}))


def _walk(conn: Connection, start: set[int], verdicts: list[str], seen: set[int], edges: dict,
          filed: dict[int, int | None]) -> set[int]:
    """Breadth first from ``start`` over the group-verdict pairs of present images, adding
    to ``seen``, ``edges`` ((a, b) -> pair row) and ``filed`` (image -> the group it is
    stored under, None: none); returns the images reached (``start`` included)."""
    frontier = set(start) - seen  # an image not present has no edges here: reached, not walked from
    reached = set(frontier)
    seen |= frontier
    while frontier:
        found = [e for chunk in chunks(frontier) for e in _edges(conn, chunk, verdicts)]
        edges.update(((e.a, e.b), e) for e in found)
        filed.update((x, g) for e in found for x, g in ((e.a, e.a_group), (e.b, e.b_group)))
        frontier = {x for e in found for x in (e.a, e.b)} - seen
        seen |= frontier
        reached |= frontier
    return reached


_KEEPER_FACTS = (select(Image.id, Image.width, Image.height, Image.format, Image.size, Image.sharpness,
                         Image.captured_at, Camera.make, Camera.model, Camera.serial, Image.path, Image.mtime_ns,
                         Image.colourfulness)
                  .outerjoin(Camera, Camera.id == Image.camera_id).where(Image.id.in_(_IDS)))
# the keeper facts with the decisions about each image in one statement (a row per
# decision, one with NULLs when none; decisions are few): one round trip per refresh
_KEEPER_FACTS_DECIDED = (_KEEPER_FACTS.add_columns(Decision.kind, Decision.image_id, Decision.other_id)
                         .outerjoin(Decision, (Decision.image_id == Image.id) | (Decision.other_id == Image.id)))


def keeper_infos(conn: Connection, ids: Iterable[int]) -> dict[int, KeeperInfo]:
    """What the keeper rule and the shot constraint of groups read, per image id
    (``width``/``height``: stored pixels); one statement per 500 ids (facts and decisions)."""
    facts: dict[int, tuple] = {}
    decided = []
    for chunk in chunks(ids):
        for r in conn.execute(_KEEPER_FACTS_DECIDED, {"ids": chunk}):
            facts[r[0]] = r[:13]
            if r[13] is not None:
                decided.append(r[13:])
    apart, kept = fold_decisions(decided)
    return {iid: KeeperInfo(*r[:7], camera=body_key(*r[7:10]), path=r[10], mtime_ns=r[11], colourfulness=r[12],
                            apart_from=frozenset(apart.get(iid, ())), keep=iid in kept)
            for iid, r in facts.items()}


def save_decision(engine: Engine, kind: str, image_id: int, other_id: int | None, rule: GroupRule) -> None:
    """:func:`record_decision` in a transaction of its own."""
    with engine.begin() as conn:
        record_decision(conn, kind, image_id, other_id, rule)


def save_apart(engine: Engine, ids: list[int], rule: GroupRule) -> int:
    """Record every two of ``ids`` as not duplicates and regroup once (one transaction);
    returns how many decisions were stored."""
    from db.store import utcnow

    now = utcnow()
    rows = [dict(kind="not_duplicates", image_id=a, other_id=b, created_at=now)
            for i, a in enumerate(ids) for b in ids[i + 1:]]
    with engine.begin() as conn:
        for start in range(0, len(rows), CHUNK):
            conn.execute(insert(Decision), rows[start:start + CHUNK])
        refresh_groups(conn, set(ids), rule)
    return len(rows)


def members_of(engine: Engine, group_id: int) -> list[int]:
    """The image ids of a stored group (``image_groups``), ascending."""
    with engine.connect() as conn:
        return sorted(conn.execute(select(ImageGroup.image_id).where(ImageGroup.group_id == group_id)).scalars())


def record_decision(conn: Connection, kind: str, image_id: int, other_id: int | None, rule: GroupRule) -> None:
    """Store a user's decision and regroup what it touches, in the caller's transaction.
    ``keep`` replaces earlier keep decisions of the same group."""
    from db.records import utcnow

    if kind == "keep":
        mates = old_members(conn, {image_id}) - {image_id}
        if mates:
            conn.execute(delete(Decision).where((Decision.kind == "keep") & Decision.image_id.in_(list(mates))))
    conn.execute(insert(Decision).values(kind=kind, image_id=image_id, other_id=other_id, created_at=utcnow()))
    refresh_groups(conn, {image_id} | ({other_id} if other_id is not None else set()), rule)


def _write(conn: Connection, groups: Iterable[tuple[int, Iterable[int]]]) -> None:
    rows = [dict(image_id=m, group_id=keeper, is_keeper=(m == keeper)) for keeper, members in groups
            for m in members]
    for start in range(0, len(rows), CHUNK):
        conn.execute(_INSERT_GROUPS, rows[start:start + CHUNK])


def _seed_facts(conn: Connection, seeds: set[int], verdicts: list[str],
                filed: dict[int, int | None]) -> tuple[set[int], set[int], set[int]]:
    """(``seeds`` and the members of their stored groups: :func:`old_members`, their
    group-verdict partners, present or not: a seed just marked missing is not walked from,
    but its former neighbours are, the groups whose every member is in the first set),
    one statement per 500 seeds; ``filed`` gets the partners' stored groups."""
    members, partners, loaded = set(seeds), set(), set()
    for chunk in chunks(seeds):
        for image_id, tag, group_id in conn.execute(_SEED_FACTS, {"ids": chunk, "verdicts": verdicts}):
            if int(tag):
                partners.add(image_id)
                filed[image_id] = group_id
            else:
                members.add(image_id)
                loaded.add(group_id)
    return members, partners, loaded


def refresh_groups(conn: Connection, image_ids: Iterable[int], rule: GroupRule) -> dict[int, int | None]:
    """Recompute the groups touching ``image_ids`` in the caller's transaction; returns
    the group id now stored for every image whose row it replaced (None: in no group;
    the rows of other images are untouched).

    ``image_ids``: every image whose pairs (an end of a pair inserted, deleted or whose
    verdict changed), presence or keeper facts changed, plus, for deleted rows, their
    :func:`old_members` taken before the delete. Their old groups' members and the
    components now reachable from them are regrouped; the rest is not read.
    """
    verdicts = sorted(set(rule.verdicts))
    seeds = set(image_ids)
    filed: dict[int, int | None] = {}  # image reached -> the group it is stored under
    affected, partners, loaded = _seed_facts(conn, seeds, verdicts, filed)  # affected: rows to replace
    reached: set[int] = set()
    edges: dict = {}
    todo = affected | partners
    while todo:  # an image reached that is still filed under another old group: regroup that too
        new = _walk(conn, todo, verdicts, reached, edges, filed)
        # the members of a group already read are in affected: only other groups are
        # read (the pairs read say where their ends are filed; reading the old members
        # of every image reached cost a statement per refresh, ~300 on the dense set)
        other = {x for x in new if filed.get(x) is not None and filed[x] not in loaded}
        loaded |= {filed[x] for x in other}
        more = (old_members(conn, other) if other else set()) - affected
        affected |= new | more
        todo = more - reached
    for chunk in chunks(affected):
        conn.execute(_DELETE_GROUPS, {"ids": chunk})
    pairs = [edges[k] for k in sorted(edges)]
    groups = build_groups(pairs, keeper_infos(conn, {x for k in edges for x in k}), verdicts=verdicts,
                          prefer_in=rule.prefer_in)
    _write(conn, ((g.keeper, g.members) for g in groups))
    now: dict[int, int | None] = dict.fromkeys(affected)
    now.update((m, g.keeper) for g in groups for m in g.members)
    return now


def clear_groups(conn: Connection) -> None:
    conn.execute(delete(ImageGroup))


def rebuild_groups(conn: Connection, rule: GroupRule) -> list[Group]:
    """Replace every stored group by a full recomputation (``rematch``, repair); returns them."""
    verdicts = sorted(set(rule.verdicts))
    pairs = list(conn.execute(_pairs_query(verdicts).order_by(Pair.a_id, Pair.b_id)))
    groups = build_groups(pairs, keeper_infos(conn, {p.a for p in pairs} | {p.b for p in pairs}),
                          verdicts=verdicts, prefer_in=rule.prefer_in)
    clear_groups(conn)
    _write(conn, ((g.keeper, g.members) for g in groups))
    conn.execute(delete(Meta).where(Meta.key == VERDICTS_KEY))
    conn.execute(insert(Meta).values(key=VERDICTS_KEY, value=rule.key()))
    return groups


def ensure_groups(engine: Engine, rule: GroupRule) -> bool:
    """Rebuild every group if ``image_groups`` was computed with other verdicts than
    ``verdicts`` (``[match] group_verdicts`` changed), or by a version that numbered groups
    1..n instead of by keeper (no record in ``photoqa_meta``): an incremental refresh must
    start from groups of the same rule. Returns whether it rebuilt. Writers call it once
    when they open the database."""
    with engine.begin() as conn:
        if conn.execute(select(Meta.value).where(Meta.key == VERDICTS_KEY)).scalar() == rule.key():
            return False
        rebuild_groups(conn, rule)
        return True
