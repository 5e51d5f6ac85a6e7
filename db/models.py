"""SQLAlchemy 2 models: the tables a user queries.

Conventions: hashes are signed 64-bit integers (``hamming(a, b)`` counts differing bits
in SQL); small arrays are little-endian BLOBs whose layout is given per column; times
are naive local camera time for capture, UTC for bookkeeping. Constraint names follow
:data:`NAMING` so Alembic batch migrations on SQLite can find them.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, LargeBinary,
                        MetaData, SmallInteger, String, Text, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Camera(Base):
    """A camera body. ``serial`` is '' when the files do not record one."""

    __tablename__ = "cameras"
    __table_args__ = (UniqueConstraint("make", "model", "serial", name="uq_cameras_make_model_serial"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    make: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(128))
    serial: Mapped[str] = mapped_column(String(64), default="")


class Image(Base):
    """One row per file path. ``missing_since`` is set when the file left the disk."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    missing_since: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    pixel_sha256: Mapped[str | None] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)  # stored (un-rotated) pixels; RAW: visible sensor
    height: Mapped[int] = mapped_column(Integer)
    display_width: Mapped[int] = mapped_column(Integer)  # after EXIF orientation
    display_height: Mapped[int] = mapped_column(Integer)
    bit_depth: Mapped[int] = mapped_column(SmallInteger)
    orientation: Mapped[int] = mapped_column(SmallInteger, default=1)
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("cameras.id"), index=True)
    captured_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    utc_offset: Mapped[str | None] = mapped_column(String(8))
    exposure_time: Mapped[float | None] = mapped_column(Float)  # seconds
    f_number: Mapped[float | None] = mapped_column(Float)
    iso: Mapped[int | None] = mapped_column(Integer)
    focal_length: Mapped[float | None] = mapped_column(Float)  # mm
    decoder: Mapped[str] = mapped_column(String(32))
    features_version: Mapped[int] = mapped_column(SmallInteger)
    indexed_at: Mapped[datetime] = mapped_column(DateTime)
    # when its candidate pairs were verified and stored; NULL: waiting for matching
    matched_at: Mapped[datetime | None] = mapped_column(DateTime)
    # change number: one more than the table's highest by every write that changes what
    # matching sees of the row (stored, re-indexed, moved back, marked missing); a saved
    # matching index catches up on the rows changed since it was saved
    revision: Mapped[int | None] = mapped_column(BigInteger, index=True)
    # perceptual hashes (signed int64); BLOBs: 8 x int64 LE (D4 order), 10 x int64 LE (crops in
    # hashes.CROP_SPECS order: centred 90%, 80%, then 85% at 4 corners and 4 edge midpoints;
    # features_version 1 stored the first 2)
    phash: Mapped[int] = mapped_column(BigInteger, index=True)
    dhash: Mapped[int] = mapped_column(BigInteger)
    phash_d4: Mapped[bytes] = mapped_column(LargeBinary)
    phash_crops: Mapped[bytes] = mapped_column(LargeBinary)
    # zlib of uint32 LE (4, 256): R, G, B, luma counts
    hist: Mapped[bytes] = mapped_column(LargeBinary)
    luma_mean: Mapped[float] = mapped_column(Float)
    luma_std: Mapped[float] = mapped_column(Float)
    luma_p1: Mapped[float] = mapped_column(Float)
    luma_p50: Mapped[float] = mapped_column(Float)
    luma_p99: Mapped[float] = mapped_column(Float)
    clip_high: Mapped[float] = mapped_column(Float)
    clip_low: Mapped[float] = mapped_column(Float)
    entropy: Mapped[float] = mapped_column(Float)
    sharpness: Mapped[float] = mapped_column(Float)
    colourfulness: Mapped[float] = mapped_column(Float)
    ev: Mapped[float] = mapped_column(Float)
    # zlib of uint8 grey (thumb_height, thumb_width)
    thumb: Mapped[bytes] = mapped_column(LargeBinary)
    thumb_width: Mapped[int] = mapped_column(SmallInteger)
    thumb_height: Mapped[int] = mapped_column(SmallInteger)
    # frames of array stacks (.npy/.npz, indexer.decode.arrays): path is "<file>#<frame>"
    # or "<file>#<key>:<frame>"; container the file, array_key the .npz member ('' for
    # .npy), frame the index along the first axis. NULL for image files.
    container: Mapped[str | None] = mapped_column(Text, index=True)
    array_key: Mapped[str | None] = mapped_column(String(64))
    frame: Mapped[int | None] = mapped_column(Integer)


class Meta(Base):
    """Facts about the database itself: ``instance`` is a random id made when the table
    was (a saved matching index belongs to one database, whatever its path)."""

    __tablename__ = "photoqa_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Failure(Base):
    """A file that could not be indexed, with why. Retried when its size or mtime changes."""

    __tablename__ = "failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    message: Mapped[str] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    failed_at: Mapped[datetime] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=1)


class Daemon(Base):
    """Heartbeat of a running ``photoqa watch`` (one row per process)."""

    __tablename__ = "daemons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    roots: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    last_activity_at: Mapped[datetime | None] = mapped_column(DateTime)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


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

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    a_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    b_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    verdict: Mapped[str] = mapped_column(String(20), index=True)
    hamming: Mapped[int | None] = mapped_column(SmallInteger)
    transform: Mapped[str] = mapped_column(String(12), default="identity")
    shift_x: Mapped[float | None] = mapped_column(Float)
    shift_y: Mapped[float | None] = mapped_column(Float)
    scale: Mapped[float | None] = mapped_column(Float)
    correlation: Mapped[float | None] = mapped_column(Float)
    hist_similarity: Mapped[float | None] = mapped_column(Float)
    delta_ev: Mapped[float | None] = mapped_column(Float)
    delta_ev_exif: Mapped[float | None] = mapped_column(Float)
    time_gap_s: Mapped[float | None] = mapped_column(Float)
    description: Mapped[str | None] = mapped_column(Text)
    # shot identity from metadata (indexer.match.shots): true, false, NULL = unknown
    same_camera: Mapped[bool | None] = mapped_column(Boolean)
    same_shot: Mapped[bool | None] = mapped_column(Boolean)
    match_version: Mapped[int] = mapped_column(SmallInteger)
    found_at: Mapped[datetime] = mapped_column(DateTime)
    # the other pixel measures the verdict reads (indexer.match.verify.Evidence); NULL for
    # equal files and pairs found before schema revision 0005
    peak: Mapped[float | None] = mapped_column(Float)  # phase-correlation peak, 0..1
    overlap_a: Mapped[float | None] = mapped_column(Float)  # fraction of A covered by B
    overlap_b: Mapped[float | None] = mapped_column(Float)
    corr_grey: Mapped[float | None] = mapped_column(Float)  # plain grey NCC on the overlap
    corr_tile: Mapped[float | None] = mapped_column(Float)  # second-lowest rank NCC of 4x4 tiles
    corr_smooth: Mapped[float | None] = mapped_column(Float)  # rank NCC after a 1-px blur
    tile_smooth: Mapped[float | None] = mapped_column(Float)  # corr_tile after a 1-px blur
    changed: Mapped[float | None] = mapped_column(Float)  # fraction of overlap pixels whose rank differs > 0.25
    edit_area: Mapped[float | None] = mapped_column(Float)  # changed region grown 1 px, fraction of overlap
    edit_sign: Mapped[float | None] = mapped_column(Float)  # |sum d| / sum |d| in it (1: drawn over)
    outside_corr: Mapped[float | None] = mapped_column(Float)  # blurred rank NCC beyond 3 px of it
    # detail of the bigger side at native size (indexer.measure.detail), measured for pairs of
    # a group verdict resized by 1.25x or more; NULL otherwise and for pairs before 0013
    detail_gain: Mapped[float | None] = mapped_column(Float)  # its share of the small side's top band over the small side's
    detail_above: Mapped[float | None] = mapped_column(Float)  # its share above the small side's Nyquist, same unit


class ImageGroup(Base):
    """Duplicate group of an image (connected components of the chosen verdicts)."""

    __tablename__ = "image_groups"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(Integer, index=True)
    is_keeper: Mapped[bool] = mapped_column(Boolean, default=False)


class ImageFlag(Base):
    """A QA flag raised on an image: the measured value and the threshold that fired."""

    __tablename__ = "image_flags"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    flags_version: Mapped[int] = mapped_column(SmallInteger)


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

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id"))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))
    pattern: Mapped[str | None] = mapped_column(String(8))
    frames: Mapped[int] = mapped_column(Integer, default=0)
    accumulator: Mapped[str] = mapped_column(Text)
    stats_version: Mapped[int] = mapped_column(SmallInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    # the frame count (and time) of the flush that last changed the defect list: the
    # learning budget maps a body in full until it has stood still (indexer.sensor.budget)
    stable_since: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    stable_since_at: Mapped[datetime | None] = mapped_column(DateTime)


class SensorFrame(Base):
    """Which image's pixels went into which sensor's statistics (each counted once)."""

    __tablename__ = "sensor_frames"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    sensor_id: Mapped[int] = mapped_column(ForeignKey("sensors.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    added_at: Mapped[datetime] = mapped_column(DateTime)


class SensorDefect(Base):
    """A defective photosite of a sensor, in sensor (un-rotated, visible) coordinates.

    ``first_seen`` / ``last_seen``: capture times (camera clock) of the first and last
    learnt frames in which it stood out strongly; NULL when no dated frame saw it.
    """

    __tablename__ = "sensor_defects"

    sensor_id: Mapped[int] = mapped_column(ForeignKey("sensors.id", ondelete="CASCADE"), primary_key=True)
    x: Mapped[int] = mapped_column(Integer, primary_key=True)
    y: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    rate: Mapped[float] = mapped_column(Float)
    mean_residual: Mapped[float] = mapped_column(Float)
    frames: Mapped[int] = mapped_column(Integer)
    first_seen: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_seen: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


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

    sensor_id: Mapped[int] = mapped_column(ForeignKey("sensors.id", ondelete="CASCADE"), primary_key=True)
    tile: Mapped[int] = mapped_column(Integer, primary_key=True)
    y0: Mapped[int] = mapped_column(Integer)
    y1: Mapped[int] = mapped_column(Integer)
    frames: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


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

    sensor_id: Mapped[int] = mapped_column(ForeignKey("sensors.id", ondelete="CASCADE"), primary_key=True)
    stack_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    stack: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class SensorClaim(Base):
    """A frame (by content) a live writer has added to its in-memory sensor statistics and
    not flushed yet: another writer does not count it too. ``owner``: the writer's token;
    a claim whose owner is gone (its lock no longer held) may be taken over. The flush
    that enters the frame in ``sensor_frames`` deletes the claim in the same transaction."""

    __tablename__ = "sensor_claims"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    sensor_id: Mapped[int] = mapped_column(ForeignKey("sensors.id", ondelete="CASCADE"))
    owner: Mapped[int] = mapped_column(Integer, index=True)
    claimed_at: Mapped[datetime] = mapped_column(DateTime)


class Action(Base):
    """One file operation of ``photoqa dupes --apply`` (journal: written ``planned`` before
    the file is touched, ``done`` after; ``photoqa undo`` reverses ``done`` rows)."""

    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    action: Mapped[str] = mapped_column(String(12))  # trash, move, delete
    path: Mapped[str] = mapped_column(Text)  # where the file was
    destination: Mapped[str | None] = mapped_column(Text)  # where it went (trash or move), None for delete
    image_id: Mapped[int | None] = mapped_column(Integer)
    keeper_path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(12), index=True)  # planned, done, skipped, undone
    reason: Mapped[str | None] = mapped_column(Text)
    done_at: Mapped[datetime | None] = mapped_column(DateTime)


class Decision(Base):
    """A user's word on a group that matching never overrides (``photoqa dupes
    --not-duplicates A B``, ``--keep FILE``): ``kind`` ``not_duplicates`` (``image_id`` and
    ``other_id`` never share a group) or ``keep`` (``image_id`` is its group's keeper)."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    other_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
