"""Pairs and groups in SQL: loading what the matcher needs, storing what it found.

Every write here that changes pairs refreshes the groups they touch in the same
transaction (:mod:`db.groups`); ``group_rule`` is ``[match] group_verdicts`` and ``[dupes] prefer_in``."""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from typing import TYPE_CHECKING

from sqlalchemy import Engine, bindparam, delete, literal_column, null, select, union_all, update

from db import groups as dbgroups
from db.models import Camera, Image, ImageGroup, Pair
from db.records import utcnow
from indexer.match.groups import GroupRule, KeeperInfo
from indexer.match.shots import body_key

if TYPE_CHECKING:  # the engine pulls in numba and scipy; reports read pairs without it
    from indexer.match.engine import PairEvidence
    from indexer.match.records import MatchRecord

MATCH_VERSION = 2  # 2: shot identity (same_camera, same_shot), raw_jpeg, exposure edits derived
_RECORD_COLS = (Image.id, Image.sha256, Image.phash, Image.phash_d4, Image.phash_crops, Image.thumb,
                Image.thumb_width, Image.thumb_height, Image.hist, Image.display_width,
                Image.display_height, Image.entropy, Image.luma_std, Image.dhash, Image.captured_at,
                Image.format, Camera.make, Camera.model, Camera.serial, Image.orientation)


def __getattr__(name: str):
    # load_index_rows is re-exported (callers read rows here) on first use (PEP 562): it and
    # the record code below import NumPy and the hash code (~0.15 s CPU), which `photoqa
    # dupes` reading pairs and groups never needs
    if name == "load_index_rows":
        from db.indexrows import load_index_rows

        return load_index_rows
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def to_record(row) -> MatchRecord:
    from db.store import unpack_hist, unpack_thumb
    from indexer.match.records import MatchRecord
    from indexer.measure import hashes

    (iid, sha, phash, d4, crops, thumb, tw, th, hist, w, h, entropy, luma_std, dhash, captured, fmt,
     make, model, serial, orientation) = row
    return MatchRecord(id=iid, sha256=sha, phash=int(phash), phash_d4=hashes.unpack(d4),
                       phash_crops=hashes.unpack(crops), thumb=unpack_thumb(thumb, tw, th),
                       hist=unpack_hist(hist), width=w, height=h, entropy=entropy, luma_std=luma_std,
                       dhash=int(dhash), captured_at=captured, format=fmt, camera=body_key(make, model, serial),
                       orientation=orientation)


def load_records(engine: Engine, ids: Iterable[int] | None = None) -> list[MatchRecord]:
    """Match records of present images (all, or the given ids), with their camera body."""
    query = (select(*_RECORD_COLS).outerjoin(Camera, Camera.id == Image.camera_id)
             .where(Image.missing_since.is_(None)).order_by(Image.id))
    if ids is not None:
        query = query.where(Image.id.in_(list(ids)))
    with engine.connect() as conn:
        return [to_record(row) for row in conn.execute(query)]


def loader(engine: Engine):
    """``ids -> records`` for :class:`~indexer.match.records.RecordCache`."""
    return lambda ids: load_records(engine, ids)


def exif_exposure(engine: Engine, ids: Iterable[int]) -> dict[int, tuple]:
    """id -> (exposure_time, iso, f_number) for the given images."""
    with engine.connect() as conn:
        return _exif_exposure(conn, ids)


# statements of the writer's per-image path built once, lists passed as expanding
# parameters (db.groups says why)
_IDS = bindparam("ids", expanding=True)
_EXIF = select(Image.id, Image.exposure_time, Image.iso, Image.f_number).where(Image.id.in_(_IDS))
_MARK_MATCHED = update(Image).where(Image.id.in_(_IDS)).values(matched_at=bindparam("at"))
_GROUP_IDS = select(ImageGroup.image_id, ImageGroup.group_id).where(ImageGroup.image_id.in_(_IDS))
_VERDICTS = bindparam("verdicts", expanding=True)


def _exif_exposure(conn, ids: Iterable[int]) -> dict[int, tuple]:
    out = {}
    for chunk in dbgroups.chunks(ids):
        out.update((r[0], (r[1], r[2], r[3])) for r in conn.execute(_EXIF, {"ids": chunk}))
    return out


def predicted_delta_ev(a: tuple, b: tuple) -> float | None:
    """log2 of B's exposure over A's from EXIF (time x ISO / N^2), None when incomplete."""
    if any(v is None or v <= 0 for v in (*a, *b)):
        return None
    (ta, isoa, na), (tb, isob, nb) = a, b
    return math.log2((tb * isob / nb**2) / (ta * isoa / na**2))


MEASURES = ("peak", "overlap_a", "overlap_b", "corr_grey", "corr_tile", "corr_smooth", "tile_smooth", "changed",
            "edit_area", "edit_sign", "outside_corr")  # Evidence fields stored as pairs columns


def _values(pe: PairEvidence, exif: dict[int, tuple]) -> dict:
    dev_exif = predicted_delta_ev(exif.get(pe.a, (None,) * 3), exif.get(pe.b, (None,) * 3))
    ev = pe.evidence
    measures = {m: None if ev is None else round(float(getattr(ev, m)), 4) for m in MEASURES}
    return dict(**measures,a_id=pe.a, b_id=pe.b, verdict=pe.verdict, hamming=pe.hamming, transform=pe.transform,
                shift_x=pe.shift[0], shift_y=pe.shift[1], scale=pe.scale, correlation=pe.correlation,
                hist_similarity=pe.hist_sim, delta_ev=pe.delta_ev, delta_ev_exif=dev_exif,
                time_gap_s=pe.time_gap_s, description=pe.description, same_camera=pe.same_camera,
                same_shot=pe.same_shot, match_version=MATCH_VERSION,
                detail_gain=pe.detail_gain, detail_above=pe.detail_above,
                found_at=utcnow())


_INSERTS: dict[str, object] = {}  # dialect name -> the statement of _insert_new


def _insert_new(conn, rows: list[dict]) -> set[tuple[int, int]]:
    """Insert the rows whose (a_id, b_id) is not stored yet, in one executemany (INSERT ..
    ON CONFLICT DO NOTHING RETURNING: a SELECT of the stored ones before, one statement
    less per store of pairs: ~300 in a 432-image run of the dense set; a pair another
    writer stored meanwhile is skipped, not an error); returns the keys inserted."""
    name = conn.dialect.name
    if name not in _INSERTS:
        if name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert
        _INSERTS[name] = (upsert(Pair).on_conflict_do_nothing(index_elements=[Pair.a_id, Pair.b_id])
                          .returning(Pair.a_id, Pair.b_id))
    return {(a, b) for a, b in conn.execute(_INSERTS[name], rows)}


def save_pairs(engine: Engine, pairs: list[PairEvidence], *, matched: Iterable[int] = (),
               group_rule: GroupRule, exif: Mapping[int, tuple] | None = None) -> dict[int, int | None]:
    """Insert or replace the given pairs, mark the images ``matched`` and refresh the groups
    of the pairs' images that a group verdict or a replaced pair touches (one transaction);
    returns the group ids the refresh stored (:func:`db.groups.refresh_groups`).

    ``exif``: id -> (exposure_time, iso, f_number) the caller knows (the values it
    stored for those images); only the others are read."""
    matched = list(matched)
    if not pairs and not matched:
        return {}
    with engine.begin() as conn:
        ends = {p.a for p in pairs} | {p.b for p in pairs}
        known = {x: exif[x] for x in ends if x in exif} if exif else {}
        exif = {**known, **_exif_exposure(conn, ends - known.keys())} if ends - known.keys() else known
        for chunk in dbgroups.chunks(matched):
            conn.execute(_MARK_MATCHED, {"ids": chunk, "at": utcnow()})
        # one executemany for the new pairs: a statement per pair, each compiled anew for
        # its values, cost ~7 ms a pair in SQLAlchemy (12 s of a 432-image run, 2026-12-07)
        rows = [_values(pe, exif) for pe in pairs]
        inserted = _insert_new(conn, rows) if rows else set()
        stored = {(r["a_id"], r["b_id"]) for r in rows} - inserted  # replaced: stored before
        for r in rows:
            if (r["a_id"], r["b_id"]) in stored:
                conn.execute(update(Pair).where((Pair.a_id == r["a_id"]) & (Pair.b_id == r["b_id"])).values(**r))
        # Only a pair of a group verdict can change a group, or a stored pair whose
        # verdict is replaced; a related pair (a bracket frame, a burst neighbour) cannot.
        seeds = {x for pe in pairs if pe.verdict in group_rule.verdicts or (pe.a, pe.b) in stored
                 for x in (pe.a, pe.b)}
        return dbgroups.refresh_groups(conn, seeds, group_rule) if seeds else {}


def set_delta_ev(engine: Engine, values: dict[tuple[int, int], tuple[float, str | None]]) -> None:
    """Store refined measured delta EVs (and the description, when not None), keyed by
    (a_id, b_id) of stored pairs; one transaction."""
    if not values:
        return
    with engine.begin() as conn:
        for (a, b), (value, description) in values.items():
            change = {"delta_ev": value} if description is None else {"delta_ev": value, "description": description}
            conn.execute(update(Pair).where((Pair.a_id == a) & (Pair.b_id == b)).values(**change))


def unmatched_ids(engine: Engine) -> list[int]:
    """Present images whose pairs were never stored (the matching stage stopped first)."""
    query = select(Image.id).where(Image.matched_at.is_(None) & Image.missing_since.is_(None))
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(Image.id)).scalars())


def forget_pairs_of(engine: Engine, image_id: int, *, group_rule: GroupRule) -> dict[int, int | None]:
    """Drop the pairs of an image about to be matched again (they are found again) and
    refresh the groups they joined; returns the group ids the refresh stored."""
    from db.store import delete_pairs_of, pair_partners

    with engine.connect() as conn:
        # most images come here new, without pairs: one read instead of a write
        # transaction (a DELETE of nothing and a commit) for each
        if not pair_partners(conn, [image_id]):
            return {}
    with engine.begin() as conn:
        partners = delete_pairs_of(conn, image_id)
        return dbgroups.refresh_groups(conn, partners | {image_id}, group_rule) if partners else {}


def clear_pairs(engine: Engine) -> None:
    """Drop every pair, and so every group."""
    with engine.begin() as conn:
        conn.execute(delete(Pair))
        dbgroups.clear_groups(conn)


def all_pairs(engine: Engine, among: Iterable[int] | None = None) -> list:
    """Every stored pair of present images, as row objects with ``a``, ``b``, ``verdict``...;
    ``among``: only pairs whose two images are both in it (a page of groups)."""
    a, b = Image.__table__.alias("a"), Image.__table__.alias("b")
    query = (select(Pair.a_id.label("a"), Pair.b_id.label("b"), Pair.verdict, Pair.hamming, Pair.transform,
                    Pair.shift_x, Pair.shift_y, Pair.scale, Pair.correlation, Pair.hist_similarity,
                    Pair.delta_ev, Pair.delta_ev_exif, Pair.time_gap_s, Pair.description, Pair.same_camera,
                    Pair.same_shot, Pair.detail_gain, Pair.detail_above)
             .join(a, a.c.id == Pair.a_id).join(b, b.c.id == Pair.b_id)
             .where(a.c.missing_since.is_(None) & b.c.missing_since.is_(None))
             .order_by(Pair.a_id, Pair.b_id))
    with engine.connect() as conn:
        if among is None:
            return list(conn.execute(query))
        wanted = set(among)
        rows = [r for chunk in dbgroups.chunks(wanted) for r in conn.execute(query.where(Pair.a_id.in_(chunk)))
                if r.b in wanted]
        return sorted(rows, key=lambda r: (r.a, r.b))


def keeper_infos(engine: Engine, ids: Iterable[int]) -> dict[int, KeeperInfo]:
    with engine.connect() as conn:
        return dbgroups.keeper_infos(conn, ids)


def paths(engine: Engine, ids: Iterable[int]) -> dict[int, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(Image.id, Image.path).where(Image.id.in_(list(ids)))).all())


def rebuild_groups(engine: Engine, *, group_rule: GroupRule) -> int:
    """Recompute every stored group from the pairs (one transaction); returns how many."""
    with engine.begin() as conn:
        return len(dbgroups.rebuild_groups(conn, group_rule))


def group_ids(engine: Engine, ids: Iterable[int], known: dict[int, int | None] | None = None) -> dict[int, int]:
    """image id -> its group's id (``image_groups``), for those of ``ids`` in a group.

    ``known``: group ids (None: in no group) the caller knows are current, e.g. what
    :func:`save_pairs` returned in the same step: only the others are read."""
    out: dict[int, int] = {}
    if known:
        ids = set(ids)
        out.update((x, known[x]) for x in ids & known.keys() if known[x] is not None)
        ids -= known.keys()
        if not ids:
            return out
    with engine.connect() as conn:
        for chunk in dbgroups.chunks(ids):
            out.update((r[0], r[1]) for r in conn.execute(_GROUP_IDS, {"ids": chunk}))
    return out


@dataclass
class PlanFacts:
    """What the matching stage reads to plan an image's verification (:func:`plan_facts`)."""

    groups: dict[int, int]  # image id -> its group's id, for those in a group
    links: dict[int, list[tuple]]  # image id -> (partner, delta_ev, correlation, same_shot, partner's group or None)
    paired: bool = False  # the image asked about (``forget``) has stored pairs


_LINKED = bindparam("linked", expanding=True)
_SELF = bindparam("self", expanding=True)
_LG = ImageGroup.__table__.alias("lg")  # the group of a link's other end
# the verdict compared as an expression (verdict || ''), not the column: SQLite, without
# statistics, otherwise walks ix_pairs_verdict, every related pair of the archive, instead
# of the pairs of the few ids (uq_pairs_a_id_b_id, ix_pairs_b_id)
_LINK_VERDICT = (Pair.verdict + "").in_(_VERDICTS)
# one round trip for a plan: the parts it needs (links, groups, pairs of the image to
# forget), links first (their columns type the NULLs of the others on PostgreSQL); a
# statement per combination, built once (an empty IN list still costs its branch: the
# statement with all five took 0.34 ms a call in the writer, 2026-12-08)
_PLAN_PARTS = {
    "linked": (
        select(literal_column("1").label("tag"), Pair.a_id, Pair.b_id, Pair.delta_ev, Pair.correlation,
               Pair.same_shot, _LG.c.group_id).outerjoin(_LG, _LG.c.image_id == Pair.b_id)
        .where(Pair.a_id.in_(_LINKED) & _LINK_VERDICT),
        select(literal_column("1"), Pair.b_id, Pair.a_id, Pair.delta_ev, Pair.correlation, Pair.same_shot,
               _LG.c.group_id).outerjoin(_LG, _LG.c.image_id == Pair.a_id)
        .where(Pair.b_id.in_(_LINKED) & _LINK_VERDICT)),
    "ids": (select(literal_column("0").label("tag"), ImageGroup.image_id, ImageGroup.group_id, null(), null(),
                   null(), null()).where(ImageGroup.image_id.in_(_IDS)),),
    "self": (select(literal_column("2").label("tag"), Pair.a_id, Pair.b_id, null(), null(), null(), null())
             .where(Pair.a_id.in_(_SELF)),
             select(literal_column("2"), Pair.a_id, Pair.b_id, null(), null(), null(), null())
             .where(Pair.b_id.in_(_SELF)))}
_PLAN_FACTS: dict[tuple[str, ...], object] = {}


def _plan_statement(parts: tuple[str, ...]):
    if parts not in _PLAN_FACTS:
        selects = [q for part in parts for q in _PLAN_PARTS[part]]
        _PLAN_FACTS[parts] = selects[0] if len(selects) == 1 else union_all(*selects)
    return _PLAN_FACTS[parts]


def plan_facts(engine: Engine, ids: Iterable[int], *, linked: Iterable[int] = (), verdicts: Iterable[str] = (),
               forget: int | None = None, known: Mapping[int, int | None] | None = None) -> PlanFacts:
    """In one statement (up to 500 ids): the groups of ``ids``, the stored pairs of
    ``verdicts`` of the ``linked`` images with the group of each pair's other end (the
    matching stage's implied relations: :func:`indexer.match.fanout.implied`), and
    whether image ``forget`` has stored pairs (to be forgotten before it is matched).

    ``known``: group ids (None: in no group) the caller knows are current (what
    :func:`save_pairs` returned in the same step): those ids are not read. One statement
    for what took up to four (the image's pairs, its candidates' groups, their links,
    the links' groups): ~1,500 statements for the 432 images of the dense set."""
    ids, linked, verdicts = set(ids), set(linked), list(verdicts)
    groups: dict[int, int] = {}
    if known:
        groups.update((x, known[x]) for x in ids & known.keys() if known[x] is not None)
        ids -= known.keys()
    if not verdicts:
        linked = set()
    facts = PlanFacts(groups, {})
    if not ids and not linked and forget is None:
        return facts
    if len(ids) + len(linked) > dbgroups.CHUNK:  # many candidates (rare): a statement per chunk of each
        facts.groups.update(group_ids(engine, ids))
        for chunk in dbgroups.chunks(linked):
            facts.links.update(plan_facts(engine, (), linked=chunk, verdicts=verdicts).links)
        facts.paired = forget is not None and plan_facts(engine, (), forget=forget).paired
        return facts
    params = {"ids": sorted(ids), "linked": sorted(linked), "verdicts": verdicts,
              "self": [] if forget is None else [forget]}
    parts = tuple(part for part in _PLAN_PARTS if params[part])
    by: dict[int, dict[int, tuple]] = {}
    with engine.connect() as conn:
        for tag, x, y, dev, corr, shot, g in conn.execute(_plan_statement(parts), params):
            tag = int(tag)
            if tag == 0:
                facts.groups[x] = y
            elif tag == 1:
                by.setdefault(x, {})[y] = (y, dev, corr, shot, g)
            else:
                facts.paired = True
    facts.links = {x: list(ys.values()) for x, ys in by.items()}
    return facts


def set_pixel_digest(engine: Engine, image_id: int, digest: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(Image).where(Image.id == image_id).values(pixel_sha256=digest))


def pixel_digest_of(engine: Engine, image_id: int) -> tuple[str, str | None]:
    """(path, stored pixel digest or None)."""
    with engine.connect() as conn:
        row = conn.execute(select(Image.path, Image.pixel_sha256).where(Image.id == image_id)).one()
    return row[0], row[1]
