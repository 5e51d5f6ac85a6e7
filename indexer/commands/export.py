"""``photoqa export OUT.npz``: the images of the database as one training array.

Rows chosen by :func:`db.queries.export_rows` (present images; ``--where``; flags and
verdicts excluded; one image per duplicate group, its keeper, by default). Each image is
decoded (files: :func:`indexer.decode.decode_file` at twice the target size, draft mode
for JPEG; stack frames: their memory map), put on 0..1 by its dtype's range, fitted to
``size`` (:func:`indexer.stacks.resample.fit`, pad or crop, NaN-aware), brought to
``channels`` and normalised per chunk (:mod:`indexer.stacks.normalize`). ``zscore``
takes a first pass over the chunks for the per-channel mean and deviation.

Memory: one chunk of images at a time. The array is streamed into the ``.npz`` as a
stored (uncompressed) member ``x`` of shape (N, C, H, W): the npy header is written
first (N is known from the selection), then each chunk's bytes, so 100,000 images never
sit in memory together. An index CSV beside it (``OUT.csv``) maps each row back:
``row, path, container, frame, split, group, keeper``.
"""
from __future__ import annotations

import csv
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from db.queries import ExportRow, export_rows
from indexer.decode import arrays, decode_file
from indexer.errors import DecodeError
from indexer.stacks import frames as framemath
from indexer.stacks import normalize as nz
from indexer.stacks.resample import fit, padding_mask

# padding is NaN until written: normalisation and dataset statistics leave it out (masks),
# then it becomes 0; NaN of the data itself stays NaN in float32 output
PAD = np.nan
CHUNK = 64  # images per chunk: 64 x 3 x 224 x 224 float32 is 39 MB; a chunk fits the caches better than 256 (equalize 12-19x a loop against 3-18x, noisy 2-core runs)


@dataclass(frozen=True)
class ExportOptions:
    size: tuple[int, int] = (224, 224)
    fit: str = "pad"
    dtype: str = "float32"  # or uint8 (normalised 0..1 values x 255)
    normalize: str = "dtype"
    channels: int = 3
    chunk: int = CHUNK


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


def load_unit(row: ExportRow, stacks: StackFrames, work: int) -> tuple[np.ndarray, int]:
    """(C, h, w) float on 0..1 (NaN kept) and the source's levels (256 or 65536)."""
    if row.container is not None:
        f = stacks.frame(row.container, row.array_key or "", row.frame or 0)
        levels = 65536 if f.dtype.itemsize > 1 and f.dtype.kind in "iu" else 256
        return framemath.to_unit(f)[0], levels
    decoded = decode_file(row.path, work_size=work)
    return np.moveaxis(decoded.rgb, -1, 0), 256


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    c = image.shape[0]
    if c == channels:
        return image
    if channels == 1:
        return framemath.grey_unit(image[None])[0][None] if c == 3 else image.mean(axis=0, keepdims=True)
    return np.repeat(image[:1] if c != 3 else image, channels, axis=0)[:channels]


def fitted_chunks(rows: list[ExportRow], opts: ExportOptions,
                  skipped: list[tuple[str, str]]) -> Iterator[tuple[list[ExportRow], np.ndarray, int, np.ndarray]]:
    """(rows, float32 (n, C, H, W) on 0..1 with NaN padding, int (n,) levels of each
    source, bool (n, H, W) padding) per chunk; unreadable images skipped."""
    stacks, (h, w) = StackFrames(), opts.size
    work = 2 * max(h, w)
    for start in range(0, len(rows), opts.chunk):
        kept, images, pads, levels = [], [], [], []
        for row in rows[start:start + opts.chunk]:
            try:
                unit, lv = load_unit(row, stacks, work)
            except (DecodeError, OSError, ValueError, KeyError) as exc:
                skipped.append((row.path, getattr(exc, "message", str(exc))))
                continue
            images.append(fit(to_channels(unit, opts.channels), h, w, opts.fit, fill=PAD))
            pads.append(padding_mask(unit.shape[1], unit.shape[2], h, w, opts.fit))
            kept.append(row)
            levels.append(lv)
        if kept:
            yield kept, np.stack(images), np.array(levels), np.stack(pads)


def _normalised(batch: np.ndarray, levels: np.ndarray, opts: ExportOptions, mean, std) -> np.ndarray:
    if opts.normalize == "equalize":
        # quantised to each source's levels (8-bit: 256, 16-bit: 65536), the CDF lookup
        # is O(pixels) and each image's result does not depend on its chunk-mates
        out = np.empty_like(batch)
        for lv in np.unique(levels):
            sel = levels == lv
            out[sel] = nz.equalize(batch[sel], levels=int(lv))
        return out
    return nz.normalize(batch, opts.normalize, mean=mean, std=std)


def _encode(batch: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "uint8":
        return np.clip(np.rint(np.nan_to_num(batch, nan=0.0) * 255), 0, 255).astype(np.uint8)
    return batch.astype(np.float32)


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
        data = np.ascontiguousarray(chunk).tobytes()
        self.fh.write(data)
        self.written += len(data)

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
        for _, batch, _, _ in fitted_chunks(rows, opts, skipped):
            for t, v in zip(totals, nz.channel_moments(batch)):
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
    try:
        for chunk_rows, batch, levels, pad in fitted_chunks(rows, opts, skipped):
            values = _normalised(batch, levels, opts, mean, std)
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
