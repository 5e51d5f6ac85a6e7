"""Capture metadata and camera identity from EXIF, as plain dataclasses.

Two sources, one shape: Pillow's ``Image.Exif`` (JPEG, TIFF, PNG, WebP, HEIF) and the
tag dictionary of ``exifread.process_file`` (RAW files Pillow cannot open). Known
trap (ExifRead 3.5): on some JPEGs exifread reads Nikon maker-note ASCII values 18 bytes
late (a D300 sample gave serial ``00STANDA`` instead of ``3105364``), so body serials
prefer EXIF ``BodySerialNumber`` (0xA431) and DNG ``CameraSerialNumber`` (0xC62F), and a
maker-note serial is accepted only when it looks like one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

TAG_MAKE, TAG_MODEL, TAG_ORIENTATION = 0x010F, 0x0110, 0x0112
TAG_DATETIME, TAG_EXIF_IFD = 0x0132, 0x8769
TAG_UNIQUE_MODEL, TAG_DNG_SERIAL = 0xC614, 0xC62F
EXIF_DATETIME_ORIGINAL, EXIF_SUBSEC_ORIGINAL, EXIF_OFFSET_ORIGINAL = 0x9003, 0x9291, 0x9011
EXIF_EXPOSURE_TIME, EXIF_FNUMBER, EXIF_ISO, EXIF_FOCAL = 0x829A, 0x829D, 0x8827, 0x920A
EXIF_BODY_SERIAL = 0xA431


@dataclass(frozen=True)
class Capture:
    """When and how a frame was exposed. Units: seconds, f-number, ISO, millimetres."""

    captured_at: datetime | None = None  # local camera time, sub-seconds kept
    utc_offset: str | None = None  # e.g. "+02:00" when the camera recorded it
    exposure_time: float | None = None
    f_number: float | None = None
    iso: int | None = None
    focal_length: float | None = None


@dataclass(frozen=True)
class Camera:
    """A camera body: make and model as written by the camera, serial when known ('' if not)."""

    make: str
    model: str
    serial: str = ""


@dataclass(frozen=True)
class Metadata:
    capture: Capture
    camera: Camera | None
    orientation: int = 1


EMPTY = Metadata(Capture(), None, 1)


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    text = str(value).replace("\x00", " ").strip()
    return text or None


def number(value) -> float | None:
    """A rational, number, or 'a/b' string as float; None when absent or malformed."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if value is None:
        return None
    try:
        if hasattr(value, "num") and hasattr(value, "den"):  # exifread Ratio
            return float(value.num) / float(value.den) if value.den else None
        got = float(Fraction(str(value).strip())) if isinstance(value, str) else float(value)
    except (ValueError, ZeroDivisionError, TypeError, OverflowError):
        return None
    return got if got == got and got > 0 else None


def parse_datetime(stamp, subsec=None) -> datetime | None:
    """EXIF 'YYYY:MM:DD HH:MM:SS' plus SubSecTime digits -> datetime, None if malformed."""
    text = _text(stamp)
    if not text:
        return None
    try:
        moment = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    digits = re.sub(r"\D", "", _text(subsec) or "")
    if digits:
        moment += timedelta(seconds=float("0." + digits))
    return moment


def _offset(value) -> str | None:
    """An EXIF OffsetTime* value ('+02:00'), None when absent or malformed (the column is 8 wide)."""
    text = _text(value)
    return text if text and re.fullmatch(r"[+-]\d\d:\d\d", text) else None


def _iso(value: float | None) -> int | None:
    """ISO as an int; absurd values (a LONG of 0xFFFFFFFF) would overflow an INTEGER column."""
    return int(value) if value and 1 <= value < 10_000_000 else None


def clean_make_model(make: str | None, model: str | None) -> tuple[str, str] | None:
    """Normalise whitespace; drop a model's repeated make prefix only for display elsewhere."""
    make, model = _text(make), _text(model)
    if not make and not model:
        return None
    return " ".join((make or "").split()), " ".join((model or "").split())


def plausible_serial(serial, make: str | None = None) -> str:
    """A serial number if it looks like one, else ''. Nikon serials are digits only."""
    text = _text(serial) or ""
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z\-]{2,31}", text) or not re.search(r"\d", text):
        return ""
    if make and make.lower().startswith("nikon") and not text.isdigit():
        return ""
    if set(text) <= {"0"}:
        return ""
    return text


def from_pillow(exif) -> Metadata:
    """Metadata from a Pillow ``Image.Exif`` (``img.getexif()``)."""
    if not exif:
        return EMPTY
    sub = exif.get_ifd(TAG_EXIF_IFD)
    names = clean_make_model(exif.get(TAG_MAKE), exif.get(TAG_MODEL) or exif.get(TAG_UNIQUE_MODEL))
    camera = None
    if names:
        serial = plausible_serial(sub.get(EXIF_BODY_SERIAL) or exif.get(TAG_DNG_SERIAL), names[0])
        camera = Camera(names[0], names[1], serial)
    iso = number(sub.get(EXIF_ISO))
    capture = Capture(
        captured_at=parse_datetime(sub.get(EXIF_DATETIME_ORIGINAL) or exif.get(TAG_DATETIME),
                                   sub.get(EXIF_SUBSEC_ORIGINAL)),
        utc_offset=_offset(sub.get(EXIF_OFFSET_ORIGINAL)),
        exposure_time=number(sub.get(EXIF_EXPOSURE_TIME)),
        f_number=number(sub.get(EXIF_FNUMBER)),
        iso=_iso(iso),
        focal_length=number(sub.get(EXIF_FOCAL)),
    )
    return Metadata(capture, camera, _orientation(exif.get(TAG_ORIENTATION)))


def _orientation(value) -> int:
    try:
        got = int(str(value).split()[0]) if value is not None else 1
    except ValueError:
        return 1
    return got if 1 <= got <= 8 else 1


def _tag(tags: dict, *names):
    for name in names:
        if name in tags:
            return tags[name].values if hasattr(tags[name], "values") else tags[name]
    return None


def from_exifread(tags: dict) -> Metadata:
    """Metadata from an ``exifread.process_file`` dictionary (RAW files)."""
    if not tags:
        return EMPTY
    names = clean_make_model(_tag(tags, "Image Make"),
                             _tag(tags, "Image Model", "Image UniqueCameraModel", "Image Tag 0xC614"))
    camera = None
    if names:
        serial = ""
        for key in ("EXIF BodySerialNumber", "Image CameraSerialNumber", "Image Tag 0xC62F",
                    "MakerNote SerialNumber", "MakerNote InternalSerialNumber"):
            serial = plausible_serial(_scalar(_tag(tags, key)), names[0])
            if serial:
                break
        camera = Camera(names[0], names[1], serial)
    iso = number(_tag(tags, "EXIF ISOSpeedRatings", "EXIF PhotographicSensitivity"))
    capture = Capture(
        captured_at=parse_datetime(_scalar(_tag(tags, "EXIF DateTimeOriginal", "Image DateTime")),
                                   _scalar(_tag(tags, "EXIF SubSecTimeOriginal"))),
        utc_offset=_offset(_scalar(_tag(tags, "EXIF OffsetTimeOriginal"))),
        exposure_time=number(_tag(tags, "EXIF ExposureTime")),
        f_number=number(_tag(tags, "EXIF FNumber")),
        iso=_iso(iso),
        focal_length=number(_tag(tags, "EXIF FocalLength")),
    )
    orientation = _tag(tags, "Image Orientation")
    return Metadata(capture, camera, _orientation(_scalar(orientation)))


def _scalar(value):
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def merged(primary: Metadata, fallback: Metadata) -> Metadata:
    """``primary`` with its missing capture fields and camera taken from ``fallback``."""
    fields = {k: getattr(primary.capture, k) if getattr(primary.capture, k) is not None
              else getattr(fallback.capture, k) for k in Capture.__dataclass_fields__}
    return Metadata(Capture(**fields), primary.camera or fallback.camera,
                    primary.orientation if primary.orientation != 1 else fallback.orientation)
