"""The Gaussian blur and cross-shaped binary morphology of thumbnail verification, with
the per-call overhead of ``scipy.ndimage`` taken out; the same arrays to the bit.

At thumbnail size (~128 x 96 px) ``ndimage.gaussian_filter`` spends more time building
its kernel and checking arguments than convolving (cProfile of ``bench/verify_cost.py``,
2026-12-07: 1,188 calls, 2.1 s with the profiler, 0.9 s of it in the C convolution),
and ``binary_erosion`` / ``binary_dilation`` with the default cross go through a generic
structuring-element path (~0.6 ms a call). Here the kernel is cached per sigma and the
two 1-D passes are one compiled call with ``ndimage.correlate1d``'s arithmetic
(:mod:`indexer.measure.smallfilters_kernels`; reflect mode, truncate 4); the morphology
is boolean slicing. ``tests/test_smallfilters.py``
checks equality with ``scipy.ndimage`` on random arrays.
"""
from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=32)
def _gaussian_weights(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """``scipy.ndimage``'s order-0 Gaussian kernel (``_gaussian_kernel1d`` reversed, as
    ``gaussian_filter1d`` passes it): radius ``int(truncate * sigma + 0.5)``; read-only."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (float(sigma) * float(sigma)) * x ** 2)
    phi = (phi / phi.sum())[::-1].copy()
    phi.flags.writeable = False
    return phi


def gaussian(img: np.ndarray, sigma: float) -> np.ndarray:
    """``ndimage.gaussian_filter(img, sigma)`` of a 2-D float64 array (mode "reflect",
    truncate 4): float64, same shape, the same values to the bit."""
    # compiled (numba, imported on use like scipy was: start-up of `index` must not pay
    # for it): ndimage's two correlate1d passes, the same arithmetic in the same order
    from indexer.measure.smallfilters_kernels import gaussian_reflect

    src = np.ascontiguousarray(img, dtype=np.float64)
    return gaussian_reflect(src, _gaussian_weights(float(sigma)))


def erode_cross(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """``ndimage.binary_erosion(mask, iterations=iterations)`` of a 2-D bool array (the
    default 4-neighbour cross, outside counted False): bool, same shape."""
    out = np.asarray(mask, dtype=bool)
    for _ in range(iterations):
        m, out = out, np.zeros(out.shape, dtype=bool)
        if m.shape[0] > 2 and m.shape[1] > 2:
            out[1:-1, 1:-1] = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return out


def dilate_cross(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """``ndimage.binary_dilation(mask, iterations=iterations)`` of a 2-D bool array (the
    default 4-neighbour cross, outside counted False): bool, same shape."""
    out = np.asarray(mask, dtype=bool)
    for _ in range(iterations):
        m, out = out, out.copy()
        out[1:] |= m[:-1]
        out[:-1] |= m[1:]
        out[:, 1:] |= m[:, :-1]
        out[:, :-1] |= m[:, 1:]
    return out
