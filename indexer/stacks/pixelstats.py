"""Per-pixel statistics over a stack of frames: mean and variance (Welford, merged by
Chan et al.), minimum, maximum and a histogram of counts per pixel.

A batch of n frames is reduced at once (``mean`` and ``m2`` of the batch along the
frame axis, in float64: the two-pass formulas, exact for the batch), then merged into the
running totals with Chan, Golub & LeVeque (1979): ``mean = mean_a + d n_b / n``,
``m2 = m2_a + m2_b + d^2 n_a n_b / n``, ``d = mean_b - mean_a``. One Python step per
batch, none per frame; any split into batches gives the same result up to float
rounding, so batches from several workers merge too (:meth:`PixelStats.merge`).

Shapes: every per-pixel array is (C, H, W). ``hist`` is uint32 (C, H, W, bins) of
integer values 0..bins-2, the last bin counting values >= bins-1 ("overflow"); it is
kept for integer dtypes only (photon counts; a float stack has ``hist`` None). NaN
values (float stacks) are not counted: ``count`` is per pixel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HIST_BINS = 256  # per-pixel count histogram: values 0..254, and 255+ in the last bin


@dataclass(eq=False)
class PixelStats:
    """Running per-pixel statistics of a stack (see module docstring)."""

    count: np.ndarray  # int64 (C, H, W): frames seen with a value at the pixel
    mean: np.ndarray  # float64
    m2: np.ndarray  # float64: sum of squared deviations from the mean
    minimum: np.ndarray  # float64
    maximum: np.ndarray  # float64
    hist: np.ndarray | None = None  # uint32 (C, H, W, HIST_BINS), integer stacks only

    @classmethod
    def empty(cls, shape: tuple[int, int, int], *, integer: bool = True, bins: int = HIST_BINS) -> "PixelStats":
        return cls(np.zeros(shape, np.int64), np.zeros(shape), np.zeros(shape),
                   np.full(shape, np.inf), np.full(shape, -np.inf),
                   np.zeros((*shape, bins), np.uint32) if integer else None)

    @property
    def frames(self) -> int:
        """Frames seen (the largest per-pixel count)."""
        return int(self.count.max()) if self.count.size else 0

    def variance(self) -> np.ndarray:
        """Sample variance per pixel (ddof 1); NaN where fewer than 2 values."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 1, self.m2 / np.maximum(self.count - 1, 1), np.nan)

    @classmethod
    def of_batch(cls, batch: np.ndarray, *, bins: int = HIST_BINS) -> "PixelStats":
        """Statistics of one batch (n, C, H, W), two-pass over the frame axis."""
        integer = batch.dtype.kind in "biu"
        x = np.asarray(batch, dtype=np.float64)
        if integer:
            count = np.full(x.shape[1:], len(x), np.int64)
            mean = x.mean(axis=0)
            m2 = ((x - mean) ** 2).sum(axis=0)
            lo, hi = x.min(axis=0), x.max(axis=0)
        else:
            ok = ~np.isnan(x)
            count = ok.sum(axis=0)
            with np.errstate(invalid="ignore"):
                mean = np.where(count > 0, np.nansum(x, axis=0) / np.maximum(count, 1), 0.0)
                m2 = np.nansum((x - mean) ** 2, axis=0)
            lo = np.where(count > 0, np.nanmin(np.where(ok, x, np.inf), axis=0), np.inf)
            hi = np.where(count > 0, np.nanmax(np.where(ok, x, -np.inf), axis=0), -np.inf)
        return cls(count, mean, m2, lo, hi, pixel_histogram(batch, bins) if integer else None)

    def merge(self, other: "PixelStats") -> "PixelStats":
        """A new PixelStats equal to one pass over this one's frames then ``other``'s
        (Chan et al. 1979); inputs unchanged. Raises ValueError on other shapes."""
        if self.mean.shape != other.mean.shape or (self.hist is None) != (other.hist is None):
            raise ValueError(f"cannot merge pixel statistics of {self.mean.shape} and {other.mean.shape}")
        n_a, n_b = self.count, other.count
        n = n_a + n_b
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(n > 0, n_b / np.maximum(n, 1), 0.0)
            delta = other.mean - self.mean
            mean = self.mean + delta * share
            m2 = self.m2 + other.m2 + delta * delta * n_a * share
        hist = None if self.hist is None else self.hist + other.hist
        return PixelStats(n, mean, m2, np.minimum(self.minimum, other.minimum),
                          np.maximum(self.maximum, other.maximum), hist)

    @classmethod
    def from_arrays(cls, arrays) -> "PixelStats":
        """The statistics :meth:`as_arrays` wrote (a mapping such as an opened ``.npz``):
        ``count``, ``mean``, ``m2``, ``min``, ``max`` and ``hist`` when present."""
        hist = arrays["hist"] if "hist" in arrays else None
        return cls(np.asarray(arrays["count"], np.int64), np.asarray(arrays["mean"], np.float64),
                   np.asarray(arrays["m2"], np.float64), np.asarray(arrays["min"], np.float64),
                   np.asarray(arrays["max"], np.float64), None if hist is None else np.asarray(hist, np.uint32))

    def as_arrays(self) -> dict[str, np.ndarray]:
        """The arrays written by ``photoqa stack-stats`` (``.npz`` keys)."""
        out = {"count": self.count, "mean": self.mean, "variance": self.variance(),
               "std": np.sqrt(self.variance()), "m2": self.m2, "min": self.minimum, "max": self.maximum}
        if self.hist is not None:
            out["hist"] = self.hist
        return out


def pixel_histogram(batch: np.ndarray, bins: int = HIST_BINS) -> np.ndarray:
    """uint32 (C, H, W, bins): per pixel, how many frames of ``batch`` (n, C, H, W) hold
    each integer value (values >= bins-1 in the last bin, negatives in the first). One
    bincount over all pixels (pixel p's values offset by bins * p), not a loop."""
    n = len(batch)
    pixels = int(np.prod(batch.shape[1:]))
    v = np.clip(batch.reshape(n, pixels), 0, bins - 1).astype(np.int64)
    v += (np.arange(pixels, dtype=np.int64) * bins)[None, :]
    counts = np.bincount(v.ravel(), minlength=pixels * bins)
    return counts.reshape(*batch.shape[1:], bins).astype(np.uint32)


def stack_statistics(batches, shape: tuple[int, int, int], *, integer: bool = True) -> PixelStats:
    """Reduce an iterable of (n, C, H, W) batches to one :class:`PixelStats`."""
    total = PixelStats.empty(shape, integer=integer)
    for batch in batches:
        total = total.merge(PixelStats.of_batch(batch))
    return total
