"""Camera RAW through rawpy (LibRaw), from bytes in memory.

Facts this relies on (PITFALLS.md, checked with rawpy 0.28 / LibRaw 0.22): rawpy exposes
no make/model/serial (read EXIF with exifread, or a ``.THM`` sidecar for Canon CRW);
``raw_image_visible`` is a view valid only while the file is open, so it is copied;
``raw_pattern`` gives the CFA colour index of each site of the 2x2 tile; ``postprocess``
output is already rotated by LibRaw's ``flip``; ``extract_thumb`` reads the embedded
preview without decoding the raw data. Linux wheels use OpenMP: never fork after import
(the pipeline uses spawn/forkserver).
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from indexer import exif
from indexer.errors import DecodeError

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
    return exif.merged(exif.from_exifread(tags), sidecar)


def develop_linear(data: bytes) -> tuple[np.ndarray, int]:
    """Full-size linear development: float32 (H, W, 3) in [0, 1] and the EXIF orientation.

    ``gamma=(1, 1), no_auto_bright, user_wb=[1, 1, 1, 1], output_color=raw`` reproduces
    (raw - black) / (white - black) within 0.4% (PITFALLS.md), so ratios are exposure ratios.
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


def raw_pixel_bytes(data: bytes) -> bytes:
    """The visible raw sensor values, for a decoded-pixels digest."""
    with open_raw(data) as raw:
        return raw.raw_image_visible.tobytes()
