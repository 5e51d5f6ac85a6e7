"""Normalisation (planted answers) and `photoqa export`: one image per group, the index
CSV maps rows back to files, chunked streaming writes the same array, NaN stays masked."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli import main
from imagefiles import scene
from indexer.stacks import normalize as nz
from indexer.stacks.resample import fit


def run(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), *map(str, args)], catch_exceptions=False)


def frames_with_maxima() -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(1, 1000, (1, 1, 8, 8)).astype(np.uint16)  # one pattern, four brightnesses
    return base * np.array([1, 3, 10, 50], np.uint16)[:, None, None, None]


def test_minmax_brings_every_frame_to_0_and_1():
    out = nz.minmax(frames_with_maxima())
    assert out.reshape(4, -1).min(axis=1).tolist() == [0, 0, 0, 0]
    np.testing.assert_allclose(out.reshape(4, -1).max(axis=1), 1.0)


def test_dtype_scaling_keeps_relative_brightness():
    f = frames_with_maxima()
    out = nz.by_dtype(f)
    np.testing.assert_allclose(out[1], 3 * out[0], rtol=1e-6)
    np.testing.assert_allclose(out, f / 65535.0, rtol=1e-6)


def reference_equalize(image: np.ndarray, levels: int) -> np.ndarray:
    """Per image: np.histogram over the levels, cumulative share, looked up with np.interp."""
    counts, _ = np.histogram(image, bins=levels, range=(-0.5, levels - 0.5))
    cdf = np.cumsum(counts) / image.size
    return np.interp(image, np.arange(levels), cdf)


def test_equalize_matches_the_per_image_reference_and_is_flat():
    rng = np.random.default_rng(1)
    batch = np.clip(rng.normal(60, 15, (5, 3, 32, 32)), 0, 255).astype(np.uint8)  # a narrow histogram
    out = nz.equalize(batch)
    for i in range(5):
        np.testing.assert_allclose(out[i], reference_equalize(batch[i], 256), atol=1e-6)
        # flat CDF: the share of values <= q is q, within the largest tie's share
        ranked = np.sort(out[i].ravel())
        ideal = np.arange(1, ranked.size + 1) / ranked.size
        assert np.abs(ranked - ideal).max() < 0.05
    # float frames (sorted road) agree with the level road on the same values
    np.testing.assert_allclose(nz.equalize(batch.astype(np.float64)), out, atol=1e-6)
    np.testing.assert_allclose(nz.equalize(batch / 255.0, levels=256), out, atol=1e-6)


def test_equalize_of_large_frames_a_few_at_a_time_matches_the_reference():
    """(7, 3, 224, 224): equalised 3 frames at a time (cache-sized), each as the reference."""
    rng = np.random.default_rng(2)
    batch = np.clip(rng.normal(110, 40, (7, 3, 224, 224)), 0, 255).astype(np.uint8)
    batch[4] //= 3  # frames of other ranges in one batch
    assert nz.CACHE_BYTES // (8 * batch[0].size) < len(batch)
    for out in (nz.equalize(batch), nz.equalize(batch / 255.0, levels=256)):
        for i in range(len(batch)):
            np.testing.assert_allclose(out[i], reference_equalize(batch[i], 256), atol=1e-6)


def test_nan_region_stays_masked():
    f = frames_with_maxima().astype(np.float32)
    f[1, 0, 2:4, 2:4] = np.nan
    for out in (nz.minmax(f), nz.equalize(f), nz.equalize(f / np.nanmax(f), levels=256)):
        assert np.isnan(out[1, 0, 2:4, 2:4]).all()
        assert np.isnan(out).sum() == 4  # nothing spread
        assert np.nanmax(out[1]) == pytest.approx(1.0)
    fitted = fit(f[1], 16, 16)
    assert np.isnan(fitted).sum() > 0 and np.isnan(fitted).sum() <= 4 * 4 + 12  # the hole, not the frame
    assert np.isfinite(fitted[0, 0, 0])


def test_zscore_over_the_dataset():
    f = frames_with_maxima().astype(np.float32)
    mean, std = nz.moments_to_mean_std(*nz.channel_moments(f))
    out = nz.zscore(f, mean, std)
    assert abs(out.mean()) < 1e-5 and out.std() == pytest.approx(1.0, rel=1e-4)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    folder = root / "set"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(scene(300 + i, 96, 64)).save(folder / f"p{i}.png")
    shutil.copy(folder / "p1.png", folder / "p1_copy.png")
    Image.open(folder / "p2.png").resize((72, 48), Image.Resampling.LANCZOS).save(folder / "p2_small.png")
    stack = np.random.default_rng(2).integers(0, 65535, (3, 12, 12)).astype(np.uint16)
    stack[2] = stack[0]
    np.save(folder / "s.npy", stack)
    db = root / "e.db"
    assert run(db, "index", folder, "-j", "1").exit_code == 0
    return db, folder, stack


def test_export_keeps_one_per_group_and_maps_rows_back(planted, tmp_path):
    db, folder, stack = planted
    out = tmp_path / "clean.npz"
    result = run(db, "export", out, "--size", "32", "48", "--format", "json", "--split-dir", folder)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    with np.load(out) as data:
        x = data["x"]
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    names = [Path(r["path"]).name for r in rows]
    # 4 photos + 2 distinct frames; the copy, the resize and the repeated frame are gone
    assert sorted(names) == ["p0.png", "p1.png", "p2.png", "p3.png", "s.npy#0", "s.npy#1"]
    assert summary["rows"] == 6 and x.shape == (6, 3, 32, 48) and x.dtype == np.float32
    assert all(r["keeper"] == "1" and r["split"] == "set" for r in rows)
    for i, r in enumerate(rows):
        if r["frame"]:
            expected = fit(np.repeat(stack[int(r["frame"])][None] / 65535.0, 3, axis=0), 32, 48)
        else:
            # 8-bit photos are resized on uint8 as Pillow does (rounded between the passes):
            # within a level of Pillow's Lanczos (float32 against its fixed-point weights),
            # and within a level or two of the float resampler
            with Image.open(r["path"]) as im:
                pillow = np.asarray(im.convert("RGB").resize((48, 32), Image.Resampling.LANCZOS), np.float32)
            np.testing.assert_allclose(x[i], np.moveaxis(pillow, -1, 0) / 255.0, atol=1.01 / 255)
            rgb = np.asarray(Image.open(r["path"]), np.float32) / 255.0
            expected = fit(np.moveaxis(rgb, -1, 0), 32, 48)
        np.testing.assert_allclose(x[i], expected, atol=2.01 / 255)


def test_export_streams_chunks_to_the_same_array(planted, tmp_path):
    from indexer.commands.export import ExportOptions, export
    from indexer.session import open_session

    db, _, _ = planted
    session = open_session(str(db), None, readonly=True)
    one = export(session.engine, tmp_path / "a.npz", ExportOptions(size=(16, 16), chunk=2, normalize="equalize"))
    two = export(session.engine, tmp_path / "b.npz", ExportOptions(size=(16, 16), chunk=256, normalize="equalize"))
    assert one.rows == two.rows == 6
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        np.testing.assert_array_equal(a["x"], b["x"])
    everyone = export(session.engine, tmp_path / "c.npz", ExportOptions(size=(16, 16), dtype="uint8"),
                      keepers_only=False)
    assert everyone.rows == 9


def test_export_in_worker_processes_writes_the_same_array(planted, tmp_path, monkeypatch):
    """The pool (2 workers, chunks of 2 split over them, in flight ahead) gives the
    inline export's array and rows, in the same order."""
    from indexer.commands import export as ex
    from indexer.session import open_session

    monkeypatch.setattr(ex, "POOL_MIN", 1)
    db, _, _ = planted
    session = open_session(str(db), None, readonly=True)
    opts = dict(size=(24, 24), chunk=2, normalize="equalize")
    inline = ex.export(session.engine, tmp_path / "a.npz", ex.ExportOptions(workers=1, **opts))
    pooled = ex.export(session.engine, tmp_path / "b.npz", ex.ExportOptions(workers=2, **opts))
    assert inline.rows == pooled.rows == 6
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        np.testing.assert_array_equal(a["x"], b["x"])
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def test_equalize_of_padded_uint8_matches_the_float_road():
    """The 8-bit road (uint8, padding excluded from each CDF) gives the float road's values
    (0..1 with NaN padding, 256 levels), and each image the per-image reference over its
    unpadded pixels."""
    rng = np.random.default_rng(4)
    batch = np.clip(rng.normal(100, 30, (5, 3, 20, 20)), 0, 255).astype(np.uint8)
    pad = np.zeros((5, 1, 20, 20), bool)
    pad[:, :, :4] = pad[:, :, 16:] = True
    batch[np.broadcast_to(pad, batch.shape)] = 0
    fast = nz.equalize(batch, exclude=pad)
    unit = np.where(pad, np.nan, batch / 255.0)
    np.testing.assert_allclose(fast, nz.equalize(unit, levels=256), atol=1e-6)
    assert np.isnan(fast[np.broadcast_to(pad, fast.shape)]).all()
    for i in range(5):
        inner = batch[i][:, 4:16]
        np.testing.assert_allclose(fast[i][:, 4:16], reference_equalize(inner, 256), atol=1e-6)


def test_equalize_with_zero_padding_promised_matches_reading_it():
    """excluded_value=0 (export's zero padding) gives the values of reading the padding:
    frames with real zeros in their picture (the masked fill) and without (the table's
    entry)."""
    rng = np.random.default_rng(5)
    batch = np.clip(rng.normal(120, 30, (4, 3, 24, 24)), 1, 255).astype(np.uint8)
    batch[1, :, 10:12, 10:12] = 0  # real zeros: they keep their CDF value
    pad = np.zeros((4, 1, 24, 24), bool)
    pad[:2, :, :5] = pad[:2, :, 19:] = True
    pad[2, :, :, :3] = True  # frame 3 unpadded
    batch[np.broadcast_to(pad, batch.shape)] = 0
    slow = nz.equalize(batch, exclude=pad, fill=0.0)
    fast = nz.equalize(batch, exclude=pad, fill=0.0, excluded_value=0)
    np.testing.assert_array_equal(fast, slow)
    assert (fast[1, :, 10:12, 10:12] > 0).all() and (fast[np.broadcast_to(pad, fast.shape)] == 0).all()


def test_jpeg_export_uses_draft_and_exif_orientation(tmp_path):
    """A 640x480 JPEG tagged orientation 6 (rotate 90 clockwise to view): fitted upright
    (portrait: padded left and right) from its draft decode (half size still covers
    160 px), the bright half on top."""
    from indexer.commands.exportload import load_8bit

    pixels = np.zeros((480, 640, 3), np.uint8)
    pixels[:, :320] = 200  # left half bright as stored: the top half once upright
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "r.jpg"
    Image.fromarray(pixels).save(path, quality=95, exif=exif)
    loaded = load_8bit(str(path), 160, 160, "pad")
    assert loaded.pixels.shape == (3, 160, 160) and loaded.pixels.dtype == np.uint8
    assert loaded.pad[:, :20].all() and loaded.pad[:, 140:].all() and not loaded.pad[:, 20:140].any()
    assert loaded.pixels[:, 10:70, 30:130].min() > 190 and loaded.pixels[:, 90:150, 30:130].max() < 10
    assert (loaded.pixels[:, :, :20] == 0).all()


def test_export_bad_where_is_one_line(planted, tmp_path):
    db, _, _ = planted
    result = run(db, "export", tmp_path / "x.npz", "--where", "no_such_column = 1")
    assert result.exit_code == 2


def test_fit_pads_or_crops_keeping_the_aspect():
    from indexer.stacks.resample import padding_mask

    wide = np.zeros((1, 20, 40))
    wide[:, :, 20:] = 1.0  # right half bright
    padded = fit(wide, 20, 20, "pad")  # 10 rows of picture, 5 of padding above and below
    assert padding_mask(20, 40, 20, 20, "pad")[:5].all() and not padding_mask(20, 40, 20, 20, "pad")[5:15].any()
    assert np.all(padded[0, :5] == 0) and np.all(padded[0, 15:] == 0)
    assert padded[0, 10, :8].max() < 0.05 and padded[0, 10, 12:].min() > 0.95
    cropped = fit(wide, 20, 20, "crop")  # the centre 20x20: left half dark, right half bright
    assert not padding_mask(20, 40, 20, 20, "crop").any()
    assert cropped[0, :, :8].max() < 0.05 and cropped[0, :, 12:].min() > 0.95


@pytest.mark.parametrize("name", ["lanczos", "bicubic", "bilinear", "box"])
def test_float_kernels_match_pillows_filters(name):
    """The float road's kernels (resample.KERNELS) are Pillow's: rounded as Pillow rounds,
    a 90x70 image shrunk to 40x31 lands within a level of Pillow's resize with that
    filter; and the filters differ from each other (a kernel that fell back to Lanczos
    would not)."""
    from indexer.commands.exportload import FILTERS
    from indexer.stacks.resample import resize

    grey = scene(7, 90, 70)[..., 0]
    ours = resize(grey[None].astype(np.float64), 31, 40, like_pillow=True, kernel=name)[0]
    pillow = np.asarray(Image.fromarray(grey).resize((40, 31), FILTERS[name]), np.float64)
    assert np.abs(ours - pillow).max() <= 1.0
    if name != "lanczos":
        lanczos = np.asarray(Image.fromarray(grey).resize((40, 31), FILTERS["lanczos"]), np.float64)
        assert np.abs(ours - lanczos).max() >= 3.0



@pytest.mark.parametrize("name", ["lanczos", "bicubic", "bilinear", "box"])
def test_compiled_8bit_resize_is_pillows_within_a_level(name):
    """The 8-bit road's resize (resample.fit_rgb8, numba) against Pillow's ``resize``
    (exportload.fit_pillow) on noise, whose overshoots Pillow clips between its passes:
    within one level (fixed-point against float32 weights) for shrinks, the bench's
    320x240 to 224x224, enlargements, tiny and odd sizes, padded and cropped. Without
    the clipping between passes they differ by up to 47 levels, in the other pass
    order by over 20."""
    from indexer.commands.exportload import fit_8bit, fit_pillow

    rng = np.random.default_rng(3)
    for h, w in [(240, 320), (320, 240), (100, 100), (50, 400), (225, 224), (5, 3), (1, 1)]:
        pixels = np.clip(rng.normal(128, 60, (h, w, 3)), 0, 255).astype(np.uint8)
        for mode in ("pad", "crop"):
            for size in [(224, 224), (32, 48), (17, 5)]:
                got = fit_8bit(Image.fromarray(pixels), *size, mode, name)
                want = fit_pillow(Image.fromarray(pixels), *size, mode, name)
                assert got.shape == want.shape == (3, *size) and got.dtype == np.uint8
                assert np.abs(got.astype(int) - want).max() <= 1, (h, w, mode, size)

def test_export_resample_option_reaches_photos_and_frames(planted, tmp_path):
    """--resample box: photos come out as Pillow's box resize, frames as the float box
    kernel; the default (lanczos) export differs from it."""
    db, folder, stack = planted
    arrays = {}
    for name in ("lanczos", "box"):
        out = tmp_path / f"{name}.npz"
        assert run(db, "export", out, "--size", "32", "48", "--resample", name, "-j", "1").exit_code == 0
        with np.load(out) as data:
            arrays[name] = data["x"]
        rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    for i, r in enumerate(rows):
        if r["frame"]:
            expected = fit(np.repeat(stack[int(r["frame"])][None] / 65535.0, 3, axis=0), 32, 48, kernel="box")
            np.testing.assert_allclose(arrays["box"][i], expected, atol=1e-6)
        else:
            with Image.open(r["path"]) as im:
                pillow = np.asarray(im.convert("RGB").resize((48, 32), Image.Resampling.BOX), np.float32)
            np.testing.assert_allclose(arrays["box"][i], np.moveaxis(pillow, -1, 0) / 255.0, atol=1e-6)
    assert np.abs(arrays["box"] - arrays["lanczos"]).max() > 0.02
