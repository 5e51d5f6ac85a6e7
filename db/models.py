"""The tables a user queries, as SQLAlchemy Core tables declared as classes.

Conventions: hashes are signed 64-bit integers (``hamming(a, b)`` counts differing bits
in SQL); small arrays are little-endian BLOBs whose layout is given per column; times
are naive local camera time for capture, UTC for bookkeeping. Constraint names follow
:data:`NAMING` so Alembic batch migrations on SQLite can find them.

No ORM: nothing in photoqa loads rows into objects (every read and write is a Core
statement), and ``sqlalchemy.orm`` plus declarative mapping of these 14 classes cost
~0.15 s CPU of the ~0.45 s that SQLAlchemy and the models took to import for every
``photoqa index`` (python -X importtime, 2026-12-07). A class here is a namespace:
``Image.path`` is the ``images.path`` :class:`~sqlalchemy.Column`, ``Image.__table__``
the :class:`~sqlalchemy.Table`, and ``select(Image)`` / ``update(Image)`` take the
table (``__clause_element__``). Columns are NOT NULL unless declared ``null=True``
(the rule the declarative ``Mapped[T]`` / ``Mapped[T | None]`` annotations gave).
"""
from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, Float, ForeignKey, Integer, LargeBinary,
                        MetaData, SmallInteger, String, Table, Text, UniqueConstraint)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def column(*args: Any, null: bool = False, **kw: Any) -> Column:
    """A column of the class it is assigned in, named after its attribute; NOT NULL
    unless ``null`` (primary keys never are)."""
    return Column(*args, nullable=null, **kw)


class Base:
    """The tables' base: a subclass with ``__tablename__`` and :func:`column` attributes
    becomes a :class:`~sqlalchemy.Table` of :attr:`metadata`, columns in declaration
    order, then ``__table_args__`` (constraints)."""

    metadata: ClassVar[MetaData] = MetaData(naming_convention=NAMING)
    __tablename__: ClassVar[str]
    __table__: ClassVar[Table]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        columns = []
        for key, value in vars(cls).items():
            if isinstance(value, Column):
                value.name = value.key = key
                columns.append(value)
        cls.__table__ = Table(cls.__tablename__, cls.metadata, *columns, *getattr(cls, "__table_args__", ()))

    @classmethod
    def __clause_element__(cls) -> Table:
        return cls.__table__


class Camera(Base):
    """A camera body. ``serial`` is '' when the files do not record one."""

    __tablename__ = "cameras"
    __table_args__ = (UniqueConstraint("make", "model", "serial", name="uq_cameras_make_model_serial"),)

    id = column(Integer, primary_key=True)
    make = column(String(128))
    model = column(String(128))
    serial = column(String(64), default="")


class Image(Base):
    """One row per file path. ``missing_since`` is set when the file left the disk."""

    __tablename__ = "images"

    id = column(Integer, primary_key=True)
    path = column(Text, unique=True)
    size = column(BigInteger)
    mtime_ns = column(BigInteger)
    missing_since = column(DateTime, index=True, null=True)
    sha256 = column(String(64), index=True)
    pixel_sha256 = column(String(64), null=True)
    format = column(String(16))
    width = column(Integer)  # stored (un-rotated) pixels; RAW: visible sensor
    height = column(Integer)
    display_width = column(Integer)  # after EXIF orientation
    display_height = column(Integer)
    bit_depth = column(SmallInteger)
    orientation = column(SmallInteger, default=1)
    camera_id = column(ForeignKey("cameras.id"), index=True, null=True)
    captured_at = column(DateTime, index=True, null=True)
    utc_offset = column(String(8), null=True)
    exposure_time = column(Float, null=True)  # seconds
    f_number = column(Float, null=True)
    iso = column(Integer, null=True)
    focal_length = column(Float, null=True)  # mm
    decoder = column(String(32))
    features_version = column(SmallInteger)
    indexed_at = column(DateTime)
    # when its candidate pairs were verified and stored; NULL: waiting for matching
    matched_at = column(DateTime, null=True)
    # change number: one more than the table's highest by every write that changes what
    # matching sees of the row (stored, re-indexed, moved back, marked missing); a saved
    # matching index catches up on the rows changed since it was saved
    revision = column(BigInteger, index=True, null=True)
    # perceptual hashes (signed int64); BLOBs: 8 x int64 LE (D4 order), 10 x int64 LE (crops in
    # hashes.CROP_SPECS order: centred 90%, 80%, then 85% at 4 corners and 4 edge midpoints;
    # features_version 1 stored the first 2)
    phash = column(BigInteger, index=True)
    dhash = column(BigInteger)
    phash_d4 = column(LargeBinary)
    phash_crops = column(LargeBinary)
    # zlib of uint32 LE (4, 256): R, G, B, luma counts
    hist = column(LargeBinary)
    luma_mean = column(Float)
    luma_std = column(Float)
    luma_p1 = column(Float)
    luma_p50 = column(Float)
    luma_p99 = column(Float)
    clip_high = column(Float)
    clip_low = column(Float)
    entropy = column(Float)
    sharpness = column(Float)
    colourfulness = column(Float)
    ev = column(Float)
    # zlib of uint8 grey (thumb_height, thumb_width)
    thumb = column(LargeBinary)
    thumb_width = column(SmallInteger)
    thumb_height = column(SmallInteger)
    # frames of array stacks (.npy/.npz, indexer.decode.arrays): path is "<file>#<frame>"
    # or "<file>#<key>:<frame>"; container the file, array_key the .npz member ('' for
    # .npy), frame the index along the first axis. NULL for image files.
    container = column(Text, index=True, null=True)
    array_key = column(String(64), null=True)
    frame = column(Integer, null=True)


class Meta(Base):
    """Facts about the database itself: ``instance`` is a random id made when the table
    was (a saved matching index belongs to one database, whatever its path)."""

    __tablename__ = "photoqa_meta"

    key = column(String(64), primary_key=True)
    value = column(Text)


class Failure(Base):
    """A file that could not be indexed, with why. Retried when its size or mtime changes."""

    __tablename__ = "failures"

    id = column(Integer, primary_key=True)
    path = column(Text, unique=True)
    kind = column(String(16), index=True)
    message = column(Text)
    size = column(BigInteger, null=True)
    mtime_ns = column(BigInteger, null=True)
    failed_at = column(DateTime)
    attempts = column(Integer, default=1)


class Daemon(Base):
    """Heartbeat of a running ``photoqa watch`` (one row per process)."""

    __tablename__ = "daemons"

    id = column(Integer, primary_key=True)
    host = column(String(255))
    pid = column(Integer)
    roots = column(Text)
    started_at = column(DateTime)
    heartbeat_at = column(DateTime)
    stopped_at = column(DateTime, null=True)
    pending = column(Integer, default=0)
    last_activity_at = column(DateTime, null=True)
    is_active = column(Boolean, default=True)


class Pair(Base):
    """An accepted near-duplicate pair with its evidence (``a_id`` < ``b_id``).

    ``transform``: the D4 transform that maps A's displayed pixels onto B's; ``shift_x``,
    ``shift_y``: B's offset in pixels of A; ``scale``: B's size over A's; ``delta_ev``:
    log2 of B's exposure over A's, measured (positive: B brighter); ``delta_ev_exif``: the
    same predicted from both files' exposure time, ISO and f-number; ``time_gap_s``:
    capture-time difference in seconds.
    """

    __tablename__ = "pairs"
    __table_args__ = (UniqueConstraint("a_id", "b_id", name="uq_pairs_a_id_b_id"),)

    id = column(Integer, primary_key=True)
    a_id = column(ForeignKey("images.id", ondelete="CASCADE"))
    b_id = column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    verdict = column(String(20), index=True)
    hamming = column(SmallInteger, null=True)
    transform = column(String(12), default="identity")
    shift_x = column(Float, null=True)
    shift_y = column(Float, null=True)
    scale = column(Float, null=True)
    correlation = column(Float, null=True)
    hist_similarity = column(Float, null=True)
    delta_ev = column(Float, null=True)
    delta_ev_exif = column(Float, null=True)
    time_gap_s = column(Float, null=True)
    description = column(Text, null=True)
    # shot identity from metadata (indexer.match.shots): true, false, NULL = unknown
    same_camera = column(Boolean, null=True)
    same_shot = column(Boolean, null=True)
    match_version = column(SmallInteger)
    found_at = column(DateTime)
    # the other pixel measures the verdict reads (indexer.match.verify.Evidence); NULL for
    # equal files and pairs found before schema revision 0005
    peak = column(Float, null=True)  # phase-correlation peak, 0..1
    overlap_a = column(Float, null=True)  # fraction of A covered by B
    overlap_b = column(Float, null=True)
    corr_grey = column(Float, null=True)  # plain grey NCC on the overlap
    corr_tile = column(Float, null=True)  # second-lowest rank NCC of 4x4 tiles
    corr_smooth = column(Float, null=True)  # rank NCC after a 1-px blur
    tile_smooth = column(Float, null=True)  # corr_tile after a 1-px blur
    changed = column(Float, null=True)  # fraction of overlap pixels whose rank differs > 0.25
    edit_area = column(Float, null=True)  # changed region grown 1 px, fraction of overlap
    edit_sign = column(Float, null=True)  # |sum d| / sum |d| in it (1: drawn over)
    outside_corr = column(Float, null=True)  # blurred rank NCC beyond 3 px of it
    # detail of the bigger side at native size (indexer.measure.detail), measured for pairs of
    # a group verdict resized by 1.25x or more; NULL otherwise and for pairs before 0013
    detail_gain = column(Float, null=True)  # its share of the small side's top band over the small side's
    detail_above = column(Float, null=True)  # its share above the small side's Nyquist, same unit


class ImageGroup(Base):
    """Duplicate group of an image (connected components of the chosen verdicts)."""

    __tablename__ = "image_groups"

    image_id = column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    group_id = column(Integer, index=True)
    is_keeper = column(Boolean, default=False)


class ImageFlag(Base):
    """A QA flag raised on an image: the measured value and the threshold that fired."""

    __tablename__ = "image_flags"

    image_id = column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    name = column(String(32), primary_key=True)
    value = column(Float)
    threshold = column(Float)
    flags_version = column(SmallInteger)


class Sensor(Base):
    """One camera body at one geometry; its running per-site statistics live in a file
    (SQLite) or in ``sensor_tiles`` (PostgreSQL).

    ``kind`` is ``cfa`` (RAW: visible CFA sites) or ``rgb`` (stored, un-rotated pixels).
    ``accumulator`` is the file (relative to the database's folder) holding the stats; on
    PostgreSQL the name of the file that held them before ``sensor_tiles`` (imported once).
    """

    __tablename__ = "sensors"
    __table_args__ = (UniqueConstraint("camera_id", "width", "height", "kind",
                                       name="uq_sensors_camera_id_width_height_kind"),)

    id = column(Integer, primary_key=True)
    camera_id = column(ForeignKey("cameras.id"))
    width = column(Integer)
    height = column(Integer)
    kind = column(String(8))
    pattern = column(String(8), null=True)
    frames = column(Integer, default=0)
    accumulator = column(Text)
    stats_version = column(SmallInteger)
    updated_at = column(DateTime)
    # the frame count (and time) of the flush that last changed the defect list: the
    # learning budget maps a body in full until it has stood still (indexer.sensor.budget)
    stable_since = column(Integer, default=0, server_default="0")
    stable_since_at = column(DateTime, null=True)


class SensorFrame(Base):
    """Which image's pixels went into which sensor's statistics (each counted once)."""

    __tablename__ = "sensor_frames"

    sha256 = column(String(64), primary_key=True)
    sensor_id = column(ForeignKey("sensors.id", ondelete="CASCADE"), index=True)
    image_id = column(ForeignKey("images.id", ondelete="SET NULL"), null=True)
    added_at = column(DateTime)


class SensorDefect(Base):
    """A defective photosite of a sensor, in sensor (un-rotated, visible) coordinates.

    ``first_seen`` / ``last_seen``: capture times (camera clock) of the first and last
    learnt frames in which it stood out strongly; NULL when no dated frame saw it.
    """

    __tablename__ = "sensor_defects"

    sensor_id = column(ForeignKey("sensors.id", ondelete="CASCADE"), primary_key=True)
    x = column(Integer, primary_key=True)
    y = column(Integer, primary_key=True)
    kind = column(String(8))
    rate = column(Float)
    mean_residual = column(Float)
    frames = column(Integer)
    first_seen = column(DateTime, null=True)
    last_seen = column(DateTime, null=True)


class SensorTile(Base):
    """A band of rows of a sensor's running per-site statistics, on PostgreSQL (a SQLite
    database keeps them in ``<database>.sensors/`` files; there this table stays empty).

    ``data`` is the band as an ``.npz`` (``indexer.sensor.tiles``: the nine per-site
    arrays of rows ``y0 <= y < y1``, 26 bytes a site, plus the sensor's frame count,
    layout and parameters; band 0 also holds the capture-time timeline). ``frames`` is
    the band's frame count: every band of a sensor has the same one, or the statistics
    are damaged. Written only by the exact merge under the sensor's advisory lock.
    """

    __tablename__ = "sensor_tiles"

    sensor_id = column(ForeignKey("sensors.id", ondelete="CASCADE"), primary_key=True)
    tile = column(Integer, primary_key=True)
    y0 = column(Integer)
    y1 = column(Integer)
    frames = column(Integer)
    data = column(LargeBinary)
    updated_at = column(DateTime)


class StackPart(Base):
    """The per-pixel statistics of one stack of a stack detector (``index --sensor NAME``)
    on PostgreSQL (a SQLite database keeps them as files in ``<database>.sensors/``;
    there this table stays empty).

    ``stack_key``: SHA-256 of ``<container path>#<member>``, ``stack`` the text itself;
    ``source``: ``<size>:<mtime_ns>`` of the file they were computed from (an unchanged
    stack is not counted again); ``data``: ``PixelStats.as_arrays`` as an ``.npz``. The
    detector's statistics are the Chan merge of its parts.
    """

    __tablename__ = "stack_parts"

    sensor_id = column(ForeignKey("sensors.id", ondelete="CASCADE"), primary_key=True)
    stack_key = column(String(64), primary_key=True)
    stack = column(Text)
    source = column(String)
    data = column(LargeBinary)
    updated_at = column(DateTime)


class SensorClaim(Base):
    """A frame (by content) a live writer has added to its in-memory sensor statistics and
    not flushed yet: another writer does not count it too. ``owner``: the writer's token;
    a claim whose owner is gone (its lock no longer held) may be taken over. The flush
    that enters the frame in ``sensor_frames`` deletes the claim in the same transaction."""

    __tablename__ = "sensor_claims"

    sha256 = column(String(64), primary_key=True)
    sensor_id = column(ForeignKey("sensors.id", ondelete="CASCADE"))
    owner = column(Integer, index=True)
    claimed_at = column(DateTime)


class SensorSpool(Base):
    """A young body's frame (one learnt frame's residual statistics, before the body's
    first flush) kept by a live writer of a PostgreSQL database until a flush counts it
    (a SQLite database keeps them as files in ``<database>.sensors/pending/``; there
    this table stays empty). ``owner``: the writer's token, as in ``sensor_claims``:
    rows of an owner no longer alive are the frames of a writer that died, counted by
    the next one (``indexer.pipeline.sensorspool``); ``id`` their arrival order;
    ``data`` the frame's delta as an ``.npz`` (~2.4 bytes a site of an 8-bit frame)."""

    __tablename__ = "sensor_spool"

    id = column(Integer, primary_key=True, autoincrement=True)
    owner = column(Integer, index=True)
    sensor_id = column(ForeignKey("sensors.id", ondelete="CASCADE"))
    sha256 = column(String(64))
    image_id = column(Integer)
    data = column(LargeBinary)
    created_at = column(DateTime)


class Action(Base):
    """One file operation of ``photoqa dupes --apply`` (journal: written ``planned`` before
    the file is touched, ``done`` after; ``photoqa undo`` reverses ``done`` rows)."""

    __tablename__ = "actions"

    id = column(Integer, primary_key=True)
    batch = column(String(32), index=True)
    created_at = column(DateTime)
    action = column(String(12))  # trash, move, delete
    path = column(Text)  # where the file was
    destination = column(Text, null=True)  # where it went (trash or move), None for delete
    image_id = column(Integer, null=True)
    keeper_path = column(Text)
    size = column(BigInteger)
    mtime_ns = column(BigInteger)
    sha256 = column(String(64))
    state = column(String(12), index=True)  # planned, done, skipped, undone
    reason = column(Text, null=True)
    done_at = column(DateTime, null=True)


class Decision(Base):
    """A user's word on a group that matching never overrides (``photoqa dupes
    --not-duplicates A B``, ``--keep FILE``): ``kind`` ``not_duplicates`` (``image_id`` and
    ``other_id`` never share a group) or ``keep`` (``image_id`` is its group's keeper)."""

    __tablename__ = "decisions"

    id = column(Integer, primary_key=True)
    kind = column(String(16))
    image_id = column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    other_id = column(ForeignKey("images.id", ondelete="CASCADE"), index=True, null=True)
    created_at = column(DateTime)
