"""Perceptual hashes of a batch of grey frames, equal to :mod:`indexer.measure.hashes`.

The per-image functions call Pillow once per resize (8 D4 variants come from 2 resizes,
10 crops from 10); on a 96,108-frame stack of 7x7 frames that is ~2 million calls. Here
each resize is one contraction over the batch (:func:`indexer.stacks.resample.resize`
with ``like_pillow``, which reproduces Pillow's Lanczos output level for level) and each
DCT a matrix product, so the hashes equal ``hashes.phash``/``phash_d4``/``crop_phashes``/
``dhash`` of each frame (the DCT by matrices instead of scipy's FFT can differ in the last
float bits, which flips a bit only when a coefficient ties with the median).

Input: ``grey`` uint8 or float (n, h, w) on the 0..255 scale. Output: int64 arrays.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from indexer.measure import hashes, orient
from indexer.stacks.resample import resize


@lru_cache(maxsize=4)
def _dct8(size: int = 32) -> np.ndarray:
    """Rows 0..7 of the unnormalised DCT-II matrix (scipy ``norm=None``): 2 cos(pi k (2j+1) / 2N)."""
    k, j = np.arange(8)[:, None], np.arange(size)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * j + 1) / (2 * size))


def to_int64(bits: np.ndarray) -> np.ndarray:
    """bool (n, 64), first bit most significant -> int64 (n,) with those bits."""
    packed = np.packbits(bits.astype(bool), axis=1)
    return packed.view(">i8").ravel().astype(np.int64)


def _phash_of_small(small: np.ndarray) -> np.ndarray:
    d = _dct8(small.shape[-1])
    coeffs = ((d @ small) @ d.T).reshape(len(small), 64)
    return to_int64(coeffs > np.median(coeffs, axis=1, keepdims=True))


def phash(grey: np.ndarray) -> np.ndarray:
    """int64 (n,): pHash of each frame."""
    return _phash_of_small(resize(np.asarray(grey, np.float64), 32, 32, like_pillow=True))


def phash_d4(grey: np.ndarray) -> np.ndarray:
    """int64 (n, 8): pHashes under each transform, in ``orient.D4`` order (as
    ``hashes.phash_d4``: axis-swapping variants from a resize of the transposed frame)."""
    g = np.asarray(grey, np.float64)
    small = resize(g, 32, 32, like_pillow=True)
    small_t = resize(np.swapaxes(g, 1, 2), 32, 32, like_pillow=True)
    # orient.apply acts on the first two axes: move the batch axis last
    out = []
    for t in orient.D4:
        if orient.swaps_axes(t):
            variant = orient.apply(np.moveaxis(small_t, 0, -1), orient.compose("transpose", t))
        else:
            variant = orient.apply(np.moveaxis(small, 0, -1), t)
        out.append(_phash_of_small(np.ascontiguousarray(np.moveaxis(variant, -1, 0))))
    return np.stack(out, axis=1)


def crop_phashes(grey: np.ndarray, specs=hashes.CROP_SPECS) -> np.ndarray:
    """int64 (n, len(specs)): pHashes of the crops of ``hashes.CROP_SPECS``."""
    g = np.asarray(grey, np.float64)
    h, w = g.shape[1:]
    return np.stack([_phash_of_small(resize(g, 32, 32, hashes.crop_box(w, h, *spec), like_pillow=True))
                     for spec in specs], axis=1)


def dhash(grey: np.ndarray) -> np.ndarray:
    """int64 (n,): dHash (9x8 resize, one bit per increasing horizontal pair)."""
    small = resize(np.asarray(grey, np.float64), 8, 9, like_pillow=True)
    return to_int64((small[:, :, 1:] > small[:, :, :-1]).reshape(len(small), 64))
