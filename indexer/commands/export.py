"""``photoqa export OUT.npz``: the images of the database as one training array.

Rows chosen by :func:`db.queries.export_rows` (present images; ``--where``; flags and
verdicts excluded; one image per duplicate group, its keeper, by default). The rows are
cut into runs and each run is done whole where it runs (:func:`indexer.commands.exportrows.write_rows`:
decode and fit, photos by :mod:`indexer.commands.exportload`, stack frames from their
memory map; bring to ``channels``; normalise by :mod:`indexer.stacks.normalize`; encode;
write its rows at their offsets in the output file): in worker processes by default,
inline with ``-j 1``. This process hands out runs, joins their CRCs and writes the CSV:
the ~2 ms an image it spent collecting, equalising and writing chunks capped the pool.
``zscore`` takes a first pass (per-row moments, added in row order) for the per-channel
mean and deviation.

Memory: one run of images per process. The ``.npz`` holds one stored (uncompressed)
member ``x`` of shape (N, C, H, W), laid out before any row is computed
(:class:`indexer.commands.npzslots.NpzSlots`: N is known from the selection), so
100,000 images never sit in memory together and the bytes do not depend on the run
sizes or the number of workers. An index CSV beside it (``OUT.csv``) maps each row back:
``row, path, container, frame, split, group, keeper``.
"""
from __future__ import annotations

import csv
import os
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from db.queries import ExportRow, export_rows
from indexer.commands.exportrows import RowSpec, Source, forget_stacks, row_moments, write_rows
from indexer.commands.npzslots import NpzSlots, crc32_combine
from indexer.stacks import normalize as nz

LOOKAHEAD = 2  # runs per worker queued or running, so a worker never waits for the next one
POOL_MIN = 128  # photos below which the pool's start-up (~0.5 s of imports per worker) costs more than it saves
CHUNK = 64  # images per run inline (split over the workers with a pool): 64 x 3 x 224 x 224 float32 is 39 MB; a chunk fits the caches better than 256 (equalize 12-19x a loop against 3-18x, noisy 2-core runs)


@dataclass(frozen=True)
class ExportOptions:
    size: tuple[int, int] = (224, 224)
    fit: str = "pad"
    dtype: str = "float32"  # or uint8 (normalised 0..1 values x 255)
    normalize: str = "dtype"
    channels: int = 3
    chunk: int = CHUNK
    workers: int | None = None  # processes decoding photos; None: one per core, 1: inline
    resample: str = "lanczos"  # resize filter (exportload.FILTERS): cheaper ones trade sharpness for speed


@dataclass
class ExportResult:
    out: Path
    index: Path
    rows: int
    skipped: list[tuple[str, str]]  # (path, why) of images that could not be read
    shape: tuple[int, ...]
    mean: list[float] | None = None
    std: list[float] | None = None

    def as_dict(self) -> dict:
        return {"out": str(self.out), "index": str(self.index), "rows": self.rows, "shape": list(self.shape),
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped], "mean": self.mean, "std": self.std}


def _start_worker(parent: int) -> None:
    from indexer.pipeline.pools import die_with, ignore_sigint

    ignore_sigint()
    die_with(parent)


def _pool(workers: int):
    """``workers`` processes from the project's forkserver (rawpy's OpenMP and fork do not
    mix), at normal priority: the index's pools step down (``pools.WORKER_NICE``) so
    their single writer keeps up, but here the workers do all of the work, and on a
    machine at load 8 the niced pool ran at half the speed of one inline process (400
    photos: 9.0 s against 4.0 s wall). The forkserver imports the row module once,
    not each worker (0.6 s CPU a worker)."""
    from concurrent.futures import ProcessPoolExecutor

    from indexer.pipeline.pools import pool_context

    context = pool_context()
    if context.get_start_method() == "forkserver":
        # no effect once it runs; exportwarm: the compiled 8-bit resize loaded once, not per worker
        context.set_forkserver_preload(["indexer.commands.exportrows", "indexer.commands.exportwarm"])
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),))


def _runs(task: Callable, spec, rows: list[ExportRow], opts: ExportOptions) -> Iterator[tuple[int, int, object]]:
    """(first row, rows, ``task(spec, sources, first)``) for consecutive runs of ``rows``,
    in order. Inline: runs of ``opts.chunk``. With a pool (``opts.workers``, default one
    per core; ``POOL_MIN`` rows or more): runs of ``chunk / workers``, ``LOOKAHEAD`` per
    worker in flight; each run's result is small (a CRC, per-row moments), the pixels
    stay in the worker, so this process's work per image is a few microseconds."""
    sources = [Source(r.path, r.container, r.array_key, r.frame) for r in rows]
    workers = opts.workers if opts.workers is not None else (os.cpu_count() or 1)
    if workers <= 1 or len(rows) < POOL_MIN:
        try:
            for first in range(0, len(rows), opts.chunk):
                run = sources[first:first + opts.chunk]
                yield first, len(run), task(spec, run, first)
        finally:
            forget_stacks()
        return
    step = max(1, -(-opts.chunk // workers))
    pool = _pool(workers)
    pending: deque = deque()
    starts = iter(range(0, len(rows), step))

    def submit() -> None:
        first = next(starts, None)
        if first is not None:
            run = sources[first:first + step]
            pending.append((first, len(run), pool.submit(task, spec, run, first)))
    try:
        for _ in range(LOOKAHEAD * workers):
            submit()
        while pending:
            first, n, future = pending.popleft()
            submit()
            yield first, n, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _spec(path: str, row_offset: int, opts: ExportOptions, mean=None, std=None) -> RowSpec:
    return RowSpec(path, row_offset, tuple(opts.size), opts.fit, opts.channels, opts.resample, opts.normalize,
                   opts.dtype, None if mean is None else tuple(float(v) for v in mean),
                   None if std is None else tuple(float(v) for v in std))


def export(engine, out: Path, opts: ExportOptions, *, where: str | None = None, exclude_flags=(),
           exclude_verdicts=(), keepers_only: bool = True,
           split: Callable[[str], str | None] | None = None) -> ExportResult:
    """Write the chosen images to ``out`` and the index CSV beside it."""
    if opts.normalize not in nz.METHODS:
        raise ValueError(f"unknown normalisation {opts.normalize!r}")
    rows = export_rows(engine, where=where, exclude_flags=exclude_flags, exclude_verdicts=exclude_verdicts,
                       keepers_only=keepers_only)
    skipped: list[tuple[str, str]] = []
    mean = std = None
    if opts.normalize == "zscore":
        totals = [np.zeros(opts.channels) for _ in range(3)]
        bad: set[int] = set()
        for _, _, (moments, errors) in _runs(row_moments, _spec("", 0, opts), rows, opts):
            for m in moments:
                if m is not None:
                    for t, v in zip(totals, m):
                        t += v
            bad.update(i for i, _ in errors)
            skipped.extend((rows[i].path, why) for i, why in errors)
        mean, std = nz.moments_to_mean_std(*totals)
        rows = [r for i, r in enumerate(rows) if i not in bad]
    return _write(out, rows, opts, skipped, mean, std, split)


def _write(out, rows, opts, skipped, mean, std, split) -> ExportResult:
    # N must be known before the header: an image that fails to decode shows up while
    # writing, and the export is then written again without it (rare: indexed files decoded)
    shape = (len(rows), opts.channels, *opts.size)
    slots = NpzSlots(out, shape, np.dtype(opts.dtype))
    index_path = out.with_suffix(".csv")
    crc, failed = 0, []
    try:
        for _, n, (run_crc, errors) in _runs(write_rows, _spec(str(slots.path), slots.row_offset, opts, mean, std),
                                             rows, opts):
            crc = crc32_combine(crc, run_crc, n * slots.row_bytes)
            failed.extend(errors)
        if failed:
            slots.abort()
            skipped.extend((rows[i].path, why) for i, why in failed)
            bad = {i for i, _ in failed}
            return _write(out, [r for i, r in enumerate(rows) if i not in bad], opts, skipped, mean, std, split)
        slots.close(crc)
    except BaseException:
        slots.abort()
        raise
    written = rows
    with open(index_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "path", "container", "frame", "split", "group", "keeper"])
        for i, r in enumerate(written):
            w.writerow([i, r.path, r.container or "", "" if r.frame is None else r.frame,
                        (split(r.container or r.path) if split else None) or "", r.group_id, int(r.keeper)])
    return ExportResult(out, index_path, len(written), skipped, shape,
                        None if mean is None else [float(v) for v in mean],
                        None if std is None else [float(v) for v in std])
