"""Format from content, not from the name."""
from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.decode import sniff

RGB = np.random.default_rng(0).integers(0, 256, (8, 10, 3), dtype=np.uint8)


def encoded(fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(RGB).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,kind", [("JPEG", "jpeg"), ("PNG", "png"), ("GIF", "gif"), ("BMP", "bmp"),
                                      ("WEBP", "webp"), ("TIFF", "tiff")])
def test_pillow_formats(fmt, kind):
    assert sniff.sniff(encoded(fmt)[:32]) == kind


def test_heif():
    pytest.importorskip("pillow_heif").register_heif_opener()
    assert sniff.sniff(encoded("HEIF")[:32]) == "heif"


@pytest.mark.parametrize("head", [
    b"II\x1a\x00\x00\x00HEAPCCDR" + b"\x00" * 8,  # Canon CRW
    b"FUJIFILMCCD-RAW 0201",
    b"IIRO\x08\x00\x00\x00", b"IIU\x00\x08\x00\x00\x00", b"\x00MRM\x00\x00",
    b"FOVb\x02\x00", b"qktk\x00\x00", b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01",
])
def test_raw_magic(head):
    assert sniff.sniff(head) == "raw"


@pytest.mark.parametrize("head", [b"", b"\xff\xd8", b"hello world", b"<svg xmlns=", b"\x00" * 32, b"BM"])
def test_not_an_image(head):
    assert sniff.sniff(head) is None


def test_jpeg_magic_alone_is_still_jpeg():
    assert sniff.sniff(b"\xff\xd8\xff") == "jpeg"  # the decoder then reports it corrupt


def _tiff_with_tag(tag: int) -> bytes:
    entries = struct.pack("<HHII", 0x0100, 3, 1, 8) + struct.pack("<HHII", tag, 1, 4, 0x01040000)
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2) + entries + b"\x00" * 4


def test_tiff_is_raw():
    plain = encoded("TIFF")
    assert not sniff.tiff_is_raw(plain, ".tif")
    assert sniff.tiff_is_raw(plain, ".NEF")  # a RAW name breaks the tie between TIFF-like kinds
    assert sniff.tiff_is_raw(b"II*\x00\x10\x00\x00\x00CR\x02\x00" + b"\x00" * 20, ".x")  # CR2 marker
    assert sniff.tiff_is_raw(_tiff_with_tag(0xC612), ".tif")  # DNGVersion in IFD0
    assert not sniff.tiff_is_raw(_tiff_with_tag(0x0101), ".tif")
    assert not sniff.tiff_is_raw(b"II*\x00\xff\xff\xff\x7f", ".tif")  # bad offset: no crash


@pytest.mark.parametrize("name,head,expected", [
    ("a.jpg", b"", True), ("photo.svg", encoded("PNG")[:32], True), ("x.CR2", b"junk", True),
    ("notes.txt", b"hello", False), ("IMG_0001.THM", encoded("JPEG")[:32], False),
    ("noext", encoded("JPEG")[:32], True),
])
def test_is_candidate(name, head, expected):
    assert sniff.is_candidate(Path(name), head) is expected


def test_tiff_looks_like_camera_raw():
    assert not sniff.tiff_looks_like_camera_raw(encoded("TIFF"))
    assert sniff.tiff_looks_like_camera_raw(_tiff_with_tag(0xC612))  # DNGVersion
    assert sniff.tiff_looks_like_camera_raw(_tiff_with_tag(0x014A))  # SubIFDs (NEF, DNG)
    assert sniff.tiff_looks_like_camera_raw(_tiff_with_tag(0x010F))  # a camera Make
    assert sniff.tiff_looks_like_camera_raw(b"II*\x00\x10\x00\x00\x00CR\x02\x00" + b"\x00" * 20)


def test_jpeg_payload_ignores_metadata_and_trailing_bytes_only():
    import io

    from PIL import Image

    from indexer.synthetic import scenes as synth

    img = Image.fromarray(synth.scene(1, 200, 150))

    def jpeg(**kw) -> bytes:
        buf = io.BytesIO()
        img.save(buf, "JPEG", **kw)
        return buf.getvalue()

    exif = Image.Exif()
    exif[0x010F] = "Rewritten"
    plain = sniff.jpeg_payload_digest(jpeg(quality=90))
    assert plain is not None
    assert sniff.jpeg_payload_digest(jpeg(quality=90, exif=exif, comment=b"note")) == plain
    assert sniff.jpeg_payload_digest(jpeg(quality=90) + b"trailing junk") == plain
    assert sniff.jpeg_payload_digest(jpeg(quality=89)) != plain
    assert sniff.jpeg_payload_digest(b"\x89PNG\r\n\x1a\n") is None
    assert sniff.jpeg_payload_digest(b"\xff\xd8\xff\xe0\x00") is None
