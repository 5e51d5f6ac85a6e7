"""Pixel digests taken by the decode worker that holds the full-size pixels anyway
(issue 13 item 3: a file is never fully decoded twice for its ``same_pixels`` proof)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import imagefiles as F
from cli import main
from indexer import decode
from indexer.config import ConfigError, Settings, as_dict, load_settings
from indexer.outcomes import Indexed, Task
from indexer.pipeline.analyse import analyse

ALL = 10**9  # digest_pixels large enough for any test image


def reference_digest(path: Path) -> str:
    """The definition, written out with Pillow alone: SHA-256 of "mode:WxH:" and one
    ``tobytes()`` of the first frame as stored, palette/alpha/CMYK modes as RGB."""
    img = Image.open(path)
    img.seek(0)
    img.load()
    if img.mode in ("RGBA", "P", "CMYK", "YCbCr", "LA", "PA"):
        img = img.convert("RGB")
    return hashlib.sha256(f"{img.mode}:{img.width}x{img.height}:".encode() + img.tobytes()).hexdigest()


def task_of(path: Path) -> Task:
    st = path.stat()
    return Task(str(path), st.st_size, st.st_mtime_ns)


def worker_digest(path: Path, digest_pixels: int = ALL) -> str | None:
    """What the analyse worker stores for ``path`` (its settings as matching sets them)."""
    settings = dataclasses.replace(Settings().index, digest_pixels=digest_pixels)
    outcome = analyse(task_of(path), settings, frozenset())
    assert isinstance(outcome, Indexed), outcome
    return outcome.decoded.pixel_sha256


def _gif(path: Path) -> Path:
    frames = [Image.fromarray(F.scene(s, 300, 200)).convert("P") for s in (1, 2, 3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    return path


def _files(tmp: Path) -> dict[str, Path]:
    rgb = Image.fromarray(F.scene(7, 400, 300))
    small = Image.fromarray(F.scene(8, 200, 150))
    rgba = rgb.copy()
    rgba.putalpha(Image.fromarray((np.arange(300 * 400) % 251).reshape(300, 400).astype(np.uint8)))
    grey16 = F.grey16((np.arange(300 * 400, dtype=np.uint32).reshape(300, 400) * 37 % 65536).astype(np.uint16))
    return {
        "png_rgb": F.save(tmp / "rgb.png", rgb, "PNG"),
        "png_small": F.save(tmp / "small.png", small, "PNG"),  # under the working size: no resize
        "png_rgba": F.save(tmp / "rgba.png", rgba, "PNG"),
        "png_p": F.save(tmp / "p.png", rgb.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "png_p_transparent": F.save(tmp / "pt.png", rgb.convert("P"), "PNG", transparency=0),
        "png_l": F.save(tmp / "l.png", rgb.convert("L"), "PNG"),
        "png_la": F.save(tmp / "la.png", rgba.convert("LA"), "PNG"),
        "png_1": F.save(tmp / "bw.png", rgb.convert("1"), "PNG"),
        "png_i16": F.save(tmp / "i16.png", grey16, "PNG"),
        "png_rgb16": F.write(tmp / "rgb16.png", F.png16_rgb(
            (np.asarray(rgb).astype(np.uint16) * 257 + 3))),
        "png_rotated": F.save(tmp / "rot.png", rgb, "PNG", exif=F.exif_with(orientation=6)),
        "tiff_rgb": F.save(tmp / "rgb.tif", rgb, "TIFF"),
        "tiff_deflate": F.save(tmp / "deflate.tif", rgb, "TIFF", compression="tiff_adobe_deflate"),
        "tiff_cmyk": F.save(tmp / "cmyk.tif", rgb.convert("CMYK"), "TIFF"),
        "tiff_i16": F.save(tmp / "i16.tif", grey16, "TIFF"),
        "webp": F.save(tmp / "lossy.webp", rgb, "WEBP", quality=80),
        "webp_rgba": F.save(tmp / "alpha.webp", rgba, "WEBP", lossless=True),
        "gif_frames": _gif(tmp / "frames.gif"),
        "bmp": F.save(tmp / "rgb.bmp", rgb, "BMP"),
        "jpeg_small": F.write_jpeg(tmp / "small.jpg", F.scene(9, 200, 150)),  # no DCT scaling below 256 px
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return _files(tmp_path_factory.mktemp("digests"))


NAMES = ["png_rgb", "png_small", "png_rgba", "png_p", "png_p_transparent", "png_l", "png_la", "png_1", "png_i16",
         "png_rgb16", "png_rotated", "tiff_rgb", "tiff_deflate", "tiff_cmyk", "tiff_i16", "webp", "webp_rgba",
         "gif_frames", "bmp", "jpeg_small"]


def test_the_files_are_what_their_names_say(files):
    modes = {name: Image.open(files[name]).mode for name in NAMES}
    assert (modes["png_rgba"], modes["png_p"], modes["png_l"], modes["png_la"], modes["png_1"], modes["png_i16"],
            modes["tiff_cmyk"], modes["gif_frames"]) == ("RGBA", "P", "L", "LA", "1", "I;16", "CMYK", "P")
    assert sorted(NAMES) == sorted(files)


@pytest.mark.parametrize("name", NAMES)
def test_the_worker_digest_is_pixel_digest(files, name):
    path = files[name]
    got = worker_digest(path)
    assert got is not None, name
    assert got == decode.pixel_digest(path) == reference_digest(path), name


def test_strips_hash_the_bytes_of_one_tobytes(monkeypatch):
    """Strips of a few rows (here one row and seven) concatenate to ``tobytes()``, for
    modes whose rows pack to whole bytes in odd ways too ("1": 8 pixels a byte)."""
    from indexer.decode import digest

    rgb = Image.fromarray(F.scene(3, 203, 37))
    for img in (rgb, rgb.convert("L"), rgb.convert("1"), F.grey16(np.asarray(rgb)[..., 0].astype(np.uint16) * 97),
                rgb.convert("I"), rgb.convert("F")):
        want = hashlib.sha256(digest.header(img.mode, *img.size) + img.tobytes()).hexdigest()
        for strip in (1, 7 * len(img.crop((0, 0, img.width, 1)).tobytes()), 10**9):
            monkeypatch.setattr(digest, "STRIP_BYTES", strip)
            assert digest.image_digest(img) == want, (img.mode, strip)


def test_the_rotated_png_is_hashed_as_stored(files):
    """EXIF orientation 6 shows the picture turned; the digest is of the stored pixels,
    so it equals that of the same pixels saved without the tag."""
    assert worker_digest(files["png_rotated"]) == worker_digest(files["png_rgb"])


def test_gif_digest_is_of_its_first_frame(files):
    img = Image.open(files["gif_frames"])
    assert img.n_frames == 3
    img.seek(1)
    second = img.convert("RGB")
    got = worker_digest(files["gif_frames"])
    assert got == reference_digest(files["gif_frames"])
    assert got != hashlib.sha256(f"RGB:{second.width}x{second.height}:".encode() + second.tobytes()).hexdigest()


def test_a_draft_decoded_jpeg_gets_none(tmp_path):
    path = F.write_jpeg(tmp_path / "big.jpg", F.scene(4, 1024, 768))
    d = decode.decode_file(path, digest_pixels=ALL)
    assert d.decoder.startswith("pillow:jpeg:draft") and d.pixel_sha256 is None


def test_raw_gets_none(shared_data):
    raws = sorted(p for p in (shared_data / "raw").rglob("*") if p.suffix.lower() in (".dng", ".crw", ".nef", ".cr2"))
    if not raws:
        pytest.skip("no RAW file under ../shared/data/raw")
    assert decode.decode_file(raws[0], digest_pixels=ALL).pixel_sha256 is None


def test_over_the_limit_or_zero_gets_none(files):
    path = files["png_rgb"]  # 400 x 300
    assert worker_digest(path, 400 * 300) is not None
    assert worker_digest(path, 400 * 300 - 1) is None
    assert worker_digest(path, 0) is None


def test_a_jpeg_decoded_in_full_for_its_sensor_frame_gets_its_digest(tmp_path):
    """A camera's JPEG whose full-size frame the sensor statistics keep is decoded in
    full anyway: the digest comes from that decode."""
    path = F.write(tmp_path / "cam.jpg", F.jpeg_bytes(F.scene(5, 1024, 768), exif=F.exif_with(make="Acme", model="X1")))
    data = path.read_bytes()
    d = decode.decode_bytes(data, path, sensor_data=decode.SensorData.ALL, digest_pixels=ALL)
    assert d.frame is not None and d.decoder.startswith("pillow:jpeg:draft")
    assert d.pixel_sha256 == decode.pixel_digest(path)
    assert decode.decode_bytes(data, path, sensor_data=decode.SensorData.ALL).pixel_sha256 is None


def test_the_setting_follows_matching_and_is_not_a_file_setting(tmp_path):
    assert Settings().index.digest_pixels == Settings().match.digest_decoded_pixels > 0
    off = tmp_path / "off.toml"
    off.write_text("[match]\nenabled = false\n")
    assert load_settings(off).index.digest_pixels == 0
    mine = tmp_path / "mine.toml"
    mine.write_text("[match]\ndigest_decoded_pixels = 1234\n")
    assert load_settings(mine).index.digest_pixels == 1234
    assert "digest_pixels" not in as_dict(load_settings(mine))["index"]
    bad = tmp_path / "bad.toml"
    bad.write_text("[index]\ndigest_pixels = 5\n")
    with pytest.raises(ConfigError, match="digest_pixels"):
        load_settings(bad)


# ---- through `photoqa index`: stored with the row, the pool job gone, updates ----

def _run(db: Path, *args) -> str:
    result = CliRunner().invoke(main, ["--db", str(db), *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _stored(db: Path) -> dict[str, str | None]:
    with sqlite3.connect(db) as conn:
        return {Path(p).name: d for p, d in conn.execute("SELECT path, pixel_sha256 FROM images")}


def _png_and_tiff(folder: Path, seed: int = 31) -> Image.Image:
    """A PNG and its TIFF copy: equal pixels, different bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(F.scene(seed, 320, 240))
    img.save(folder / "a.png")
    img.save(folder / "a.tif")
    return img


class _Digests:
    """Counts the digest jobs the writer sends to the verification pool (or runs inline)."""

    def __init__(self, monkeypatch):
        from indexer.pipeline.verifypool import Verifier

        self.sent: list[str] = []
        real = Verifier.submit_digest

        def counted(verifier, image_id, path, **kw):
            self.sent.append(Path(path).name)
            return real(verifier, image_id, path, **kw)

        monkeypatch.setattr(Verifier, "submit_digest", counted)


@pytest.mark.parametrize("decoded_pixels", [0, None])
def test_same_pixels_png_and_tiff_proven_without_a_digest_job(tmp_path, monkeypatch, decoded_pixels):
    """Default settings: the pair is ``same_pixels`` and no digest job was sent. With
    ``digest_decoded_pixels = 0`` (the control) both files go to the pool for theirs."""
    jobs = _Digests(monkeypatch)
    folder, db = tmp_path / "p", tmp_path / "photoqa.db"
    if decoded_pixels is not None:
        (tmp_path / "photoqa.toml").write_text(f"[match]\ndigest_decoded_pixels = {decoded_pixels}\n")
    _png_and_tiff(folder)
    _run(db, "index", folder, "--workers", "1")
    (group,) = json.loads(_run(db, "dupes", "--format", "json"))["groups"]
    assert [p["verdict"] for p in group["pairs"]] == ["same_pixels"]
    stored = _stored(db)
    assert stored["a.png"] == stored["a.tif"] == decode.pixel_digest(folder / "a.png")
    assert sorted(jobs.sent) == ([] if decoded_pixels is None else ["a.png", "a.tif"])


def test_matching_off_stores_no_digest(tmp_path):
    folder, db = tmp_path / "p", tmp_path / "photoqa.db"
    (tmp_path / "photoqa.toml").write_text("[match]\nenabled = false\n")
    _png_and_tiff(folder)
    _run(db, "index", folder, "--workers", "1")
    assert _stored(db) == {"a.png": None, "a.tif": None}


def test_a_changed_file_keeps_no_stale_digest(tmp_path):
    """Rewritten with other pixels: the row's digest is the new file's; rewritten larger
    than ``digest_decoded_pixels``: none (the proof computes it if ever needed)."""
    folder, db = tmp_path / "p", tmp_path / "photoqa.db"
    (tmp_path / "photoqa.toml").write_text(f"[match]\ndigest_decoded_pixels = {400 * 300}\n")
    _png_and_tiff(folder)
    _run(db, "index", folder, "--workers", "1")
    before = _stored(db)["a.png"]
    Image.fromarray(F.scene(32, 320, 240)).save(folder / "a.png")
    _run(db, "index", folder, "--workers", "1")
    after = _stored(db)["a.png"]
    assert after == decode.pixel_digest(folder / "a.png") != before
    Image.fromarray(F.scene(33, 480, 360)).save(folder / "a.png")  # 172,800 pixels: over the limit
    _run(db, "index", folder, "--workers", "1")
    assert _stored(db)["a.png"] is None


def test_pixels_digest_bytes_helpers_agree():
    """The frame digest of stacks (array_pixel_digest) and the image digest agree on the
    bytes they share: an "L" frame equals the "L" image holding it."""
    from indexer.decode import digest

    grey = F.scene(2, 64, 48)[..., 1]
    assert digest.array_pixel_digest(grey) == digest.image_digest(Image.fromarray(grey))
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "PNG")
    assert digest.array_pixel_digest(grey) == digest.image_digest(Image.open(buf))


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    from pgschema import database_url

    with database_url(request.param, tmp_path, "t.db") as url:
        yield url


def test_the_writer_stores_the_workers_digest_and_replaces_it(url, tmp_path):
    """New rows in one batch (PostgreSQL: COPY), then a changed file's row replaced: each
    row holds its file's digest, none for a JPEG drafted by the worker."""
    from sqlalchemy import text

    from indexer.session import open_session

    session = open_session(url)
    try:
        folder = tmp_path / "f"
        _png_and_tiff(folder)
        F.write_jpeg(folder / "big.jpg", F.scene(3, 1024, 768))
        paths = sorted(folder.iterdir())
        settings = dataclasses.replace(Settings().index, digest_pixels=ALL)
        session.store.save_batch([analyse(task_of(p), settings, frozenset()) for p in paths])

        def stored() -> dict[str, str | None]:
            with session.engine.connect() as conn:
                return {Path(p).name: d for p, d in conn.execute(text("SELECT path, pixel_sha256 FROM images"))}

        assert stored() == {"a.png": decode.pixel_digest(folder / "a.png"), "a.tif": decode.pixel_digest(folder / "a.png"),
                            "big.jpg": None}
        Image.fromarray(F.scene(40, 320, 240)).save(folder / "a.tif")
        session.store.save_batch([analyse(task_of(folder / "a.tif"), settings, frozenset())])
        assert stored()["a.tif"] == decode.pixel_digest(folder / "a.tif") != stored()["a.png"]
    finally:
        session.engine.dispose()


def test_a_digest_pillow_fails_on_leaves_the_file_indexed(files, monkeypatch):
    """The digest is an extra: when Pillow raises taking it, the file is indexed with
    none (the proof asks the pool if it ever needs one), its features unchanged."""
    from indexer.decode import image

    before = analyse(task_of(files["png_p"]), Settings().index, frozenset())

    def broken(img):
        raise OSError("image file is truncated")

    monkeypatch.setattr(image, "image_digest", broken)
    after = analyse(task_of(files["png_p"]), dataclasses.replace(Settings().index, digest_pixels=ALL), frozenset())
    assert isinstance(after, Indexed) and after.decoded.pixel_sha256 is None
    assert after.features.phash == before.features.phash and after.blobs == before.blobs
