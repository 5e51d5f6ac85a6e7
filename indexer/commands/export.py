"""``photoqa export OUT.npz``: the images of the database as one training array.

Rows chosen by :func:`db.queries.export_rows` (present images; ``--where``; flags and
verdicts excluded; one image per duplicate group, its keeper, by default). Photos are
decoded and fitted to ``size`` in worker processes (:mod:`indexer.commands.exportload`:
8-bit photos in Pillow on uint8, JPEG draft; RAW and deep images by the float road),
each chunk split over the workers, chunks collected in order; stack frames are read from
their memory map here, put on 0..1 by their dtype's range and fitted by
:func:`indexer.stacks.resample.fit` (pad or crop, NaN-aware). Each chunk is brought to
``channels`` and normalised (:mod:`indexer.stacks.normalize`; equalize on uint8 when the
whole chunk is 8-bit photos). ``zscore`` takes a first pass over the chunks for the
per-channel mean and deviation.

Memory: one chunk of images at a time. The array is streamed into the ``.npz`` as a
stored (uncompressed) member ``x`` of shape (N, C, H, W): the npy header is written
first (N is known from the selection), then each chunk's bytes, so 100,000 images never
sit in memory together. An index CSV beside it (``OUT.csv``) maps each row back:
``row, path, container, frame, split, group, keeper``.
"""
from __future__ import annotations

import csv
import os
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from itertools import islice
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from db.queries import ExportRow, export_rows
from indexer.commands.exportload import PAD, Loaded, load_photos, to_channels
from indexer.decode import arrays
from indexer.errors import DecodeError
from indexer.stacks import frames as framemath
from indexer.stacks import normalize as nz
from indexer.stacks.resample import fit, padding_mask

# padding is NaN (PAD) until written: normalisation and dataset statistics leave it out
# (masks), then it becomes 0; NaN of the data itself stays NaN in float32 output
LOOKAHEAD = 2  # chunks decoding in the pool while one is normalised and written
POOL_MIN = 128  # photos below which the pool's start-up (~0.5 s of imports per worker) costs more than it saves
CHUNK = 64  # images per chunk: 64 x 3 x 224 x 224 float32 is 39 MB; a chunk fits the caches better than 256 (equalize 12-19x a loop against 3-18x, noisy 2-core runs)


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


class StackFrames:
    """Opened stacks, kept while the export runs (one memory map per array)."""

    def __init__(self):
        self._open: dict[str, dict[str, arrays.ArrayStack]] = {}

    def frame(self, container: str, key: str, index: int) -> np.ndarray:
        if container not in self._open:
            self._open[container] = {s.key: s for s in arrays.open_stacks(container)}
        stack = self._open[container][key or ""]
        return np.asarray(stack.frames(index, index + 1))


def load_frame(row: ExportRow, stacks: StackFrames) -> tuple[np.ndarray, int]:
    """(C, h, w) float on 0..1 (NaN kept) of a stack frame and its source's levels (256 or 65536)."""
    f = stacks.frame(row.container, row.array_key or "", row.frame or 0)
    levels = 65536 if f.dtype.itemsize > 1 and f.dtype.kind in "iu" else 256
    return framemath.to_unit(f)[0], levels


def as_unit(batch: np.ndarray, pad: np.ndarray) -> np.ndarray:
    """float32 (n, C, H, W) on 0..1 with NaN padding from a chunk of either road (uint8
    from the 8-bit road, float32 from the other)."""
    if batch.dtype != np.uint8:
        return batch
    unit = batch.astype(np.float32)
    unit *= np.float32(1 / 255)
    unit[np.broadcast_to(pad[:, None], unit.shape)] = PAD
    return unit


def _start_worker(parent: int) -> None:
    from indexer.pipeline.pools import die_with, ignore_sigint

    ignore_sigint()
    die_with(parent)


def _pool(workers: int):
    """``workers`` processes from the project's forkserver (rawpy's OpenMP and fork do not
    mix), at normal priority: the index's pools step down (``pools.WORKER_NICE``) so
    their single writer keeps up, but here the workers do most of the work, and on a
    machine at load 8 the niced pool ran at half the speed of one inline process (400
    photos: 9.0 s against 4.0 s wall). The forkserver imports the loading module once,
    not each worker (0.6 s CPU a worker)."""
    from concurrent.futures import ProcessPoolExecutor

    from indexer.pipeline.pools import pool_context

    context = pool_context()
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload(["indexer.commands.exportload"])  # no effect once it runs
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),))


def _ordered_loads(chunks: list[list[ExportRow]], opts: ExportOptions) -> Iterator[list[Loaded]]:
    """The photos of each chunk (rows without a container) fitted, chunk by chunk in
    order. With a pool, each chunk is split over the workers and ``LOOKAHEAD`` chunks are
    in flight, so memory holds a few chunks of uint8 whatever N."""
    h, w = opts.size
    workers = opts.workers if opts.workers is not None else (os.cpu_count() or 1)
    photos = [[r.path for r in chunk if r.container is None] for chunk in chunks]
    if workers <= 1 or sum(map(len, photos)) < POOL_MIN:
        for paths in photos:
            yield load_photos(paths, h, w, opts.fit, opts.channels, opts.resample)
        return
    pool = _pool(workers)
    pending: deque = deque()
    todo = iter(photos)

    def submit(paths: list[str]) -> None:
        step = max(1, -(-len(paths) // workers))
        pending.append([pool.submit(load_photos, paths[i:i + step], h, w, opts.fit, opts.channels, opts.resample)
                        for i in range(0, len(paths), step)])
    try:
        for paths in islice(todo, LOOKAHEAD):
            submit(paths)
        while pending:
            futures = pending.popleft()
            nxt = next(todo, None)
            if nxt is not None:
                submit(nxt)
            yield [loaded for f in futures for loaded in f.result()]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def fitted_chunks(rows: list[ExportRow], opts: ExportOptions,
                  skipped: list[tuple[str, str]]) -> Iterator[tuple[list[ExportRow], np.ndarray, np.ndarray, np.ndarray]]:
    """(rows, pixels (n, C, H, W), int (n,) levels of each source, bool (n, H, W)
    padding) per chunk; unreadable images skipped. ``pixels`` is uint8 with zero padding
    when the whole chunk came by the 8-bit road with 3 channels, else float32 on 0..1
    with NaN padding (:func:`as_unit`)."""
    stacks, (h, w) = StackFrames(), opts.size
    chunks = [rows[i:i + opts.chunk] for i in range(0, len(rows), opts.chunk)]
    for chunk, photos in zip(chunks, _ordered_loads(chunks, opts)):
        kept, items = [], []
        loaded_photos = iter(photos)
        for row in chunk:
            if row.container is None:
                item = next(loaded_photos)
            else:
                try:
                    unit, lv = load_frame(row, stacks)
                except (DecodeError, OSError, ValueError, KeyError) as exc:
                    item = Loaded(error=getattr(exc, "message", str(exc)))
                else:
                    item = Loaded(fit(to_channels(unit, opts.channels), h, w, opts.fit, fill=PAD, kernel=opts.resample),
                                  padding_mask(unit.shape[1], unit.shape[2], h, w, opts.fit), lv)
            if item.error is not None:
                skipped.append((row.path, item.error))
                continue
            kept.append(row)
            items.append(item)
        if not kept:
            continue
        pads = np.stack([i.pad for i in items])
        levels = np.array([i.levels for i in items])
        if opts.channels == 3 and all(i.pixels.dtype == np.uint8 for i in items):
            yield kept, np.stack([i.pixels for i in items]), levels, pads
            continue
        unit = []
        for i in items:
            if i.pixels.dtype == np.uint8:
                u = as_unit(i.pixels[None], i.pad[None])[0]
                unit.append(to_channels(u, opts.channels))
            else:
                unit.append(i.pixels)
        yield kept, np.stack(unit), levels, pads


def _normalised(batch: np.ndarray, levels: np.ndarray, pad: np.ndarray, opts: ExportOptions,
                mean, std, buffer: np.ndarray | None = None) -> np.ndarray:
    if opts.normalize == "equalize":
        if batch.dtype == np.uint8:
            # the 8-bit road: the integer CDF lookup, padding left out of each CDF (the
            # same values as the float road at 256 levels: those quantise back to these),
            # into the export's one chunk buffer; the padding holds 0 (exportload.fit_pillow)
            out = None if buffer is None or len(buffer) < len(batch) else buffer[:len(batch)]
            return nz.equalize(batch, exclude=pad[:, None], fill=0.0, out=out, excluded_value=0)
        # quantised to each source's levels (8-bit: 256, 16-bit: 65536), the CDF lookup
        # is O(pixels) and each image's result does not depend on its chunk-mates
        out = np.empty(batch.shape, np.float32)
        for lv in np.unique(levels):
            sel = levels == lv
            out[sel] = nz.equalize(batch[sel], levels=int(lv))
        return out
    return nz.normalize(as_unit(batch, pad), opts.normalize, mean=mean, std=std)


def _encode(batch: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "uint8":
        return np.clip(np.rint(np.nan_to_num(batch, nan=0.0) * 255), 0, 255).astype(np.uint8)
    return batch.astype(np.float32, copy=False)


class NpzStream:
    """One stored ``.npy`` member written chunk by chunk into a new ``.npz``."""

    def __init__(self, out: Path, shape: tuple[int, ...], dtype: np.dtype, name: str = "x"):
        self.tmp = out.with_name(out.name + ".part")
        self.out, self.expected = out, int(np.prod(shape)) * np.dtype(dtype).itemsize
        self.zf = zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.fh = self.zf.open(name + ".npy", "w", force_zip64=True)
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_2_0(self.fh, header)
        self.written = 0

    def write(self, chunk: np.ndarray) -> None:
        data = np.ascontiguousarray(chunk)
        self.fh.write(memoryview(data).cast("B"))  # no tobytes() copy: 0.45 ms an image of 3x224x224 float32
        self.written += data.nbytes

    def close(self) -> None:
        self.fh.close()
        self.zf.close()
        if self.written != self.expected:
            self.tmp.unlink()
            raise ValueError(f"wrote {self.written} bytes, expected {self.expected}")
        self.tmp.replace(self.out)

    def abort(self) -> None:
        self.fh.close()
        self.zf.close()
        self.tmp.unlink(missing_ok=True)


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
        for _, batch, _, pad in fitted_chunks(rows, opts, skipped):
            for t, v in zip(totals, nz.channel_moments(as_unit(batch, pad))):
                t += v
        mean, std = nz.moments_to_mean_std(*totals)
        bad = {p for p, _ in skipped}
        rows, skipped = [r for r in rows if r.path not in bad], []
    return _write(out, rows, opts, skipped, mean, std, split)


def _write(out, rows, opts, skipped, mean, std, split) -> ExportResult:
    # N must be known before the header: an image that fails to decode shows up while
    # writing, and the export is then written again without it (rare: indexed files decoded)
    shape = (len(rows), opts.channels, *opts.size)
    stream = NpzStream(out, shape, np.dtype(opts.dtype))
    index_path = out.with_suffix(".csv")
    written: list[ExportRow] = []
    buffer = np.empty((min(opts.chunk, len(rows)), *shape[1:]), np.float32)
    try:
        for chunk_rows, batch, levels, pad in fitted_chunks(rows, opts, skipped):
            values = _normalised(batch, levels, pad, opts, mean, std, buffer)
            if not (batch.dtype == np.uint8 and opts.normalize == "equalize"):  # that one fills its padding
                values[np.broadcast_to(pad[:, None], values.shape)] = 0.0
            stream.write(_encode(values, opts.dtype))
            written.extend(chunk_rows)
        if len(written) != len(rows):
            stream.abort()
            missing = {r.path for r in rows} - {r.path for r in written}
            return _write(out, [r for r in rows if r.path not in missing], opts, skipped, mean, std, split)
        stream.close()
    except BaseException:
        stream.abort()
        raise
    with open(index_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "path", "container", "frame", "split", "group", "keeper"])
        for i, r in enumerate(written):
            w.writerow([i, r.path, r.container or "", "" if r.frame is None else r.frame,
                        (split(r.container or r.path) if split else None) or "", r.group_id, int(r.keeper)])
    return ExportResult(out, index_path, len(written), skipped, shape,
                        None if mean is None else [float(v) for v in mean],
                        None if std is None else [float(v) for v in std])
