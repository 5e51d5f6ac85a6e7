"""Pixel digests: one definition of the SHA-256 of a picture's decoded pixels.

The digest of an image is SHA-256 over ``"{mode}:{width}x{height}:"`` followed by
Pillow's raw bytes of its pixels (``Image.tobytes()``: rows top to bottom, packed as
the mode stores them), the image taken as stored (EXIF orientation not applied), first
frame only, with modes that carry colour through a palette, alpha or another colour
space converted to "RGB" first (:data:`TO_RGB`): a PNG, its TIFF copy and its
palette-free re-save share a digest. Equal digests prove ``same_pixels``.

:func:`image_digest` hashes the raw bytes strip by strip instead of through one
``tobytes()``: the same bytes in the same order (the raw encoder writes whole rows, so
strips concatenate to the full output; tests/test_digest_early.py), without a full-size
copy: 2.3-2.5 ms/MP of 8-bit RGB against 5.9-6.8 through one ``tobytes()`` from 4 MP up
(the same 2.2-2.3 at 0.4 MP, which fits the caches), SHA-256 alone 1.7
(bench/digest_cost.py and the STRIP_BYTES comment, 2026-12-08).
"""
from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

# Modes whose digest is taken of their RGB conversion (the palette resolved, alpha and
# other colour spaces dropped): what a same-picture copy in another container holds.
TO_RGB = frozenset({"RGBA", "P", "CMYK", "YCbCr", "LA", "PA"})
# bytes of raw pixel data hashed per update: a strip stays in the CPU caches (2 MB of L2
# here) between Pillow's packing and the hash. 12 MP RGB, ms/MP in one run: strips of
# 32 kB 3.2, 256 kB 2.5-2.6, 512 kB-1 MB 2.4, 4 MB 2.65; one tobytes() 7.6-7.8
STRIP_BYTES = 512 * 1024


def digest_mode(mode: str) -> str:
    """The mode a ``mode`` image is hashed in (``"RGB"`` for :data:`TO_RGB`, else itself)."""
    return "RGB" if mode in TO_RGB else mode


def digest_image(img: Image.Image) -> Image.Image:
    """``img`` (loaded, first frame) in its :func:`digest_mode`: itself when no conversion."""
    mode = digest_mode(img.mode)
    return img if mode == img.mode else img.convert(mode)


def image_digest(img: Image.Image) -> str:
    """The pixel digest of ``img``: a loaded Pillow image already in its
    :func:`digest_mode` (see :func:`digest_image`), as stored (not rotated)."""
    if digest_mode(img.mode) != img.mode:
        raise ValueError(f"mode {img.mode} is hashed as {digest_mode(img.mode)}: convert it first (digest_image)")
    width, height = img.size
    digest = hashlib.sha256(header(img.mode, width, height))
    if width and height:
        rows = max(1, STRIP_BYTES // max(1, len(img.crop((0, 0, width, 1)).tobytes())))
        for top in range(0, height, rows):
            digest.update(img.crop((0, top, width, min(height, top + rows))).tobytes())
    return digest.hexdigest()


def header(mode: str, width: int, height: int) -> bytes:
    """What the digest hashes before the pixels."""
    return f"{mode}:{width}x{height}:".encode()


def bytes_digest(mode: str, width: int, height: int, data: bytes | memoryview) -> str:
    """The digest of an image of ``mode`` and size whose raw pixel bytes are ``data``."""
    digest = hashlib.sha256(header(mode, width, height))
    digest.update(data)
    return digest.hexdigest()


def array_pixel_digest(frame: np.ndarray) -> str | None:
    """The pixel digest of an image file holding ``frame``'s pixels, or None when no
    such file exists: a stack frame (channels first) of uint8 (H, W) or (1, H, W) is a
    mode "L" image, uint8 (3, H, W) an "RGB" one (interleaved as Pillow stores it),
    uint16 (H, W) or (1, H, W) an "I;16" one (little-endian, as Pillow holds a 16-bit
    PNG); other dtypes and channel counts have no 8/16-bit file to equal. So a frame
    that copies a photo exactly has the photo's digest (``same_pixels``, not ``derived``)."""
    a = frame[0] if frame.ndim == 3 and frame.shape[0] == 1 else frame
    if a.dtype == np.uint8 and a.ndim == 2:
        return bytes_digest("L", a.shape[1], a.shape[0], np.ascontiguousarray(a).tobytes())
    if a.dtype == np.uint8 and a.ndim == 3 and a.shape[0] == 3:
        return bytes_digest("RGB", a.shape[2], a.shape[1], np.ascontiguousarray(a.transpose(1, 2, 0)).tobytes())
    if a.dtype.kind == "u" and a.dtype.itemsize == 2 and a.ndim == 2:
        return bytes_digest("I;16", a.shape[1], a.shape[0], np.ascontiguousarray(a, "<u2").tobytes())
    return None
