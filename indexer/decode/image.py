"""The one decode boundary: a file's bytes in, pixels and metadata out.

Every image library's file reader is called here and nowhere else. A file is read
once; its SHA-256 is taken from those bytes and the decoders read from memory.

* JPEG: Pillow draft mode (DCT-domain 1/2, 1/4, 1/8 downscale) to the working size.
* PNG, TIFF, WebP, BMP, GIF (first frame), HEIF (pillow-heif, optional): Pillow;
  16-bit grey keeps its precision until features are computed.
* Camera RAW: rawpy. Features come from the embedded preview when its long side is at
  least ``raw_preview_min``, else from a half-size development; capture metadata and
  identity from exifread, else from a same-name ``.THM``/``.JPG`` sidecar.

Failures raise :class:`DecodeError` with a short ``kind`` that becomes a failure row.
"""
from __future__ import annotations

import enum
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from indexer.decode import exif, sniff
from indexer.decode.digest import array_pixel_digest, digest_image, image_digest  # noqa: F401 - re-exported
# Defaults of the decode functions and of [index] in indexer.config, defined once in limits
from indexer.decode.limits import MAX_PIXELS, RAW_PREVIEW_MIN, WORK_SIZE  # noqa: F401

from indexer.measure import orient
from indexer.decode.raw import CfaPlane, decode_raw, develop_linear, raw_metadata, raw_pixel_bytes
from indexer.errors import DecodeError

Image.MAX_IMAGE_PIXELS = None  # we check the limit ourselves, with a clear message
ImageFile.LOAD_TRUNCATED_IMAGES = False

try:  # HEIF/HEIC support is an optional extra
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the installed extras
    HEIF_AVAILABLE = False




class SensorData(enum.Enum):
    """Which files keep full-size data for the sensor statistics stage."""

    NONE = "none"  # none: features only
    RAW = "raw"  # the CFA plane of RAW files
    ALL = "all"  # RAW CFA planes, and full-size frames of rendered files (JPEG, PNG...) with a camera


# (metadata, stored width, stored height, SHA-256 hex, mean luma of the working image in
# [0, 1], whether it is a RAW file) -> keep the full-size frame (or CFA plane)?
FrameFilter = Callable[[exif.Metadata, int, int, str, float, bool], bool]


def mean_luma(rgb: np.ndarray) -> float:
    """Mean Rec. 709 luma of a float (h, w, 3) image in [0, 1], on its encoded (sRGB)
    values: the brightness the budget's ``dark_luminance`` is compared with."""
    if rgb.size == 0:
        return 0.0
    return float(rgb.reshape(-1, 3).mean(axis=0) @ np.array([0.2126, 0.7152, 0.0722]))

__all__ = ["DecodeError", "Decoded", "FrameFilter", "SensorData", "decode_file", "decode_bytes", "pixel_digest", "load_full"]


@dataclass
class Decoded:
    """What the measuring stage needs from one file.

    ``rgb`` is float32 (h, w, 3) in [0, 1], sRGB-encoded, EXIF orientation applied,
    with its long side at most ``work_size`` pixels. ``width``/``height`` are the stored
    (un-rotated) pixel size; for RAW, the visible sensor area. ``pixel_sha256``:
    :func:`pixel_digest`'s value (64 hex digits), taken where the decode held the
    full-size pixels anyway and ``decode_bytes`` was asked for it, else None.
    """

    sha256: str
    size: int
    format: str
    width: int
    height: int
    bit_depth: int
    orientation: int
    rgb: np.ndarray
    meta: exif.Metadata
    decoder: str
    cfa: CfaPlane | None = None  # RAW, when sensor statistics were asked for
    frame: np.ndarray | None = None  # other formats: full-size stored pixels, likewise
    pixel_sha256: str | None = None


def read_bytes(path: Path) -> bytes:
    """The file's bytes; empty and unreadable files raise DecodeError."""
    try:
        data = path.read_bytes()
    except PermissionError as exc:
        raise DecodeError("unreadable", f"permission denied: {exc.strerror or exc}") from exc
    except IsADirectoryError as exc:
        raise DecodeError("unreadable", "is a directory") from exc
    except OSError as exc:
        raise DecodeError("unreadable", str(exc)) from exc
    if not data:
        raise DecodeError("empty", "zero-byte file")
    return data


def decode_file(path: str | Path, *, work_size: int = WORK_SIZE, raw_preview_min: int = RAW_PREVIEW_MIN,
                max_pixels: int = MAX_PIXELS, sensor_data: SensorData = SensorData.NONE,
                digest_pixels: int = 0) -> Decoded:
    """Read and decode one file (see :func:`decode_bytes`)."""
    path = Path(path)
    return decode_bytes(read_bytes(path), path, work_size=work_size, raw_preview_min=raw_preview_min,
                        max_pixels=max_pixels, sensor_data=sensor_data, digest_pixels=digest_pixels)


def decode_bytes(data: bytes, path: Path, *, work_size: int = WORK_SIZE, raw_preview_min: int = RAW_PREVIEW_MIN,
                 max_pixels: int = MAX_PIXELS, sensor_data: SensorData = SensorData.NONE,
                 frame_wanted: FrameFilter | None = None, digest_pixels: int = 0) -> Decoded:
    """Decode ``data`` (the bytes of ``path``) to a :class:`Decoded` at the working size.

    ``digest_pixels``: an image of at most this many pixels that is decoded at full size
    anyway (not a RAW, not a draft-decoded JPEG; a JPEG whose full-size frame the sensor
    statistics keep is) gets its :func:`pixel_digest` in ``Decoded.pixel_sha256``, from
    the pixels in hand (no second decode; costs the hash, ~2.5 ms/MP:
    :mod:`indexer.decode.digest`); 0: never.

    ``frame_wanted(meta, width, height, sha256, luminance, raw)``, when given, decides for
    each file of a camera whether its full-size frame (``SensorData.ALL``) or RAW CFA plane
    is kept (it is asked after the working image is decoded, with its mean luma, before
    any full-size decode: a JPEG not wanted gets only the cheap draft decode; a RAW's CFA
    plane comes with its decode at no measurable cost, 65-80 ms either way on 4 MP CRWs).
    """
    kind = sniff.sniff(data[:32])
    digest = hashlib.sha256(data).hexdigest()
    if sniff.is_raw(data, path.suffix):
        try:
            return _from_raw(data, path, digest, work_size, raw_preview_min,
                             want_cfa=sensor_data is not SensorData.NONE, frame_wanted=frame_wanted)
        except DecodeError as raw_error:
            if kind != "tiff" or sniff.tiff_looks_like_camera_raw(data):
                raise  # a RAW LibRaw cannot decode is a failure, not its thumbnail
            try:  # a plain TIFF that only a RAW name sent to rawpy
                return _from_pillow(data, digest, work_size, max_pixels, sensor_data)
            except DecodeError:
                raise raw_error from None
    if kind == "heif" and not HEIF_AVAILABLE:
        raise DecodeError("unsupported", "HEIF/HEIC needs the optional extra: pip install 'photoqa[heif]'")
    return _from_pillow(data, digest, work_size, max_pixels, sensor_data, frame_wanted, digest_pixels)


def open_pillow(data: bytes, max_pixels: int) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise DecodeError("corrupt", "not a recognised image (unknown or damaged header)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        kind = "truncated" if "truncat" in str(exc).lower() else "corrupt"
        raise DecodeError(kind, f"cannot open: {exc}") from exc
    if img.width * img.height > max_pixels:
        raise DecodeError("bomb", f"{img.width}x{img.height} = {_megapixels(img.width * img.height)} "
                          f"exceeds the limit of {_megapixels(max_pixels)} (decompression bomb guard)")
    return img


def _megapixels(pixels: int) -> str:
    # small limits (tests, tight configs) printed as "0 MP" read as nonsense
    return f"{pixels / 1e6:.0f} MP" if pixels >= 10_000_000 else f"{pixels / 1e6:.3g} MP"


def load_pixels(img: Image.Image) -> None:
    try:
        img.load()
    except OSError as exc:
        text = str(exc)
        kind = "truncated" if "truncated" in text or "broken data stream" in text else "corrupt"
        raise DecodeError(kind, text) from exc
    except (SyntaxError, ValueError, EOFError, IndexError, MemoryError) as exc:
        raise DecodeError("corrupt", f"{type(exc).__name__}: {exc}") from exc


def bit_depth(img: Image.Image) -> int:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return 16
    if img.mode == "F":
        return 32
    if img.mode == "1":
        return 1
    tile = getattr(img, "tile", None) or []
    if tile and isinstance(tile[0].args, (str, tuple)) and "16" in str(tile[0].args):
        return 16  # Pillow keeps 8 bits of RGB;16 data: report the file's depth all the same
    return 8


def _from_pillow(data: bytes, digest: str, work_size: int, max_pixels: int,
                 sensor_data: SensorData = SensorData.NONE, frame_wanted: FrameFilter | None = None,
                 digest_pixels: int = 0) -> Decoded:
    img = open_pillow(data, max_pixels)
    fmt = (img.format or "UNKNOWN").upper()
    depth = bit_depth(img)  # before getexif(): on a PNG it loads the pixels, emptying img.tile
    meta = exif_of(img)
    orientation, upright = _orientation(img, fmt, meta)
    width, height = img.width, img.height
    if upright and orient.swaps_axes(orient.from_exif(orientation)):
        width, height = height, width  # the stored (un-rotated) size
    # A frame for sensor statistics needs every stored pixel; only frames that name their
    # camera can be attributed to one. A JPEG's features still come from its draft decode,
    # whether or not its frame is kept: the stored hashes must not depend on which frames
    # the sensor budget drew (a full decode resized gives slightly different hashes), so a
    # kept JPEG frame costs a second, full-size decode, decided after the draft one: the
    # budget draws dark frames more often, and the draft's mean luma tells them for free.
    wants_frame = sensor_data is SensorData.ALL and meta.camera is not None
    wants_digest = 0 < img.width * img.height <= digest_pixels
    opened = img.size
    if fmt == "JPEG":
        img.draft("L" if img.mode == "L" else "RGB", draft_request(img.size, work_size))
    load_pixels(img)
    first = _first_frame(img)
    pixel_sha = None
    if wants_digest and first.size == opened:  # full size: no DCT scaling took place
        hashed, pixel_sha = _digested(first)
        first = hashed if hashed.mode == "RGB" else first  # converted once for both
    rgb = to_float_rgb(first, work_size)
    frame = None
    if wants_frame and (frame_wanted is None or frame_wanted(meta, width, height, digest, mean_luma(rgb), False)):
        full = img
        if first.size != opened:  # a draft-decoded JPEG: its frame needs a full-size decode
            full = open_pillow(data, max_pixels)
            load_pixels(full)
            if wants_digest:
                pixel_sha = _digested(_first_frame(full))[1]
        frame = sensor_frame(_first_frame(full))
    if not upright:
        rgb = np.ascontiguousarray(orient.apply(rgb, orient.from_exif(orientation)))
    reduced = max(width, height) // max(img.size)  # > 1 after a JPEG draft
    decoder = f"pillow:{fmt.lower()}" + (f":draft{reduced}" if reduced > 1 else "")
    return Decoded(digest, len(data), fmt, width, height, depth, orientation, rgb, meta, decoder,
                   frame=frame, pixel_sha256=pixel_sha)


def _digested(img: Image.Image) -> tuple[Image.Image, str | None]:
    """``img`` in its digest mode and its pixel digest; ``img`` and None when Pillow
    fails on it (a digest is an extra: a file whose pixels were decoded is indexed all
    the same, and a proof that needs the digest asks the verification pool)."""
    try:
        hashed = digest_image(img)
        return hashed, image_digest(hashed)
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, KeyError):
        return img, None


def _orientation(img: Image.Image, fmt: str, meta: exif.Metadata) -> tuple[int, bool]:
    """EXIF orientation, and whether the decoder already applied it.

    pillow-heif turns HEIF images upright while decoding and resets the EXIF tag to 1,
    keeping the original value in ``info['original_orientation']``.
    """
    original = img.info.get("original_orientation") if fmt == "HEIF" else None
    if isinstance(original, int) and 2 <= original <= 8:
        return original, True
    return meta.orientation, False


def sensor_frame(img: Image.Image) -> np.ndarray | None:
    """Stored (un-rotated) full-size pixels for sensor statistics.

    uint16 (H, W) for 16-bit grey (e.g. a mosaiced CFA saved as PNG/TIFF), uint8 (H, W)
    for 8-bit grey, uint8 (H, W, 3) otherwise.
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.uint16).copy()
    if img.mode == "I":
        return np.clip(np.asarray(img), 0, 65535).astype(np.uint16)
    if img.mode == "L":
        return np.asarray(img, dtype=np.uint8).copy()
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def _first_frame(img: Image.Image) -> Image.Image:
    try:
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, KeyError) as exc:
        # found by tests/fuzz: a TIFF whose later IFD lacks its dimensions raises TypeError here
        raise DecodeError("corrupt", f"cannot read the first frame: {type(exc).__name__}: {exc}") from exc
    return img


def exif_of(img: Image.Image) -> exif.Metadata:
    """The EXIF of an open image, or no metadata when it is broken (broken EXIF must not
    lose the pixels: Pillow raises OSError, SyntaxError, struct.error... on damaged IFDs)."""
    try:
        return exif.from_pillow(img.getexif())
    except Exception:  # noqa: BLE001
        return exif.EMPTY


def draft_request(size: tuple[int, int], work_size: int) -> tuple[int, int]:
    """Smallest (w, h) whose long side is ``work_size``, aspect kept: draft never goes below it."""
    w, h = size
    scale = work_size / max(w, h)
    return max(1, int(np.ceil(w * scale))), max(1, int(np.ceil(h * scale)))


def to_float_rgb(img: Image.Image, work_size: int | None) -> np.ndarray:
    """Pillow image -> float32 (h, w, 3) in [0, 1], long side reduced to ``work_size``.

    16-bit and float grey are resized in floating point so their precision survives.
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        peak = 65535.0 if img.mode != "F" else max(float(arr.max()), 1.0)
        grey = Image.fromarray(arr / peak, mode="F")
        if work_size and max(grey.size) > work_size:
            grey = grey.resize(draft_request(grey.size, work_size), Image.Resampling.BOX)
        plane = np.clip(np.asarray(grey, dtype=np.float32), 0.0, 1.0)
        return np.repeat(plane[:, :, None], 3, axis=2)
    rgb = img if img.mode == "RGB" else img.convert("RGB")  # never changed in place: no copy
    if work_size and max(rgb.size) > work_size:
        rgb = rgb.resize(draft_request(rgb.size, work_size), Image.Resampling.BOX)
    return np.asarray(rgb, dtype=np.float32) / 255.0


def _from_raw(data: bytes, path: Path, digest: str, work_size: int, preview_min: int, *,
              want_cfa: bool, frame_wanted: FrameFilter | None = None) -> Decoded:
    meta = raw_metadata(data, sidecar_meta(path))
    frame = decode_raw(data, work_size=work_size, preview_min=preview_min, want_cfa=want_cfa)
    orientation = frame.orientation or meta.orientation
    rgb = frame.rgb if frame.already_oriented else orient.apply(frame.rgb, orient.from_exif(orientation))
    fmt = "RAW-" + (path.suffix.lstrip(".").upper() or "UNKNOWN")
    cfa = frame.cfa
    if cfa is not None and frame_wanted is not None and meta.camera is not None and not frame_wanted(
            meta, frame.width, frame.height, digest, mean_luma(rgb), True):
        cfa = None
    return Decoded(digest, len(data), fmt, frame.width, frame.height, frame.bit_depth, orientation,
                   np.ascontiguousarray(rgb), meta, frame.decoder, cfa)


_SIDECARS = (".THM", ".thm", ".JPG", ".jpg", ".JPEG", ".jpeg")


def sidecar_meta(path: Path) -> exif.Metadata:
    """EXIF of a same-name ``.THM``/``.JPG`` beside a RAW (Canon CRW keeps it there)."""
    # Named candidates, not a listing of the folder: listing it for every RAW made a
    # folder of n RAW files cost n^2 directory entries.
    for suffix in _SIDECARS:
        sibling = path.with_suffix(suffix)
        if sibling == path or not sibling.is_file():
            continue
        try:
            with Image.open(sibling) as img:
                return exif.from_pillow(img.getexif())
        except Exception:  # noqa: BLE001 - a broken sidecar is just no sidecar
            continue
    return exif.EMPTY


def pixel_digest(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> str:
    """SHA-256 of the full-size decoded pixels (stored orientation, mode and size included:
    :mod:`indexer.decode.digest`).

    Two files with equal digests hold the same picture whatever their metadata or
    container; used only to verify ``same_pixels`` candidates, as it needs a full decode
    (:func:`decode_bytes` gives it for free where it decodes at full size anyway).
    """
    path = Path(path)
    data = read_bytes(path)
    if sniff.is_raw(data, path.suffix):
        return hashlib.sha256(b"raw:" + raw_pixel_bytes(data)).hexdigest()
    img = open_pillow(data, max_pixels)
    load_pixels(_first_frame(img))
    return image_digest(digest_image(img))


def payload_digest(path: str | Path) -> str | None:
    """Digest of a JPEG's coded image without its metadata (see sniff.jpeg_payload_digest);
    None for other formats. Equal values prove equal pixels without decoding."""
    return sniff.jpeg_payload_digest(read_bytes(Path(path)))


@dataclass
class FullImage:
    """A full-resolution image for pixel comparison.

    ``pixels``: float32 (H, W, 3) in [0, 1], EXIF orientation applied. ``linear`` is True
    for RAW developed linearly, False for sRGB-encoded files.
    """

    pixels: np.ndarray
    linear: bool
    exposure_time: float | None
    f_number: float | None
    iso: int | None


def load_full(path: str | Path, *, raw_linear: bool = True,
              max_pixels: int = MAX_PIXELS) -> FullImage:
    """Decode ``path`` at full resolution (RAW linearly developed when ``raw_linear``)."""
    path = Path(path)
    data = read_bytes(path)
    if raw_linear and sniff.is_raw(data, path.suffix):
        pixels, _ = develop_linear(data)
        meta = raw_metadata(data, sidecar_meta(path))
        cap = meta.capture
        return FullImage(pixels, True, cap.exposure_time, cap.f_number, cap.iso)
    img = open_pillow(data, max_pixels)
    meta = exif_of(img)
    load_pixels(_first_frame(img))
    rgb = orient.apply(to_float_rgb(img, None), orient.from_exif(meta.orientation))
    cap = meta.capture
    return FullImage(np.ascontiguousarray(rgb), False, cap.exposure_time, cap.f_number, cap.iso)


def load_grey(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Full-size grey (ITU-R 601 luma, Pillow's "L") uint8 (H, W) of a non-RAW file
    (float32 on the file's own scale for a single-channel 16-bit or float image), as
    stored (EXIF orientation not applied: a rotation or flip moves no energy between
    spatial frequencies' magnitudes, which is all :mod:`indexer.measure.detail` reads).
    A twelfth of :func:`load_full`'s float RGB: 12 MB for 12 MP, not 144."""
    img = open_pillow(read_bytes(Path(path)), max_pixels)
    load_pixels(_first_frame(img))
    try:
        if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            # single-channel 16-bit or float: converting to "L" clips above 255 (a white frame)
            return np.asarray(img, dtype=np.float32)
        return np.asarray(img.convert("L"))
    except (OSError, ValueError) as exc:
        raise DecodeError("corrupt", f"cannot convert to grey: {exc}") from exc
