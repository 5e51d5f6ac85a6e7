"""A ``.npz`` whose one array is filled at byte offsets, by any process, in any order.

The export's ``.npz`` holds one stored (uncompressed) member ``x.npy``; a stored
member's bytes are contiguous in the file, so once the zip's local header and the npy
header are written and the file is sized, row ``i`` of the array lives at
``row_offset + i * row_bytes`` (``row_offset`` page-aligned by a padding extra field,
so whole rows of 3x224x224 float32, 147 pages, can be written with ``O_DIRECT``) and a worker process can ``os.pwrite`` its rows there
itself: no row passes through the process that coordinates. What a zip needs besides
the bytes is their CRC-32 (APPNOTE.TXT 4.4.7), which each writer computes over its own
run of rows; :func:`crc32_combine` joins the runs' CRCs in order without reading the
data again, and :meth:`NpzSlots.close` writes it into the local header and appends the
central directory (ZIP64 records always, as ``zipfile`` with ``force_zip64`` does: the
export passes 4 GiB from ~7,000 rows of 3x224x224 float32).

Layout (PKWARE APPNOTE.TXT 6.3: 4.3.7 local header, 4.3.12 central directory header,
4.3.14-16 ZIP64 end records, 4.5.3 ZIP64 extra field) of one stored member at offset 0.
"""
from __future__ import annotations

import io
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np

ALIGN = 4096  # row 0 starts at a multiple of this (a page; O_DIRECT's alignment on every Linux block device)
_PAD_ID = 0xD935  # extra field that only pads (Android zipalign's id): readers skip extra fields they do not know
_POLY = 0xEDB88320  # CRC-32 (IEEE 802.3), reflected


def _multmodp(a: int, b: int) -> int:
    """a(x) * b(x) modulo the CRC polynomial, reflected bit order (zlib's multmodp)."""
    m, p = 1 << 31, 0
    while True:
        if a & m:
            p ^= b
            if a & (m - 1) == 0:
                break
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return p


def _x2n_table() -> list[int]:
    p, table = 1 << 30, []  # x^1
    for _ in range(32):
        table.append(p)
        p = _multmodp(p, p)
    return table


_X2N = _x2n_table()  # x^(2^n) modulo the polynomial


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of A + B from crc1 = crc32(A), crc2 = crc32(B) and len2 = len(B) in bytes
    (zlib's crc32_combine, which Python's zlib does not expose): ~0.1 ms, not a pass
    over B."""
    p, n, k = 1 << 31, len2, 3  # x^0; x^(8 * len2) by squarings
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return _multmodp(p, crc1) ^ (crc2 & 0xFFFFFFFF)


def npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """The npy format 2.0 header of a C-order array (what ``np.save`` would write first)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_2_0(
        buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _dos_time(t: float) -> tuple[int, int]:
    y, mo, d, h, mi, s = time.localtime(t)[:6]
    return (h << 11) | (mi << 5) | (s // 2), (max(y, 1980) - 1980) << 9 | (mo << 5) | d


class NpzSlots:
    """``out`` + ``.part`` laid out for ``shape`` x ``dtype`` under ``name`` + ``.npy``:
    :attr:`row_offset` is where row 0's bytes go (rows of :attr:`row_bytes`). Writers
    fill it (``os.pwrite`` on their own descriptor of :attr:`path`); :meth:`close` with
    the CRC-32 of all the rows' bytes in order finishes the zip and renames it to
    ``out``; :meth:`abort` removes it. The rows not yet written read as zeros (a sparse
    file until then)."""

    def __init__(self, out: Path, shape: tuple[int, ...], dtype: np.dtype, name: str = "x"):
        self.out, self.path = out, out.with_name(out.name + ".part")
        self.name = (name + ".npy").encode()
        self.header = npy_header(shape, dtype)
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
        self.data_bytes = len(self.header) + shape[0] * self.row_bytes
        self.time = _dos_time(time.time())
        self.pad = 0
        self.pad = -(len(self._local_header(0)) + len(self.header)) % ALIGN
        self.pad += ALIGN if 0 < self.pad < 4 else 0  # a padding field is 4 bytes at least
        local = self._local_header(0)
        self.row_offset = len(local) + len(self.header)  # a multiple of ALIGN
        with open(self.path, "wb") as fh:
            fh.write(local)
            fh.write(self.header)
            fh.truncate(len(local) + self.data_bytes)

    def _local_header(self, crc: int) -> bytes:
        extra = struct.pack("<HHQQ", 0x0001, 16, self.data_bytes, self.data_bytes)
        if self.pad:
            extra += struct.pack("<HH", _PAD_ID, self.pad - 4) + bytes(self.pad - 4)
        return struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, *self.time, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                           len(self.name), len(extra)) + self.name + extra

    def close(self, rows_crc: int) -> None:
        crc = crc32_combine(zlib.crc32(self.header), rows_crc, self.data_bytes - len(self.header))
        extra = struct.pack("<HHQQ", 0x0001, 16, self.data_bytes, self.data_bytes)
        central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45 | (3 << 8), 45, 0, 0, *self.time, crc,
                              0xFFFFFFFF, 0xFFFFFFFF, len(self.name), len(extra), 0, 0, 0, 0o600 << 16,
                              0) + self.name + extra
        with open(self.path, "r+b") as fh:
            fh.seek(14)
            fh.write(struct.pack("<I", crc))
            start = fh.seek(0, os.SEEK_END)
            end64 = start + len(central)
            fh.write(central)
            fh.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45 | (3 << 8), 45, 0, 0, 1, 1, len(central), start))
            fh.write(struct.pack("<IIQI", 0x07064B50, 0, end64, 1))
            fh.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), min(start, 0xFFFFFFFF), 0))
        self.path.replace(self.out)

    def abort(self) -> None:
        self.path.unlink(missing_ok=True)
