"""Decoding and fitting the photos of an export, in worker processes or inline.

An 8-bit photo (JPEG, PNG, WebP, ... everything Pillow opens as 8 bits a channel) goes
the short road, all in Pillow's C code on uint8: JPEG ``draft`` to the smallest DCT
scale that still covers the fitted size, EXIF orientation, one Lanczos resize and the
padding or crop: uint8 (3, H, W). The resize is Pillow's, computed by
:func:`indexer.stacks.resample.fit_rgb8` (the same weights and 8-bit rounding between
the passes, compiled and vectorised: within a level of Pillow's ``resize``, in half its
CPU time), or Pillow's own ``resize`` with a ``reducing_gap`` when that reduces by a
whole factor first (the image 6x the fitted size or more). Rounding between the
passes, values differ from the float resampler (:func:`indexer.stacks.resample.fit`) by
at most a level or two; the source had 8 bits already. Measured per 320x240 JPEG to
224x224 (2026-12-07, 2 cores at load 7-14, CPU time): open 0.17 ms, decode 0.49, resize
0.54-0.61 (Pillow's ``resize``: 1.44-1.53), against ~24 ms for the old road (full
decode at twice the size, float64 matrices).

Everything else (RAW through rawpy, 16-bit and float images, stack frames) takes the
float road: :func:`indexer.decode.decode_file` and :func:`indexer.stacks.resample.fit`,
float32 (C, H, W) on 0..1 with NaN padding.

:func:`load_photos` is the task a worker runs for a run of rows; it returns one
:class:`Loaded` per path, in order.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from indexer.decode import sniff
from indexer.decode.image import decode_file, load_pixels, open_pillow
from indexer.decode.limits import MAX_PIXELS
from indexer.errors import DecodeError
from indexer.stacks import frames as framemath
from indexer.stacks.resample import fit, fit_rgb8, padding_mask, placement

PAD = np.nan  # float road: padding is NaN until written, so statistics leave it out
# --resample: Pillow's filter for the 8-bit road; the float road uses the same kernel
# (indexer.stacks.resample.KERNELS). CPU per 320x240 JPEG to 224x168 in Pillow's resize
# (2026-12-07, 2 cores at load 7): lanczos 1.30 ms, bicubic 0.92, bilinear 0.57, box 0.39,
# against 0.36 ms to decode it (fit_8bit computes them in less than half that). Pillow
# widens every kernel by the shrink factor, so all four average rather than skip pixels (no aliasing of the nearest-neighbour kind); they differ in sharpness
# (bench/datasets.py --quality prints each one's PSNR against Lanczos on real photos).
FILTERS = {"lanczos": Image.Resampling.LANCZOS, "bicubic": Image.Resampling.BICUBIC,
           "bilinear": Image.Resampling.BILINEAR, "box": Image.Resampling.BOX}
REDUCING_GAP = 3.0  # Pillow: reduce() by whole factors first while 3x or more remains ("indistinguishable from fair resampling")
_DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # more than 8 bits: the float road keeps them
_ORIENT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}  # EXIF orientation -> the transpose that makes it upright


@dataclass
class Loaded:
    """One image fitted: ``pixels`` uint8 (3, H, W) with zero padding (8-bit road) or
    float32 (C, H, W) on 0..1 with NaN padding (float road); ``pad`` bool (H, W), True
    where padded; ``levels`` of the source (256 or 65536); or ``error`` when unreadable."""
    pixels: np.ndarray | None = None
    pad: np.ndarray | None = None
    levels: int = 256
    error: str | None = None


def fit_pillow(img: Image.Image, height: int, width: int, mode: str = "pad",
               resample: str = "lanczos") -> np.ndarray:
    """uint8 (3, height, width): an 8-bit Pillow image (any mode Pillow converts to RGB)
    fitted as :func:`indexer.stacks.resample.fit` does (same placement), resized by
    Pillow's ``resample`` filter (:data:`FILTERS`) with :data:`REDUCING_GAP`; padding is 0."""
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    top, left, rh, rw = placement(rgb.height, rgb.width, height, width, mode)
    small = np.asarray(rgb.resize((rw, rh), FILTERS[resample], reducing_gap=REDUCING_GAP))
    out = np.zeros((3, height, width), np.uint8)
    if mode == "pad":
        out[:, top:top + rh, left:left + rw] = small.transpose(2, 0, 1)
    else:
        out[:] = small[-top:-top + height, -left:-left + width].transpose(2, 0, 1)
    return out


def fit_8bit(img: Image.Image, height: int, width: int, mode: str = "pad", resample: str = "lanczos") -> np.ndarray:
    """uint8 (3, height, width): :func:`fit_pillow`'s result within a level, by
    :func:`indexer.stacks.resample.fit_rgb8` (Pillow's weights, pass order and rounding,
    compiled: ~2.5x less CPU), unless Pillow's ``resize`` would ``reduce`` first (a whole
    factor ``int(in / out / REDUCING_GAP)`` of 2 or more along an axis: 6x the fitted
    size with the gap of 3): that stays Pillow's."""
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    _, _, rh, rw = placement(rgb.height, rgb.width, height, width, mode)
    if int(rgb.width / rw / REDUCING_GAP) > 1 or int(rgb.height / rh / REDUCING_GAP) > 1:
        return fit_pillow(rgb, height, width, mode, resample)
    return fit_rgb8(np.asarray(rgb), height, width, mode, resample)


def load_8bit(path: str, height: int, width: int, mode: str, max_pixels: int = MAX_PIXELS,
              resample: str = "lanczos") -> Loaded | None:
    """An 8-bit photo by the short road (uint8 (3, height, width)), or None when the file
    needs the float road (a RAW, more than 8 bits a channel). Raises DecodeError."""
    data = Path(path).read_bytes()
    if sniff.is_raw(data, Path(path).suffix):
        return None
    img = open_pillow(data, max_pixels)
    if img.mode in _DEEP_MODES:
        return None
    try:
        orientation = img.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - broken EXIF must not lose the pixels (as decode_file)
        orientation = None
    turn = _ORIENT.get(orientation) if isinstance(orientation, int) else None
    if (img.format or "").upper() == "JPEG":
        # draft in the stored orientation: the smallest 1/2, 1/4, 1/8 scale still >= the fitted size
        upright = (img.height, img.width) if turn is None or turn.value < 5 else (img.width, img.height)
        _, _, rh, rw = placement(*upright, height, width, mode)
        want = (rw, rh) if turn is None or turn.value < 5 else (rh, rw)
        img.draft("L" if img.mode == "L" else "RGB", want)
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    load_pixels(img)
    if turn is not None:
        img = img.transpose(turn)
    return Loaded(fit_8bit(img, height, width, mode, resample), padding_mask(img.height, img.width, height, width, mode))


def load_float(path: str, height: int, width: int, mode: str, channels: int,
               resample: str = "lanczos") -> Loaded:
    """The float road for one file (RAW, deep images): decoded at twice the size, fitted
    by the float resampler with the ``resample`` kernel."""
    decoded = decode_file(path, work_size=2 * max(height, width))
    unit = np.moveaxis(decoded.rgb, -1, 0)
    pixels = fit(to_channels(unit, channels), height, width, mode, fill=PAD, kernel=resample)
    return Loaded(pixels, padding_mask(unit.shape[1], unit.shape[2], height, width, mode), 256)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """(channels, h, w) from a float (C, h, w) image: luma for 1 from RGB, repeats for 3 from grey."""
    c = image.shape[0]
    if c == channels:
        return image
    if channels == 1:
        return framemath.grey_unit(image[None])[0][None] if c == 3 else image.mean(axis=0, keepdims=True)
    return np.repeat(image[:1] if c != 3 else image, channels, axis=0)[:channels]


def load_photos(paths: list[str], height: int, width: int, mode: str, channels: int,
                resample: str = "lanczos") -> list[Loaded]:
    """A worker's task: every path of a run, fitted, in order (errors as ``Loaded.error``)."""
    out = []
    for path in paths:
        try:
            loaded = load_8bit(path, height, width, mode, resample=resample)
            out.append(loaded if loaded is not None else load_float(path, height, width, mode, channels, resample))
        except (DecodeError, OSError, ValueError, KeyError, EOFError, SyntaxError) as exc:
            out.append(Loaded(error=getattr(exc, "message", None) or str(exc)))
    return out
