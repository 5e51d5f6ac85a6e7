"""Repair known defective sites. Pure functions: inputs are never modified.

- :func:`repair_cfa` (RAW, before demosaicing): each defect becomes the median of its
  same-colour neighbours that are not defects themselves: the 8 sites of the 3x3
  same-colour grid (2 px away on a Bayer plane), widening to the 16 sites of the 5x5
  grid's outer ring when all 8 are defects. dcraw's ``bad_pixels`` averages the same
  neighbours; the median keeps an edge sharp instead of smearing it.
- :func:`repair_rgb` (demosaiced images): normalised convolution (Knutsson & Westin
  1993) with a 3x3 kernel, weight 1 for the 4 direct neighbours and 1/sqrt(2) for the 4
  diagonal ones, and certainty 0 at defects: each defect becomes the weighted mean of its
  non-defective neighbours, so two adjacent defects do not feed each other.

- :func:`blob_mask` + :func:`repair_blobs` (rendered files): demosaicing smears one bad
  photosite into a ~3x3 blob, and JPEG adds rings of the opposite sign beside it. The
  blob is its 8 neighbours, plus the sites within 2 px whose |mean residual| in the
  sensor's statistics stands out of the ring around them (4x its median, and at least 15%
  of the defect's own); the blob is then filled from the outside in (each pass repairs the
  sites that have sound neighbours, with the normalised convolution above), so the
  middle of a 3x3 blob is filled from already repaired sites, not left as it was.

A defect with no usable neighbour is left as it was (:func:`unrepaired` lists them).
Masks are boolean (H, W) in the same coordinates and orientation as the array (for a
JPEG: stored, un-rotated pixels); build one from records with
:func:`indexer.sensor.defects.defect_mask`.
"""
from __future__ import annotations

import numpy as np

_DIAG = 1 / np.sqrt(2)
_KERNEL = [(-1, -1, _DIAG), (-1, 0, 1.0), (-1, 1, _DIAG), (0, -1, 1.0),
           (0, 1, 1.0), (1, -1, _DIAG), (1, 0, 1.0), (1, 1, _DIAG)]


def _ring(radius: int, step: int) -> list[tuple[int, int]]:
    """Offsets of the same-colour sites at Chebyshev distance ``radius`` (in steps)."""
    r = radius * step
    return [(dy, dx) for dy in range(-r, r + 1, step) for dx in range(-r, r + 1, step)
            if max(abs(dy), abs(dx)) == r]


def _gather(array, mask, ys, xs, offsets):
    """Neighbour values (K, n, ...) as float64 and their usability (K, n)."""
    h, w = mask.shape
    yy = ys[:, None] + np.array([o[0] for o in offsets])[None]
    xx = xs[:, None] + np.array([o[1] for o in offsets])[None]
    inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    yy, xx = np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)
    usable = inside & ~mask[yy, xx]
    return array[yy, xx].astype(np.float64), usable


def _to_dtype(values: np.ndarray, dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.round(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def _check(array: np.ndarray, mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != array.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match image {array.shape[:2]}")
    return mask


def repair_cfa(cfa: np.ndarray, mask: np.ndarray, *, step: int = 2) -> np.ndarray:
    """A copy of the CFA plane (H, W), any dtype, with defects replaced.

    step: same-colour distance (2 for Bayer; 1 treats the plane as monochrome).
    """
    mask = _check(cfa, mask)
    out = cfa.copy()
    ys, xs = np.nonzero(mask)
    todo = np.ones(ys.size, bool)
    for radius in (1, 2):
        if not todo.any():
            break
        vals, usable = _gather(cfa, mask, ys[todo], xs[todo], _ring(radius, step))
        has = usable.any(axis=1)
        vals[~usable] = np.nan
        med = np.nanmedian(vals[has], axis=1) if has.any() else np.empty(0)
        idx = np.flatnonzero(todo)[has]
        out[ys[idx], xs[idx]] = _to_dtype(med, cfa.dtype)
        todo[idx] = False
    return out


def repair_rgb(image: np.ndarray, mask: np.ndarray, *, step: int = 1) -> np.ndarray:
    """A copy of the image ((H, W) or (H, W, C), any dtype) with defects replaced by the
    normalised-convolution weighted mean of their non-defective 8-neighbours.

    step: distance of those neighbours (default 1). Use 2 for a single-channel image that
    is a Bayer mosaic (e.g. a 16-bit grey PNG/TIFF of raw data), so a red site is filled
    from red sites; the residual of :mod:`.residual` uses the same grid (``rgb_step``).
    """
    mask = _check(image, mask)
    out = image.copy()
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return out
    vals, usable = _gather(image, mask, ys, xs, [(dy * step, dx * step) for dy, dx, _ in _KERNEL])
    weights = np.array([w for _, _, w in _KERNEL])[None] * usable  # (K, 8)
    total = weights.sum(axis=1)
    ok = total > 0
    w = weights[ok] / total[ok, None]
    if image.ndim == 3:
        w = w[..., None]
    mean = (vals[ok] * w).sum(axis=1)
    out[ys[ok], xs[ok]] = _to_dtype(mean, image.dtype)
    return out


def blob_mask(mean: np.ndarray, mask: np.ndarray, *, core: int = 1, radius: int = 2, ring: int = 2,
              factor: float = 4.0, share: float = 0.15) -> np.ndarray:
    """Boolean (H, W): the defects of ``mask`` and the sites of their demosaic blobs.

    mean: (H, W) float mean residual of the sensor (``SensorAccumulator.mean``).
    Every site within Chebyshev ``core`` of a defect is in its blob (bilinear and edge-aware
    demosaicing both interpolate a red or blue site into all 8 neighbours); a site out to
    ``radius`` joins when its |mean| exceeds ``factor`` x the median |mean| of the sites
    ``radius + 1 .. radius + ring`` away (the background, floored at 0.5 code values) and
    ``share`` x the defect's own |mean| (larger demosaic kernels, JPEG rings).
    """
    mask = _check(mean, mask)
    out = mask.copy()
    h, w = mask.shape
    size = radius + ring
    yy, xx = np.mgrid[-size : size + 1, -size : size + 1]
    dist = np.maximum(np.abs(yy), np.abs(xx))
    for y, x in zip(*np.nonzero(mask)):
        ys, xs = y + yy, x + xx
        inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        values = np.full(yy.shape, np.nan)
        values[inside] = np.abs(mean[ys[inside], xs[inside]])
        background = max(float(np.nanmedian(values[dist > radius])) if np.isfinite(values[dist > radius]).any()
                         else 0.0, 0.5)
        limit = max(factor * background, share * abs(float(mean[y, x])))
        blob = inside & ((dist <= core) | ((dist <= radius) & (np.nan_to_num(values) > limit)))
        out[ys[blob], xs[blob]] = True
    return out


def repair_blobs(image: np.ndarray, mask: np.ndarray, *, step: int = 1) -> np.ndarray:
    """A copy of ``image`` with every masked site filled, from the outside in: each pass
    is :func:`repair_rgb` of the sites that still have a sound (or already repaired)
    neighbour. Unmasked pixels are returned unchanged, bit for bit."""
    todo = _check(image, mask).copy()
    out = image.copy()
    while todo.any():
        stuck = unrepaired(todo, layout="rgb", step=step)
        out = repair_rgb(out, todo, step=step)
        left = np.zeros_like(todo)
        left[stuck[:, 0], stuck[:, 1]] = True
        if left.sum() == todo.sum():  # nothing reachable: an all-defect image
            break
        todo = left
    return out


def unrepaired(mask: np.ndarray, *, layout: str = "cfa", step: int | None = None) -> np.ndarray:
    """(K, 2) array of (y, x) defects the repair above leaves unchanged (no usable neighbour).

    step: as given to :func:`repair_cfa` ("cfa", default 2) or :func:`repair_rgb` ("rgb",
    default 1).
    """
    mask = np.asarray(mask, dtype=bool)
    ys, xs = np.nonzero(mask)
    step = step if step is not None else (2 if layout == "cfa" else 1)
    if layout == "cfa":
        offsets = _ring(1, step) + _ring(2, step)
    else:
        offsets = [(dy * step, dx * step) for dy, dx, _ in _KERNEL]
    _, usable = _gather(mask, mask, ys, xs, offsets)
    stuck = ~usable.any(axis=1)
    return np.stack([ys[stuck], xs[stuck]], axis=1)
