"""photoqa command line: parse, call one library function, render.

Exit codes are the named constants below.
"""
from __future__ import annotations

import functools
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import click

EXIT_OK = 0
EXIT_ERROR = 1  # the command could not do its job (bad database, bad config...)
EXIT_USAGE = 2  # wrong options or arguments (click's own code)
EXIT_FILES_FAILED = 3  # with --strict: some files could not be indexed
EXIT_REFUSED = 4  # a write statement given to the read-only `sql`
EXIT_BUSY = 5  # `watch`: another live daemon watches these folders; `dupes --apply`/`undo`: another is acting
EXIT_LEAKAGE = 5  # `leakage`: near-duplicates found across dataset splits (a CI gate; 5 as for `watch`, another command)
EXIT_SKIPPED = 6  # `dupes --apply` / `undo`: some planned operations were skipped (each says why)
EXIT_INTERRUPTED = 130  # `index` stopped by Ctrl-C (128 + SIGINT, as shells report it)

FORMAT = click.Choice(["table", "json", "csv"])


def _fail(message: str, code: int = EXIT_ERROR) -> None:
    click.echo(f"photoqa: {message}", err=True)
    sys.exit(code)


# ctx.obj key: the command line is this process's own (cli.main as a program), not a call
# from a test's CliRunner; the process ends with the command, so the collector's work on
# what it imported can be skipped (_imports_outside_collection, _skip_exit_collection)
_PROCESS = "process"


@contextmanager
def _imports_outside_collection(ctx: click.Context):
    """Run the block's imports with the garbage collector off, then move what they made to
    its permanent generation (``gc.freeze``): modules, classes and functions live as long
    as the process, and every later full collection traversed them again. With
    SQLAlchemy, NumPy and the models imported for ``photoqa index``, collections took
    ~0.06 s CPU of a one-file run's main process (8 runs each way, 2026-12-07). Only when
    the process runs this one command (:data:`_PROCESS`): in a test process a freeze would
    keep the tests' uncollected garbage for good."""
    if not ctx.obj.get(_PROCESS):
        yield
        return
    import gc

    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


@functools.cache  # registered once
def _skip_exit_collection() -> None:
    """At exit, put every object still alive in the collector's permanent generation
    (``gc.freeze``), so the interpreter's last full collections skip them: their memory
    goes back with the process. After ``photoqa index``, with SQLAlchemy, NumPy and the
    models loaded, those collections took ~0.14 s CPU of a one-file run's ~0.6 s in the
    main process (8 runs each way, 2026-12-07). An object kept only by a reference
    cycle is not finalised after it: the command closes its database connections itself
    (``engine.dispose()``: SQLite then checkpoints its WAL and removes it, as before)."""
    import atexit
    import gc

    atexit.register(gc.freeze)


def _session(ctx: click.Context, readonly: bool = False, create: bool = False):
    """The command's session; only ``create=True`` commands (index, watch) may make a new database."""
    from indexer.config import ConfigError
    from indexer.session import open_session

    from db.engine import resolve_url, sqlite_path
    from db.health import sniff_sqlite

    path = sqlite_path(resolve_url(ctx.obj["db"]))
    if path is not None and (why := sniff_sqlite(path)) is not None:
        _fail(why)  # before SQLite's busy handler spends its timeout on a non-database
    try:
        return open_session(ctx.obj["db"], ctx.obj["config"], readonly=readonly, create=create)
    except ConfigError as exc:
        _fail(f"configuration: {exc}")
    except FileNotFoundError as exc:
        _fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - a broken database is a message, not a traceback
        _fail(_database_message(exc, ctx, "cannot open the database"))


def _database_message(exc: BaseException, ctx: click.Context, prefix: str) -> str:
    """One line for a database error (no SQL, no SQLAlchemy web link)."""
    from db.engine import resolve_url, sqlite_path
    from db.health import fatal_message

    path = sqlite_path(resolve_url(ctx.obj.get("db") if ctx.obj else None))
    where = f"the database {path}" if path else "the database"
    fatal = fatal_message(exc, where)
    if fatal:
        return fatal
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [""])[0]
    if "database is locked" in first:
        return (f"{where} is locked by another process: gave up after [database] busy_timeout_ms; "
                "the file in progress was not stored, run again when the other writer is done")
    return f"{prefix}: {type(orig).__name__}: {first}"


class _Main(click.Group):
    """The command group; a database failing under any command ends it with one line."""

    def main(self, args=None, *rest, **extra):
        if args is None:  # the process's own command line (sys.argv): see _PROCESS
            extra.setdefault("obj", {_PROCESS: True})
        return super().main(args, *rest, **extra)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # a stop while starting up or closing: no traceback, no "Aborted!"
            _fail("interrupted", EXIT_INTERRUPTED)
        except Exception as exc:
            import sqlite3

            from sqlalchemy.exc import SQLAlchemyError

            if not isinstance(exc, (SQLAlchemyError, sqlite3.Error)):
                raise
            sub = ctx.invoked_subcommand or "photoqa"
            _fail(_database_message(exc, ctx, f"{sub}: database error"))


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--db", envvar="PHOTOQA_DB", metavar="PATH|URL",
              help="SQLite file or SQLAlchemy URL (default ./photoqa.db; env PHOTOQA_DB). "
                   "Example: --db ~/photos.db or --db postgresql+psycopg://me@localhost/photoqa")
@click.option("--config", type=click.Path(dir_okay=False), metavar="FILE", envvar="PHOTOQA_CONFIG",
              help="TOML file of settings overriding the defaults and photoqa.toml beside the "
                   "database (env PHOTOQA_CONFIG). Example: --config strict.toml")
@click.version_option(package_name="photoqa")
@click.pass_context
def main(ctx: click.Context, db: str | None, config: str | None) -> None:
    """Keep a growing photo collection clean: index photos into SQL, then find copies,
    badly exposed shots and sensor defects.

    \b
    Quick start:
      photoqa index ~/Pictures          # measure every photo into ./photoqa.db
      photoqa sql "SELECT path, ev FROM images ORDER BY ev LIMIT 5"
      photoqa demo                      # a generated sample, end to end
    """
    ctx.ensure_object(dict)
    ctx.obj.update(db=db, config=config)


@main.command()
@click.argument("split_dirs", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Splits from a CSV (path,split) or JSON ({path: split}) file instead of "
                                   "folders. Example: --manifest splits.csv")
@click.option("--verdicts", default=None, metavar="LIST",
              help="Pair verdicts that count as leakage (default same_file,same_pixels,derived). "
                   "Example: --verdicts same_file,same_pixels,derived,similar")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text",
              help="Report as text, one JSON object, or CSV rows. Example: --format json")
@click.option("--no-index", is_flag=True, help="Use the database as it is; do not index the splits first. "
                                               "Example: --no-index")
@click.option("--workers", "-j", type=click.IntRange(0), default=None,
              help="Worker processes for the indexing. Example: -j 2")
@click.pass_context
def leakage(ctx, split_dirs, manifest, verdicts, fmt, no_index, workers):
    """Near-duplicates across dataset splits: SPLIT_DIRs (each folder a split, named by
    the folder) or a --manifest. Indexes them first (incremental), then lists each pair
    whose images lie in different splits with its evidence, per split pair. Exits with
    5 when anything leaks, so a dataset repository can use it as a CI check.

    \b
    Examples:
      photoqa leakage data/train data/val data/test
      photoqa leakage --manifest splits.csv --format json
    """
    from indexer.commands import leakage as lk
    from indexer.match.verdict import VERDICTS

    if bool(split_dirs) == bool(manifest):
        _fail("give split folders or --manifest FILE (one of the two)", EXIT_USAGE)
    chosen = tuple(v.strip() for v in verdicts.split(",") if v.strip()) if verdicts else lk.DEFAULT_VERDICTS
    unknown = [v for v in chosen if v not in VERDICTS]
    if unknown:
        _fail(f"unknown verdict(s) {', '.join(unknown)}; choose from {', '.join(VERDICTS)}", EXIT_USAGE)
    if manifest:
        try:
            table = lk.read_manifest(manifest)
        except lk.ManifestError as exc:
            _fail(str(exc), EXIT_USAGE)
        split, roots = table.get, sorted({Path(p).parent for p in table})
    else:
        split, roots = lk.split_of_folders(list(split_dirs)), list(split_dirs)
    session = _session(ctx, create=not no_index)  # it indexes the splits first: a new database is fine
    if not no_index:
        from indexer.commands.index import run_index

        run_index(session, [r for r in roots if r.exists()], workers=workers, show_progress=False)
    report = lk.find_leaks(session.engine, split, chosen)
    report.splits = lk.count_splits(session.engine, split)
    if fmt == "json":
        from indexer.commands.output import write_json

        write_json(report.as_dict())
    elif fmt == "csv":
        import csv as csvmod

        out = csvmod.writer(sys.stdout)
        out.writerow(["split_a", "split_b", "path_a", "path_b", "verdict", "hamming", "transform",
                      "correlation", "description"])
        for x in report.leaks:
            out.writerow([x.split_a, x.split_b, x.path_a, x.path_b, x.verdict, x.hamming, x.transform,
                          x.correlation, x.description])
    else:
        click.echo(lk.render_text(report))
    if report.leaks:
        sys.exit(EXIT_LEAKAGE)


@main.command("export")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--where", default=None, metavar="SQL",
              help="Only images matching this SQL condition over the images columns. "
                   "Example: --where \"width >= 64 AND path LIKE '%/train/%'\"")
@click.option("--exclude-flags", default=None, metavar="LIST",
              help="Leave out images with any of these QA flags. Example: --exclude-flags dark,blurry")
@click.option("--exclude-verdicts", default=None, metavar="LIST",
              help="Also leave out the later image of every pair with these verdicts (beyond one "
                   "per duplicate group). Example: --exclude-verdicts similar")
@click.option("--all-members", is_flag=True,
              help="Keep every member of a duplicate group, not only its keeper. Example: --all-members")
@click.option("--size", nargs=2, type=click.IntRange(1), default=(224, 224), show_default=True,
              metavar="H W", help="Output height and width. Example: --size 96 96")
@click.option("--fit", "fit_mode", type=click.Choice(["pad", "crop"]), default="pad", show_default=True,
              help="Keep the aspect by padding, or by cropping the centre. Example: --fit crop")
@click.option("--dtype", type=click.Choice(["float32", "uint8"]), default="float32", show_default=True,
              help="Element type of the array (uint8: normalised values x 255). Example: --dtype uint8")
@click.option("--normalize", "method", type=click.Choice(["dtype", "minmax", "zscore", "equalize"]),
              default="dtype", show_default=True,
              help="dtype: scale by the type's range; minmax: each image to 0..1; zscore: per channel "
                   "over the dataset; equalize: histogram-equalise each image. Example: --normalize minmax")
@click.option("--channels", type=click.Choice(["1", "3"]), default="3", show_default=True,
              help="Channels per image (grey or RGB). Example: --channels 1")
@click.option("--split-dir", "split_dirs", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              metavar="DIR", help="Name the split column of the index by folder. Example: --split-dir data/train")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="Summary as text or JSON. Example: --format json")
@click.option("--workers", "-j", type=click.IntRange(0), default=None,
              help="Worker processes decoding photos (default: one per core; 1 runs in this process). "
                   "Example: -j 2")
@click.option("--resample", type=click.Choice(["lanczos", "bicubic", "bilinear", "box"]), default="lanczos",
              show_default=True,
              help="Resize filter: lanczos is the sharpest; bicubic, bilinear and box are 1.4x, 2.3x and 3.3x "
                   "cheaper to resize with and softer. Example: --resample bilinear")
@click.pass_context
def export_cmd(ctx, out, where, exclude_flags, exclude_verdicts, all_members, size, fit_mode, dtype, method,
               channels, split_dirs, fmt, workers, resample):
    """Write the database's images (one per duplicate group by default) as one N x C x H x W
    array in OUT.npz (key x), with OUT.csv mapping each row to its file, frame, split,
    group and keeper. Streams in chunks: memory holds one chunk, whatever N.

    \b
    Examples:
      photoqa export clean.npz --size 224 224 --normalize equalize
      photoqa export train.npz --where "path LIKE '%/train/%'" --exclude-flags dark,blurry --dtype uint8
    """
    from indexer.commands.export import ExportOptions, export
    from indexer.commands.leakage import split_of_folders
    from indexer.exposure.flags import FLAG_NAMES
    from indexer.match.verdict import VERDICTS

    flags = tuple(f.strip() for f in exclude_flags.split(",") if f.strip()) if exclude_flags else ()
    verdicts = tuple(v.strip() for v in exclude_verdicts.split(",") if v.strip()) if exclude_verdicts else ()
    if [f for f in flags if f not in FLAG_NAMES] or [v for v in verdicts if v not in VERDICTS]:
        _fail(f"unknown flag or verdict; flags: {', '.join(FLAG_NAMES)}; verdicts: {', '.join(VERDICTS)}",
              EXIT_USAGE)
    if dtype == "uint8" and method == "zscore":
        _fail("--normalize zscore gives negative values: use --dtype float32", EXIT_USAGE)
    session = _session(ctx, readonly=True)
    opts = ExportOptions(size=tuple(size), fit=fit_mode, dtype=dtype, normalize=method, channels=int(channels),
                         workers=workers or None, resample=resample)
    try:
        result = export(session.engine, out, opts, where=where, exclude_flags=flags, exclude_verdicts=verdicts,
                        keepers_only=not all_members,
                        split=split_of_folders(list(split_dirs)) if split_dirs else None)
    except Exception as exc:  # noqa: BLE001 - a bad --where is a message
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError):
            _fail(f"--where: {str(exc).splitlines()[0]}", EXIT_USAGE)
        raise
    if fmt == "json":
        from indexer.commands.output import write_json

        write_json(result.as_dict())
    else:
        click.echo(f"{result.rows} images -> {result.out} {tuple(result.shape)} {dtype}; index {result.index}")
    for path, why in result.skipped[:5]:
        click.echo(f"skipped: {path} ({why})", err=True)


@main.command("stack-stats")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="OUT.npz",
              help="Where to write the per-pixel arrays (default ./<FILE name>.stats.npz). "
                   "Example: --out det.stats.npz")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="Grids as text, or one JSON object per stack. Example: --format json")
def stack_stats(file, out, fmt):
    """Per-pixel statistics of the frames of an array stack FILE (.npy/.npz): mean,
    variance, minimum, maximum, a per-pixel histogram of counts, hot and dead sites.
    Reads the stack in batches from a memory map; no database.

    \b
    Examples:
      photoqa stack-stats detector.npy
      photoqa stack-stats set.npz --out set.stats.npz --format json
    """
    from indexer.commands.stackstats import render_text, stack_stats as compute, write_npz
    from indexer.errors import DecodeError

    try:
        results = compute(file)
    except DecodeError as exc:
        _fail(f"{file}: {exc.message}", EXIT_USAGE)
    target = out or Path(file.name + ".stats.npz")
    write_npz(results, target)
    if fmt == "json":
        from indexer.commands.output import write_json

        write_json([r.as_dict() for r in results])
    else:
        click.echo(render_text(results))
    click.echo(f"per-pixel statistics written to {target}", err=True)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--workers", "-j", type=click.IntRange(0), default=None,
              help="Worker processes (default: one per core; 1 runs in this process). Example: -j 4")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="Summary as text or as one JSON object. Example: --format json")
@click.option("--strict", is_flag=True,
              help=f"Exit with {EXIT_FILES_FAILED} if any file under PATHS failed, in this run or before "
                   "(unchanged since, so not retried). Example: --strict")
@click.option("--verbose", "-v", is_flag=True, help="One line per file on stderr. Example: -v")
@click.option("--sensor", metavar="NAME", default=None,
              help="Array stacks (.npy/.npz) are raw frames of the detector NAME: per-pixel "
                   "statistics and its hot and dead sites are kept. Example: --sensor det7x7")
@click.option("--cluster", metavar="ADDRESS|local:N", default=None,
              help="Decode and measure on a Dask cluster (pip install 'photoqa[cluster]'): a "
                   "scheduler whose workers see PATHS at the same paths, or local:N worker "
                   "processes here; --workers is then unused (docs/CLUSTER.md; default [index] "
                   "cluster). Example: --cluster tcp://10.0.0.5:8786")
@click.pass_context
def index(ctx, paths, workers, fmt, strict, verbose, sensor, cluster):
    """Index PATHS (files or folders, recursively) into the database.

    Unchanged files (same path, size and mtime) are skipped; changed ones re-measured;
    a moved file keeps its row; a file gone from disk is marked missing. Array stacks
    (.npy, .npz: (H, W), (N, H, W) or (N, C, H, W)) give one row per frame, path
    FILE#FRAME (FILE#KEY:FRAME in a .npz). Files that
    cannot be decoded become rows in `failures` and never stop the run; the first five
    are named on stderr, with the query that lists them all.

    \b
    Examples:
      photoqa index ~/Pictures /mnt/card
      photoqa --db lab.db index frames/ --workers 2 --format json
    """
    if not cluster:  # the workers' imports overlap this command's (pools.prestart)
        _prestart(ctx, list(paths), workers)
    with _imports_outside_collection(ctx):
        from indexer.commands.index import run_index

        session = _session(ctx, create=True)
    ctx.call_on_close(session.engine.dispose)  # see _skip_exit_collection
    if ctx.obj.get(_PROCESS):
        _skip_exit_collection()
    cluster = session.settings.index.cluster if cluster is None else cluster
    cluster_errors: tuple = ()  # the cluster module (and Dask) are imported only when used
    if cluster:
        from indexer.pipeline.cluster import ClusterError, parse_cluster

        cluster_errors = (ClusterError,)
        try:
            parse_cluster(cluster)
        except ClusterError as exc:
            _fail(str(exc), EXIT_USAGE)
    try:
        summary = run_index(session, list(paths), workers=workers, verbose=verbose, sensor=sensor,
                            cluster=cluster)
    except cluster_errors as exc:
        _fail(str(exc))
    if fmt == "json":
        from indexer.commands.output import write_json

        write_json(summary.as_dict())
    else:
        figures = {k: v for k, v in summary.as_dict().items()
                   if summary.frames or k not in ("frames", "frames_per_second")}  # array stacks only
        if summary.frames and not summary.worked:
            figures.pop("images_per_second")  # a stack-only run: its rate is in frames
        click.echo(" ".join(f"{k.replace('_', ' ')}: {v}" for k, v in figures.items()))
    if summary.failed_paths:
        from db.queries import failures_of

        shown = 5
        for path, kind, message in failures_of(session.engine, summary.failed_paths[:shown]):
            click.echo(f"failed: {path} ({kind}: {message})", err=True)
        more = len(summary.failed_paths) - shown
        listing = 'photoqa sql "SELECT path, kind, message FROM failures"'
        click.echo(f"{more} more: {listing}" if more > 0 else f"all failures: {listing}", err=True)
    if summary.interrupted:
        _fail("interrupted: what is counted above was stored; run the same command again to go on",
              EXIT_INTERRUPTED)
    if strict and summary.failed_paths:
        sys.exit(EXIT_FILES_FAILED)


def _prestart(ctx: click.Context, paths: list[Path], workers: int | None) -> None:
    """Start the workers' forkserver before this command's imports (``pools.prestart``):
    for a folder or several files only when this process runs this one command
    (:data:`_PROCESS`: a test process keeps one forkserver for all its runs), with the
    sensor kernels when the settings learn rendered frames with two workers or more.
    The settings are read here by the NumPy- and SQLAlchemy-free path ``sql`` uses (~1
    ms); a configuration error is left for the session to report."""
    from db.sqlite_ro import plain_path
    from indexer.config import ConfigError, load_settings
    from indexer.pipeline.pools import prestart, warms_kernels, worker_count

    try:
        settings = load_settings(ctx.obj["config"] or os.environ.get("PHOTOQA_CONFIG") or None,
                                 plain_path(ctx.obj["db"]))
    except ConfigError:
        return
    if settings.index.cluster:
        return  # decoded on a Dask cluster: no local decode workers
    sensor = settings.sensor
    many = len(paths) > 1 or any(p.is_dir() for p in paths)
    kernels = warms_kernels(sensor.enabled and sensor.rendered_frames,
                            worker_count(workers if workers is not None else settings.index.workers),
                            2 if many else 1)
    prestart(paths, kernels=kernels, many=bool(ctx.obj.get(_PROCESS)))


@main.command()
@click.argument("statement")
@click.option("--format", "fmt", type=FORMAT, default="table",
              help="Output as an aligned table, JSON (a list of objects) or CSV. Example: --format csv")
@click.option("--blobs", type=click.Choice(["size", "hex", "base64"]), default="size", show_default=True,
              help="BLOB columns (thumb, hist, phash_d4...) as <N bytes>, or their content in hex or "
                   "base64 (or select hex(column) in the statement). Example: --blobs base64")
@click.pass_context
def sql(ctx, statement, fmt, blobs):
    """Run one read-only SQL STATEMENT against the database.

    The database is opened read-only: INSERT, UPDATE, DELETE and DDL are refused and
    change nothing. On PostgreSQL only queries run (SELECT, WITH, VALUES, TABLE), in a
    READ ONLY transaction; COPY and functions acting on the server's files or sessions
    (pg_read_file, lo_export...) are refused. `hamming(a, b)` counts differing bits of two hashes. Tables and
    example queries: docs/SCHEMA.md. BLOB columns print as <N bytes> unless --blobs
    hex|base64 (layouts: docs/SCHEMA.md).

    \b
    Examples:
      photoqa sql "SELECT path, luma_mean FROM images WHERE luma_mean < 0.15"
      photoqa sql "SELECT path, thumb FROM images LIMIT 1" --format json --blobs base64
      photoqa sql "SELECT a.path, b.path FROM images a JOIN images b ON a.id < b.id
                   WHERE hamming(a.phash, b.phash) <= 6" --format csv
    """
    from db.health import fatal_message
    from db.sqlite_ro import QueryError, ReadOnlyViolation
    from indexer.commands.output import emit, encode_blobs

    try:
        columns, rows = _run_sql(ctx, statement)
    except ReadOnlyViolation as exc:
        _fail(str(exc), EXIT_REFUSED)
    except QueryError as exc:
        if exc.__cause__ is not None and fatal_message(exc.__cause__):
            _fail(_database_message(exc.__cause__, ctx, "sql"))
        _fail(f"SQL error: {exc}")
    rows, had_blobs = encode_blobs(rows, blobs)
    emit(columns, rows, fmt)
    if had_blobs and blobs == "size":
        click.echo("photoqa: BLOB columns are shown as <N bytes>; --blobs hex or --blobs base64 "
                   "(or hex(column) in the statement) gives their content", err=True)


def _run_sql(ctx: click.Context, statement: str) -> tuple[list[str], list[tuple]]:
    """``sql`` on a SQLite file by the standard library (db.sqlite_ro: SQLAlchemy's import
    alone is ~0.26 s of CPU, half the command's budget), on a URL by db.queries.run_sql."""
    from db import sqlite_ro

    path = sqlite_ro.plain_path(ctx.obj["db"])
    if path is None:
        from db.queries import run_sql

        return run_sql(_session(ctx, readonly=True).engine, statement)
    from db.health import sniff_sqlite
    from indexer.config import ConfigError, load_settings

    if (why := sniff_sqlite(path)) is not None:
        _fail(why)  # as _session: before SQLite's busy handler spends its timeout on a non-database

    try:
        settings = load_settings(ctx.obj["config"] or os.environ.get("PHOTOQA_CONFIG") or None, path)
    except ConfigError as exc:
        _fail(f"configuration: {exc}")
    try:
        return sqlite_ro.run_sql(path, statement, busy_timeout_ms=settings.database.busy_timeout_ms)
    except FileNotFoundError as exc:
        _fail(str(exc))


@main.command()
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--workers", "-j", type=click.IntRange(0), default=None,
              help="Worker processes (default: all cores). Example: -j 2")
@click.pass_context
def demo(ctx, folder, workers):
    """Generate a sample folder and run photoqa on it end to end.

    Writes synthetic scenes, copies of them and one corrupt file into FOLDER (default
    ./photoqa-demo), indexes them into FOLDER/photoqa.db and prints what it found. The
    demo uses its own settings (FOLDER/photoqa-demo.toml), not photoqa.toml or --config.

    \b
    Example:
      photoqa demo /tmp/demo && photoqa --db /tmp/demo/photoqa.db sql "SELECT * FROM failures"
    """
    from indexer.commands.demo import run_demo

    run_demo(folder or Path("photoqa-demo"), workers=workers)


@main.group("db")
def db_group():
    """Database maintenance.

    \b
    Example:
      photoqa --db photos.db db upgrade
    """


@db_group.command("upgrade")
@click.pass_context
def db_upgrade(ctx):
    """Bring the database schema to the newest revision (done on open anyway).

    \b
    Example:
      photoqa --db photos.db db upgrade
    """
    from db.migrate import current_revision

    session = _session(ctx)
    click.echo(f"database at revision {current_revision(session.engine)}")


@db_group.command("check")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              help="An aligned table or one JSON object. Example: --format json")
@click.pass_context
def db_check(ctx, fmt):
    """Check the database (SQLite: PRAGMA integrity_check, every page) and the files
    beside it: each sensor accumulator in <db>.sensors/ (read whole, zip CRCs checked;
    on PostgreSQL every row of its table sensor_tiles) and the saved matching index
    <db>.match-index (a cache: rebuilt when unusable).
    Exits 1 when anything is damaged.

    \b
    Example:
      photoqa --db photos.db db check
    """
    from indexer.commands.dbcheck import check
    from indexer.commands.output import emit, write_json

    session = _session(ctx, readonly=True)
    found = check(session)
    if fmt == "json":
        write_json({"ok": all(c.ok for c in found),
                    "checked": [{"what": c.what, "ok": c.ok, "detail": c.detail} for c in found]})
    else:
        emit(["what", "state", "detail"], [(c.what, "ok" if c.ok else "FAILED", c.detail) for c in found], "table")
    if not all(c.ok for c in found):
        sys.exit(EXIT_ERROR)


@db_group.command("backup")
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace DEST if it exists. Example: --force")
@click.pass_context
def db_backup(ctx, dest, force):
    """Copy the SQLite database to DEST consistently, even while `photoqa watch` writes
    (SQLite's online backup API), with its sensor accumulators (DEST.sensors/) and
    matching index (DEST.match-index): `--db DEST` then opens the copy whole.
    A PostgreSQL database (its sensor statistics included): use pg_dump.

    \b
    Example:
      photoqa --db photos.db db backup /mnt/backup/photos-2026-01-01.db
    """
    from indexer.commands.dbcheck import BackupError, backup

    session = _session(ctx, readonly=True)
    try:
        done = backup(session, dest, force=force)
    except BackupError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"backup to {dest}: {exc.strerror or exc}")
    extra = f", {done.sensor_files} sensor files" + (", the matching index" if done.match_index else "")
    click.echo(f"backed up to {done.database}: {done.pages} pages{extra}")


@main.command("config")
@click.option("--format", "fmt", type=click.Choice(["toml", "json"]), default="toml",
              help="TOML to paste into photoqa.toml, or one JSON object. Example: --format json")
@click.pass_context
def show_config(ctx, fmt):
    """Print every setting with its value after photoqa.toml and --config are applied.

    \b
    Examples:
      photoqa --config mine.toml config
      photoqa config > photoqa.toml      # then edit the values to change
    """
    from indexer.config import ConfigError, as_dict, load_settings, to_toml
    from db.engine import resolve_url, sqlite_path
    from indexer.commands.output import write_json

    try:
        settings = load_settings(ctx.obj["config"], sqlite_path(resolve_url(ctx.obj["db"])))
    except ConfigError as exc:
        _fail(f"configuration: {exc}")
    if fmt == "json":
        write_json(as_dict(settings))
    else:
        click.echo(to_toml(as_dict(settings)), nl=False)


@main.command()
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--workers", "-j", type=click.IntRange(0), default=None,
              help="Worker processes decoding files (default: one per core). Example: -j 2")
@click.option("--polling", is_flag=True,
              help="Poll the folders instead of using inotify: for network shares (NFS, SMB) and "
                   "when inotify watches run out. Example: --polling")
@click.option("--settle", type=click.FloatRange(0.1), default=2.0, show_default=True, metavar="SECONDS",
              help="A file whose size and mtime hold still this long is complete (used where no "
                   "close-after-write is reported, e.g. with --polling). Example: --settle 5")
@click.option("--rescan", type=click.FloatRange(0), default=60.0, show_default=True, metavar="MINUTES",
              help="Scan the folders again every MINUTES while watching (0: never), for changes no "
                   "event reported (inotify queue overflow, other machines writing to a share). "
                   "Example: --rescan 10")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Also append the per-file log lines to FILE. Example: --log-file /var/log/photoqa.log")
@click.option("--force", is_flag=True,
              help="Start even if another live `photoqa watch` already watches these folders (or folders "
                   "around or inside them) for this database; without it that is refused with exit code 5. "
                   "Example: --force")
@click.pass_context
def watch(ctx, paths, workers, polling, settle, rescan, log_file, force):
    """Index PATHS now and then every photo as it lands, until SIGINT/SIGTERM.

    First a catch-up scan (same rules as `index`), then file-system events: a file is
    read once complete (closed after writing, or unchanged for --settle seconds);
    temporary names (.tmp, .part, .crdownload, ~, dotfiles) are ignored; a rename keeps
    its row; a deletion marks it missing. One line per file goes to stderr. Ctrl-C or
    SIGTERM stops within 5 s; the next start catches up. `photoqa status` shows progress.

    \b
    Examples:
      photoqa --db lab.db watch /data/incoming --workers 2
      photoqa --db postgresql+psycopg://me@host/photoqa watch /mnt/share --polling --settle 5
    """
    from indexer.watch import WatchError, WatchOptions
    from indexer.watch.daemon import AlreadyWatched, watch_command
    from indexer.watch.log import LineLog

    session = _session(ctx, create=True)
    log = LineLog(log_file=log_file)
    try:
        options = WatchOptions(workers=workers, settle=settle, polling=polling, rescan=rescan * 60, force=force)
        watch_command(session, list(paths), options, log)
    except AlreadyWatched as exc:
        _fail(str(exc), EXIT_BUSY)
    except WatchError as exc:
        _fail(str(exc))
    finally:
        log.close()


@main.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              help="An aligned table or one JSON object. Example: --format json")
@click.pass_context
def status(ctx, fmt):
    """Show files indexed, missing, failed and pending, the last activity, and whether a
    `photoqa watch` daemon is running on this database (from its heartbeat).

    \b
    Example:
      photoqa --db lab.db status --format json
    """
    from indexer.commands.output import emit, write_json
    from indexer.watch.status import rows, status as watch_status, status_of

    report = _read_sqlite(ctx, lambda _settings, reads: status_of(reads.counts(), reads.active_daemons()))
    if report is None:
        report = watch_status(_session(ctx, readonly=True).engine)
    if fmt == "json":
        write_json(report.as_dict())
    else:
        emit(["field", "value"], rows(report), "table")


@main.command()
@click.option("--format", "fmt", type=FORMAT, default="table",
              help="A table (one line per file), one JSON object (groups with every pair's evidence), or CSV "
                   "(one row per file: group, role, path, relation, bytes, verdict). Example: --format csv")
@click.option("--verdicts", default=None, metavar="LIST",
              help="Comma-separated verdicts that join images into a group (default: [match] group_verdicts, "
                   "same_file,same_pixels,derived: copies of one shot); add raw_jpeg to group a RAW with "
                   "the camera's JPEG of it, exposure_variant or similar to group related shots too. "
                   "Example: --verdicts same_file,same_pixels")
@click.option("--min-size", type=click.IntRange(2), default=2, show_default=True,
              help="Only groups with at least this many files. Example: --min-size 3")
@click.option("--sort", type=click.Choice(["bytes", "size", "count", "path"]), default="bytes", show_default=True,
              help="Order of the groups: bytes that could be freed, the keeper's file size, number of files, "
                   "or the keeper's path. Example: --sort count")
@click.option("--under", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Only groups with a file under DIR; such a group is shown whole, its header saying how many of "
                   "its files lie outside DIR (JSON: outside_under). Example: --under ~/Pictures/2024")
@click.option("--absolute", is_flag=True,
              help="Print full paths instead of paths relative to the folder all listed files share. "
                   "Example: --absolute")
@click.option("--prefer-in", "prefer_in", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              metavar="DIR", help="Suggest files under DIR as keepers first (repeatable; adds to [dupes] prefer_in, "
                                  "for this report). Example: --prefer-in ~/Pictures/masters")
@click.option("--related", is_flag=True,
              help="List related shots instead of copies: brackets and HDR sources, RAW+JPEG pairs, bursts "
                   "and re-shoots of one camera, with time and exposure steps; nothing to remove. "
                   "Example: --related")
@click.option("--rematch", is_flag=True,
              help="Search all pairs of the database again first (after changing [match] or [verdict] settings). "
                   "Example: --rematch")
@click.option("--not-duplicates", "not_duplicates", nargs=2, type=click.Path(dir_okay=False, path_type=Path),
              metavar="A B", help="Record that files A and B are not duplicates: they never share a group again, "
                                  "whatever matching finds later. Example: --not-duplicates a.jpg b.jpg")
@click.option("--not-duplicates-group", "split_id", type=int, default=None, metavar="ID",
              help="Record that no two files of group ID are duplicates: the group falls apart for good. "
                   "Example: --not-duplicates-group 1204")
@click.option("--keep", "keep_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Record FILE as its group's keeper, over the suggested one (lasts across runs). "
                   "Example: --keep ~/Pictures/IMG_0108.JPG")
@click.option("--apply", "apply_action", metavar="ACTION",
              help="Act on every copy of the listed groups (never a keeper): trash (freedesktop.org trash), "
                   "move:DIR (keeps the paths below the files' shared folder), hardlink or symlink (replace a "
                   "byte-identical copy by a link to its keeper; undo copies the keeper's bytes back, so it needs "
                   "the keeper to still hold them) or delete (cannot be undone). Sidecars (.xmp, .THM, .AAE) "
                   "travel with a trashed or moved photo. Prints the plan and changes nothing without --yes; "
                   "journalled, `photoqa undo` reverses it. Example: --apply trash")
@click.option("--yes", is_flag=True, help="Carry out the --apply plan. Example: --apply move:/mnt/dupes --yes")
@click.option("--reference", multiple=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="With --apply: never touch files under DIR (repeatable; adds to [dupes] reference). "
                   "Example: --reference ~/Pictures/masters")
@click.option("--group", "group_id", type=int, default=None, metavar="ID",
              help="With --apply: only this group (its id as listed). Example: --group 1204")
@click.pass_context
def dupes(ctx, fmt, verdicts, min_size, sort, under, absolute, prefer_in, related, rematch, not_duplicates,
          split_id, keep_file, apply_action, yes, reference, group_id):
    """Groups of copies of one shot, each file listed once against the keeper.

    Every pair is proven by aligned pixels and says what it is: same_file (equal
    bytes), same_pixels (equal decoded pixels), derived (resized, recompressed, cropped,
    shifted, rotated, mirrored, converted, or an exposure edit of one capture); related
    shots are raw_jpeg (one capture as RAW and JPEG), exposure_variant (another
    exposure: a bracket frame, an HDR source) and similar (a burst neighbour, a
    re-shoot). Files whose camera body or capture time differ are never copies of each
    other. Each group names a suggested keeper and why (most pixels, RAW, lossless,
    largest file, sharpest, earliest capture), then each other file with its size and
    what it is relative to the keeper; the summary says how many files could be removed
    and the bytes they hold. Nothing is moved or deleted. A group's id is its keeper's
    image id, as in the image_groups table.

    \b
    Examples:
      photoqa dupes
      photoqa dupes --sort count --under ~/Pictures/2024
      photoqa dupes --format csv > dupes.csv
      photoqa dupes --related
      photoqa dupes --format json --verdicts same_file,same_pixels,derived,raw_jpeg
    """
    from indexer.commands import dupes as report_of
    from indexer.match.verdict import VERDICTS

    chosen = None if verdicts is None else tuple(v.strip() for v in verdicts.split(",") if v.strip())
    unknown = [v for v in chosen or () if v not in VERDICTS]
    if unknown:
        _fail(f"unknown verdict(s) {', '.join(unknown)}; choose from {', '.join(VERDICTS)}", EXIT_USAGE)
    if under is not None and not under.expanduser().is_dir():
        _fail(f"--under {under}: no such folder", EXIT_USAGE)
    under = None if under is None else under.expanduser()
    if not (rematch or not_duplicates or split_id is not None or keep_file or apply_action):
        # a report alone: on a SQLite file at the newest schema, read without SQLAlchemy
        def read(settings, reads):
            session = report_of.SqliteSession(settings, reads)
            if related:
                return report_of.related_report(session, under=under)
            return report_of.dupes_report(session, verdicts=chosen, min_size=min_size, sort=sort, under=under,
                                          prefer_in=[str(p) for p in prefer_in])

        report = _read_sqlite(ctx, read, groups=True)
        if report is not None:
            _print_dupes(report, related, fmt, absolute)
            return
    session = _session(ctx)
    if rematch:
        click.echo(f"rematched: {report_of.rematch(session)} pairs", err=True)
    try:
        if not_duplicates:
            report_of.decide(session, "not_duplicates", [str(p) for p in not_duplicates])
            click.echo("recorded: not duplicates", err=True)
        if split_id is not None:
            count = report_of.split_group(session, split_id)
            click.echo(f"recorded: the {count} files of group {split_id} are not duplicates of each other", err=True)
        if keep_file:
            report_of.decide(session, "keep", [str(keep_file)])
            click.echo(f"recorded: keep {keep_file}", err=True)
    except report_of.DecisionError as exc:
        _fail(str(exc), EXIT_USAGE)
    if related:
        report = report_of.related_report(session, under=under)
    else:
        report = report_of.dupes_report(session, verdicts=chosen, min_size=min_size, sort=sort, under=under,
                                        prefer_in=[str(p) for p in prefer_in])
    if apply_action:
        if related:
            _fail("--apply acts on duplicate groups, not on --related shots", EXIT_USAGE)
        _apply(session, report, apply_action, yes, reference, group_id, fmt)
        return
    _print_dupes(report, related, fmt, absolute)


def _print_dupes(report: dict, related: bool, fmt: str, absolute: bool) -> None:
    from indexer.commands import dupes as report_of
    from indexer.commands.output import emit, write_json

    if fmt == "json":
        write_json(report)
    elif fmt == "csv":
        emit(*(report_of.related_csv_rows(report) if related else report_of.csv_rows(report)), "csv")
    else:
        lines = (report_of.render_related if related else report_of.render_groups)(report, absolute=absolute)
        click.echo("\n".join(lines))


def _read_sqlite(ctx: click.Context, read, *, groups: bool = False):
    """``read(settings, reads)`` on the SQLite file of ``--db`` through the stdlib sqlite3
    (:mod:`db.sqlite_reads`: importing SQLAlchemy and the models alone is ~0.4 s of CPU,
    most of the 0.5 s `status` and `dupes` may take); None when the command must open its
    SQLAlchemy session instead: a URL, no file, a configuration error, a database not at
    the newest schema or (``groups``) whose groups a writer must rebuild for this
    configuration first, or any SQLite error (the session then reports it in the words
    every command uses)."""
    import sqlite3

    from db import sqlite_ro

    path = sqlite_ro.plain_path(ctx.obj["db"])
    if path is None or not path.is_file():
        return None
    from db.health import sniff_sqlite
    from db.migrate import newest_revision
    from db.sqlite_reads import open_reader
    from indexer.config import ConfigError, load_settings

    if sniff_sqlite(path) is not None:
        return None
    try:
        settings = load_settings(ctx.obj["config"] or os.environ.get("PHOTOQA_CONFIG") or None, path)
    except ConfigError:
        return None
    reads = open_reader(path, busy_timeout_ms=settings.database.busy_timeout_ms, newest_revision=newest_revision(),
                        group_key=settings.group_rule().key() if groups else None)
    if reads is None:
        return None
    try:
        with reads:
            return read(settings, reads)
    except sqlite3.Error:
        return None


def _apply(session, report, action_text, yes, reference, group_id, fmt):
    """``dupes --apply``: print the plan; with --yes carry it out (indexer.commands.act)."""
    from indexer.commands import act
    from indexer.commands.dupes import human_bytes
    from indexer.commands.output import emit, write_json

    try:
        action, dest = act.parse_action(action_text)
    except act.ActError as exc:
        _fail(str(exc), EXIT_USAGE)
    if action == "delete" and not yes:
        click.echo("delete cannot be undone: nothing is deleted without --yes", err=True)
    try:
        planned = act.plan(session, report, action, dest, reference=[str(r) for r in reference], group=group_id)
    except act.ActError as exc:
        _fail(str(exc), EXIT_USAGE)
    from db.actions import Busy

    try:
        outcome = act.apply(session, planned) if yes else act.Outcome(None, planned)
    except Busy as exc:
        _fail(str(exc), EXIT_BUSY)
    rows = [(p.action + (" (sidecar)" if p.sidecar_of else ""), p.path, p.destination or "", p.keeper_path, p.size,
             "skipped: " + p.reason if p.reason else ("done" if yes else "planned")) for p in planned]
    freed = outcome.bytes_freed if yes else sum(p.size for p in planned if not p.reason)
    if fmt == "json":
        write_json({"batch": outcome.batch, "applied": bool(yes), "bytes": freed,
                    "actions": [dict(zip(("action", "path", "destination", "keeper", "bytes", "state"), r),
                                     action=p.action, sidecar_of=p.sidecar_of) for r, p in zip(rows, planned)]})
    elif fmt == "csv":
        emit(["action", "path", "destination", "keeper", "bytes", "state"], rows, "csv")
    else:
        emit(["action", "path", "destination", "keeper", "bytes", "state"], rows, "table",
             title=f"{'applied' if yes else 'plan'}: {len(planned)} files, {human_bytes(freed)}")
        if yes:
            click.echo(f"batch {outcome.batch}: {outcome.done} done, {outcome.skipped} skipped; "
                       f"undo with: photoqa undo {outcome.batch}")
        else:
            click.echo("nothing changed: add --yes to carry it out")
    if any(p.reason for p in planned):
        sys.exit(EXIT_SKIPPED)


@main.command()
@click.argument("batch", required=False)
@click.pass_context
def undo(ctx, batch):
    """Put back the files of an `--apply` batch (default: the last one), byte for byte
    with their modification times; the index follows. Trashed and moved files (and their
    sidecars) are moved back; a path replaced by a hardlink or symlink gets its own bytes
    back, copied from the keeper and checked against the journalled SHA-256, so that
    needs the keeper to still hold them. Deleted files cannot come back.

    \b
    Examples:
      photoqa undo
      photoqa undo 20261202-184501-3fa2
    """
    from indexer.commands import act

    from db.actions import Busy

    session = _session(ctx)
    try:
        done = act.undo(session, batch)
    except Busy as exc:
        _fail(str(exc), EXIT_BUSY)
    if done.batch is None:
        _fail("nothing to undo: no batch in the journal", EXIT_USAGE)
    click.echo(f"batch {done.batch}: {done.restored} files restored, {len(done.skipped)} skipped")
    for path, why in done.skipped:
        click.echo(f"skipped: {path} ({why})", err=True)
    if done.skipped:
        sys.exit(EXIT_SKIPPED)


@main.command()
@click.option("--format", "fmt", type=FORMAT, default="table", help="Output format. Example: --format json")
@click.pass_context
def actions(ctx, fmt):
    """The batches of `photoqa dupes --apply`, oldest first: action, files done, skipped
    and undone, bytes.

    \b
    Example:
      photoqa actions --format json
    """
    from db import actions as dbactions
    from indexer.commands.act import reconcile
    from indexer.commands.output import emit

    session = _session(ctx)
    reconcile(session)
    emit(["batch", "started", "action", "files", "done", "skipped", "undone", "bytes"],
         dbactions.batches(session.engine), fmt)


@main.command()
@click.option("--format", "fmt", type=FORMAT, default="table",
              help="Output as tables, one JSON object, or CSV (one row per flag and per pair). "
                   "Example: --format json")
@click.option("--flag", "flag", metavar="NAME",
              help="Only images with this flag (dark, light, blurry, low_information, grayscale, odd_size, "
                   "odd_aspect_ratio, clipped_highlights, crushed_shadows, low_contrast, underexposed, "
                   "overexposed), and only the exposure pairs with such an image. Example: --flag dark")
@click.option("--refresh", is_flag=True,
              help="First recompute every image's stored flags (current [flags] thresholds) and every "
                   "stored pair's delta EV from the stored measurements. Example: --refresh")
@click.pass_context
def exposure(ctx, fmt, flag, refresh):
    """Badly exposed images, and how shots of one scene differ in exposure.

    Images: every flag raised while indexing, with the measured value and the threshold
    it crossed (thresholds: section [flags] of photoqa.toml), and the exposure estimate
    in EV (mean linear luminance against 18% grey). Pairs: exposure variants (and copies
    or burst neighbours whose exposure differs) with delta EV measured on the pixels (B
    over A, positive when B is brighter) and predicted by EXIF (time x ISO / f-number^2);
    a large measured - predicted shows a misfired flash, exposure compensation or an
    in-camera HDR merge. odd_size is judged against the images present when the report
    is read: a size is odd when fewer than [flags] odd_size_min_share (2%) of the other
    images are within a factor of 2 of it (value: that share).

    \b
    Examples:
      photoqa exposure
      photoqa exposure --flag dark --format json
      photoqa exposure --refresh --format csv > exposure.csv
    """
    from indexer.commands.exposure import (CSV_COLUMNS, ExposureError, check_flag, csv_rows,
                                        exposure_report, image_rows, pair_rows, refresh as run_refresh)
    from indexer.commands.output import emit, write_json

    try:
        check_flag(flag)
    except ExposureError as exc:
        _fail(str(exc), EXIT_USAGE)
    session = _session(ctx, readonly=not refresh)
    if refresh:
        flagged, refined = run_refresh(session)
        click.echo(f"refreshed: {flagged} images flagged, {refined} pairs measured", err=True)
    report = exposure_report(session, flag=flag)
    if fmt == "json":
        write_json(report)
    elif fmt == "csv":
        emit(CSV_COLUMNS, csv_rows(report), "csv")
    else:
        emit(["path", "ev", "flags: value (threshold)"], image_rows(report), "table", title="flagged images")
        emit(["a", "b", "delta EV", "EXIF", "measured - EXIF"], pair_rows(report), "table",
             title="\nexposure pairs (delta EV of b over a)")


@main.command()
@click.argument("file_a", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("file_b", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the PNG outputs (created if needed; refused when not empty unless "
                   "--force; inputs are never replaced). Example: --out diff-2600-2601/")
@click.option("--force", is_flag=True,
              help="Write into a non-empty --out folder, replacing outputs of the same names. "
                   "Example: --out diff/ --force")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="Measurements as text lines or one JSON object. Example: --format json")
@click.pass_context
def diff(ctx, file_a, file_b, out_dir, force, fmt):
    """Compare two shots of one scene: align FILE_B to FILE_A, show how they differ.

    Any pair `photoqa dupes` reports can be compared: B is first turned, scaled and moved
    onto A (rotation/flip, scale and offset measured on thumbnails), both are brought to
    the coarser of the two pixel grids and cut to their overlap, then B is aligned to a
    sub-pixel. Both are made linear (RAW developed linearly: no auto-brightening, no white
    balance, linear gamma; JPEG/PNG decoded from sRGB, or BT.709 when that fits the pair
    clearly better), then written to --out: a_minus_b.png and b_minus_a.png (clipped
    differences), diff_sum.png (both superimposed), transfer_curve.png (B against A per
    level, with the identity line), histogram_a.png, histogram_b.png and
    histogram_diff.png (per channel). Prints the shift, the correlation and delta EV (B
    over A), and the EXIF prediction when both files carry exposure time, ISO and
    f-number. Two files that do not show one scene are refused (no delta EV).

    \b
    Examples:
      photoqa diff IMG_2600.jpg IMG_2601.jpg --out diff/
      photoqa diff a.CRW b.CRW --out diff/ --format json
    """
    from indexer.commands.diff import DiffError, diff_files, diff_text
    from indexer.commands.output import write_json

    try:
        summary = diff_files(file_a, file_b, out_dir, force=force)
    except DiffError as exc:
        _fail(str(exc))
    if fmt == "json":
        write_json(summary.as_dict())
    else:
        for line in diff_text(summary):
            click.echo(line)


@main.command()
@click.option("--camera", "sensor", type=int, metavar="ID",
              help="Only this sensor (the id column of the report). Example: --camera 2")
@click.option("--format", "fmt", type=FORMAT, default="table",
              help="Output as a table, one JSON object, or CSV (one row per defect). Example: --format json")
@click.option("--export-badpixels", "export_dir", type=click.Path(file_okay=False, path_type=Path),
              metavar="DIR", help="Write each sensor's defects for dcraw/LibRaw (`col row first_seen` lines) and "
                                  "RawTherapee (`<make> <model> [serial].badpixels`). Example: --export-badpixels ~/.rt")
@click.option("--map", "map_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.png",
              help="Draw the defect positions, enlarged, over the sensor area (one file per sensor "
                   "when there are several: FILE-<id>.png). Example: --map s40.png")
@click.pass_context
def hotpixels(ctx, sensor, fmt, export_dir, map_file):
    """Hot, dead and stuck photosites learnt from every indexed frame, per camera body.

    photoqa keeps running per-photosite statistics for each camera body and sensor size
    while it indexes (RAW CFA data, and camera-tagged JPEG/HEIC/PNG/TIFF: a budgeted
    sample of large frames, see [sensor] sample_megapixels). A site is hot or dead when
    it stands out from its same-colour neighbours in most frames (90% by default), or
    in most frames from the date it first stood out on (first seen); a single frame
    never makes a defect, and a sensor with too few frames says so instead of guessing.
    The frames column is how many frames a map rests on; updated, when it last learnt;
    learning, whether its body maps (a new or changing map: a larger share of its frames,
    [sensor] learn_megapixels) or learns from a sample, and since which frame its defect
    list has not changed.

    \b
    Examples:
      photoqa hotpixels
      photoqa hotpixels --camera 2 --format json --export-badpixels badpixels/ --map s40.png
    """
    from indexer.commands.hotpixels import export_all, seen, sensor_reports, write_maps
    from indexer.commands.output import camera_name, emit, write_json

    session = _session(ctx)
    reports = sensor_reports(session, sensor)
    if sensor is not None and not reports:
        _fail(f"no sensor with id {sensor}; run `photoqa hotpixels` to list them")
    if fmt == "json":
        write_json({"sensors": [r.as_dict() for r in reports]})
    elif fmt == "csv":
        rows = [(r.id, r.make, r.model, r.serial, d.x, d.y, d.kind, round(d.rate, 4), d.frames,
                 seen(d.first_seen) or "", seen(d.last_seen) or "") for r in reports for d in r.defects]
        emit(["sensor", "make", "model", "serial", "x", "y", "kind", "rate", "frames", "first_seen",
              "last_seen"], rows, "csv")
    else:
        rows = [(r.id, camera_name(r.make, r.model), r.serial, f"{r.width}x{r.height}", r.kind,
                 r.frames, f"{r.updated_at:%Y-%m-%d %H:%M}" if r.updated_at else "", r.learning_text, r.status)
                for r in reports]
        emit(["id", "camera", "serial", "size", "layout", "frames", "updated", "learning", "status"], rows, "table",
             title="sensors")
        for r in reports:
            if r.defects and r.frames >= r.required:
                shown = r.defects[:20]
                emit(["x", "y", "kind", "rate", "mean residual", "first seen", "last seen"],
                     [(d.x, d.y, d.kind, f"{d.rate:.0%}", round(d.mean_residual, 1), r.first_seen_text(d),
                       seen(d.last_seen) or "") for d in shown], "table",
                     title=f"sensor {r.id}: {r.status}" + (f" (first {len(shown)})" if len(r.defects) > 20 else ""))
    for path in (export_all(reports, export_dir) if export_dir else []):
        click.echo(f"wrote {path}", err=True)
    for path in (write_maps(reports, map_file) if map_file else []):
        click.echo(f"wrote {path}", err=True)


@main.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="TCP port to listen on. Example: --port 9000")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but a loopback address needs --token (one is made up and "
                   "printed when missing) and turns actions off unless --allow-actions. Example: --host 0.0.0.0")
@click.option("--token", envvar="PHOTOQA_SERVE_TOKEN", default=None,
              help="Secret every request must carry (?token=... once, then a cookie; env PHOTOQA_SERVE_TOKEN). "
                   "Example: --token \"$(openssl rand -hex 16)\"")
@click.option("--allow-actions", is_flag=True,
              help="Allow keep / not duplicates / trash / undo from the pages when bound beyond localhost "
                   "(on by default on localhost). Example: --host 0.0.0.0 --allow-actions")
@click.pass_context
def serve(ctx, port, host, token, allow_actions):
    """Browse the database: duplicate groups side by side, exposure, sensors, SQL.

    A local web application (Starlette on uvicorn; nothing loaded from the network):
    overview with charts, duplicate groups with thumbnails, keepers and each pair's
    evidence, a pair view with the two pictures aligned and their differences, every
    image's measurements, flagged exposures, sensor defect maps, and a read-only SQL
    box. Decisions and actions (keep this one, not duplicates, trash the others, undo)
    go through the same code as `photoqa dupes --keep/--not-duplicates/--apply` and
    `photoqa undo`, each after a confirmation page. Ctrl-C stops it.

    \b
    Examples:
      photoqa --db ~/photos.db serve            # then open http://127.0.0.1:8765/
      photoqa serve --host 0.0.0.0 --port 9000  # prints the URL with its token
    """
    from indexer.web.app import ServeOptions
    from indexer.web.server import ServeError, check_port, prepare, run, url_of

    options, made = prepare(ServeOptions(db=ctx.obj["db"], config=ctx.obj["config"], host=host, port=port,
                                         token=token, actions=True if allow_actions else None))
    _session(ctx, readonly=True).engine.dispose()  # no database, a bad one or bad config: one line, before binding
    try:
        check_port(host, port)
    except ServeError as exc:
        _fail(str(exc))
    if made:
        click.echo("photoqa: bound beyond localhost without --token: made one up", err=True)
    click.echo(f"photoqa serve: {url_of(options)} (actions {'on' if options.actions_enabled else 'off'}; "
               "Ctrl-C stops)", err=True)
    run(options)


@main.command()
@click.option("--html", "html_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the static pages (created if needed; must be empty unless --force). "
                   "Example: --html photoqa-report/")
@click.option("--pair-pictures/--no-pair-pictures", default=True, show_default=True,
              help="Include each pair page's aligned pictures and differences (both files decoded again "
                   "at full size: the slow part). Example: --no-pair-pictures")
@click.option("--per-page", type=click.IntRange(1, 1000), default=None,
              help="Duplicate groups on each groups-N.html page (default: as many as photoqa serve shows). "
                   "Example: --per-page 100")
@click.option("--force", is_flag=True, help="Write into a non-empty folder (files of the same names replaced). "
                                            "Example: --html report/ --force")
@click.pass_context
def report(ctx, html_dir, pair_pictures, per_page, force):
    """Write the pages of `photoqa serve` as static files: for sharing or as a CI artifact.

    The overview, the duplicate groups (--per-page a page), every group, image and pair page,
    exposure, sensors and the example queries, with their thumbnails, linked by relative
    file names: open index.html in a browser, no server needed. Nothing can be acted on
    from the copy (the buttons are shown disabled). Progress goes to stderr.

    \b
    Examples:
      photoqa --db ~/photos.db report --html photoqa-report/
      photoqa report --html ci-artifact/ --no-pair-pictures
    """
    import time

    from indexer.commands.output import OutputDirError, check_out_dir
    from indexer.web.groupview import PER_PAGE
    from indexer.web.report import export_html

    try:
        check_out_dir(html_dir, force=force)
    except OutputDirError as exc:
        _fail(str(exc).replace("--out", "--html"))
    _session(ctx, readonly=True).engine.dispose()  # no database, a bad one or bad config: one line
    last = [0.0]

    def progress(done, queued):  # the first page, then at most once a second
        if time.monotonic() - last[0] >= 1.0:
            last[0] = time.monotonic()
            click.echo(f"report: {done} pages written, {queued} to go", err=True)

    result = export_html(ctx.obj["db"], ctx.obj["config"], html_dir, pair_pictures=pair_pictures,
                         per_page=per_page or PER_PAGE, progress=progress)
    failed = sorted(result.failed.items())
    for url, status in failed[:20]:
        click.echo(f"report: {url} answered {status}; left out", err=True)
    if len(failed) > 20:
        click.echo(f"report: {len(failed) - 20} more pages or pictures left out", err=True)
    click.echo(f"wrote {html_dir / 'index.html'}: {result.pages} pages, {result.pictures} pictures")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the repaired copies (created if needed). Example: --out repaired/")
@click.option("--camera", "sensor", type=int, metavar="ID",
              help="Use this sensor's defects instead of the one matching each file's camera and size "
                   "(files of another camera are refused without --force). Example: --camera 2")
@click.option("--dry-run", is_flag=True, help="Say what would be repaired; write nothing. Example: --dry-run")
@click.option("--force", is_flag=True,
              help="Write into a non-empty --out folder (replacing outputs of the same names), and apply "
                   "--camera's defects to another camera's files. Example: --out fixed/ --force")
@click.pass_context
def repair(ctx, files, out_dir, sensor, dry_run, force):
    """Write copies of FILES with the camera's known defects fixed; originals are never touched.

    RAW files are fixed on the sensor data before demosaicing and written as 16-bit TIFF;
    JPEG/PNG/TIFF are written in their own format with their EXIF, each defect replaced by
    the weighted mean of its neighbours (other defects left out).

    \b
    Examples:
      photoqa repair IMG_0101.CRW IMG_0102.CRW --out fixed/
      photoqa repair *.JPG --out fixed/ --camera 3 --dry-run
    """
    from indexer.commands.output import OutputDirError, check_out_dir
    from indexer.commands.repair import repair_file

    if not dry_run:
        try:
            check_out_dir(out_dir, force=force)
        except OutputDirError as exc:
            _fail(str(exc))
    session = _session(ctx)
    failures = 0
    for path in files:
        result = repair_file(session, path, out_dir, sensor=sensor, dry_run=dry_run, force=force)
        if result.skipped and result.skipped != "dry run":
            failures += 1
            click.echo(f"skipped   {path}: {result.skipped}", err=True)
        else:
            verb = "would fix" if dry_run else "repaired "
            click.echo(f"{verb} {path} -> {result.output}: {result.repaired} sites ({result.kinds}), sensor {result.sensor}")
    if failures == len(files):
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    main()
