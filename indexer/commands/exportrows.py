"""A run of export rows, from file to output bytes, in the process that runs it.

:func:`write_rows` is the export's task: it loads each row (photos by
:mod:`indexer.commands.exportload`, stack frames from their memory map), normalises them,
encodes them to the output dtype and ``os.pwrite`` s them at their offsets in the
``.npz`` being written (:class:`indexer.commands.npzslots.NpzSlots`), returning the
CRC-32 of the bytes it wrote and the rows it could not read. The process that
coordinates the export only hands out runs and combines CRCs: before, it received each
chunk's uint8 pixels, equalised and wrote them, ~1.8-2.4 ms an image of one core that
capped two workers (96 s wall for 10,000 photos against 107 s with ``-j 1``).

Every normalisation is per image (``zscore`` with the dataset's mean and deviation,
given), and the road is chosen per image (3-channel 8-bit photos equalise on uint8,
everything else on 0..1 floats), so a row's bytes do not depend on which run it falls
in: any split over any number of workers writes the same file.
"""
from __future__ import annotations

import mmap
import os
from dataclasses import dataclass

import numpy as np

from indexer.commands.exportload import PAD, Loaded, load_8bit, load_float, to_channels
from indexer.decode import arrays
from indexer.errors import DecodeError
from indexer.stacks import frames as framemath
from indexer.stacks import normalize as nz
from indexer.stacks.resample import fit, padding_mask


try:  # the rows' CRC-32 (the zip member needs it over every byte: 0.6 MB a 3x224x224 float32 row)
    from zlib_ng.zlib_ng import crc32  # folded SIMD: 0.022 ms a row against 0.147 (zlib 1.2.13; 2026-12-07)
except ImportError:  # pragma: no cover - a dependency (pyproject.toml); the same values, slower
    from zlib import crc32


@dataclass(frozen=True)
class RowSpec:
    """What every run of one export shares: the output file and the options."""
    path: str  # the .npz being written (NpzSlots.path)
    row_offset: int  # byte offset of row 0 in it
    size: tuple[int, int]
    fit: str
    channels: int
    resample: str
    normalize: str
    dtype: str
    mean: tuple[float, ...] | None = None  # zscore: the dataset's, per channel
    std: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Source:
    """Where a row's image is: a file (``container`` None) or a stack frame."""
    path: str
    container: str | None = None
    array_key: str | None = None
    frame: int | None = None


class StackFrames:
    """Opened stacks, kept while the process exports (one memory map per array)."""

    def __init__(self):
        self._open: dict[str, dict[str, arrays.ArrayStack]] = {}

    def frame(self, container: str, key: str, index: int) -> np.ndarray:
        if container not in self._open:
            self._open[container] = {s.key: s for s in arrays.open_stacks(container)}
        stack = self._open[container][key or ""]
        return np.asarray(stack.frames(index, index + 1))


def load_frame(src: Source, stacks: StackFrames) -> tuple[np.ndarray, int]:
    """(C, h, w) float on 0..1 (NaN kept) of a stack frame and its source's levels (256 or 65536)."""
    f = stacks.frame(src.container, src.array_key or "", src.frame or 0)
    levels = 65536 if f.dtype.itemsize > 1 and f.dtype.kind in "iu" else 256
    return framemath.to_unit(f)[0], levels


def load_one(src: Source, h: int, w: int, mode: str, channels: int, resample: str, stacks: StackFrames) -> Loaded:
    """One row fitted (:class:`Loaded`; ``error`` set when unreadable)."""
    try:
        if src.container is None:
            loaded = load_8bit(src.path, h, w, mode, resample=resample)
            return loaded if loaded is not None else load_float(src.path, h, w, mode, channels, resample)
        unit, lv = load_frame(src, stacks)
        return Loaded(fit(to_channels(unit, channels), h, w, mode, fill=PAD, kernel=resample),
                      padding_mask(unit.shape[1], unit.shape[2], h, w, mode), lv)
    except (DecodeError, OSError, ValueError, KeyError, EOFError, SyntaxError) as exc:
        return Loaded(error=getattr(exc, "message", None) or str(exc))


def as_unit(batch: np.ndarray, pad: np.ndarray) -> np.ndarray:
    """float32 (n, C, H, W) on 0..1 with NaN padding from a batch of either road (uint8
    with zero padding from the 8-bit road, float32 from the other)."""
    if batch.dtype != np.uint8:
        return batch
    unit = batch.astype(np.float32)
    unit *= np.float32(1 / 255)
    unit[np.broadcast_to(pad[:, None], unit.shape)] = PAD
    return unit


def equalize_8bit(batch: np.ndarray, pad: np.ndarray, out: np.ndarray) -> np.ndarray:
    """float32 (n, C, H, W) into ``out``: :func:`indexer.stacks.normalize.equalize` of a
    uint8 batch with zero padding (``pad`` bool (n, H, W), left out of each CDF, 0 in the
    output), bit for bit, by its compiled loop (:func:`nz.equalize_padded8`): 0.31 against
    1.76 ms a padded 3x224x224 frame for Pillow's ``histogram`` and ``point`` to mode F
    with the copies out of the F image (2026-12-07, load ~20, CPU time, 64 frames)."""
    return nz.equalize_padded8(batch, pad, out)


def normalised(batch: np.ndarray, levels: np.ndarray, pad: np.ndarray, method: str, mean=None, std=None,
               out: np.ndarray | None = None) -> np.ndarray:
    """float32 (n, C, H, W) of a batch of one road, normalised by ``method``, padding 0."""
    if method == "equalize" and batch.dtype == np.uint8:
        # the 8-bit road: the integer CDF lookup, padding left out of each CDF (the same
        # values as the float road at 256 levels within 1e-6: those quantise back to
        # these), into the run's buffer; the padding holds 0 (exportload.fit_pillow)
        return equalize_8bit(batch, pad, np.empty(batch.shape, np.float32) if out is None else out)
    if method == "equalize":
        # quantised to each source's levels (8-bit: 256, 16-bit: 65536), the CDF lookup
        # is O(pixels) and each image's result does not depend on its batch-mates
        values = np.empty(batch.shape, np.float32)
        for lv in np.unique(levels):
            sel = levels == lv
            values[sel] = nz.equalize(batch[sel], levels=int(lv))
    else:
        values = nz.normalize(as_unit(batch, pad), method, mean=mean, std=std)
    values[np.broadcast_to(pad[:, None], values.shape)] = 0.0
    return values


def encode(values: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "uint8":
        return np.clip(np.rint(np.nan_to_num(values, nan=0.0) * 255), 0, 255).astype(np.uint8)
    return values.astype(np.float32, copy=False)


def rows_values(items: list[Loaded], spec: RowSpec, out: np.ndarray) -> np.ndarray:
    """float32 (n, C, H, W) into ``out`` (n rows): each loaded item normalised, padding
    and unreadable rows 0. 3-channel uint8 items take the 8-bit road together, the rest
    the float road together."""
    ok = [i for i, it in enumerate(items) if it.error is None]
    byte = [i for i in ok if spec.channels == 3 and items[i].pixels.dtype == np.uint8]
    rest = [i for i in ok if not (spec.channels == 3 and items[i].pixels.dtype == np.uint8)]
    if len(byte) == len(items):  # the usual run: straight into the buffer
        batch = np.stack([it.pixels for it in items])
        pads = np.stack([it.pad for it in items])
        return normalised(batch, np.full(len(items), 256), pads, spec.normalize, spec.mean, spec.std, out)
    out[:] = 0.0
    if byte:
        batch = np.stack([items[i].pixels for i in byte])
        out[byte] = normalised(batch, np.full(len(byte), 256), np.stack([items[i].pad for i in byte]),
                               spec.normalize, spec.mean, spec.std)
    if rest:
        unit = []
        for i in rest:
            px = items[i].pixels
            unit.append(to_channels(as_unit(px[None], items[i].pad[None])[0], spec.channels)
                        if px.dtype == np.uint8 else px)
        out[rest] = normalised(np.stack(unit), np.array([items[i].levels for i in rest]),
                               np.stack([items[i].pad for i in rest]), spec.normalize, spec.mean, spec.std)
    return out


_STACKS = StackFrames()  # this process's open stacks (a worker's lifetime, or one inline export)
_BUFFER: list[np.ndarray] = []  # this process's run buffer, reused (page faults of a fresh 20 MB each run)
# O_DIRECT: the rows go from the buffer to the disk, not copied into the page cache.
# Buffered, 0.6 MB of float32 a row cost 0.5-1.2 ms of CPU (22% of an inline export's
# time at load 10); dd of 600 MB at load 11: 0.74 s direct, 6.6 s buffered. The export is
# not read back by this command, and 6 GB of it no longer evicts the machine's cache.
# Needs the buffer, offset and length aligned (page-aligned buffer, NpzSlots.row_offset,
# rows of whole pages: 3x224x224 float32 is 147); anything else, or a file system that
# refuses it (tmpfs: EINVAL), is written through the page cache.
DIRECT_FLAG = getattr(os, "O_DIRECT", 0)


def page_aligned(shape: tuple[int, ...]) -> np.ndarray:
    """float32 zeros of ``shape`` in anonymous memory: page-aligned, as O_DIRECT needs."""
    n = int(np.prod(shape))
    return np.frombuffer(mmap.mmap(-1, max(4 * n, 1)), np.float32, count=n).reshape(shape)


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    done = 0
    while done < view.nbytes:  # pwrite may write less than asked
        done += os.pwrite(fd, view[done:], offset + done)


def pwrite_rows(path: str, data: np.ndarray, offset: int) -> None:
    """``data``'s bytes at ``offset`` of ``path``: O_DIRECT when aligned, else buffered."""
    view = memoryview(data).cast("B")
    page = mmap.PAGESIZE
    if DIRECT_FLAG and data.ctypes.data % page == 0 and offset % page == 0 and view.nbytes % page == 0:
        try:
            fd = os.open(path, os.O_WRONLY | DIRECT_FLAG)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                _pwrite_all(fd, view, offset)
                return
            except OSError:
                pass  # EINVAL on some file systems only at the first write: the buffered road below
            finally:
                os.close(fd)
    fd = os.open(path, os.O_WRONLY)
    try:
        _pwrite_all(fd, view, offset)
    finally:
        os.close(fd)


def forget_stacks() -> None:
    global _STACKS
    _STACKS = StackFrames()
    _BUFFER.clear()


def write_rows(spec: RowSpec, sources: list[Source], first: int) -> tuple[int, list[tuple[int, str]]]:
    """The task: rows ``first .. first + len(sources)`` loaded, normalised, encoded and
    written at their offsets in ``spec.path``. Returns (CRC-32 of the bytes written, the
    (row, reason) of rows that could not be read: written as zeros)."""
    h, w = spec.size
    items = [load_one(s, h, w, spec.fit, spec.channels, spec.resample, _STACKS) for s in sources]
    shape = (len(items), spec.channels, h, w)
    if not _BUFFER or _BUFFER[0].shape[1:] != shape[1:] or len(_BUFFER[0]) < len(items):
        _BUFFER[:] = [page_aligned(shape)]
    data = np.ascontiguousarray(encode(rows_values(items, spec, _BUFFER[0][:len(items)]), spec.dtype))
    pwrite_rows(spec.path, data, spec.row_offset + first * (data.nbytes // len(items)))
    return crc32(memoryview(data).cast("B")), [(first + i, it.error) for i, it in enumerate(items) if it.error is not None]


def row_moments(spec: RowSpec, sources: list[Source], first: int) -> tuple[list[tuple], list[tuple[int, str]]]:
    """zscore's first pass: per row, float64 (count, sum, sum of squares) per channel of
    its 0..1 values (padding and NaN left out), None for unreadable rows; and the (row,
    reason) of those. Per row, so the dataset's sums, added in row order by the caller,
    do not depend on how the rows were split."""
    h, w = spec.size
    moments, errors = [], []
    for i, s in enumerate(sources):
        it = load_one(s, h, w, spec.fit, spec.channels, spec.resample, _STACKS)
        if it.error is not None:
            moments.append(None)
            errors.append((first + i, it.error))
            continue
        unit = as_unit(it.pixels[None], it.pad[None])[0] if it.pixels.dtype == np.uint8 else it.pixels
        moments.append(nz.channel_moments(to_channels(unit, spec.channels)[None]))
    return moments, errors
