"""All settings and thresholds in one place, with documented defaults.

Defaults live in the frozen dataclasses below (one per section). A TOML file overrides
any of them, section by section::

    [index]
    work_size = 256

Files read, later ones winning: ``photoqa.toml`` beside the database, then the file
given with ``--config``. Unknown sections or keys are an error, not a silent no-op.
"""
from __future__ import annotations

import dataclasses
import os
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

# Defaults come from small modules without NumPy or Pillow (issue 13 item 4): reading
# settings is on the path of `photoqa status`, `sql` and `dupes`.
from indexer.decode.limits import MAX_PIXELS, RAW_PREVIEW_MIN, WORK_SIZE
from indexer.exposure.thresholds import FlagThresholds
from indexer.match.params import MatchParams
from indexer.match.verdict import DEFAULT_GROUP_VERDICTS, MatchThresholds
from indexer.measure.sizes import THUMB_SIZE

# The writer's batches (issue 19): one transaction per batch of analysed files. Rows per
# second into PostgreSQL (bench/writer_throughput.py, 2026-12-07): batches of 200 1,260
# against 347 one transaction per file at load 4 (3.6x), 11-13x at load 22-26.
WRITE_BATCH = 200
# index only: once an outcome is ready, wait this long for more to join its batch (5 ms
# is under 1% of a file's ~0.5 s of decoding on one core, so workers never notice)
WRITE_WAIT_MS = 5.0


# the metadata key of a field that a configuration file cannot set nor ``photoqa config``
# print: another setting decides its value (Settings.__post_init__)
DERIVED = "derived"


class ConfigError(ValueError):
    """A configuration file is unreadable or names an unknown setting."""


@dataclass(frozen=True)
class IndexSettings:
    """Decoding and measuring.

    work_size: long side (px) of the working image features are measured on; JPEGs are
        DCT-downscaled (draft mode) to at least this. Changing it changes stored features.
    thumb_size: long side (px) of the grey thumbnail kept for alignment.
    raw_preview_min: an embedded RAW preview is used when its long side is at least this,
        else the RAW is developed at half size.
    max_pixels: images larger than this many pixels are refused (decompression bombs).
    workers: worker processes; 0 means one per CPU core.
    cluster: where decoding and measuring run: '' in worker processes of this machine;
        'local:N' in a Dask LocalCluster of N processes here; 'tcp://HOST:8786' on the
        workers of that Dask scheduler, which read the files from the same paths
        (docs/CLUSTER.md; needs ``pip install 'photoqa[cluster]'``).
    cluster_wait: seconds to wait for the scheduler to answer and for its first worker.
    write_batch: at most this many analysed files stored by the writer in one transaction
        (one executemany per table): what is ready when the writer comes back for more,
        never waited for (db.store.Store.save_batch).
    write_wait_ms: how long ``index`` waits for more outcomes to join a batch once one is
        ready (the watch daemon never waits: its latency matters more).
    digest_pixels: not a setting of its own (a file cannot set it): ``[match]
        digest_decoded_pixels`` while ``[match] enabled``, else 0, copied here by
        :class:`Settings` because the decode workers are given ``[index]`` only.
    """

    work_size: int = WORK_SIZE
    thumb_size: int = THUMB_SIZE
    raw_preview_min: int = RAW_PREVIEW_MIN
    max_pixels: int = MAX_PIXELS
    workers: int = 0
    cluster: str = ""
    cluster_wait: float = 60.0
    write_batch: int = WRITE_BATCH
    write_wait_ms: float = WRITE_WAIT_MS
    digest_pixels: int = field(default=0, metadata={DERIVED: True})


@dataclass(frozen=True)
class DatabaseSettings:
    """busy_timeout_ms: how long a writer waits for a lock before failing (SQLite)."""

    busy_timeout_ms: int = 30_000


@dataclass(frozen=True)
class SensorSettings:
    """Per-camera photosite statistics and defect classification.

    enabled: learn sensor statistics while indexing, from every file that names its camera
        (EXIF make and model): RAW CFA data, and rendered frames (JPEG, HEIC, PNG, TIFF)
        when ``rendered_frames``.
    rendered_frames: also learn from rendered frames of cameras (on by default: phones
        and compacts shoot no RAW). Such a frame needs a full-size decode instead of a
        draft one, so a body learns from a sample of them (below); the per-site work is
        done in the decode workers, the writer only adds each frame's delta.
    learn_every_frame: learn from every frame, not a sample (slow: 3.1x the CPU time of
        indexing 12 MP camera JPEGs with learning off, bench/sensor_cost.py; for a small set of test frames, or dark frames shot to map a sensor).
    sample_megapixels: the learning budget per body (indexer.sensor.budget): once its map
        is stable, a rendered frame of P megapixels is learnt with probability
        min(1, sample_megapixels / P), decided by its content hash, so each indexed frame
        pays on average for this many megapixels of learning. 0.25: frames up to 500x500
        always, a 12 MP frame 1 in 48; measured cost on 12 MP JPEGs in bench/sensor_cost.py.
    raw_sample_megapixels: the same for RAW files. A RAW's CFA plane comes with its
        decode, so learning it costs only the residual: +30-56% of indexing a 4-9 MP RAW
        (measured on the CRW/DNG files of ../shared/data/raw: 67-80 ms -> 90-113 ms of
        CPU; 189 -> 294 ms on a 9 MP DNG), about 1/15 of what a 12 MP JPEG's full decode
        and residual add; 1.0: a 4 MP RAW 1 in 4 (about +10%), a 24 MP one 1 in 24.
    learn_first / stable_frames / learn_megapixels: a body *maps* until its map is stable:
        it rests on at least ``learn_first`` learnt frames and its defect list has not
        changed for ``stable_frames`` learnt frames; while mapping, a rendered frame of P
        megapixels is learnt with probability min(1, learn_megapixels / P) (decided by its
        content hash, like the sample), a RAW one with 4x that (raw_sample_megapixels /
        sample_megapixels: learning a RAW costs that much less). 0.75: every frame up to
        0.75 MP (small test frames), a 12 MP JPEG 1 in 16. Learning a 12 MP JPEG costs
        ~0.74 s of CPU, 2.1x what indexing it costs (0.35 s; bench/sensor_cost.py, CPU of
        all processes), so 1 in 16 adds ~13% once a run is long; a run that learns
        anything also pays ~1.5 s once (numba kernels loaded once in the workers'
        forkserver; a body below ``min_frames`` gets no accumulator, see flush_frames):
        on 60 new 12 MP JPEGs see docs/BENCHMARKS.md (sensor_cost.py). Then the sample (``sample_megapixels``). The stability clock
        is kept at flush granularity: a changed list is dated at the end of the flush that
        saw it, so a body settles up to ``flush_frames - 1`` learnt frames late (a change
        that comes and goes within one flush is not seen).
        `index` and `watch` re-read each body's state every 30 s
        (``pipeline.sensorplan.LivePlan``). 0 and 0: sample from the first frame.
    learn_all_limit: a changed defect list brings back mapping only while
        the body rests on fewer frames than this: a site standing out in about ``rate``
        of the frames can enter and leave the list at every flush and would otherwise keep
        its body mapping for good. 1024 learnt frames: ~8,000 12 MP photos mapped.
    reveal_iso / reveal_seconds / dark_luminance / reveal_factor: frames shot at ISO >=
        reveal_iso, exposed for >= reveal_seconds, or dark (mean luma of the working image,
        sRGB-encoded in [0, 1], at most dark_luminance; 0.12 is a night or indoor scene
        without flash) show defects most (hot pixels grow with gain and exposure time and
        stand out against a dark scene) and are reveal_factor times as likely to be learnt.
    folder: where per-sensor accumulator files of a SQLite database live; '' means
        ``<database>.sensors/``. A PostgreSQL database keeps them in its table
        ``sensor_tiles`` (every machine sees them); there this folder, or
        ``~/.cache/photoqa/sensors/<hash>/`` where earlier versions kept them, is only
        read once to import what it holds.
    rate: a site is hot (dead) when it stood out bright (dark) in at least this fraction
        of the sensor's frames; stuck likewise for unchanged values.
    min_frames: below this many frames a sensor reports "not enough frames".
    flush_frames / flush_seconds: merge the in-memory statistics into the sensor's file
        after this many new frames or seconds (and at the end of a run); a body with
        fewer than ``min_frames`` frames in all (*young*) waits for them rather than the
        clock: a flush writes its whole accumulator. A young body has no accumulator:
        its frames are kept as deltas (~2.4 bytes a site a frame; in memory, and on disk
        until a flush counts them: files in ``pending/`` of the sensor folder of a SQLite
        database, rows of ``sensor_spool`` in a PostgreSQL one) and replayed into one
        when it reaches ``min_frames``; still young at the end of a run, it is not
        written at all: its frames wait on disk, ``photoqa hotpixels`` says how many,
        and the next run counts them first (also after a writer was killed).
    memory_mb: the writer keeps each body's statistics since its last flush in memory
        (26 bytes a photosite: 312 MB for a 12 MP body, 624 MB for 24 MP; a young body's
        kept frame deltas count too, and are never more than that); past this many MB
        young bodies' deltas are dropped from memory (read back from disk when needed),
        then the least recently fed body is flushed early and dropped (its next frame
        starts a new delta: merges are exact, so the statistics do not change). At least one body
        is always kept, however large. A flush briefly adds one more copy of that body
        (the stored statistics it merges into) plus a few MB: the writer's peak is about
        ``memory_mb`` + 26 bytes x the largest body's sites (bench/sensor_memory.py).
        640: two 12 MP bodies, or one 24 MP.
    stuck_min_frames / stuck_min_spread / stuck_max_slope / stuck_min_share /
        stuck_min_level / stuck_z: the stuck test of rendered frames (JPEG's chroma mixes
        a stuck site's value with its neighbours', so "value unchanged" fails there):
        per site and colour, in linear light, the fit ``v = a + b m`` of its value on its
        neighbourhood's ninther over the frames it stood out in (indexer.sensor.stuckfit).
        A colour is stuck with at least ``stuck_min_frames`` fitted frames (20), a spread
        (std) of ``m`` of at least ``stuck_min_spread`` (0.05 of full scale), slope
        ``b < stuck_max_slope`` (0.6: it does not follow its neighbourhood), intercept
        share ``a / mean(v) > stuck_min_share`` (0.45), level ``a >= stuck_min_level``
        (0.01 of full scale, code ~25 of 255: lower is dead, not stuck), and both parts
        significant, z scores > ``stuck_z`` (5.0: one-sided p ~3e-7 each, for the
        10^4-10^5 candidates of a 12 MP body). On the synthetic camera of
        bench/sensor_stuck_jpeg.py (JPEG q95, 30 frames) the defaults pass its three stuck
        sites and none of 133 hot, dead or clean candidates; fewer frames or a narrower
        spread called 2,161 sites of 9 real JPEGs stuck.
    """

    enabled: bool = True
    rendered_frames: bool = True
    learn_every_frame: bool = False
    sample_megapixels: float = 0.25
    raw_sample_megapixels: float = 1.0
    learn_first: int = 64
    stable_frames: int = 64
    learn_megapixels: float = 0.75
    learn_all_limit: int = 1024
    reveal_iso: int = 1600
    reveal_seconds: float = 1.0
    dark_luminance: float = 0.12
    reveal_factor: float = 8.0
    folder: str = ""
    rate: float = 0.9
    min_frames: int = 5
    flush_frames: int = 32
    flush_seconds: float = 30.0
    memory_mb: float = 640.0
    stuck_min_frames: int = 20
    stuck_min_spread: float = 0.05
    stuck_max_slope: float = 0.6
    stuck_min_share: float = 0.45
    stuck_min_level: float = 0.01
    stuck_z: float = 5.0

    def stuck_tests(self):
        """The ``stuck_*`` settings as ``indexer.sensor.stuckfit.StuckTests`` (imported
        here, on use: the sensor package loads NumPy, reading settings must not)."""
        from indexer.sensor.stuckfit import StuckTests

        return StuckTests(min_frames=self.stuck_min_frames, min_spread=self.stuck_min_spread,
                          max_slope=self.stuck_max_slope, min_share=self.stuck_min_share,
                          min_level=self.stuck_min_level, z=self.stuck_z)


@dataclass(frozen=True)
class MatchSettings:
    """Near-duplicate candidate search (thresholds of the verdicts: section [verdict]).

    enabled: match every newly indexed image against the database while indexing.
    radius: Hamming radius (bits of 64) within which the 8 rotated/flipped pHashes of an
        image are candidates; exact search, cost grows steeply with it.
    crop_radius: radius for the centre-crop hash channel (finds 80-95% crops).
    crop_hits, lone_radius: a pair whose best hash distance is beyond ``lone_radius``
        (the crop channel reaches ``crop_radius``) needs ``crop_hits`` hash hits: one is
        mostly chance at archive scale (see ``indexer.match.engine.Matcher``); ``crop_hits = 1``
        restores every lone hit up to ``crop_radius`` (small archives, extreme crops).
    chance_budget, chance_floor: candidates of a new image are kept only within a radius
        that tightens with the archive's size, so that about ``chance_budget`` chance
        candidates (unrelated pictures whose hashes happen to be close) are expected per
        new image, counted on the archive itself; never below ``chance_floor`` bits
        (``indexer.match.chance``). On bench/soak.py's archive: 0.13-0.23 verifications
        per image from 1,000 to 14,700 images (0.12 -> 1.7 and climbing without), the
        radius 14 -> 10 -> 8 bits; its 100,000 files at a flat 17-18 ms CPU per image.
        0: every candidate out to ``crop_radius`` (work per image grows with N).
    max_transforms: how many distinct orientations of one candidate pair are verified.
    group_verdicts: verdicts whose pairs join images into a stored group ("similar"
        burst neighbours are left out by default).
    group_tries: members of one existing duplicate group a new image is verified against
        at most (the best-hashing one first, the next only while none gave a group
        verdict; ``indexer.match.fanout``): verification work grows with the number of
        images, not with the square of a group's size. 0: every candidate pair (up to
        ``loose_tries``).
    loose_tries: candidates in no group a new image is verified against at most, the
        closest first (lowest Hamming distance, then most hash hits; ``indexer.match.fanout``).
        Chance hits of the crop channel (10-14 bits) grow with the archive: a fixed
        fraction of all indexed images, 0.25 more per image per 1,000 indexed (2 per image
        at 8,700 images of bench/soak.py, all rejected; ~25 at 100,000), so without a cap
        verification per image grows with N and the archive's with N squared. A copy is
        almost always the closest candidate (its original hashes within 0-10 bits; chance
        hits sit at 10-14), and candidates that are copies of one another are grouped
        already, so a few suffice; "similar" pairs (not grouped) beyond the closest few
        are not looked for (on ../shared/data: 44 of 86 kept, groups unchanged).
        0: every candidate in no group.
    verify_workers: processes that verify candidate pairs by pixels (0: one per core).
    digest_inline_pixels: a ``same_pixels`` proof needs full-size pixel digests; files of
        more pixels are decoded for it by the verification processes, never the writer
        (``indexer.pipeline.pixelproof``); smaller ones in the writer until those start.
    digest_decoded_pixels: files of at most this many pixels that the decode workers
        decode at full size anyway (PNG, TIFF, WebP, GIF, BMP, HEIF...; not RAW, nor a
        JPEG, which is draft-decoded at 1/2-1/8 scale unless it is small) get their pixel
        digest there, stored with their row, so a proof never decodes them again (0:
        never; the proofs' digests then come from the verification processes). It costs
        the hash of the pixels in hand, for every such file, to save a second full decode
        for the few that need a proof. The hash costs 2.4-2.7 ms/MP (bench/digest_cost.py,
        2026-12-08, 0.4-24 MP): 9-13% of a PNG's decode, 15-24% of a lossy WebP's,
        35-55% of an uncompressed TIFF's; without it a proof decodes the file again in
        the pool (a 12 MP PNG: 31 ms in the worker against 327 ms there), so it pays
        once more than ~10% of PNGs (15-25% of WebPs) need a proof. On
        bench/end_to_end.py's dense set nearly all do: digest jobs sent to the pool
        143 -> 70 (JPEGs only), analyse CPU +0.16 s (x1.036, 110 digests in-process),
        verification pool CPU -1.1 s and all processes' -0.9 s (medians of 5
        interleaved runs at load 5-8). 4 MP keeps it under ~10 ms a file; 12-24 MP
        PNGs and TIFFs (30-60 ms each) are left to the pool, for the proofs that need them.
    pool_after: seconds of pixel verification done in the writer itself before those
        processes start (small runs never pay their start-up; 0: always start them).
        The first job pays ~0.5 s loading the kernels, a job ~5-15 ms after that; jobs
        sent while the pool warms up wait for it (``indexer.pipeline.verifypool``), so
        an early start costs the writer nothing. At 5 s the writer verified 80-110 of
        the dense set's ~750 jobs itself (bench/end_to_end.py, 2026-12-07).
    pool_files: an ``index`` run with at least this many files to analyse starts those
        processes at its first job instead (0: by ``pool_after`` alone): the writer then
        never verifies a pair itself, so it never loads numba (the first job with that
        import cost the writer 0.7-0.95 s of bench/end_to_end.py --sets camera's 7-8 s,
        2026-12-07) while the workers wait on it; the
        jobs wait aside while the pool warms up, which is cheap where the workers'
        forkserver loaded numba for the sensor kernels (``pipeline.kernelwarm``).
    index_file: where the built candidate index is saved between runs, so the next
        ``index``/``watch`` loads it and reads only the rows changed since instead of
        every row (docs/BENCHMARKS.md: ``bench/match_startup.py``); '' means
        ``<database>.match-index`` beside a SQLite database, or
        ``~/.cache/photoqa/match/`` for other URLs; 'off' never saves it. A cache: when
        missing, damaged or of other settings it is rebuilt from the database.
    index_file_min: archives of fewer present images are rebuilt at every start (well
        under a second) and leave no file.
    index_file_resave: a run saves the index again at its end only when at least this
        many images changed since the saved one (writing a large archive's file costs
        more than replaying that many changed rows at the next start).
    """

    enabled: bool = True
    radius: int = MatchParams.radius  # the matcher's defaults (indexer.match.params)
    crop_radius: int = MatchParams.crop_radius
    crop_hits: int = MatchParams.crop_hits
    lone_radius: int = MatchParams.lone_radius
    chance_budget: float = MatchParams.chance_budget
    chance_floor: int = MatchParams.chance_floor
    max_transforms: int = MatchParams.max_transforms
    group_verdicts: tuple = DEFAULT_GROUP_VERDICTS
    group_tries: int = 2
    loose_tries: int = 4
    verify_workers: int = 0
    digest_inline_pixels: int = 1_000_000  # a 1 MP decode costs the writer ~15 ms
    digest_decoded_pixels: int = 4_000_000  # see the docstring
    pool_after: float = 0.5  # see the docstring
    pool_files: int = 8
    index_file: str = ""
    index_file_min: int = 20_000
    index_file_resave: int = 10_000  # 1 M images: save ~4 s, replay 10,000 rows ~0.3 s (2026-12-01)

    def params(self, thresholds: MatchThresholds) -> MatchParams:
        """The matcher's settings: these, with the verdicts' ``thresholds``."""
        return MatchParams(radius=self.radius, crop_radius=self.crop_radius, crop_hits=self.crop_hits,
                           lone_radius=self.lone_radius, chance_budget=self.chance_budget,
                           chance_floor=self.chance_floor, max_transforms=self.max_transforms,
                           thresholds=thresholds)


@dataclass(frozen=True)
class DupesSettings:
    """``[dupes]``: acting on duplicate groups.

    prefer_in: folders whose files are suggested as keepers before any other rule (e.g.
        the archive's master folder; ``photoqa dupes --prefer-in`` adds folders for one
        report); ``~`` is expanded, relative folders are taken from the current one.
    reference: folders whose files ``photoqa dupes --apply`` never trashes, moves, links or
        deletes, whatever the plan says (an archive, a backup); ``--reference DIR`` adds
        folders for one run. Same path rules as ``prefer_in``.
    """

    prefer_in: tuple = ()
    reference: tuple = ()

    def reference_folders(self) -> tuple[str, ...]:
        """``reference`` as absolute folder paths."""
        return tuple(os.path.abspath(os.path.expanduser(p)) for p in self.reference)

    def folders(self) -> tuple[str, ...]:
        """``prefer_in`` as absolute folder paths."""
        return tuple(os.path.abspath(os.path.expanduser(p)) for p in self.prefer_in)


@dataclass(frozen=True)
class StackSettings:
    """``[stacks]``: array stacks (``.npy``/``.npz``) indexed frame by frame.

    match_min_side: frames whose shorter side has at least this many pixels get
        near-duplicate matching (candidates from their hashes, verified by the
        shift-aligned correlation of the frames themselves, as photos' thumbnails are);
        smaller frames get exact-duplicate pairs only (equal pixels). A 7x7 detector
        frame is photon counts, not a picture: its 64-bit pHash comes from 49 values
        resized up to 32x32, and 96,108 of them would be candidates of each other by the
        thousand. 32: a 32x32 frame is the pHash's own working size.
    """

    match_min_side: int = 32


@dataclass(frozen=True)
class Settings:
    index: IndexSettings = field(default_factory=IndexSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    sensor: SensorSettings = field(default_factory=SensorSettings)
    match: MatchSettings = field(default_factory=MatchSettings)
    verdict: MatchThresholds = field(default_factory=MatchThresholds)
    flags: FlagThresholds = field(default_factory=FlagThresholds)
    dupes: DupesSettings = field(default_factory=DupesSettings)
    stacks: StackSettings = field(default_factory=StackSettings)

    def __post_init__(self):
        # the decode workers are given [index] only (pipeline.analyse.init_worker): what
        # they need of [match] rides along there, recomputed by every replace()
        digest = self.match.digest_decoded_pixels if self.match.enabled else 0
        if self.index.digest_pixels != digest:
            object.__setattr__(self, "index", dataclasses.replace(self.index, digest_pixels=digest))

    def section(self, name: str):
        return getattr(self, name)

    def group_rule(self):
        """The stored groups' rule: ``[match] group_verdicts`` and ``[dupes] prefer_in``."""
        from indexer.match.groups import GroupRule

        return GroupRule(tuple(self.match.group_verdicts), self.dupes.folders())


def _apply(settings: Settings, overrides: dict, source: str) -> Settings:
    changes = {}
    for name, values in overrides.items():
        if name not in {f.name for f in dataclasses.fields(Settings)}:
            raise ConfigError(f"{source}: unknown section [{name}]")
        current = getattr(settings, name)
        known = {f.name: f for f in dataclasses.fields(current) if not f.metadata.get(DERIVED)}
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        typed = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"{source}: unknown setting {name}.{key} (known: {', '.join(known)})")
            typed[key] = _coerce(getattr(current, key), value, f"{source}: {name}.{key}")
        changes[name] = dataclasses.replace(current, **typed)
    return dataclasses.replace(settings, **changes)


def _coerce(default, value, where: str):
    """``value`` as the type of ``default``: 300.0 is an int setting's 300; 2.5 is not."""
    numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
    if numeric and isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(default, float):
            return float(value)
        if float(value).is_integer():
            return int(value)
        raise ConfigError(f"{where} must be a whole number, got {value!r}")
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)  # TOML arrays are lists; list settings are tuples (frozen)
    if default is not None and (not isinstance(value, type(default)) or numeric):  # bool is an int
        raise ConfigError(f"{where} must be {type(default).__name__}, got {value!r}")
    return value


def load_settings(config: str | os.PathLike | None = None, db_path: str | os.PathLike | None = None) -> Settings:
    """Defaults, then ``photoqa.toml`` beside ``db_path`` (if any), then ``config``."""
    settings = Settings()
    candidates = []
    if db_path:
        candidates.append((Path(db_path).resolve().parent / "photoqa.toml", False))
    if config:
        candidates.append((Path(config), True))
    for path, required in candidates:
        if not path.exists():
            if required:
                raise ConfigError(f"config file not found: {path}")
            continue
        try:
            overrides = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        settings = _apply(settings, overrides, str(path))
    return settings


def as_dict(settings: Settings) -> dict:
    """Every setting with its current value, for ``photoqa config`` (derived fields left
    out: a file cannot set them)."""
    tables = dataclasses.asdict(settings)
    for section in dataclasses.fields(settings):
        for f in dataclasses.fields(getattr(settings, section.name)):
            if f.metadata.get(DERIVED):
                del tables[section.name][f.name]
    return tables


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # floats keep their '.', so they read back as floats
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def to_toml(tables: dict) -> str:
    """The settings tables of :func:`as_dict` as TOML that :func:`load_settings` reads back
    (flat tables of strings, numbers, booleans and lists of them: all the settings are;
    a small writer instead of a dependency, tomllib only reads)."""
    lines = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
        lines.append("")
    return "\n".join(lines)
