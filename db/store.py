"""The one place that writes image rows: one transaction per file.

Every write goes through :class:`Store`. Readers (reports, ``sql``) use read-only
connections elsewhere.
"""
from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from sqlalchemy import Engine, Text, any_, bindparam, delete, func, insert, select, union_all, update
from sqlalchemy.exc import IntegrityError

from db.blobs import pack_hist, pack_thumb, unpack_hist, unpack_thumb  # noqa: F401 - re-exported
from db.groups import old_members, refresh_groups
from db.models import Camera, Failure, Image, Pair
from db.pgcopy import copy_rows
from db.records import FileState, utcnow  # noqa: F401 - NumPy-free home of both; re-exported for the writers
from indexer.match.groups import GroupRule
from indexer.measure import hashes, orient
from indexer.outcomes import Failed, Indexed, Task, Unchanged


def image_values(result: Indexed, camera_id: int | None) -> dict:
    """Column values of an ``images`` row for an analysed file."""
    d, f, cap = result.decoded, result.features, result.decoded.meta.capture
    swap = orient.swaps_axes(orient.from_exif(d.orientation))
    # strings cut to their column widths: PostgreSQL refuses longer ones (a RAW found by
    # its magic keeps its odd extension in the format name)
    return dict(
        path=result.task.path, size=result.task.size, mtime_ns=result.task.mtime_ns,
        missing_since=None, matched_at=None, sha256=d.sha256, pixel_sha256=d.pixel_sha256, format=d.format[:16],
        width=d.width, height=d.height,
        display_width=d.height if swap else d.width, display_height=d.width if swap else d.height,
        bit_depth=d.bit_depth, orientation=d.orientation, camera_id=camera_id,
        captured_at=cap.captured_at, utc_offset=cap.utc_offset, exposure_time=cap.exposure_time,
        f_number=cap.f_number, iso=cap.iso, focal_length=cap.focal_length,
        decoder=d.decoder[:32], features_version=_features_version(), indexed_at=utcnow(),
        phash=f.phash, dhash=f.dhash, phash_d4=hashes.pack(f.phash_d4),
        phash_crops=hashes.pack(f.phash_crops), hist=result.blobs[1] if result.blobs else pack_hist(f.hist),
        luma_mean=f.luma_mean, luma_std=f.luma_std, luma_p1=f.luma_p1, luma_p50=f.luma_p50,
        luma_p99=f.luma_p99, clip_high=f.clip_high, clip_low=f.clip_low, entropy=f.entropy,
        sharpness=f.sharpness, colourfulness=f.colourfulness, ev=f.ev,
        thumb=result.blobs[0] if result.blobs else pack_thumb(f.thumb), thumb_width=int(f.thumb.shape[1]), thumb_height=int(f.thumb.shape[0]),
    )


def pair_partners(conn, image_ids: Iterable[int]) -> set[int]:
    """The other ends of the pairs of ``image_ids``."""
    out: set[int] = set()
    for chunk in _chunks(sorted(set(image_ids))):
        out.update(conn.execute(_PAIR_PARTNERS, {"ids": chunk}).scalars())
    return out


_IDS = bindparam("ids", expanding=True)
_PAIR_PARTNERS = union_all(select(Pair.b_id).where(Pair.a_id.in_(_IDS)), select(Pair.a_id).where(Pair.b_id.in_(_IDS)))


def delete_pairs_of(conn, image_id: int) -> set[int]:
    """Delete the pairs of ``image_id`` (its bytes changed); returns their other ends,
    whose groups the caller refreshes."""
    partners = pair_partners(conn, [image_id])
    conn.execute(delete(Pair).where((Pair.a_id == image_id) | (Pair.b_id == image_id)))
    return partners


def _chunks(items: list, size: int = 500) -> Iterable[list]:
    for start in range(0, len(items), size):  # bound the IN list
        yield items[start:start + size]


def _features_version() -> int:
    from indexer.measure.features import FEATURES_VERSION

    return FEATURES_VERSION


# Statements built once, values passed as parameters: building ``insert().values(**row)``
# per file re-generated a cache key over ~45 values each time (~2 ms of a ~30 ms file, measured 2026-11-24).
_IMAGES = Image.__table__
# images.revision: one more than the table's highest, set by every write that changes what
# matching sees of a row (see migration 0004); O(log n) through its index
_NEXT_REVISION = select(func.coalesce(func.max(_IMAGES.c.revision), 0) + 1).scalar_subquery()
_INSERT_IMAGE = insert(_IMAGES).values(revision=_NEXT_REVISION).returning(_IMAGES.c.id)
# many rows, revisions given, no RETURNING: with RETURNING in parameter order, SQLAlchemy
# sends SQLite one INSERT per row (its RETURNING order is not guaranteed); without it, one
# executemany, and the ids are read back by path
_INSERT_IMAGES = insert(_IMAGES)
_UPDATE_IMAGE = update(_IMAGES).where(_IMAGES.c.id == bindparam("image_id_")).values(revision=_NEXT_REVISION)
_IMAGE_BY_PATH = select(_IMAGES.c.id, _IMAGES.c.sha256).where(_IMAGES.c.path == bindparam("p"))
_DELETE_FAILURE = delete(Failure.__table__).where(Failure.__table__.c.path == bindparam("p"))


# statements over a list of paths: on PostgreSQL one statement with an array parameter
# (``= ANY(:paths)``: the same SQL every batch, so it is prepared once; an IN list rendered
# per batch was 0.09 s of CPU in 1,800 rows, cProfile 2026-12-07), elsewhere IN lists of 500
@cache
def _paths_array():
    # the PostgreSQL dialect is imported on PostgreSQL only: ~0.03 s CPU of every
    # `photoqa index` into a SQLite file (python -X importtime, 2026-12-07)
    from sqlalchemy.dialects import postgresql

    return bindparam("paths", type_=postgresql.ARRAY(Text))


# (what to run given its WHERE, the path column it filters)
_EXISTING = (lambda where: select(_IMAGES.c.path, _IMAGES.c.id, _IMAGES.c.sha256).where(where), _IMAGES.c.path)
_IDS_OF = (lambda where: select(_IMAGES.c.path, _IMAGES.c.id).where(where), _IMAGES.c.path)
_DELETE_FAILURES = (lambda where: delete(Failure.__table__).where(where), Failure.__table__.c.path)


def _by_paths(conn, statement: tuple, paths: list[str]) -> list:
    """Run ``statement`` (see ``_EXISTING``) over ``paths``; the rows of a SELECT, [] else."""
    build, column = statement
    if conn.dialect.name == "postgresql":
        result = conn.execute(build(column == any_(_paths_array())), {"paths": paths})
        return list(result) if result.returns_rows else []
    out: list = []
    for chunk in _chunks(paths):
        result = conn.execute(build(column.in_(chunk)))
        if result.returns_rows:
            out.extend(result)
    return out


_DEFAULT_RULE = GroupRule()


class Store:
    """Writes for one database. Not thread-safe: one writer owns it.

    Every write that changes what ``image_groups`` says (an image's presence, its pairs,
    what the keeper rule reads) refreshes the groups it touches in its own transaction
    (:func:`db.groups.refresh_groups`); ``group_rule``: ``[match] group_verdicts`` and ``[dupes] prefer_in``.
    """

    #: :meth:`save_batch` inserts new rows into PostgreSQL with COPY; False: with an
    #: executemany as on SQLite (bench/writer_throughput.py measures both in one run)
    copy_on_postgresql = True

    def __init__(self, engine: Engine, *, group_rule: GroupRule = _DEFAULT_RULE):
        self.engine = engine
        self.group_rule = group_rule
        self._cameras: dict[tuple[str, str, str], int] = {}

    def known_files(self) -> dict[str, FileState]:
        cols = (Image.path, Image.id, Image.size, Image.mtime_ns, Image.sha256,
                Image.features_version, Image.missing_since)
        with self.engine.connect() as conn:
            # frames of array stacks are not files: db.frames keeps their bookkeeping
            return {r[0]: FileState(r[1], r[2], r[3], r[4], r[5], r[6] is not None)
                    for r in conn.execute(select(*cols).where(Image.container.is_(None)))}

    def known_failures(self) -> dict[str, tuple[int | None, int | None]]:
        with self.engine.connect() as conn:
            return {r[0]: (r[1], r[2]) for r in conn.execute(select(Failure.path, Failure.size, Failure.mtime_ns))}

    def _camera_id(self, conn, camera) -> int | None:
        if camera is None:
            return None
        key = (camera.make[:128], camera.model[:128], camera.serial[:64])
        if key not in self._cameras:
            found = self._find_camera(conn, key)
            self._cameras[key] = found if found is not None else self._insert_camera(conn, key)
        return self._cameras[key]

    @staticmethod
    def _find_camera(conn, key: tuple[str, str, str]) -> int | None:
        where = (Camera.make == key[0]) & (Camera.model == key[1]) & (Camera.serial == key[2])
        return conn.execute(select(Camera.id).where(where)).scalar()

    def _insert_camera(self, conn, key: tuple[str, str, str]) -> int:
        """Insert a body; if another writer (a second daemon) inserted it meanwhile, use its row."""
        stmt = insert(Camera).values(make=key[0], model=key[1], serial=key[2]).returning(Camera.id)
        try:
            if conn.dialect.name == "sqlite":  # a failed statement leaves the transaction usable
                return conn.execute(stmt).scalar_one()
            with conn.begin_nested():  # PostgreSQL would abort the whole transaction
                return conn.execute(stmt).scalar_one()
        except IntegrityError:
            return self._find_camera(conn, key)

    def save_indexed(self, result: Indexed) -> int:
        """Insert or replace the row for ``result.task.path``; returns the image id.

        A replaced row whose bytes changed loses its pairs (they are found again); its
        groups are refreshed (presence, pairs and the keeper's facts may have changed)."""
        try:
            with self.engine.begin() as conn:
                values = image_values(result, self._camera_id(conn, result.decoded.meta.camera))
                existing = conn.execute(_IMAGE_BY_PATH, {"p": values["path"]}).first()
                if existing is None:
                    image_id = conn.execute(_INSERT_IMAGE, values).scalar_one()
                else:
                    image_id = self._replace(conn, values, *existing)
                conn.execute(_DELETE_FAILURE, {"p": values["path"]})
        except Exception:
            self._cameras.clear()  # a rolled-back camera insert must not stay cached
            raise
        return image_id

    def save_batch(self, results: list[Indexed]) -> list[int]:
        """Store many analysed files in one transaction; returns their image ids, in order.

        What :meth:`save_indexed` does for each, with the new rows inserted at once
        (PostgreSQL: one binary COPY, :func:`db.pgcopy.copy_rows`; SQLite: one executemany;
        revisions stamped in order, as one at a time would; ids read back by path), one
        look-up of existing paths and one failure-row delete (PostgreSQL: one statement with
        an array of paths; SQLite: per 500 paths); replaced rows go through the path of
        :meth:`save_indexed` in the same transaction, and their groups are refreshed once.
        All or nothing: any error rolls the whole batch back and is raised (the caller
        stores the files one by one, so one bad row fails one file).
        Rows/s into PostgreSQL in batches of 200, one run at load 9: 2,282 with COPY, 1,466
        with executemany, 302 one at a time (bench/writer_throughput.py --rows 6000,
        2026-12-07; docs/BENCHMARKS.md).
        """
        if not results:
            return []
        try:
            with self.engine.begin() as conn:
                values = [image_values(r, self._camera_id(conn, r.decoded.meta.camera)) for r in results]
                paths = [v["path"] for v in values]
                if len(set(paths)) != len(paths):
                    raise ValueError("a path twice in one batch")  # the caller stores them in order
                existing = {r[0]: (r[1], r[2]) for r in _by_paths(conn, _EXISTING, paths)}
                new = [v for v in values if v["path"] not in existing]
                ids: dict[str, int] = {}
                if new:
                    first = conn.execute(select(func.coalesce(func.max(_IMAGES.c.revision), 0))).scalar_one()
                    stamped = [{**v, "revision": first + 1 + i} for i, v in enumerate(new)]
                    if self.copy_on_postgresql and conn.dialect.name == "postgresql":
                        copy_rows(conn, _IMAGES, stamped)
                    else:
                        conn.execute(_INSERT_IMAGES, stamped)
                    ids.update((r[0], r[1]) for r in _by_paths(conn, _IDS_OF, [v["path"] for v in new]))
                partners: set[int] = set()
                for v in values:
                    if v["path"] in existing:
                        ids[v["path"]] = self._replace(conn, v, *existing[v["path"]], refresh=partners)
                _by_paths(conn, _DELETE_FAILURES, paths)
                if partners:
                    refresh_groups(conn, partners, self.group_rule)
        except Exception:
            self._cameras.clear()
            raise
        return [ids[p] for p in paths]

    def _replace(self, conn, values: dict, image_id: int, old_sha: str, *, refresh: set[int] | None = None) -> int:
        """Overwrite row ``image_id`` with ``values``; its groups are refreshed now, or
        their seeds added to ``refresh`` for the caller to refresh once."""
        conn.execute(_UPDATE_IMAGE, {**values, "image_id_": image_id})
        partners = {image_id}
        if old_sha != values["sha256"]:
            partners |= delete_pairs_of(conn, image_id)
        if refresh is None:
            refresh_groups(conn, partners, self.group_rule)
        else:
            refresh |= partners
        return image_id

    def save_failure(self, result: Failed) -> None:
        task = result.task
        with self.engine.begin() as conn:
            prior = conn.execute(select(Failure.id, Failure.attempts).where(Failure.path == task.path)).first()
            values = dict(path=task.path, kind=result.kind, message=result.message[:2000],
                          size=task.size, mtime_ns=task.mtime_ns, failed_at=utcnow())
            if prior is None:
                conn.execute(insert(Failure).values(attempts=1, **values))
            else:
                conn.execute(update(Failure).where(Failure.id == prior.id)
                             .values(attempts=prior.attempts + 1, **values))

    def save_moved(self, image_id: int, task: Task) -> None:
        """The row ``image_id`` now lives at ``task.path`` (same bytes, no re-decode)."""
        with self.engine.begin() as conn:
            replaced = set(conn.execute(select(Image.id).where((Image.path == task.path) & (Image.id != image_id)))
                           .scalars())
            affected = old_members(conn, replaced) | pair_partners(conn, replaced) | {image_id}
            conn.execute(delete(Image).where((Image.path == task.path) & (Image.id != image_id)))
            conn.execute(update(Image).where(Image.id == image_id).values(
                path=task.path, size=task.size, mtime_ns=task.mtime_ns, missing_since=None,
                revision=_NEXT_REVISION))
            conn.execute(delete(Failure).where(Failure.path == task.path))
            refresh_groups(conn, affected - replaced, self.group_rule)

    def save_unchanged(self, result: Unchanged) -> None:
        """``result.task.path`` holds the bytes of its row still: record its new size/time
        (nothing matching reads changes, so no new revision). The keeper rule reads the
        modification time (earliest wins a tie), so its group is refreshed: three byte
        copies, one rewritten with the same bytes, kept a stale keeper (found by the
        Hypothesis state machine of tests/test_groups_current.py)."""
        task = result.task
        with self.engine.begin() as conn:
            ids = list(conn.execute(select(Image.id).where((Image.path == task.path)
                                                           & (Image.sha256 == result.sha256))).scalars())
            conn.execute(update(Image).where((Image.path == task.path) & (Image.sha256 == result.sha256))
                         .values(size=task.size, mtime_ns=task.mtime_ns))
            conn.execute(delete(Failure).where(Failure.path == task.path))
            if ids:
                refresh_groups(conn, ids, self.group_rule)

    def mark_missing(self, image_ids: list[int]) -> None:
        if not image_ids:
            return
        with self.engine.begin() as conn:
            conn.execute(update(Image).where(Image.id.in_(image_ids) & Image.missing_since.is_(None))
                         .values(missing_since=utcnow(), revision=_NEXT_REVISION))
            refresh_groups(conn, image_ids, self.group_rule)

    def forget_failure(self, path: str) -> None:
        self.forget_failures([path])

    def forget_failures(self, paths: list[str]) -> None:
        """Drop the failure rows of ``paths`` (files deleted since they failed)."""
        with self.engine.begin() as conn:
            for start in range(0, len(paths), 500):  # bound the IN list
                conn.execute(delete(Failure).where(Failure.path.in_(paths[start:start + 500])))
