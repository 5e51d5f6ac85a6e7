"""More pixels without more detail is not better: an upscale never wins the keeper (issue 14).

The detail measure (indexer.measure.detail) on generated images with a planted answer,
the keeper rule on planted measures, and the whole road (index, pairs measured, groups,
``dupes`` report) on real camera JPEGs of ../shared/data: their upscales with the
camera's EXIF copied lose, their true downscales (EXIF copied too) do not win.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFilter

from cli import main
from indexer.match import upscale
from indexer.match.groups import GroupContext, KeeperInfo, build_groups, keeper_reason
from indexer.measure.detail import detail, grey_of
from indexer.synthetic import scenes as synth

UPSCALE_WORDS = "an upscale (1.5x, no detail above the source's)"


def _grey(img: Image.Image) -> np.ndarray:
    return grey_of(np.asarray(img.convert("RGB"), dtype=np.float32))


def _sharp_original(seed: int) -> Image.Image:
    """A scene with texture up to its Nyquist limit (noise blurred by 0.8 px), as a
    camera's native-size frame has."""
    rng = np.random.default_rng(seed)
    noise = Image.fromarray(rng.uniform(0, 255, (600, 900)).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))
    texture = np.asarray(noise, dtype=np.float32) - 127.5
    return Image.fromarray(np.clip(synth.scene(seed, 900, 600) + 0.6 * texture[..., None], 0, 255).astype(np.uint8))


@pytest.mark.parametrize("kernel", [Image.Resampling.BICUBIC, Image.Resampling.LANCZOS, Image.Resampling.BILINEAR])
def test_an_upscale_has_no_detail_above_its_source_an_original_has(kernel):
    original = _sharp_original(3)
    up = original.resize((1350, 900), kernel)
    down = original.resize((600, 400), kernel)
    of_upscale = detail(_grey(original), _grey(up), 1.5)
    of_original = detail(_grey(down), _grey(original), 1.5)
    assert upscale.is_upscale(of_upscale.gain, of_upscale.above), of_upscale
    assert not upscale.is_upscale(of_original.gain, of_original.above), of_original
    assert of_original.gain > of_upscale.gain * 1.3


@dataclass
class P:
    a: int
    b: int
    verdict: str
    scale: float
    detail_gain: float | None = None
    detail_above: float | None = None
    correlation: float | None = None
    transform: str = "identity"


def test_the_keeper_rule_does_not_count_an_upscales_pixels():
    t, nikon = datetime(2011, 5, 1, 10, 0, 0), ("nikon", "coolpix s3100", "")
    camera = KeeperInfo(1, 2048, 1536, "JPEG", 750_000, 5.0, t, nikon, "/p/DSCN0136.JPG", 10, 30.0)
    export = KeeperInfo(2, 3072, 2304, "JPEG", 1_000_000, 5.0, t, nikon, "/p/DSCN0136_export.jpg", 5, 30.0)
    infos = {1: camera, 2: export}
    unmeasured = [P(1, 2, "derived", 1.5)]
    assert build_groups(unmeasured, infos)[0].keeper == 2  # without the measure, pixels decide as before
    measured = [P(1, 2, "derived", 1.5, detail_gain=0.71, detail_above=0.09)]
    (g,) = build_groups(measured, infos)
    assert g.keeper == 1
    reason = keeper_reason(camera, [export], GroupContext.of(g.members, infos, g.pairs))
    assert reason == f"not an upscale: DSCN0136_export.jpg is {UPSCALE_WORDS}"
    # a downscale (b is the smaller side): the original keeps its pixels' due
    shrunk = KeeperInfo(2, 1365, 1024, "JPEG", 300_000, 5.0, t, nikon, "/p/DSCN0136_web.jpg", 5, 30.0)
    (g,) = build_groups([P(1, 2, "derived", 1 / 1.5, detail_gain=1.3, detail_above=0.3)], {1: camera, 2: shrunk})
    assert g.keeper == 1
    assert keeper_reason(camera, [shrunk], GroupContext.of(g.members, {1: camera, 2: shrunk}, g.pairs)) == "most pixels"


NIKON = "scenes/digicam_corpus/Nikon/CoolPix_S3100/DSCN0137.JPG"  # 1024x768, camera EXIF
CANON = "scenes/digicam_corpus/Canon/Rebel_XT_350D/_MG_9380.JPG"  # 2496x1664, camera EXIF


@pytest.fixture(scope="module")
def indexed(shared_data, tmp_path_factory) -> dict:
    """A Nikon JPEG with a 1.5x JPEG upscale (EXIF copied) and a 2x PNG upscale; a Canon
    JPEG with a 1/1.5 and a 1/2 downscale (EXIF copied): indexed, reported."""
    root = tmp_path_factory.mktemp("upscales")
    nikon, canon = shared_data / NIKON, shared_data / CANON
    shutil.copy(nikon, root / nikon.name)
    shutil.copy(canon, root / canon.name)
    with Image.open(nikon) as img:
        exif, (w, h) = img.info["exif"], img.size
        img.resize((w * 3 // 2, h * 3 // 2), Image.Resampling.BICUBIC).save(
            root / "DSCN0137_export.jpg", "JPEG", quality=92, exif=exif)
        img.resize((w * 2, h * 2), Image.Resampling.LANCZOS).save(root / "DSCN0137_big.png", "PNG")
    with Image.open(canon) as img:
        exif, (w, h) = img.info["exif"], img.size
        img.resize((w * 2 // 3, h * 2 // 3), Image.Resampling.LANCZOS).save(
            root / "_MG_9380_web.jpg", "JPEG", quality=90, exif=exif)
        img.resize((w // 2, h // 2), Image.Resampling.BILINEAR).save(
            root / "_MG_9380_half.jpg", "JPEG", quality=85, exif=exif)
    db = tmp_path_factory.mktemp("db") / "photoqa.db"
    runner = CliRunner()
    result = runner.invoke(main, ["--db", str(db), "index", str(root), "--workers", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["--db", str(db), "dupes", "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {Path(g["keeper"]).name: g for g in json.loads(result.stdout)["groups"]}


def test_a_camera_jpeg_is_kept_over_its_upscales_with_the_camera_exif(indexed):
    assert "DSCN0137.JPG" in indexed, sorted(indexed)
    g = indexed["DSCN0137.JPG"]
    assert sorted(Path(f).name for f in g["files"]) == ["DSCN0137.JPG", "DSCN0137_big.png", "DSCN0137_export.jpg"]
    assert f"DSCN0137_export.jpg is {UPSCALE_WORDS}" in g["keeper_reason"], g["keeper_reason"]


def test_a_true_original_is_kept_over_its_downscales_with_the_camera_exif(indexed):
    assert "_MG_9380.JPG" in indexed, sorted(indexed)
    g = indexed["_MG_9380.JPG"]
    assert sorted(Path(f).name for f in g["files"]) == ["_MG_9380.JPG", "_MG_9380_half.jpg", "_MG_9380_web.jpg"]
    assert g["keeper_reason"] == "most pixels"
    measured = [p for p in g["pairs"] if p.get("detail_gain") is not None]
    assert measured, g["pairs"]  # the pairs were measured and found to be no upscales


def test_a_16_bit_original_is_read_on_its_own_scale_not_clipped(tmp_path):
    """Pillow's "L" conversion clips 16-bit levels above 255 (a white frame, no detail):
    load_grey keeps them, so a 16-bit original is no upscale of its 8-bit downscale."""
    from indexer import decode

    rng = np.random.default_rng(1)
    levels = synth.scene(4, 900, 600).mean(axis=2) * 200 + rng.normal(0, 300, (600, 900)) + 5000
    Image.fromarray(levels.clip(0, 65535).astype(np.uint16)).save(tmp_path / "o16.png")
    small = Image.fromarray(levels.astype(np.float32), mode="F").resize((600, 400), Image.Resampling.LANCZOS)
    Image.fromarray((np.asarray(small) / 256).clip(0, 255).astype(np.uint8)).save(tmp_path / "s.jpg", quality=90)
    big = decode.load_grey(tmp_path / "o16.png")
    assert big.max() > 255
    d = detail(decode.load_grey(tmp_path / "s.jpg"), big, 1.5)
    assert not upscale.is_upscale(d.gain, d.above), d
    assert detail(np.zeros((20, 20)), big, 1.5) is None  # too small to tell bands apart


@pytest.mark.parametrize("shape, tile", [((768, 512), 424), ((300, 201), 128), ((97, 130), 64), ((200, 333), 127)])
def test_the_half_plane_periodogram_is_the_full_ffts(shape, tile):
    """periodogram's rfft2 half plane, mirrored, equals the full fft2 spectrum, odd tile
    sizes and tiles capped by the image included (the speed-up changed no stored value)."""
    from indexer.measure.detail import GRID, periodogram

    grey = (np.random.default_rng(7).random(shape) * 255).astype(np.float32)
    t = max(8, min(tile, *shape))
    win = np.outer(np.hanning(t), np.hanning(t)).astype(np.float32)
    full = np.zeros((t, t))
    for y in np.linspace(0, shape[0] - t, GRID).astype(int):
        for x in np.linspace(0, shape[1] - t, GRID).astype(int):
            patch = grey[y:y + t, x:x + t].astype(np.float32)
            full += np.abs(np.fft.fft2((patch - patch.mean()) * win)) ** 2
    power, radius, _ = periodogram(grey, tile)
    assert power.shape == radius.shape == (t, t)
    np.testing.assert_allclose(power, full, rtol=1e-12)
