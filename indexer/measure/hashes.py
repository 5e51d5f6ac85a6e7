"""Perceptual hashes as signed 64-bit integers, for SQL and Hamming search.

pHash follows imagehash 4.3 (``imagehash.phash``): grey, Lanczos resize to 32x32, 2-D
DCT-II, the top-left 8x8 coefficients, one bit per coefficient above their median,
first coefficient as the most significant bit. dHash follows ``imagehash.dhash``: grey,
resize to 9x8, one bit per horizontal neighbour pair that increases. Hashes are stored as
signed int64 (two's complement) so SQLite and PostgreSQL hold them natively.

The D4 variants are computed on 32x32 resizes of the image and of its transpose, so
rotating or mirroring an image and hashing it gives the same bits as the matching
variant of the original (see :func:`phash_d4`).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from indexer.measure import orient

HASH_VERSION = 1
_LANCZOS = Image.Resampling.LANCZOS


def to_signed(u: int) -> int:
    """Unsigned 64-bit value -> signed int64 with the same bits."""
    return u - (1 << 64) if u >= (1 << 63) else u


def to_unsigned(s: int) -> int:
    """Signed int64 -> the unsigned 64-bit value with the same bits."""
    return s & 0xFFFFFFFFFFFFFFFF


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes (signed or unsigned, int or numpy)."""
    # int(): numpy int64 ^ a Python int beyond int64 (the mask) raises OverflowError
    return ((int(a) ^ int(b)) & 0xFFFFFFFFFFFFFFFF).bit_count()


def bits_to_int(bits: np.ndarray) -> int:
    """Boolean array (64,) -> signed int64, first element most significant."""
    packed = np.packbits(np.asarray(bits, dtype=bool).ravel())
    return to_signed(int.from_bytes(packed.tobytes(), "big"))


def _grey_image(grey: np.ndarray | Image.Image) -> Image.Image:
    if isinstance(grey, Image.Image):
        return grey if grey.mode == "L" else grey.convert("L")
    arr = np.asarray(grey)
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, mode="L")


def _resized(grey, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(_grey_image(grey).resize(size, _LANCZOS), dtype=np.float64)


def _dct_rows(n: int, keep: int) -> np.ndarray:
    """The first ``keep`` rows of the unnormalised DCT-II matrix of size ``n``, float64
    (keep, n): ``C[k, j] = 2 cos(pi k (2j + 1) / 2n)``, which is ``scipy.fft.dct(x,
    norm=None)`` (what imagehash's ``scipy.fftpack.dct`` computes) as ``C @ x``."""
    k = np.arange(keep)[:, None]
    return 2.0 * np.cos(np.pi * k * (2 * np.arange(n)[None, :] + 1) / (2 * n))


_DCT8 = _dct_rows(32, 8)  # the 8 lowest frequencies of a 32-point DCT: all a pHash keeps


def _phash_bits(small32: np.ndarray) -> np.ndarray:
    # The top-left 8x8 of the 2-D DCT as two small matrix products (C x C^T), not
    # scipy.fft: importing scipy.fft costs ~0.25 s of CPU on every `photoqa index` start,
    # and the products cost ~3 us. Same bits as scipy.fft.dct(dct(x, axis=0), axis=1) on
    # real photos (tests/test_hashes.py). The coefficients differ from scipy's by ~1e-10
    # (values up to ~1e6 from 8-bit pixels), which moves a bit only where a coefficient
    # ties the median: a flat region, where scipy gives exact zeros and the products give
    # +-1e-13 (an all-black JPEG came out 0x8000... against a noise hash). Rounding to
    # 1e-6 restores those ties; no real photo has a coefficient that close to the median.
    coeffs = np.round(_DCT8 @ small32 @ _DCT8.T, 6)
    return coeffs > np.median(coeffs)


def phash(grey: np.ndarray | Image.Image) -> int:
    """pHash of a grey image (uint8 (H, W) array or Pillow image); signed int64."""
    return bits_to_int(_phash_bits(_resized(grey, (32, 32))))


def phash_d4(grey: np.ndarray | Image.Image) -> np.ndarray:
    """pHashes of the image under each D4 transform, in ``orient.D4`` order; int64 (8,).

    Entry ``t`` equals ``phash(orient.apply(grey, t))`` bit for bit. Pillow's Lanczos
    resize commutes exactly with flips, but not with a transpose: it resamples rows, then
    rounds to 8 bits, then columns, so swapping the axes changes the rounding (2-bit
    differences seen on 1 image in 6). The axis-swapping variants are therefore taken
    from a resize of the transposed image, then flipped.
    """
    img = _grey_image(grey)
    small = _resized(img, (32, 32))
    small_t = _resized(img.transpose(Image.Transpose.TRANSPOSE), (32, 32))
    out = []
    for t in orient.D4:
        if orient.swaps_axes(t):  # t = (transpose, then a flip)
            variant = orient.apply(small_t, orient.compose("transpose", t))
        else:
            variant = orient.apply(small, t)
        out.append(bits_to_int(_phash_bits(np.ascontiguousarray(variant))))
    return np.array(out, dtype=np.int64)


# (fraction of each side kept, anchor x, anchor y); anchor 0 = left/top edge, 1 = right/bottom.
# The two centred crops come first (the layout of FEATURES_VERSION 1, still probed by the
# engine); then 85% crops at the four corners and the four edge midpoints, so a crop or a
# shift that keeps an off-centre part of the frame lands near one of them (Kodak, seed 0,
# 80-95% crops at a random offset: worst crop-channel distance 24 -> 14).
CROP_SPECS = (
    (0.9, 0.5, 0.5), (0.8, 0.5, 0.5),
    (0.85, 0.0, 0.0), (0.85, 1.0, 0.0), (0.85, 0.0, 1.0), (0.85, 1.0, 1.0),
    (0.85, 0.5, 0.0), (0.85, 0.5, 1.0), (0.85, 0.0, 0.5), (0.85, 1.0, 0.5),
)


def crop_box(width: int, height: int, fraction: float, ax: float, ay: float) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) in px of the crop keeping ``fraction`` of each side,
    its free margin split ``ax : 1 - ax`` horizontally and ``ay : 1 - ay`` vertically."""
    cw, ch = max(1, round(width * fraction)), max(1, round(height * fraction))
    # centred crops floor the margin as FEATURES_VERSION 1 did (same stored bits)
    left = (width - cw) // 2 if ax == 0.5 else round((width - cw) * ax)
    top = (height - ch) // 2 if ay == 0.5 else round((height - ch) * ay)
    return left, top, left + cw, top + ch


def crop_phashes(grey: np.ndarray | Image.Image, specs=CROP_SPECS) -> np.ndarray:
    """pHashes of the crops ``specs`` ((fraction, ax, ay) as in :func:`crop_box`);
    int64 (len(specs),), default (10,) in :data:`CROP_SPECS` order.

    Indexed beside the full-image hash so a cropped or shifted copy (80-95% kept) lands
    near one of the original's crop hashes: a global hash alone misses most crops
    (DESIGN.md, Kodak test), centred crops alone miss off-centre ones.
    """
    img = _grey_image(grey)
    w, h = img.size
    return np.array([phash(img.crop(crop_box(w, h, *spec))) for spec in specs], dtype=np.int64)


def dhash(grey: np.ndarray | Image.Image) -> int:
    """dHash (horizontal gradient) of a grey image; signed int64."""
    small = _resized(grey, (9, 8))
    return bits_to_int(small[:, 1:] > small[:, :-1])


def pack(hashes: np.ndarray) -> bytes:
    """int64 array -> little-endian bytes for a BLOB column."""
    return np.asarray(hashes, dtype="<i8").tobytes()


def unpack(blob: bytes | None) -> np.ndarray:
    """Inverse of :func:`pack`; empty array for ``None``."""
    return np.frombuffer(blob or b"", dtype="<i8").astype(np.int64)
