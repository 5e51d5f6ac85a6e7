"""Per-frame measurements of a batch of array frames, the columns of ``images``.

Input: ``batch`` (n, C, H, W) in the file's dtype (C = 1 grey, 3 RGB; other C are
averaged to grey). Values are put on 0..1 by the dtype's range (:func:`unit_range`:
uint8 /255, uint16 /65535, signed types from their minimum, floats taken as 0..1 already,
bool 0/1); 8-bit levels are ``rint(u * 255)``, so the histograms span the dtype's range
(a 7x7 photon-count frame of ~20 counts in uint16 sits in level 0: that is what it is on
its type's scale). NaN values (float frames) are left out of every statistic and read as
0 for hashes.

Differences from photos (:mod:`indexer.measure.features`), stated so SQL users know:
``sharpness`` is measured at the frame's own size (photos: at 256 px); ``ev`` treats the
values as linear (sensor counts are), not sRGB; ``colourfulness`` is 0 unless C = 3.
Hashes equal the per-image functions' (:mod:`indexer.stacks.framehash`). All steps are
vectorised over the batch: no Python loop per frame except SHA-256 (hashlib, ~1 us a frame).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from indexer.measure import linear
from indexer.measure.features import CLIP_HIGH, CLIP_LOW, THUMB_SIZE
from indexer.stacks import framehash
from indexer.stacks.resample import resize


def unit_range(dtype: np.dtype) -> tuple[float, float]:
    """(low, high) of a dtype's range: the values mapped to 0 and 1."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return 0.0, 1.0  # floats are taken as 0..1 already; bool as 0/1


def to_unit(batch: np.ndarray) -> np.ndarray:
    """float32 copy of ``batch`` on 0..1 by its dtype's range (NaN kept, others clipped)."""
    lo, hi = unit_range(batch.dtype)
    u = (np.asarray(batch, dtype=np.float32) - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    return np.clip(u, 0.0, 1.0, out=u)  # clip keeps NaN


def grey_unit(unit: np.ndarray) -> np.ndarray:
    """(n, H, W) grey on 0..1 from (n, C, H, W): Rec. 601 luma for C = 3, else the mean."""
    if unit.shape[1] == 3:
        w = np.array([0.299, 0.587, 0.114], np.float32)
        return np.einsum("nchw,c->nhw", unit, w)
    return unit.mean(axis=1) if unit.shape[1] > 1 else unit[:, 0]


def frame_digest(frame: np.ndarray) -> str:
    """SHA-256 of one frame's bytes, preceded by its dtype and shape (equal values of
    another dtype or shape are other pixels)."""
    head = f"{frame.dtype.str}{frame.shape}".encode()
    return hashlib.sha256(head + np.ascontiguousarray(frame).tobytes()).hexdigest()


@dataclass
class FrameBatch:
    """Measurements of n frames; every array has n rows. ``hist`` uint32 (n, 4, 256):
    R, G, B, luma levels (grey frames: four equal rows). ``thumbs`` uint8 (n, th, tw)."""

    sha256: list[str]
    phash: np.ndarray
    dhash: np.ndarray
    phash_d4: np.ndarray
    phash_crops: np.ndarray
    hist: np.ndarray
    luma_mean: np.ndarray
    luma_std: np.ndarray
    luma_p1: np.ndarray
    luma_p50: np.ndarray
    luma_p99: np.ndarray
    clip_high: np.ndarray
    clip_low: np.ndarray
    entropy: np.ndarray
    sharpness: np.ndarray
    colourfulness: np.ndarray
    ev: np.ndarray
    thumbs: np.ndarray


def level_hist(levels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """int64 (n, 256) counts of uint8 ``levels`` (n, ...) where ``valid``: one bincount
    over the batch (frame i's levels offset by 256 i), not a loop of np.histogram."""
    n = len(levels)
    flat = levels.reshape(n, -1).astype(np.int64) + 256 * np.arange(n)[:, None]
    return np.bincount(flat[valid.reshape(n, -1)], minlength=256 * n).reshape(n, 256)


def percentiles(hist: np.ndarray, q: float) -> np.ndarray:
    """The q-th percentile level (0..1 scale) of each 256-bin histogram row, as
    ``features.percentile_from_hist``."""
    cdf = np.cumsum(hist, axis=1, dtype=np.float64)
    target = q / 100.0 * cdf[:, -1:]
    return np.minimum((cdf < target).sum(axis=1), 255) / 255.0


def entropies(hist: np.ndarray) -> np.ndarray:
    """Shannon entropy (bits) of each histogram row."""
    p = hist / np.maximum(hist.sum(axis=1, keepdims=True), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(p), 0.0)
    return terms.sum(axis=1) + 0.0


def laplacian_var(grey8: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian (mirrored edges) of each (H, W) frame."""
    a = grey8.astype(np.float32)
    p = np.pad(a, ((0, 0), (1, 1), (1, 1)), mode="symmetric")
    lap = p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:] - 4 * a
    return lap.reshape(len(a), -1).var(axis=1)


def colourfulness(rgb8: np.ndarray) -> np.ndarray:
    """Hasler & Suesstrunk M of each (3, H, W) frame on 0..255, 0 for other channel counts."""
    n = len(rgb8)
    if rgb8.shape[1] != 3:
        return np.zeros(n)
    r, g, b = (rgb8[:, i].reshape(n, -1).astype(np.float32) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return np.hypot(rg.std(axis=1), yb.std(axis=1)) + 0.3 * np.hypot(rg.mean(axis=1), yb.mean(axis=1))


def thumbnails(grey8: np.ndarray, size: int) -> np.ndarray:
    """uint8 (n, th, tw): frames whose long side exceeds ``size`` resized to it (Lanczos),
    others as they are."""
    n, h, w = grey8.shape
    if max(h, w) <= size:
        return grey8.copy()
    scale = size / max(h, w)
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    return resize(grey8.astype(np.float64), th, tw, like_pillow=True).astype(np.uint8)


def exposure_ev(mean_linear: np.ndarray) -> np.ndarray:
    """``linear.ev_of_mean`` of each mean (log2 over 18% grey, EV_FLOOR for black)."""
    floor = linear.MID_GREY * 2.0 ** linear.EV_FLOOR
    with np.errstate(divide="ignore"):
        return np.where(mean_linear > floor, np.log2(np.maximum(mean_linear, floor) / linear.MID_GREY),
                        linear.EV_FLOOR)


def measure_batch(batch: np.ndarray, *, thumb_size: int = THUMB_SIZE) -> FrameBatch:
    """All per-frame measurements of ``batch`` (n, C, H, W); see the module docstring."""
    n = len(batch)
    unit = to_unit(batch)
    valid = ~np.isnan(unit)
    unit8 = np.rint(np.nan_to_num(unit, nan=0.0) * 255).astype(np.uint8)
    grey = grey_unit(unit)
    grey_ok = ~np.isnan(grey)
    grey8 = np.rint(np.nan_to_num(grey, nan=0.0) * 255).astype(np.uint8)
    luma_h = level_hist(grey8, grey_ok)
    if batch.shape[1] == 3:
        rgb_h = [level_hist(unit8[:, c], valid[:, c]) for c in range(3)]
    else:
        rgb_h = [luma_h] * 3
    hist = np.stack([*rgb_h, luma_h], axis=1).astype(np.uint32)
    counts = np.maximum(luma_h.sum(axis=1), 1)
    mean = np.nanmean(np.where(grey_ok, grey, np.nan).reshape(n, -1), axis=1) if not grey_ok.all() \
        else grey.reshape(n, -1).mean(axis=1, dtype=np.float64)
    std = np.nanstd(grey.reshape(n, -1), axis=1)
    d4 = framehash.phash_d4(grey8)
    return FrameBatch(
        sha256=[frame_digest(f) for f in batch], phash=d4[:, 0], dhash=framehash.dhash(grey8),
        phash_d4=d4, phash_crops=framehash.crop_phashes(grey8), hist=hist,
        luma_mean=np.nan_to_num(mean), luma_std=np.nan_to_num(std),
        luma_p1=percentiles(luma_h, 1), luma_p50=percentiles(luma_h, 50), luma_p99=percentiles(luma_h, 99),
        clip_high=luma_h[:, CLIP_HIGH:].sum(axis=1) / counts, clip_low=luma_h[:, :CLIP_LOW + 1].sum(axis=1) / counts,
        entropy=entropies(luma_h), sharpness=laplacian_var(grey8), colourfulness=colourfulness(unit8),
        ev=exposure_ev(np.nan_to_num(mean)),
        thumbs=thumbnails(grey8, thumb_size),
    )
