"""Capture metadata and camera identity from EXIF (Pillow and exifread shapes)."""
from __future__ import annotations

import io
from datetime import datetime
from fractions import Fraction

import exifread
import numpy as np
import pytest
from PIL import Image, TiffImagePlugin

from indexer import decode

from indexer.decode import exif
import imagefiles as F


def exif_block(sub: dict | None = None) -> Image.Exif:
    e = Image.Exif()
    e[exif.TAG_MAKE] = "NIKON CORPORATION "
    e[exif.TAG_MODEL] = "NIKON  D300"
    e[exif.TAG_ORIENTATION] = 8
    e[exif.TAG_DATETIME] = "2001:01:01 00:00:00"
    ifd = e.get_ifd(exif.TAG_EXIF_IFD)
    ifd.update(sub or {})
    return e


def full_sub():
    R = TiffImagePlugin.IFDRational
    return {exif.EXIF_DATETIME_ORIGINAL: "2019:07:14 10:11:12", exif.EXIF_SUBSEC_ORIGINAL: "045",
            exif.EXIF_OFFSET_ORIGINAL: "+02:00", exif.EXIF_EXPOSURE_TIME: R(1, 250),
            exif.EXIF_FNUMBER: R(56, 10), exif.EXIF_ISO: 400, exif.EXIF_FOCAL: R(35, 1),
            exif.EXIF_BODY_SERIAL: "3105364"}


def jpeg_with(e: Image.Exif) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(F.scene(0, 64, 48)).save(buf, "JPEG", exif=e.tobytes())
    return buf.getvalue()


def test_from_pillow_all_fields():
    meta = exif.from_pillow(exif_block(full_sub()))
    cap = meta.capture
    assert cap.captured_at == datetime(2019, 7, 14, 10, 11, 12, 45000)
    assert cap.utc_offset == "+02:00"
    assert cap.exposure_time == pytest.approx(1 / 250)
    assert cap.f_number == pytest.approx(5.6)
    assert cap.iso == 400 and cap.focal_length == pytest.approx(35.0)
    assert meta.camera == exif.Camera("NIKON CORPORATION", "NIKON D300", "3105364")
    assert meta.orientation == 8


def test_round_trip_through_a_jpeg_file(tmp_path):
    path = F.write(tmp_path / "nikon.jpg", jpeg_with(exif_block(full_sub())))
    d = decode.decode_file(path)
    assert d.meta.camera.model == "NIKON D300"
    assert d.meta.capture.captured_at == datetime(2019, 7, 14, 10, 11, 12, 45000)
    assert d.meta.capture.iso == 400
    assert d.orientation == 8 and d.rgb.shape[:2] == (64, 48)
    # exifread reads the same file to the same metadata (the RAW path uses it)
    via_exifread = exif.from_exifread(exifread.process_file(io.BytesIO(path.read_bytes()), details=False))
    assert via_exifread.camera == d.meta.camera
    assert via_exifread.capture == d.meta.capture
    assert via_exifread.orientation == 8


def test_datetime_fallback_and_no_subsec():
    meta = exif.from_pillow(exif_block())
    assert meta.capture.captured_at == datetime(2001, 1, 1)


@pytest.mark.parametrize("stamp,subsec,expected", [
    ("2020:02:29 23:59:59", None, datetime(2020, 2, 29, 23, 59, 59)),
    ("2020:02:29 23:59:59", "5", datetime(2020, 2, 29, 23, 59, 59, 500000)),
    ("2020:02:29 23:59:59", "123 ", datetime(2020, 2, 29, 23, 59, 59, 123000)),
    (b"2020:01:02 03:04:05\x00", None, datetime(2020, 1, 2, 3, 4, 5)),
    ("0000:00:00 00:00:00", None, None), ("    :  :     :  :  ", None, None), ("", None, None),
    (None, "12", None), ("garbage", None, None),
])
def test_parse_datetime(stamp, subsec, expected):
    assert exif.parse_datetime(stamp, subsec) == expected


@pytest.mark.parametrize("serial,make,expected", [
    ("3105364", "NIKON CORPORATION", "3105364"),
    ("00STANDA", "NIKON CORPORATION", ""),  # exifread's misread Nikon maker note
    ("a32-00001", "Canon", "a32-00001"), ("0000000", "Canon", ""), ("", "Canon", ""),
    ("ABCDEF", "Canon", ""), (None, None, ""), (b"1235-02474\x00", "Canon", "1235-02474"),
])
def test_plausible_serial(serial, make, expected):
    assert exif.plausible_serial(serial, make) == expected


@pytest.mark.parametrize("value,expected", [
    (Fraction(1, 250), 0.004), ("1/250", 0.004), (2.8, 2.8), ((28, 10), 28.0), ([], None),
    ("x", None), ("1/0", None), (0, None), (-1, None), (float("nan"), None),
])
def test_number(value, expected):
    got = exif.number(value)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_orientation_out_of_range_is_upright():
    e = exif_block()
    e[exif.TAG_ORIENTATION] = 42
    assert exif.from_pillow(e).orientation == 1


class Tag:
    def __init__(self, values):
        self.values = values


def test_from_exifread_dict():
    tags = {
        "Image Make": Tag("Canon"), "Image Model": Tag("Canon EOS D30"),
        "MakerNote SerialNumber": Tag([123502474]),
        "EXIF DateTimeOriginal": Tag("2002:03:04 05:06:07"),
        "EXIF ExposureTime": Tag([exifread.utils.Ratio(5, 1)]),
        "EXIF FNumber": Tag([exifread.utils.Ratio(8, 1)]),
        "EXIF ISOSpeedRatings": Tag([100]), "Image Orientation": Tag([6]),
    }
    meta = exif.from_exifread(tags)
    assert meta.camera == exif.Camera("Canon", "Canon EOS D30", "123502474")
    assert meta.capture.exposure_time == 5.0 and meta.capture.f_number == 8.0
    assert meta.capture.iso == 100 and meta.orientation == 6
    assert meta.capture.captured_at == datetime(2002, 3, 4, 5, 6, 7)


def test_dng_unique_model_when_no_make():
    meta = exif.from_exifread({"Image UniqueCameraModel": Tag("Blackmagic Pocket Cinema Camera 4K")})
    assert meta.camera == exif.Camera("", "Blackmagic Pocket Cinema Camera 4K", "")


def test_empty_sources():
    assert exif.from_exifread({}) is exif.EMPTY
    assert exif.from_pillow(Image.Exif()) is exif.EMPTY


def test_merged_fills_gaps_from_sidecar():
    raw = exif.Metadata(exif.Capture(iso=200), None, 1)
    thm = exif.Metadata(exif.Capture(iso=400, exposure_time=0.5), exif.Camera("Canon", "PowerShot S40"), 6)
    out = exif.merged(raw, thm)
    assert out.capture.iso == 200 and out.capture.exposure_time == 0.5
    assert out.camera.model == "PowerShot S40" and out.orientation == 6
    assert exif.merged(thm, raw).orientation == 6


def test_sidecar_thm_gives_camera_to_a_raw(tmp_path):
    e = exif_block(full_sub())
    F.write(tmp_path / "CRW_0001.THM", jpeg_with(e))
    meta = decode.sidecar_meta(tmp_path / "CRW_0001.CRW")
    assert meta.camera.model == "NIKON D300" and meta.capture.iso == 400
    assert decode.sidecar_meta(tmp_path / "CRW_0002.CRW") is exif.EMPTY


@pytest.mark.filterwarnings("ignore:Corrupt EXIF")
def test_broken_exif_keeps_pixels(tmp_path):
    data = bytearray(jpeg_with(exif_block(full_sub())))
    start = data.index(b"Exif\x00\x00")
    data[start + 10:start + 40] = b"\xff" * 30  # smash the IFD offsets
    d = decode.decode_file(F.write(tmp_path / "bad_exif.jpg", bytes(data)))
    assert d.rgb.shape == (48, 64, 3)
    assert np.isfinite(d.rgb).all()


def ciff_file(model: bytes, serial: int, stamp: int) -> bytes:
    """A minimal Canon CRW: header + one heap holding make/model, serial and timestamp."""
    import struct

    values = b"Canon\0" + model + b"\0"
    entries = [struct.pack("<HII", 0x080A, len(values), 0),
               struct.pack("<H", 0x4000 | 0x180B) + struct.pack("<II", serial, 0),
               struct.pack("<H", 0x4000 | 0x180E) + struct.pack("<II", stamp, 0)]
    heap = values + struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", len(values))
    header = b"II" + struct.pack("<I", 26) + b"HEAPCCDR" + struct.pack("<I", 0x00010002) + b"\0" * 8
    return header + heap


def test_crw_identity_from_ciff_records():
    from indexer.decode.raw import magic_metadata

    d30 = magic_metadata(ciff_file(b"Canon EOS D30", (0xA32 << 16) | 1, 1038150682))
    assert d30.camera == exif.Camera("Canon", "Canon EOS D30", "a32-00001")
    assert d30.capture.captured_at == datetime(2002, 11, 24, 15, 11, 22)
    rebel = magic_metadata(ciff_file(b"Canon EOS DIGITAL REBEL", 560018150, 0))
    assert rebel.camera.serial == "0560018150" and rebel.capture.captured_at is None
    # PowerShots keep a per-frame number there, not a body serial
    assert magic_metadata(ciff_file(b"Canon PowerShot S40", 1135765596, 0)).camera.serial == ""
    assert magic_metadata(ciff_file(b"Canon EOS D30", 1, 0)[:40]).camera is None  # truncated: no crash
    assert magic_metadata(b"qktn" + b"\0" * 40).camera == exif.Camera("Apple", "QuickTake 150")
    assert magic_metadata(b"\xff\xd8\xff" + b"\0" * 40) is exif.EMPTY


def test_malformed_offset_and_absurd_iso_are_dropped():
    # they would not fit the columns (utc_offset is 8 wide; iso an INTEGER) on PostgreSQL
    sub = full_sub()
    sub[exif.EXIF_OFFSET_ORIGINAL] = "+02:00 and some junk"
    sub[exif.EXIF_ISO] = 0xFFFFFFFF
    meta = exif.from_pillow(exif_block(sub))
    assert meta.capture.utc_offset is None and meta.capture.iso is None
    assert exif.from_pillow(exif_block(full_sub())).capture.utc_offset == "+02:00"
    tags = {"Image Make": Tag("X"), "EXIF OffsetTimeOriginal": Tag("-05:30"), "EXIF ISOSpeedRatings": Tag([0])}
    meta = exif.from_exifread(tags)
    assert meta.capture.utc_offset == "-05:30" and meta.capture.iso is None
