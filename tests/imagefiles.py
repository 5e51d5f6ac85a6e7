"""Tiny generated image files for decoder and pipeline tests (no shared data needed)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from indexer.synthetic import scenes as synth


def scene(seed: int = 0, width: int = 160, height: int = 120) -> np.ndarray:
    """A small synthetic scene, uint8 (height, width, 3)."""
    return synth.scene(seed, width, height)


def jpeg_bytes(rgb: np.ndarray, *, quality: int = 92, exif: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    kwargs = {"quality": quality}
    if exif is not None:
        kwargs["exif"] = exif
    Image.fromarray(rgb).save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_jpeg(path: Path, rgb: np.ndarray | None = None, **kw) -> Path:
    return write(path, jpeg_bytes(scene() if rgb is None else rgb, **kw))


def save(path: Path, img: Image.Image, fmt: str, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, **kw)
    return path


def exif_with(orientation: int = 1, make: str | None = None, model: str | None = None) -> bytes:
    """EXIF bytes carrying Orientation (and Make/Model when given)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    if make:
        exif[0x010F] = make
    if model:
        exif[0x0110] = model
    return exif.tobytes()


def grey16(values: np.ndarray) -> Image.Image:
    """A 16-bit grey Pillow image ('I;16') holding ``values`` (uint16 (H, W))."""
    arr = np.ascontiguousarray(values, dtype="<u2")
    return Image.frombytes("I;16", (arr.shape[1], arr.shape[0]), arr.tobytes())


def png16_rgb(values: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one): uint16 (H, W, 3) in."""
    import struct
    import zlib

    h, w, _ = values.shape
    rows = b"".join(b"\x00" + np.ascontiguousarray(values[y], dtype=">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))
