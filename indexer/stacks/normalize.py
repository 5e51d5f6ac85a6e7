"""Scaling a batch of images to training values, vectorised over the batch, NaN-masked.

``batch``: (n, C, H, W), any numeric dtype. Every function returns float32 of the same
shape; NaN pixels (missing values) stay NaN in the output and are left out of every
statistic (masks, not propagation: one NaN never turns its frame into NaN).

- :func:`by_dtype`: divide by the type's range (uint8 /255, uint16 /65535; signed types
  from their minimum; floats unchanged). Relative brightness between frames is kept.
- :func:`minmax`: each frame stretched to 0..1 by its own minimum and maximum
  (``keepdims`` reductions; a flat frame becomes 0). Relative brightness is lost.
- :func:`zscore`: per channel, minus the dataset mean over the dataset standard
  deviation (pass ``mean``/``std`` of the whole dataset, e.g. from :func:`channel_moments`).
- :func:`equalize`: histogram equalisation of each frame (all channels together): each
  value replaced by the fraction of the frame's values <= it (its empirical CDF), through
  one ``argsort`` over the batch's last axis, not a loop of ``np.histogram``. Ties get
  the same value (the CDF at the tie), as the classic CDF-lookup formulation
  (Gonzalez & Woods, "Digital Image Processing", 3.3.1) does with one bin per value.
"""
from __future__ import annotations

import numpy as np

METHODS = ("dtype", "minmax", "zscore", "equalize")


def by_dtype(batch: np.ndarray) -> np.ndarray:
    if batch.dtype.kind in "iu":
        info = np.iinfo(batch.dtype)
        return ((batch.astype(np.float32) - np.float32(info.min)) / np.float32(info.max - info.min))
    return batch.astype(np.float32)


def minmax(batch: np.ndarray) -> np.ndarray:
    x = batch.astype(np.float32)
    axes = tuple(range(1, x.ndim))
    with np.errstate(invalid="ignore"):
        lo = np.nanmin(np.where(np.isnan(x), np.inf, x), axis=axes, keepdims=True)
        hi = np.nanmax(np.where(np.isnan(x), -np.inf, x), axis=axes, keepdims=True)
    span = hi - lo
    return np.where(span > 0, (x - lo) / np.where(span > 0, span, 1), 0.0).astype(np.float32) + np.where(
        np.isnan(x), np.float32(np.nan), np.float32(0))


def channel_moments(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, sum, sum of squares) per channel of a batch, float64 (C,): add them over
    the batches of a dataset, then :func:`moments_to_mean_std`."""
    x = np.moveaxis(batch.astype(np.float64), 1, 0).reshape(batch.shape[1], -1)
    ok = ~np.isnan(x)
    return ok.sum(axis=1).astype(np.float64), np.where(ok, x, 0).sum(axis=1), np.where(ok, x * x, 0).sum(axis=1)


def moments_to_mean_std(count: np.ndarray, total: np.ndarray, squares: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = total / np.maximum(count, 1)
    var = np.maximum(squares / np.maximum(count, 1) - mean * mean, 0.0)
    return mean, np.sqrt(var)


def zscore(batch: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    return ((batch.astype(np.float32) - m) / np.where(s > 0, s, 1)).astype(np.float32)


CACHE_BYTES = 4 << 20  # flat-index bytes equalised at once (see equalize)


def equalize(batch: np.ndarray, *, levels: int | None = None, exclude: np.ndarray | None = None,
             fill: float = np.nan, out: np.ndarray | None = None, excluded_value: int | None = None) -> np.ndarray:
    """Each frame's values replaced by their empirical CDF in 0..1 (see module docstring).

    ``exclude``: bool (n, ...) broadcastable to ``batch`` (e.g. (n, 1, H, W) padding),
    pixels left out of every CDF and set to ``fill`` in the output (NaN, as NaN pixels
    are; integer batches only: a float batch marks them NaN itself). ``out``: float32 of
    ``batch``'s shape to write into (uint8 batches): a caller's reused buffer, so a chunk's
    38 MB (64 x 3x224x224) is not page-faulted in afresh each time (the faults showed as
    ~1 ms an image in the ``take``; net of the file write, the gain was within noise).
    ``excluded_value`` (uint8 batches): the caller's promise that every excluded pixel
    holds this value (zero padding), which spares reading them.

    Integer batches, or float ones in 0..1 with ``levels`` (quantised to that many levels,
    e.g. 256 for 8-bit sources), take the CDF-lookup road: one ``bincount`` over the whole
    batch (frame i's levels offset by ``levels * i``), a cumulative sum per frame and a
    gather, O(pixels); other float batches are sorted (O(pixels log pixels)).
    """
    if batch.dtype == np.uint8:
        return _equalize_uint8(batch, exclude, fill, out, excluded_value)
    if batch.dtype.kind in "biu" or levels is not None:
        # a few frames at a time: the flat index (8 bytes a pixel) of 64 x 3 x 224 x 224
        # is 77 MB and every pass over it went to memory; ~4 MB stays in cache. CPU time
        # against the np.histogram + np.interp loop (2026-12-07, load ~30 on 2 cores): 3.9x
        # for the whole chunk of 64 at once, 10.8x 4 frames at a time (each frame's result
        # is its own, so the split changes nothing)
        per = max(1, CACHE_BYTES // max(1, 8 * int(np.prod(batch.shape[1:]))))
        if exclude is not None:
            exclude = np.broadcast_to(exclude, batch.shape)
        if len(batch) <= per:
            return _equalize_levels(batch, levels, exclude)
        out = np.empty(batch.shape, np.float32)
        for start in range(0, len(batch), per):
            part = None if exclude is None else exclude[start:start + per]
            out[start:start + per] = _equalize_levels(batch[start:start + per], levels, part)
        return out
    if exclude is not None:
        raise ValueError("exclude is for integer batches: mark a float batch's missing pixels NaN")
    n = len(batch)
    x = batch.reshape(n, -1).astype(np.float64)
    nan = np.isnan(x)
    x = np.where(nan, np.inf, x)  # NaN sorts last and is not counted
    valid = (~nan).sum(axis=1, keepdims=True)
    order = np.argsort(x, axis=1, kind="stable")
    ranked = np.take_along_axis(x, order, axis=1)
    # the CDF at a value counts every value <= it: the last index of its run of ties + 1
    size = x.shape[1]
    with np.errstate(invalid="ignore"):  # inf - inf among the NaN placeholders at the end
        last = np.where(np.diff(ranked, axis=1, append=np.nan) != 0, np.arange(size)[None, :], size)
    last = np.minimum.accumulate(last[:, ::-1], axis=1)[:, ::-1]
    cdf = (last + 1) / np.maximum(valid, 1)
    out = np.empty_like(cdf)
    np.put_along_axis(out, order, cdf, axis=1)
    out[nan] = np.nan
    return out.reshape(batch.shape).astype(np.float32)



def equalize_padded8(batch: np.ndarray, pad: np.ndarray, out: np.ndarray) -> np.ndarray:
    """float32 (n, C, H, W) into ``out``: :func:`equalize` of a uint8 batch whose padding
    (``pad`` bool (n, H, W)) holds 0 in every channel, with ``exclude=pad[:, None]``,
    ``fill=0`` and ``excluded_value=0``, bit for bit, compiled
    (:mod:`indexer.stacks.normalize_kernels`): one count and one lookup pass a frame."""
    from indexer.stacks.normalize_kernels import equalize_rows8  # numba: export's photos only

    equalize_rows8(np.ascontiguousarray(batch), np.ascontiguousarray(pad), out)
    return out

def _equalize_uint8(batch: np.ndarray, exclude: np.ndarray | None, fill: float,
                    out: np.ndarray | None = None, excluded_value: int | None = None) -> np.ndarray:
    """uint8 frames one at a time: a 256-bin ``bincount`` and a ``take`` from the CDF
    table, no 8-byte flat index. Per 3x224x224 frame (2026-12-07, 2 cores at load 8, CPU
    time): ~0.35 ms against 0.75-1.3 ms for the flat-index road, whose int64 index is 8x
    the frame's bytes.

    ``excluded_value``: every excluded pixel holds this value (the export's 8-bit road
    pads with 0), so their counts come off that level without reading them, and when no
    other pixel holds it the table's entry becomes ``fill`` instead of a masked copy:
    0.41 against 0.58 ms a padded 4:3 photo, 3 runs (2026-12-07, load 20)."""
    out = np.empty(batch.shape, np.float32) if out is None else out
    for i, frame in enumerate(batch):
        counts = np.bincount(frame.ravel(), minlength=256)
        mask = None
        if exclude is not None:
            mask = np.broadcast_to(exclude[i], frame.shape)
            if excluded_value is None:
                counts -= np.bincount(frame[mask], minlength=256)
            else:
                counts[excluded_value] -= int(np.count_nonzero(exclude[i])) * (frame.size // exclude[i].size)
        cdf = (np.cumsum(counts) / max(int(counts.sum()), 1)).astype(np.float32)
        if mask is not None and excluded_value is not None and counts[excluded_value] == 0:
            cdf[excluded_value] = fill  # only the excluded pixels hold that value
            mask = None
        np.take(cdf, frame, out=out[i])
        if mask is not None:
            np.copyto(out[i], np.float32(fill), where=mask)
    return out


def _equalize_levels(batch: np.ndarray, levels: int | None, exclude: np.ndarray | None = None) -> np.ndarray:
    n = len(batch)
    flat = batch.reshape(n, -1)
    nan = None
    if batch.dtype.kind in "biu":
        lo = int(flat.min()) if flat.size else 0
        levels = (int(flat.max()) - lo + 1) if flat.size else 1
        index = flat.astype(np.intp)
        if lo:
            index -= lo
    else:
        nan = np.isnan(flat)
        scaled = np.multiply(flat, np.float32(levels - 1), dtype=np.float32)
        np.clip(np.rint(scaled, out=scaled), 0, levels - 1, out=scaled)
        if nan.any():
            scaled[nan] = 0
        else:
            nan = None
        index = scaled.astype(np.intp)
    # one flat index per pixel into an (n, levels) table: frame i's level l is i*levels + l;
    # the same array serves the bincount and the gather (take_along_axis built index
    # arrays of its own and was 1.5x slower on (256, 3, 224, 224) uint8)
    index += (np.arange(n, dtype=np.intp) * levels)[:, None]
    weights = None if nan is None else (~nan).ravel().astype(np.float32)
    counts = np.bincount(index.ravel(), weights=weights, minlength=n * levels).reshape(n, levels)
    if exclude is not None:
        # excluded pixels (padding: a fraction of each frame) counted, then taken back:
        # cheaper than a float weight per pixel
        excl = exclude.reshape(n, -1)
        counts -= np.bincount(index[excl], minlength=n * levels).reshape(n, levels)
        nan = excl if excl.any() else None
    cdf = (np.cumsum(counts, axis=1) / np.maximum(counts.sum(axis=1, keepdims=True), 1)).astype(np.float32)
    out = cdf.ravel()[index]
    if nan is not None:
        out[nan] = np.nan
    return out.reshape(batch.shape)


def normalize(batch: np.ndarray, method: str, *, mean=None, std=None, levels: int | None = None) -> np.ndarray:
    """Dispatch by ``method`` (one of :data:`METHODS`); ``zscore`` needs ``mean``/``std``,
    ``equalize`` takes ``levels`` for float input."""
    if method == "dtype":
        return by_dtype(batch)
    if method == "minmax":
        return minmax(batch)
    if method == "zscore":
        return zscore(batch, mean, std)
    if method == "equalize":
        return equalize(batch, levels=levels)
    raise ValueError(f"unknown normalisation {method!r}; choose from {', '.join(METHODS)}")
