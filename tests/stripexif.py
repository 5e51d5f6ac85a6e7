"""Copies of real photos with their metadata gone, for tests that must not lean on EXIF.

JPEG: the marker segments before the scan are copied except APP1 (EXIF, XMP), APP2-APP13
(ICC, maker data, IPTC/Photoshop) and COM; SOI, APP0 (JFIF), APP14 (Adobe: it says how
to convert the colours), the tables, the frame header and the entropy-coded scan are kept
byte for byte, so the decoded pixels are identical. Formats that cannot be stripped in
place (camera RAW, TIFF, HEIC) are written as the PNG photoqa decodes them (sRGB, EXIF
orientation applied, working size), which carries no metadata at all.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image

from indexer import decode

_DROP = set(range(0xE1, 0xEE)) | {0xFE}  # APP1..APP13, COM


def strip_jpeg(data: bytes) -> bytes:
    """The JPEG ``data`` without its metadata segments (module docstring)."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    out, i = bytearray(b"\xff\xd8"), 2
    while i < len(data):
        if data[i] != 0xFF:
            raise ValueError(f"no marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA:  # start of scan: the rest is image data
            out += data[i:]
            return bytes(out)
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker not in _DROP:
            out += data[i:i + 2 + length]
        i += 2 + length
    raise ValueError("no scan in JPEG")


def strip_file(src: Path, dest_dir: Path, name: str | None = None) -> Path:
    """``src`` without metadata in ``dest_dir``: a stripped JPEG of the same name, or a
    PNG (``<name>.png``) of what photoqa decodes for anything else."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    data = src.read_bytes()
    if data[:2] == b"\xff\xd8":
        dest = dest_dir / (name or src.name)
        dest.write_bytes(strip_jpeg(data))
        return dest
    rgb = decode.decode_file(src).rgb
    dest = dest_dir / f"{name or src.name}.png"
    Image.fromarray(np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)).save(dest, "PNG")
    return dest
