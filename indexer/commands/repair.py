"""``photoqa repair``: write copies of photos with a sensor's defects fixed.

RAW: the defects are fixed on the CFA data (median of same-colour neighbours) before
LibRaw demosaics it, and the result is written as a 16-bit TIFF. JPEG/PNG/TIFF: each
defect in the stored (un-rotated) pixels, with the blob demosaicing spread it into
(measured from the sensor's mean residual: :func:`indexer.sensor.repair.blob_mask`; a
one-channel mosaic has no blob), is filled from the outside in by the
normalised-convolution mean of its neighbours (direct 1, diagonal 1/sqrt 2, other defects
left out); every other pixel keeps its value, and the file is
written in its own format with its EXIF (JPEGs keep their quantisation tables and
subsampling). Originals are never opened for writing; an existing output is kept unless
``force`` (the CLI refuses a non-empty ``--out`` folder first, :func:`check_out_dir`).
``--camera`` uses one sensor's defects for every file of its geometry, but refuses a file
that names another camera unless ``force``.
"""
from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, JpegImagePlugin

from db import sensors as dbsensors
from indexer import decode
from indexer.decode import exif, sniff
from indexer.commands.output import camera_name
from indexer.errors import DecodeError
from indexer.decode.raw import open_raw, raw_metadata
from indexer.sensor import (AccumulatorFileError, Defect, ResidualParams, blob_mask,
                            defect_mask, repair_blobs, repair_cfa, repair_rgb)
from indexer.session import Session
from indexer.atomicfile import write_bytes
from indexer.decode.tiff16 import tiff16_bytes


@dataclass
class RepairResult:
    source: Path
    output: Path | None
    sensor: int | None
    repaired: int = 0
    kinds: str = ""
    skipped: str = ""  # why nothing was written


def _defects(session: Session, sensor: int) -> list[Defect]:
    return [Defect(*row) for row in dbsensors.defects_of(session.engine, sensor)]


_NO_SENSOR = "no sensor statistics for this camera and size (index more of its {what}, or pass --camera)"
# modes written back unchanged; others (palette, alpha, CMYK...) would come back as RGB
_REPAIRABLE_MODES = ("L", "RGB", "I;16", "I;16L", "I;16B", "I;16N")


def same_camera(camera: exif.Camera | None, make: str, model: str, serial: str) -> bool:
    """True when the file names no camera or the sensor's body (the serial counts only
    when both sides record one)."""
    if camera is None or not (camera.make or camera.model):
        return True
    if (camera.make.strip().lower(), camera.model.strip().lower()) != (make.strip().lower(), model.strip().lower()):
        return False
    return not (camera.serial and serial) or camera.serial == serial


def _find(session: Session, camera: exif.Camera | None, width: int, height: int, kind: str,
          forced: int | None, what: str, force: bool = False) -> tuple[int | None, str]:
    """(sensor id, "") or (None, why not). A forced sensor must have this file's geometry:
    defect coordinates of another size would land on the wrong pixels (or outside); and,
    unless ``force``, this file's camera: another body's defects are not this one's."""
    if forced is not None:
        rows = dbsensors.list_sensors(session.engine, forced)
        if not rows:
            return None, f"no sensor with id {forced}; run `photoqa hotpixels` to list them"
        row = rows[0]
        if (row.width, row.height, row.kind) != (width, height, kind):
            return None, (f"sensor {forced} is {row.width}x{row.height} {row.kind}, "
                          f"this file is {width}x{height} {kind}")
        if not force and not same_camera(camera, row.make, row.model, row.serial):
            return None, (f"sensor {forced} is a {camera_name(row.make, row.model, row.serial)}, this file "
                          f"comes from a {camera_name(camera.make, camera.model, camera.serial)} "
                          "(use --force to apply its defects anyway)")
        return forced, ""
    if camera is None:
        return None, _NO_SENSOR.format(what=what)
    sid = dbsensors.find_sensor(session.engine, camera.make, camera.model, camera.serial, width, height, kind)
    return sid, "" if sid is not None else _NO_SENSOR.format(what=what)


def _summary(defects: list[Defect]) -> str:
    counts = Counter(d.kind for d in defects)
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


def repair_file(session: Session, path: Path, out_dir: Path, *, sensor: int | None = None,
                dry_run: bool = False, force: bool = False) -> RepairResult:
    """Repair one file into ``out_dir``; every problem is a ``skipped`` reason, not an exception."""
    path = path.resolve()
    try:
        data = decode.read_bytes(path)
        if sniff.is_raw(data, path.suffix):
            return _repair_raw(session, path, data, out_dir, sensor, dry_run, force)
        return _repair_rendered(session, path, data, out_dir, sensor, dry_run, force)
    except DecodeError as exc:
        return RepairResult(path, None, sensor, skipped=f"{exc.kind}: {exc.message}")


def _target(path: Path, out_dir: Path, suffix: str, force: bool) -> tuple[Path, str]:
    target = (out_dir / (path.stem + suffix)).resolve()
    if target == path:
        return target, "the output would overwrite the original; choose another --out"
    if target.exists() and not force:
        return target, f"{target} exists (use --force to replace it)"
    return target, ""


def _repair_raw(session, path, data, out_dir, forced, dry_run, force) -> RepairResult:
    meta = raw_metadata(data, decode.sidecar_meta(path))
    target, problem = _target(path, out_dir, ".tiff", force)
    with open_raw(data) as raw:
        height, width = raw.raw_image_visible.shape
        sid, why = _find(session, meta.camera, width, height, "cfa", forced, "RAW frames", force)
        if sid is None:
            return RepairResult(path, None, None, skipped=why)
        defects = _defects(session, sid)
        if not defects:
            return RepairResult(path, None, sid, skipped="the sensor has no known defects")
        if problem:
            return RepairResult(path, None, sid, skipped=problem)
        mask = defect_mask(defects, (height, width))
        if dry_run:
            return RepairResult(path, target, sid, int(mask.sum()), _summary(defects), skipped="dry run")
        visible = raw.raw_image_visible
        visible[...] = repair_cfa(visible.copy(), mask)
        rgb = raw.postprocess(output_bps=16, use_camera_wb=True)
    camera = meta.camera
    write_bytes(target, tiff16_bytes(rgb, make=camera.make if camera else "", model=camera.model if camera else ""))
    return RepairResult(path, target, sid, int(mask.sum()), _summary(defects))


def _repair_rendered(session, path, data, out_dir, forced, dry_run, force) -> RepairResult:
    img = decode.open_pillow(data, session.settings.index.max_pixels)
    depth = decode.bit_depth(img)  # before loading: it reads the tile descriptor
    decode.load_pixels(img)
    if depth > 8 and img.mode == "RGB":
        return RepairResult(path, None, None, skipped="16-bit colour image: Pillow reads it as 8 bits, "
                            "a repaired copy would lose precision")
    meta = decode.exif_of(img)  # broken EXIF: repaired all the same, without it
    if img.mode not in _REPAIRABLE_MODES:
        return RepairResult(path, None, None, skipped=f"image mode {img.mode} is not supported by repair "
                            "(grey, RGB and 16-bit grey are)")
    pixels = decode.sensor_frame(img)
    height, width = pixels.shape[:2]
    sid, why = _find(session, meta.camera, width, height, "rgb", forced, "photos", force)
    if sid is None:
        return RepairResult(path, None, None, skipped=why)
    defects = _defects(session, sid)
    if not defects:
        return RepairResult(path, None, sid, skipped="the sensor has no known defects")
    target, problem = _target(path, out_dir, path.suffix, force)
    if problem:
        return RepairResult(path, None, sid, skipped=problem)
    mask = defect_mask(defects, (height, width))
    if dry_run:
        return RepairResult(path, target, sid, int(mask.sum()), _summary(defects), skipped="dry run")
    if pixels.ndim == 2:
        # one channel: maybe a Bayer mosaic (a 16-bit grey PNG/TIFF of raw data); fill from the
        # same-colour grid the residual used (rgb_step), not from sites of other colours
        fixed = repair_rgb(pixels, mask, step=ResidualParams().rgb_step)
    else:
        mean = _mean_residual(session, sid)
        fixed = repair_blobs(pixels, blob_mask(mean, mask) if mean is not None and mean.shape == mask.shape
                             else mask)
    write_bytes(target, _encode_like(img, fixed))
    return RepairResult(path, target, sid, int(mask.sum()), _summary(defects))


def _mean_residual(session: Session, sensor: int) -> np.ndarray | None:
    """The sensor's mean residual (H, W) float32, None when its statistics are not
    readable here (then only the defect sites themselves are repaired): the file beside a
    SQLite database, the ``sensor_tiles`` rows of a PostgreSQL one (any machine)."""
    from indexer.pipeline.sensorstore import open_store

    store = open_store(session.engine, session.url, session.settings.sensor, writer=False)
    try:
        return _load_mean(store, sensor, (session.url, sensor, store.stamp(sensor)))
    except (OSError, AccumulatorFileError):
        return None


_CACHE: dict = {}


def _load_mean(store, sensor: int, key) -> np.ndarray:
    """Many files of one camera in a row: read its statistics once (``key`` changes when
    they do; one sensor kept)."""
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = store.load(sensor).mean
    return _CACHE[key]


def _encode_like(original: Image.Image, pixels: np.ndarray) -> bytes:
    """``pixels`` in the original's format, with its EXIF and ICC profile."""
    # Pillow picks the mode from the array: 2-D uint16 -> "I;16", uint8 -> "L" / "RGB"
    # (Pillow 13 refuses an explicit mode= for these)
    out = Image.fromarray(np.ascontiguousarray(pixels))
    options = {}
    if original.info.get("exif"):
        options["exif"] = original.info["exif"]
    elif len(original.getexif()):  # TIFF: Make/Model live in IFD0, not in info["exif"]
        options["exif"] = original.getexif()
    if original.info.get("icc_profile"):
        options["icc_profile"] = original.info["icc_profile"]
    fmt = original.format or "PNG"
    if fmt == "TIFF" and original.info.get("compression") in ("raw", "tiff_lzw", "tiff_adobe_deflate",
                                                               "packbits"):
        options["compression"] = original.info["compression"]
    if fmt == "JPEG":
        options.update(qtables=original.quantization, subsampling=JpegImagePlugin.get_sampling(original))
        if options["subsampling"] == -1:
            options.pop("subsampling")
    buffer = io.BytesIO()
    out.save(buffer, format=fmt, **options)
    return buffer.getvalue()
