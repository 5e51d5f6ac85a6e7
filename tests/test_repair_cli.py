"""`photoqa repair` after `photoqa index`: copies with the learnt defects fixed.

The synthetic camera's 30 frames (see test_sensor_pipeline.py) are indexed as 16-bit grey
PNGs or JPEG q95, then one frame is repaired. A PNG must change at the defects and
nowhere else; a JPEG is re-encoded (with its own quantisation tables and subsampling), so
it must equal a plain re-encoding of the original except in the 16x16 blocks (MCUs) of
the defects and their neighbours. The RAW case uses the Canon PowerShot S40 frames.
"""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

# camera, frames and the rendered-frames setting are module fixtures shared with the pipeline tests
from test_sensor_pipeline import (_learn_from_rendered_frames, camera, frames, hotpixels_json,  # noqa: F401
                                  index, make_camera, run, sha256, write_jpeg_frames, write_png_frames)

FRAME = "f005"


def _indexed(root, camera, frames, writer):
    writer(root / "frames", camera, frames)
    db = root / "p.db"
    index(db, root / "frames")
    (sensor,) = hotpixels_json(db)
    defects = {(d["y"], d["x"]) for d in sensor["defects"]}
    assert len(defects) >= 20  # the planted hot + dead sites (test_hotpixels_cli checks which)
    return db, root / "frames", np.array(sorted(defects))


@pytest.fixture(scope="module")
def png_case(tmp_path_factory, camera, frames):
    return _indexed(tmp_path_factory.mktemp("png"), camera, frames, write_png_frames)


@pytest.fixture(scope="module")
def jpeg_case(tmp_path_factory, camera, frames):
    return _indexed(tmp_path_factory.mktemp("jpeg"), camera, frames, write_jpeg_frames)


def _distance(ys, xs, sites: np.ndarray) -> np.ndarray:
    """Chebyshev distance of each (ys, xs) to the nearest site (K, 2) of (y, x)."""
    return np.min(np.maximum(np.abs(ys[:, None] - sites[None, :, 0]),
                             np.abs(xs[:, None] - sites[None, :, 1])), axis=1)


def _open(path):
    im = Image.open(path)
    im.load()  # reads and closes the file; keeps format, quantisation tables, layers
    return im, im.format, im.getexif(), dict(im.info)


def _same_file_kind(original, repaired):
    a, fmt_a, exif_a, _ = _open(original)
    b, fmt_b, exif_b, _ = _open(repaired)
    assert (b.size, b.mode, fmt_b) == (a.size, a.mode, fmt_a)
    assert (exif_b.get(0x010F), exif_b.get(0x0110)) == ("Photoqa", "Synthetic S1")
    return a, b


def test_png_repair_changes_only_the_defects(png_case, tmp_path):
    db, folder, sites = png_case
    source = folder / f"{FRAME}.png"
    before = sha256(source)
    result = run(db, "repair", source, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out" / f"{FRAME}.png"
    assert f"repaired  {source} -> {out}: {len(sites)} sites (" in result.stdout
    assert sha256(source) == before  # the original is never touched

    a, b = _same_file_kind(source, out)
    orig, fixed = np.asarray(a).astype(np.int64), np.asarray(b).astype(np.int64)
    ys, xs = np.nonzero(orig != fixed)
    assert len(ys) > 0.9 * len(sites)
    assert _distance(ys, xs, sites).max() == 0  # lossless: nothing but the defects changed

    # each repaired site sits within the noise of its same-colour neighbours (2 px away on
    # this Bayer mosaic), where the original stood far outside it
    offsets = [(dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2) if dy or dx]
    outside = 0
    for y, x in sites:
        ring = np.array([fixed[y + dy, x + dx] for dy, dx in offsets])
        centre = np.median(ring)
        spread = max(1.4826 * np.median(np.abs(ring - centre)), 20.0)
        assert abs(fixed[y, x] - centre) <= 4 * spread, (y, x, fixed[y, x], ring)
        outside += abs(orig[y, x] - centre) > 4 * spread
    assert outside >= 0.9 * len(sites)


def _reencoded(original: Image.Image) -> np.ndarray:
    """The original's pixels through the same JPEG settings, unrepaired (the baseline)."""
    buffer = io.BytesIO()
    original.save(buffer, "JPEG", qtables=original.quantization,
                  subsampling=JpegImagePlugin.get_sampling(original))
    return np.asarray(Image.open(buffer)).astype(np.int64)


def test_jpeg_repair_changes_only_the_defect_blocks(jpeg_case, tmp_path):
    db, folder, sites = jpeg_case
    source = folder / f"{FRAME}.jpg"
    before = sha256(source)
    result = run(db, "repair", source, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out" / f"{FRAME}.jpg"
    assert sha256(source) == before

    a, b = _same_file_kind(source, out)
    assert b.getexif().get(0x0112) == a.getexif().get(0x0112) == 6  # still shot in portrait
    assert JpegImagePlugin.get_sampling(b) == JpegImagePlugin.get_sampling(a) == 2  # 4:2:0
    assert b.quantization == a.quantization
    orig, fixed = np.asarray(a).astype(np.int64), np.asarray(b).astype(np.int64)

    # against a plain re-encoding, only the 16x16 MCUs holding a defect (and, through
    # chroma upsampling, their direct neighbours) may differ
    mcu = np.zeros((-(-orig.shape[0] // 16), -(-orig.shape[1] // 16)), bool)
    mcu[sites[:, 0] // 16, sites[:, 1] // 16] = True
    padded = np.pad(mcu, 1)
    near = np.zeros_like(mcu)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near |= padded[1 + dy : 1 + dy + mcu.shape[0], 1 + dx : 1 + dx + mcu.shape[1]]
    allowed = np.repeat(np.repeat(near, 16, 0), 16, 1)[: orig.shape[0], : orig.shape[1]]
    changed = (fixed != _reencoded(a)).any(axis=2)
    assert changed.any() and not (changed & ~allowed).any()

    # large changes (beyond JPEG re-encoding noise) only at and right beside the defects
    ys, xs = np.nonzero(np.abs(fixed - orig).max(axis=2) > 16)
    assert len(ys) and _distance(ys, xs, sites).max() <= 2

    # each repaired pixel was set to the weighted mean of its 8 neighbours (direct 1,
    # diagonal 1/sqrt 2): after re-encoding it lies within their range give or take the
    # re-encoding noise (up to ~10 code values beside a defect at q95), and nearer to it
    # than the original pixel was
    def excess(image, y, x):
        ring = np.array([image[y + dy, x + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx])
        return np.maximum(image[y, x] - ring.max(axis=0), ring.min(axis=0) - image[y, x]).max()

    inside = [(y, x) for y, x in sites if 1 <= y < orig.shape[0] - 1 and 1 <= x < orig.shape[1] - 1]
    after = np.array([excess(fixed, y, x) for y, x in inside])
    before = np.array([excess(orig, y, x) for y, x in inside])
    assert after.max() <= 12, list(zip(inside, after))
    assert (after < before).mean() >= 0.8 and before.mean() > 2 * max(after.mean(), 1)


def test_existing_output_is_kept_without_force(png_case, tmp_path):
    """One --out rule with `diff`: a non-empty folder is refused without --force."""
    db, folder, _ = png_case
    source, out = folder / f"{FRAME}.png", tmp_path / "out"
    target = out / f"{FRAME}.png"
    out.mkdir()
    target.write_bytes(b"keep me")
    result = run(db, "repair", source, "--out", out)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"photoqa: --out {out} is not empty (use --force to write into it anyway)"
    assert result.stdout == "" and target.read_bytes() == b"keep me"
    result = run(db, "repair", source, "--out", out, "--force")
    assert result.exit_code == 0 and "repaired" in result.stdout
    with Image.open(target) as im:
        assert im.format == "PNG"


def test_output_over_the_original_is_refused(png_case, tmp_path):
    db, folder, _ = png_case
    source = folder / f"{FRAME}.png"
    before = sha256(source)
    result = run(db, "repair", source, "--out", folder, "--force")
    assert result.exit_code == 1 and "would overwrite the original" in result.stderr
    assert sha256(source) == before


def test_dry_run_writes_nothing(png_case, tmp_path):
    db, folder, sites = png_case
    source, out = folder / f"{FRAME}.png", tmp_path / "out"
    result = run(db, "repair", source, "--out", out, "--dry-run")
    assert result.exit_code == 0
    assert f"would fix {source} -> {out / (FRAME + '.png')}: {len(sites)} sites" in result.stdout
    assert not out.exists() or list(out.iterdir()) == []


def test_camera_without_statistics_is_skipped(png_case, camera, frames, tmp_path):
    db, folder, _ = png_case
    other = make_camera(seed=0, model="Synthetic S2")  # same size, another body
    (stranger,) = write_png_frames(tmp_path / "other", other, frames[:1])
    result = run(db, "repair", stranger, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert f"skipped   {stranger}: no sensor statistics for this camera and size" in result.stderr
    assert not (tmp_path / "out").exists()
    # with a file that can be repaired in the same call: that one is written, exit 0
    good = folder / f"{FRAME}.png"
    result = run(db, "repair", stranger, good, "--out", tmp_path / "out")
    assert result.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{FRAME}.png"]


def test_forced_sensor_of_another_size_is_refused(png_case, tmp_path):
    db, _, _ = png_case
    small = tmp_path / "small.png"
    Image.fromarray(np.full((40, 60), 1000, np.uint16)).save(small)
    result = run(db, "repair", small, "--out", tmp_path / "out", "--camera", "1")
    assert result.exit_code == 1
    assert "sensor 1 is 160x112 rgb, this file is 60x40 rgb" in result.stderr
    result = run(db, "repair", small, "--out", tmp_path / "out", "--camera", "7")
    assert result.exit_code == 1 and "no sensor with id 7" in result.stderr


def test_forced_sensor_of_another_camera_needs_force(png_case, camera, frames, tmp_path):
    """--camera N on a file of the same size from another body: refused, unless --force."""
    db, _, _ = png_case
    other = make_camera(seed=0, model="Synthetic S2")
    (stranger,) = write_png_frames(tmp_path / "other", other, frames[:1])
    result = run(db, "repair", stranger, "--out", tmp_path / "out", "--camera", "1")
    assert result.exit_code == 1
    assert "sensor 1 is a " in result.stderr and "this file comes from a " in result.stderr
    assert "Synthetic S2" in result.stderr and "(use --force to apply its defects anyway)" in result.stderr
    assert not (tmp_path / "out").exists()
    result = run(db, "repair", stranger, "--out", tmp_path / "out", "--camera", "1", "--force")
    assert result.exit_code == 0 and "repaired" in result.stdout, result.stderr


def test_camera_name_drops_a_repeated_make():
    from indexer.commands.output import camera_name

    assert camera_name("Canon", "Canon PowerShot G2") == "Canon PowerShot G2"
    assert camera_name("NIKON CORPORATION", "NIKON D70", "123") == "NIKON D70 123"
    assert camera_name("Photoqa", "Demo Cam") == "Photoqa Demo Cam"
    assert camera_name("Eastman Kodak Company", "Kodak DC120 ZOOM Digital Camera") == "Kodak DC120 ZOOM Digital Camera"
    assert camera_name("SEIKO EPSON CORP.", "PhotoPC 3100Z") == "SEIKO EPSON CORP. PhotoPC 3100Z"
    assert camera_name("", "Model X") == "Model X" and camera_name(None, None) == ""


# ---------------------------------------------------------------- RAW (shared data)
S40 = "raw/digicam_corpus/Canon/PowerShot_S40"


def _tiff_header(data: bytes) -> dict[int, tuple]:
    """Tag -> values of the first IFD of a little-endian baseline TIFF."""
    assert data[:4] == b"II*\0"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    sizes = {1: 1, 2: 1, 3: 2, 4: 4}
    codes = {1: "B", 2: "s", 3: "H", 4: "I"}
    tags = {}
    for i in range(count):
        tag, kind, n, value = struct.unpack_from("<HHII", data, ifd + 2 + 12 * i)
        size = sizes[kind] * n
        where = ifd + 2 + 12 * i + 8 if size <= 4 else value
        if kind == 2:
            tags[tag] = (data[where : where + n].rstrip(b"\0").decode(),)
        else:
            tags[tag] = struct.unpack_from(f"<{n}{codes[kind]}", data, where)
    return tags


@pytest.mark.data
def test_s40_raw_repair_writes_16_bit_tiff(shared_data, tmp_path):
    rawpy = pytest.importorskip("rawpy")
    crws = sorted((shared_data / S40).glob("*.CRW"))
    db = tmp_path / "p.db"
    index(db, *crws)
    (sensor,) = hotpixels_json(db)
    sites = np.array([(d["y"], d["x"]) for d in sensor["defects"]])
    source = crws[0]
    before = sha256(source)
    result = run(db, "repair", source, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out" / f"{source.stem}.tiff"
    assert f"-> {out}: {len(sites)} sites" in result.stdout
    assert sha256(source) == before

    data = out.read_bytes()
    tags = _tiff_header(data)
    assert tags[258] == (16, 16, 16) and tags[277] == (3,)  # BitsPerSample, SamplesPerPixel
    assert (tags[256][0], tags[257][0]) == (sensor["width"], sensor["height"])  # visible size
    assert tags[271] == ("Canon",) and "PowerShot S40" in tags[272][0]

    # against LibRaw's development of the untouched file: only pixels near the defects
    # differ (AHD demosaicing spreads a site over a few pixels), and every defect did
    with rawpy.imread(str(source)) as raw:
        reference = raw.postprocess(output_bps=16, use_camera_wb=True)
    (offset,) = tags[273]
    fixed = np.frombuffer(data, "<u2", reference.size, offset).reshape(reference.shape)
    ys, xs = np.nonzero((fixed != reference).any(axis=2))
    assert _distance(ys, xs, sites).max() <= 6
    assert (fixed[sites[:, 0], sites[:, 1]] != reference[sites[:, 0], sites[:, 1]]).any(axis=1).all()


def _png16_rgb(path, rgb: np.ndarray) -> None:
    """A 48-bit RGB PNG (Pillow cannot write one; Pillow reads it as 8-bit RGB)."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    h, w, _ = rgb.shape
    rows = b"".join(b"\0" + rgb[y].astype(">u2").tobytes() for y in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_16_bit_colour_is_not_written_back_as_8_bit(png_case, tmp_path):
    db, _, _ = png_case
    source = tmp_path / "deep.png"
    _png16_rgb(source, np.random.default_rng(0).integers(0, 65535, (112, 160, 3)))
    result = run(db, "repair", source, "--out", tmp_path / "out", "--camera", "1")
    assert result.exit_code == 1 and "16-bit colour image" in result.stderr
    assert not (tmp_path / "out").exists()


def test_jpeg_repair_removes_the_demosaic_blob(jpeg_case, tmp_path):
    """The defect and the blob demosaicing spread around it are repaired: its site and
    8 neighbours no longer stand out of the noise (a site-only repair leaves the blob),
    and every other pixel stays within JPEG re-encoding error of the original."""
    from indexer.sensor import blob_mask, repair_rgb, rgb_residual
    from indexer.sensor.accumulator import SensorAccumulator

    db, folder, sites = jpeg_case
    source = folder / f"{FRAME}.jpg"
    assert run(db, "repair", source, "--out", tmp_path / "out").exit_code == 0
    a, b = _same_file_kind(source, tmp_path / "out" / f"{FRAME}.jpg")
    orig, fixed = np.asarray(a), np.asarray(b)

    inside = [(y, x) for y, x in sites if 2 <= y < orig.shape[0] - 2 and 2 <= x < orig.shape[1] - 2]

    def worst_z(image, places) -> np.ndarray:
        """Per place, the largest |residual| / local noise over its 3x3 neighbourhood."""
        r = rgb_residual(image)
        z = np.abs(r.residual) / r.noise
        return np.array([z[y - 1 : y + 2, x - 1 : x + 2].max() for y, x in places])

    rng = np.random.default_rng(0)
    anywhere = list(zip(rng.integers(2, orig.shape[0] - 2, 400), rng.integers(2, orig.shape[1] - 2, 400)))
    noise_p90 = np.percentile(worst_z(orig, anywhere), 90)  # what the noise alone reaches
    site_only = worst_z(repair_rgb(orig, _mask(np.array(inside), orig.shape[:2])), inside)
    before, after = worst_z(orig, inside), worst_z(fixed, inside)
    assert np.median(before) > 5 * noise_p90 and np.median(site_only) > 3 * np.median(after)
    assert np.median(after) <= noise_p90 + 2 and after.max() <= 4 * noise_p90, (after, noise_p90)

    # outside the blobs, the pixels are the original's within JPEG re-encoding error
    (acc_path,) = db.with_name(db.name + ".sensors").glob("sensor-1-*.npz")
    blobs = blob_mask(SensorAccumulator.load(acc_path).mean, _mask(sites, orig.shape[:2]))
    others = ~blobs
    reencoding = np.abs(_reencoded(a) - orig.astype(np.int64)).max(axis=2)
    change = np.abs(fixed.astype(np.int64) - orig).max(axis=2)
    assert change[others].max() <= max(reencoding.max(), 12), (change[others].max(), reencoding.max())


def _mask(sites: np.ndarray, shape) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[sites[:, 0], sites[:, 1]] = True
    return mask
