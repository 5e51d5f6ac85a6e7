"""Camera RAW through rawpy (LibRaw), from bytes in memory.

Facts this relies on (checked with rawpy 0.28 / LibRaw 0.22): rawpy exposes no camera
make/model/serial (LibRaw has them; rawpy does not wrap them), so they come from EXIF via
exifread, or from the ``.THM`` sidecar JPEG for Canon CRW (no EXIF block exifread reads);
``raw_image_visible`` is a view valid only while the file is open, so it is copied;
``raw_pattern`` gives the CFA colour index of each site of the 2x2 tile; ``postprocess``
output is already rotated by LibRaw's ``flip``; ``extract_thumb`` reads the embedded
preview without decoding the raw data. Linux wheels use OpenMP: never fork after import
(the pipeline uses spawn/forkserver).
"""
from __future__ import annotations

import functools
import io
import logging
import math
import os
import struct
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from dataclasses import dataclass

import numpy as np
from PIL import Image

from indexer.decode import exif
from indexer.errors import DecodeError

# exifread logs "File format not recognized." (WARNING) for every RAW without EXIF (CRW,
# QTK, KDC...): normal here, and noise across a progress bar.
logging.getLogger("exifread").setLevel(logging.ERROR)

# LibRaw sizes.flip -> EXIF orientation
_FLIP_TO_EXIF = {0: 1, 3: 3, 5: 8, 6: 6}


@dataclass
class CfaPlane:
    """Visible CFA data of one frame, for sensor statistics.

    ``data``: uint16 (H, W) visible sites, un-rotated sensor coordinates.
    ``pattern``: int (2, 2) colour index per site of the tile (rawpy ``raw_pattern``).
    ``black``: float (4,) black level per colour index; ``white``: saturation level (DN).
    """

    data: np.ndarray
    pattern: np.ndarray
    black: np.ndarray
    white: float
    colors: str


@dataclass
class RawFrame:
    rgb: np.ndarray  # float32 (h, w, 3) in [0, 1], sRGB-like rendering
    width: int
    height: int
    bit_depth: int
    orientation: int
    already_oriented: bool
    decoder: str
    cfa: CfaPlane | None


_FD2 = threading.Lock()  # file descriptor 2 is the process's: one capture at a time


@contextmanager
def libraw_messages() -> Iterator[list[str]]:
    """Capture what C code writes to file descriptor 2 meanwhile (LibRaw prints "unknown
    file: Unexpected end of file" or "data corrupted at 1378" there itself, past Python's
    sys.stderr); the text is in the yielded list once the block ends. Serialised by a
    lock, restored whatever happens."""
    said: list[str] = []
    with _FD2, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            said.append(sink.read().decode("utf-8", "replace").strip())


def _quiet(fn):
    """Run ``fn`` with LibRaw's own stderr messages captured: dropped when it succeeds,
    added to the :class:`DecodeError` (hence to the ``failures`` row) when it fails."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        failure = None
        with libraw_messages() as said:
            try:
                return fn(*args, **kwargs)
            except DecodeError as exc:
                failure = exc
        text = " / ".join(line.strip() for line in said[0].splitlines() if line.strip()) if said else ""
        if text:
            raise DecodeError(failure.kind, f"{failure.message} (LibRaw: {text[:300]})") from failure
        raise failure
    return wrapper


def _rawpy():
    import rawpy  # imported lazily: OpenMP must not be initialised before a fork

    return rawpy


def open_raw(data: bytes):
    """A ``rawpy.RawPy`` over ``data``; LibRaw errors become DecodeError('raw'|'unsupported')."""
    rawpy = _rawpy()
    try:
        return rawpy.imread(io.BytesIO(data))
    except rawpy.LibRawFileUnsupportedError as exc:
        raise DecodeError("unsupported", f"LibRaw does not support this file: {_msg(exc)}") from exc
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        raise DecodeError("raw", f"LibRaw cannot open it ({type(exc).__name__}): {_msg(exc)}") from exc


def _msg(exc: Exception) -> str:
    text = exc.args[0] if exc.args else str(exc)
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


@_quiet
def decode_raw(data: bytes, *, work_size: int, preview_min: int, want_cfa: bool) -> RawFrame:
    """Working-size RGB from the embedded preview (if large enough) or a half-size development."""
    rawpy = _rawpy()
    with open_raw(data) as raw:
        try:
            width, height = raw.sizes.width, raw.sizes.height
            orientation = _FLIP_TO_EXIF.get(raw.sizes.flip, 1)
            rgb, decoder, oriented = _preview(raw, work_size, preview_min)
            cfa = _cfa(raw) if want_cfa else None
            if rgb is None:
                developed = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
                rgb = _reduce(Image.fromarray(developed), work_size)
                decoder, oriented = "rawpy:half", True
            depth = max(8, math.ceil(math.log2(max(int(raw.white_level), 1) + 1)))
        except rawpy.LibRawFileUnsupportedError as exc:  # e.g. GoPro GPR: opens, then refuses
            raise DecodeError("unsupported", f"LibRaw does not support this file: {_msg(exc)}") from exc
        except rawpy.LibRawError as exc:
            raise DecodeError("raw", f"LibRaw cannot decode it ({type(exc).__name__}): {_msg(exc)}") from exc
    return RawFrame(rgb, width, height, depth, orientation, oriented, decoder, cfa)


def _reduce(img: Image.Image, work_size: int) -> np.ndarray:
    img = img.convert("RGB")
    if max(img.size) > work_size:
        scale = work_size / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.BOX)
    return np.asarray(img, dtype=np.float32) / 255.0


def _preview(raw, work_size: int, preview_min: int):
    rawpy = _rawpy()
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError, rawpy.LibRawError):
        return None, "", False
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            img = Image.open(io.BytesIO(thumb.data))
            if max(img.size) < preview_min:
                return None, "", False
            img.draft("RGB", (work_size, work_size))
            return _reduce(img, work_size), "rawpy:preview-jpeg", False
        except (OSError, SyntaxError, ValueError):
            return None, "", False
    array = np.asarray(thumb.data)
    if array.ndim == 3 and max(array.shape[:2]) >= preview_min:
        return _reduce(Image.fromarray(array.astype(np.uint8)), work_size), "rawpy:preview-bitmap", False
    return None, "", False


def _cfa(raw) -> CfaPlane | None:
    if raw.raw_pattern is None or raw.raw_image_visible.ndim != 2:
        return None  # linear DNG and other demosaiced RAW: no CFA to learn from
    return CfaPlane(
        data=raw.raw_image_visible.copy(),
        pattern=np.array(raw.raw_pattern, dtype=np.int8),
        black=np.array(raw.black_level_per_channel, dtype=np.float32),
        white=float(raw.white_level),
        colors=raw.color_desc.decode("ascii", "replace") if isinstance(raw.color_desc, bytes) else str(raw.color_desc),
    )


def raw_metadata(data: bytes, sidecar: exif.Metadata) -> exif.Metadata:
    """Capture metadata and camera from the RAW's EXIF (exifread), filled from ``sidecar``."""
    import exifread

    try:
        tags = exifread.process_file(io.BytesIO(data), details=True, debug=False)
    except Exception:  # noqa: BLE001 - exifread raises many kinds on odd files
        tags = {}
    return exif.merged(exif.merged(exif.from_exifread(tags), magic_metadata(data)), sidecar)


_QUICKTAKE = {b"qktk": "QuickTake 100", b"qktn": "QuickTake 150"}


def magic_metadata(data: bytes) -> exif.Metadata:
    """Identity of RAW formats without EXIF: Canon CRW (CIFF records) and Apple QuickTake."""
    if data[:4] in _QUICKTAKE:
        return exif.Metadata(exif.Capture(), exif.Camera("Apple", _QUICKTAKE[data[:4]]), 1)
    if data[:2] != b"II" or data[6:14] != b"HEAPCCDR":
        return exif.EMPTY
    records: dict[int, bytes] = {}
    try:
        _ciff_heap(data, struct.unpack_from("<I", data, 2)[0], len(data), records, 0)
    except struct.error:
        pass  # a truncated heap: keep what was read
    return _ciff_metadata(records)


def _ciff_heap(data: bytes, start: int, end: int, records: dict, depth: int) -> None:
    """Collect the records of one CIFF heap (Canon "CIFF 1.0r4" spec): the heap's last 4
    bytes point at a table of 10-byte entries (tag, size, offset); sub-heaps nest."""
    if depth > 4 or end - start < 6 or end > len(data):
        return
    table = start + struct.unpack_from("<I", data, end - 4)[0]
    (count,) = struct.unpack_from("<H", data, table)
    for i in range(min(count, 1024)):
        entry = table + 2 + 10 * i
        tag, size, offset = struct.unpack_from("<HII", data, entry)
        if tag & 0xC000 == 0x4000:  # value kept in the entry itself
            records.setdefault(tag & 0x3FFF, data[entry + 2:entry + 10])
        elif start + offset + size <= end:
            if tag & 0x3800 in (0x2800, 0x3000):  # a sub-heap
                _ciff_heap(data, start + offset, start + offset + size, records, depth + 1)
            else:
                records.setdefault(tag & 0x3FFF, data[start + offset:start + offset + size])


def _ciff_metadata(records: dict) -> exif.Metadata:
    names = records.get(0x080A, b"").split(b"\0")  # "Canon\0Canon EOS D30\0"
    camera = exif.clean_make_model(names[0] if names else None, names[1] if len(names) > 1 else None)
    captured = None
    if len(records.get(0x180E, b"")) >= 4:  # TimeStamp: camera-local seconds since 1970
        seconds = struct.unpack_from("<I", records[0x180E])[0]
        captured = datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None) if seconds else None
    serial = ""
    if camera and "EOS" in camera[1] and len(records.get(0x180B, b"")) >= 4:
        # as exiftool prints it; PowerShots store a number here that changes between
        # frames of one body, so it is not a serial for them
        value = struct.unpack_from("<I", records[0x180B])[0]
        serial = f"{value >> 16:x}-{value & 0xFFFF:05d}" if "EOS D30" in camera[1] else f"{value:010d}"
    return exif.Metadata(exif.Capture(captured_at=captured),
                         exif.Camera(camera[0], camera[1], exif.plausible_serial(serial, camera[0]))
                         if camera else None, 1)


@_quiet
def develop_linear(data: bytes) -> tuple[np.ndarray, int]:
    """Full-size linear development: float32 (H, W, 3) in [0, 1] and the EXIF orientation.

    ``gamma=(1, 1), no_auto_bright, user_wb=[1, 1, 1, 1], output_color=raw`` reproduces
    (raw - black) / (white - black) within 0.4% (checked with rawpy 0.28 / LibRaw 0.22), so
    ratios are exposure ratios.
    LibRaw applies the orientation itself.
    """
    rawpy = _rawpy()
    with open_raw(data) as raw:
        try:
            out = raw.postprocess(gamma=(1, 1), no_auto_bright=True, output_bps=16,
                                  user_wb=[1, 1, 1, 1], output_color=rawpy.ColorSpace.raw)
        except rawpy.LibRawError as exc:
            raise DecodeError("raw", f"LibRaw cannot develop it: {_msg(exc)}") from exc
        orientation = _FLIP_TO_EXIF.get(raw.sizes.flip, 1)
    return out.astype(np.float32) / 65535.0, orientation


@_quiet
def read_cfa(data: bytes) -> CfaPlane | None:
    """The visible CFA plane of a RAW file (no demosaic, no development), or None when the
    file has no CFA (linear DNG). For comparing the exposure of two frames."""
    rawpy = _rawpy()
    with open_raw(data) as raw:
        try:
            return _cfa(raw)
        except rawpy.LibRawError as exc:
            raise DecodeError("raw", f"LibRaw cannot unpack it: {_msg(exc)}") from exc


@_quiet
def raw_pixel_bytes(data: bytes) -> bytes:
    """The visible raw sensor values, for a decoded-pixels digest."""
    with open_raw(data) as raw:
        return raw.raw_image_visible.tobytes()
