"""The decode boundary on tiny generated files: formats, edge cases, orientation."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer import decode

from indexer.measure import features, orient
from indexer.errors import DecodeError
import imagefiles as F


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def failure(path: Path, **kw) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode.decode_file(path, **kw)
    assert info.value.kind in DecodeError.KINDS
    assert info.value.message
    return info.value


def test_two_by_three_jpeg(tmp_path):
    rgb = np.full((3, 2, 3), (200, 40, 90), dtype=np.uint8)
    d = decode.decode_file(F.write(tmp_path / "tiny.jpg", F.jpeg_bytes(rgb, quality=100)))
    assert (d.format, d.width, d.height, d.bit_depth, d.orientation) == ("JPEG", 2, 3, 8, 1)
    assert d.rgb.shape == (3, 2, 3) and d.rgb.dtype == np.float32
    assert np.allclose(d.rgb * 255, rgb, atol=6)
    assert len(d.sha256) == 64 and d.size == (tmp_path / "tiny.jpg").stat().st_size


def test_only_jpeg_magic(tmp_path):
    err = failure(F.write(tmp_path / "magic.jpg", b"\xff\xd8\xff"))
    assert err.kind == "corrupt"


def test_zero_byte(tmp_path):
    assert failure(F.write(tmp_path / "zero.jpg", b"")).kind == "empty"


@pytest.mark.parametrize("keep", [0.5, 0.1])
def test_truncated_jpeg(tmp_path, keep):
    data = F.jpeg_bytes(F.scene(0))
    err = failure(F.write(tmp_path / "cut.jpg", data[: int(len(data) * keep)]))
    assert err.kind == "truncated", err.message


def test_jpeg_named_png(tmp_path):
    d = decode.decode_file(F.write(tmp_path / "really_a_jpeg.png", F.jpeg_bytes(F.scene(0))))
    assert d.format == "JPEG" and (d.width, d.height) == (160, 120)


def test_png_named_svg(tmp_path):
    data = encoded(Image.fromarray(F.scene(1)), "PNG")
    d = decode.decode_file(F.write(tmp_path / "drawing.svg", data))
    assert d.format == "PNG"
    assert np.array_equal(features.to_uint8(d.rgb), F.scene(1))  # lossless, below work size


def test_16bit_grey_png_keeps_precision(tmp_path):
    values = np.array([[1000, 1001, 1002, 1255], [20000, 20001, 65535, 0]], dtype=np.uint16)
    d = decode.decode_file(F.write(tmp_path / "g16.png", encoded(F.grey16(values), "PNG")))
    assert d.bit_depth == 16
    grey = d.rgb[..., 0]
    # 1000, 1001 and 1002 share their high byte: 8 bits would make them equal
    assert grey[0, 0] < grey[0, 1] < grey[0, 2]
    assert np.allclose(grey * 65535.0, values, atol=0.05)
    assert np.array_equal(d.rgb[..., 0], d.rgb[..., 2])


def test_16bit_grey_tiff_reduced_in_float(tmp_path):
    values = np.random.default_rng(0).integers(0, 65536, (300, 400)).astype(np.uint16)
    d = decode.decode_file(F.write(tmp_path / "g16.tif", encoded(F.grey16(values), "TIFF")))
    assert d.bit_depth == 16 and (d.width, d.height) == (400, 300)
    assert max(d.rgb.shape[:2]) == 256
    assert d.rgb[..., 0].mean() * 65535 == pytest.approx(values.mean(), rel=1e-3)
    levels = np.unique(np.round(d.rgb[..., 0] * 65535))
    assert levels.size > 256  # not squeezed through 8 bits


def test_gif_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((20, 30, 3), c, np.uint8)) for c in (10, 200, 100)]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    d = decode.decode_file(F.write(tmp_path / "anim.gif", data))
    assert d.format == "GIF"
    assert d.rgb.mean() * 255 == pytest.approx(10, abs=1)


@pytest.mark.parametrize("fmt,name,lossless", [("BMP", "a.bmp", True), ("WEBP", "a.webp", False),
                                               ("TIFF", "a.tif", True), ("PNG", "a.png", True)])
def test_other_formats(tmp_path, fmt, name, lossless):
    rgb = F.scene(2)
    kw = {"quality": 95} if fmt == "WEBP" else {}
    d = decode.decode_file(F.write(tmp_path / name, encoded(Image.fromarray(rgb), fmt, **kw)))
    assert d.format == fmt and (d.width, d.height) == (160, 120)
    err = np.abs(features.to_uint8(d.rgb).astype(int) - rgb)
    assert err.max() == 0 if lossless else err.mean() < 6


def test_heif(tmp_path):
    pytest.importorskip("pillow_heif")
    if not decode.HEIF_AVAILABLE:
        pytest.skip("pillow-heif not registered")
    rgb = F.scene(3)
    d = decode.decode_file(F.write(tmp_path / "a.heic", encoded(Image.fromarray(rgb), "HEIF", quality=90)))
    assert d.format == "HEIF" and (d.width, d.height) == (160, 120)
    assert np.abs(features.to_uint8(d.rgb).astype(int) - rgb).mean() < 8


def test_modes_become_rgb(tmp_path):
    img = Image.fromarray(F.scene(4))
    for mode, fmt in [("RGBA", "PNG"), ("P", "PNG"), ("L", "JPEG"), ("CMYK", "JPEG"), ("1", "PNG")]:
        d = decode.decode_file(F.write(tmp_path / f"m_{mode}.{fmt.lower()}", encoded(img.convert(mode), fmt)))
        assert d.rgb.shape == (120, 160, 3), mode
        assert 0.0 <= d.rgb.min() and d.rgb.max() <= 1.0


def test_decompression_bomb_guard(tmp_path):
    path = F.write(tmp_path / "big.png", encoded(Image.fromarray(F.scene(0)), "PNG"))
    err = failure(path, max_pixels=160 * 120 - 1)
    assert err.kind == "bomb" and "decompression bomb" in err.message and "160x120" in err.message
    assert decode.decode_file(path, max_pixels=160 * 120).width == 160


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path):
    path = F.write(tmp_path / "locked.jpg", F.jpeg_bytes(F.scene(0)))
    path.chmod(0)
    try:
        assert failure(path).kind == "unreadable"
    finally:
        path.chmod(0o644)


def test_permission_error_becomes_unreadable(tmp_path, monkeypatch):
    # the same path as the chmod test, reachable when the suite runs as root
    path = F.write(tmp_path / "locked.jpg", F.jpeg_bytes(F.scene(0)))

    def deny(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", deny)
    err = failure(path)
    assert err.kind == "unreadable" and "permission denied" in err.message


def test_directory_is_unreadable(tmp_path):
    assert failure(tmp_path).kind == "unreadable"


@pytest.mark.parametrize("value", range(1, 9))
def test_exif_orientation_applied(tmp_path, value):
    stored = F.scene(5, 160, 120)
    path = F.write(tmp_path / f"o{value}.png",
                   encoded(Image.fromarray(stored), "PNG", exif=F.exif_with(value)))
    d = decode.decode_file(path)
    assert d.orientation == value
    assert (d.width, d.height) == (160, 120)  # stored, un-rotated size
    upright = orient.apply(stored, orient.from_exif(value))
    assert np.array_equal(features.to_uint8(d.rgb), upright)


def test_jpeg_orientation_6_comes_back_rotated(tmp_path):
    stored = F.scene(6, 160, 120)
    path = F.write(tmp_path / "o6.jpg", F.jpeg_bytes(stored, quality=95, exif=F.exif_with(6, "Canon", "EOS 5D")))
    d = decode.decode_file(path)
    assert (d.width, d.height, d.orientation) == (160, 120, 6)
    assert d.rgb.shape == (160, 120, 3)
    # Orientation 6: turn the stored pixels 90° clockwise to display them
    got = features.to_uint8(d.rgb).astype(int)
    right = np.abs(got - np.rot90(stored, -1)).mean()
    wrong = np.abs(got - np.rot90(stored, 1)).mean()  # counter-clockwise would be the bug
    assert right < 8 and wrong > 3 * right
    assert d.meta.camera.make == "Canon" and d.meta.camera.model == "EOS 5D"


def test_large_jpeg_uses_draft(tmp_path):
    big = np.asarray(Image.fromarray(F.scene(2)).resize((2000, 1500), Image.Resampling.BICUBIC))
    d = decode.decode_file(F.write(tmp_path / "big.jpg", F.jpeg_bytes(big)), work_size=256)
    assert (d.width, d.height) == (2000, 1500)
    assert "draft" in d.decoder
    assert d.rgb.shape == (192, 256, 3)
    # the draft-decoded working image looks like a full decode reduced the same way
    full = np.asarray(Image.fromarray(big).resize((256, 192), Image.Resampling.BOX), dtype=np.float32) / 255
    assert np.abs(d.rgb - full).mean() < 0.02


def test_work_size_never_enlarges(tmp_path):
    d = decode.decode_file(F.write(tmp_path / "s.jpg", F.jpeg_bytes(F.scene(0, 100, 60))), work_size=256)
    assert d.rgb.shape == (60, 100, 3)


def test_plain_tiff_named_raw_falls_back_to_pillow(tmp_path):
    # a TIFF with a RAW extension goes to rawpy first; when LibRaw refuses it, Pillow reads it
    d = decode.decode_file(F.write(tmp_path / "scan.NEF", encoded(Image.fromarray(F.scene(0)), "TIFF")))
    assert d.format == "TIFF"


def test_garbage_named_raw_is_a_raw_error(tmp_path):
    err = failure(F.write(tmp_path / "IMG_0001.CR2", b"not a raw file at all" * 10))
    assert err.kind in ("raw", "unsupported")


def test_same_bytes_same_digest_any_name(tmp_path):
    data = F.jpeg_bytes(F.scene(0))
    a = decode.decode_file(F.write(tmp_path / "a.jpg", data))
    b = decode.decode_file(F.write(tmp_path / "b.png", data))
    assert a.sha256 == b.sha256
    assert np.array_equal(a.rgb, b.rgb)


def test_pixel_digest_ignores_container_metadata(tmp_path):
    img = Image.fromarray(F.scene(1))
    plain = F.write(tmp_path / "a.png", encoded(img, "PNG"))
    tagged = F.write(tmp_path / "b.png", encoded(img, "PNG", exif=F.exif_with(1, "X", "Y"), compress_level=9))
    other = F.write(tmp_path / "c.png", encoded(Image.fromarray(F.scene(2)), "PNG"))
    assert plain.read_bytes() != tagged.read_bytes()
    assert decode.pixel_digest(plain) == decode.pixel_digest(tagged) != decode.pixel_digest(other)


def test_16bit_rgb_png_reports_its_depth(tmp_path):
    # Pillow decodes 16-bit RGB to 8 bits; the stored bit depth must still say 16
    values = np.zeros((4, 5, 3), np.uint16)
    values[..., 0], values[..., 2] = 1000, 65535
    values[..., 1] = 16000 * np.arange(5)
    d = decode.decode_file(F.write(tmp_path / "rgb16.png", F.png16_rgb(values)))
    assert d.bit_depth == 16
    assert np.allclose(d.rgb[0, :, 1] * 65535, values[0, :, 1], atol=300)
    plain = decode.decode_file(F.write(tmp_path / "rgb8.png", encoded(Image.fromarray(F.scene(0)), "PNG")))
    assert plain.bit_depth == 8


def test_heif_orientation_keeps_stored_size(tmp_path):
    pytest.importorskip("pillow_heif")
    if not decode.HEIF_AVAILABLE:
        pytest.skip("pillow-heif not registered")
    stored = F.scene(6, 160, 120)
    path = F.write(tmp_path / "o6.heic", encoded(Image.fromarray(stored), "HEIF", quality=95,
                                                 exif=F.exif_with(6)))
    d = decode.decode_file(path)
    # pillow-heif decodes upright; we still report orientation 6 and the stored 160x120
    assert (d.width, d.height, d.orientation) == (160, 120, 6)
    got = features.to_uint8(d.rgb).astype(int)
    assert got.shape == (160, 120, 3)
    assert np.abs(got - np.rot90(stored, -1)).mean() < 8


def test_camera_tiff_named_raw_that_libraw_refuses_is_a_failure(tmp_path):
    # its first IFD would be a thumbnail: indexing it as the photo would store wrong sizes
    img = Image.fromarray(F.scene(0))
    exif = Image.Exif()
    exif[0x010F] = "NIKON CORPORATION"
    path = F.write(tmp_path / "DSC_0001.NEF", encoded(img, "TIFF", exif=exif))
    assert failure(path).kind in ("raw", "unsupported")


def test_libraw_messages_land_in_the_failure_not_on_stderr(shared_data, capfd, tmp_path):
    """LibRaw prints "unknown file: Unexpected end of file" to file descriptor 2 from C;
    photoqa captures it around LibRaw calls and puts it in the failure's message."""
    from click.testing import CliRunner

    from cli import main
    from indexer.session import open_session

    stub = next((shared_data / "raw" / "stubs").rglob("CanonRaw.crw"))
    with pytest.raises(decode.DecodeError) as err:
        decode.decode_file(stub)
    assert "(LibRaw: unknown file: Unexpected end of file)" in err.value.message
    assert "Unexpected end of file" not in capfd.readouterr().err
    db = tmp_path / "photoqa.db"
    CliRunner().invoke(main, ["--db", str(db), "index", str(stub), "--workers", "1"])
    assert "unknown file" not in capfd.readouterr().err
    session = open_session(str(db))
    with session.engine.connect() as conn:
        (message,) = conn.exec_driver_sql("SELECT message FROM failures").scalars().all()
    session.engine.dispose()
    assert "LibRaw: unknown file: Unexpected end of file" in message
