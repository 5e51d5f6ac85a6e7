"""A minimal baseline TIFF writer for 16-bit RGB, which Pillow cannot write.

Uncompressed, chunky (PlanarConfiguration 1), one strip, little-endian (TIFF 6.0,
section 2 "Baseline TIFF"), with optional Make/Model ASCII tags.
"""
from __future__ import annotations

import struct

import numpy as np

_SHORT, _LONG, _ASCII = 3, 4, 2


def tiff16_bytes(rgb: np.ndarray, *, make: str = "", model: str = "", software: str = "photoqa") -> bytes:
    """Encode uint16 (H, W, 3) as a TIFF file's bytes."""
    rgb = np.ascontiguousarray(rgb, dtype="<u2")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint16, got {rgb.shape}")
    height, width = rgb.shape[:2]
    pixels = rgb.tobytes()
    texts = [(271, make), (272, model), (305, software)]
    extra = b""
    text_offsets = {}
    data_start = 8 + len(pixels)
    bps_offset = data_start
    extra += struct.pack("<3H", 16, 16, 16)
    for tag, value in texts:
        if value:
            text_offsets[tag] = data_start + len(extra)
            extra += value.encode("ascii", "replace") + b"\0"
    if len(extra) % 2:
        extra += b"\0"
    entries = [
        (256, _LONG, 1, width), (257, _LONG, 1, height), (258, _SHORT, 3, bps_offset),
        (259, _SHORT, 1, 1), (262, _SHORT, 1, 2), (273, _LONG, 1, 8),
        (277, _SHORT, 1, 3), (278, _LONG, 1, height), (279, _LONG, 1, len(pixels)),
        (284, _SHORT, 1, 1),
    ]
    for tag, value in texts:
        if value:
            entries.append((tag, _ASCII, len(value.encode("ascii", "replace")) + 1, text_offsets[tag]))
    entries.sort()
    ifd_offset = data_start + len(extra)
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        if kind == _SHORT and count == 1:
            ifd += struct.pack("<HHIHH", tag, kind, count, value, 0)
        else:
            ifd += struct.pack("<HHII", tag, kind, count, value)
    ifd += struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", ifd_offset) + pixels + extra + ifd
