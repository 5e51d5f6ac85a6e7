"""Compiled loops of the thumbnail registration (:mod:`indexer.measure.align`).

Numba ``@njit(cache=True)`` kernels (machine code cached beside this file, as
:mod:`indexer.match.mih_kernels`). The thumbnail scale search evaluates a 6 x 6
upsampled surface per tried scale: as NumPy (two kernel matrices, three ``einsum``
contractions, a conjugation and a modulus, ~15 calls on arrays of a few thousand
elements) it cost ~0.19 ms a surface, mostly call overhead (2026-12-03); one compiled
loop does the same sums. Resampling each tried scale (:func:`resample_linear`) was
~20 NumPy calls, ~0.1 ms, for a few thousand multiply-adds.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _signed(k: int, n: int) -> int:
    return k - n if k > (n - 1) // 2 else k


@njit(cache=True, nogil=True)
def upsampled_surface(half: np.ndarray, h: int, w: int, region: int, factor: int,
                      off_y: float, off_x: float) -> np.ndarray:
    """``|S(u)|`` on a ``region``-square grid ``factor`` times finer than the pixels,
    from the ``rfft2`` half spectrum ``half`` (complex128 (h, w // 2 + 1)) of a
    Hermitian (h, w) spectrum: see ``align.upsampled_surface`` for the mirror terms.
    Row ``r`` of an axis evaluates frequency ``g`` at ``(r - off) / factor`` pixels."""
    bins = w // 2 + 1
    m = (w - 1) // 2  # columns 1..m have mirrors
    two_pi = 2.0 * np.pi
    # The kernels' real and imaginary parts, grid row last: each sum below runs over its
    # frequencies in the same order as a complex accumulator per output would, but the
    # region's accumulators advance together, independent of each other (a complex
    # ``acc += x * y`` per output was one long chain of dependent adds: ~0.25 ms of a
    # 15 x 15 surface, 2026-12-07). numba multiplies complex numbers as
    # ``(ac - bd) + (ad + bc)i`` and adds them part by part, which the loops spell out,
    # so every output is the same to the bit.
    ax_re = np.empty((bins, region))
    ax_im = np.empty((bins, region))
    for r in range(region):
        for j in range(bins):
            z = np.exp(1j * (two_pi * (r - off_x) * (_signed(j, w) / (factor * w))))
            ax_re[j, r], ax_im[j, r] = z.real, z.imag
    ay_re = np.empty((region, h))
    ay_im = np.empty((region, h))
    for r in range(region):
        for k in range(h):
            z = np.exp(1j * (two_pi * (r - off_y) * (_signed(k, h) / (factor * h))))
            ay_re[r, k], ay_im[r, k] = z.real, z.imag
    qp_re = np.zeros((h, region))
    qp_im = np.zeros((h, region))
    q_re = np.empty((h, region))
    q_im = np.empty((h, region))
    for k in range(h):
        acc_re = qp_re[k]
        acc_im = qp_im[k]
        for j in range(1, m + 1):
            a, b = half[k, j].real, half[k, j].imag
            for r in range(region):
                c, d = ax_re[j, r], ax_im[j, r]
                acc_re[r] += a * c - b * d
                acc_im[r] += a * d + b * c
        e_re, e_im = half[k, 0].real, half[k, 0].imag
        for r in range(region):
            x_re, x_im = e_re, e_im
            if w % 2 == 0:
                a, b = half[k, bins - 1].real, half[k, bins - 1].imag
                c, d = ax_re[bins - 1, r], ax_im[bins - 1, r]
                x_re += a * c - b * d
                x_im += a * d + b * c
            q_re[k, r] = acc_re[r] + x_re
            q_im[k, r] = acc_im[r] + x_im
    out = np.empty((region, region))
    nyq = h // 2 if h % 2 == 0 else -1  # an even h's Nyquist row maps to itself
    d_re = np.empty(region)
    d_im = np.empty(region)
    m_re = np.empty(region)
    m_im = np.empty(region)
    for ry in range(region):
        d_re[:] = 0.0
        d_im[:] = 0.0
        m_re[:] = 0.0
        m_im[:] = 0.0
        for k in range(h):
            a, b = ay_re[ry, k], ay_im[ry, k]
            bm = -b if k == nyq else b  # the conjugate on the mirror's Nyquist row
            for rx in range(region):
                c, d = q_re[k, rx], q_im[k, rx]
                d_re[rx] += a * c - b * d
                d_im[rx] += a * d + b * c
                c, d = qp_re[k, rx], qp_im[k, rx]
                m_re[rx] += a * c - bm * d
                m_im[rx] += a * d + bm * c
        for rx in range(region):
            out[ry, rx] = abs(complex(d_re[rx] + m_re[rx], d_im[rx] + (-m_im[rx])))
    return out


@njit(cache=True, nogil=True)
def _taps(n_in: int, n_out: int, scale: float, offset: float):
    """Linear interpolation along one axis at ``scale * k + offset``, ``k`` in
    ``range(n_out)``: two source indices and two weights each. Positions are computed as
    ndimage's ``zoom_shift`` does, ``(k + offset / scale) * scale``, so the same samples
    fall outside ``[0, n_in - 1]``; theirs get weights 0 (mode "constant", cval 0)."""
    i0 = np.empty(n_out, dtype=np.int64)
    i1 = np.empty(n_out, dtype=np.int64)
    w0 = np.empty(n_out)
    w1 = np.empty(n_out)
    for k in range(n_out):
        pos = (k + offset / scale) * scale
        inside = 0.0 <= pos <= n_in - 1
        if not inside:
            pos = 0.0
        start = int(np.floor(pos))
        frac = pos - start
        i0[k], i1[k] = start, min(start + 1, n_in - 1)
        w0[k], w1[k] = (1.0 - frac, frac) if inside else (0.0, 0.0)
    return i0, i1, w0, w1


@njit(cache=True, nogil=True)
def resample_linear(src: np.ndarray, scale: float, off_y: float, off_x: float, out_h: int,
                    out_w: int) -> np.ndarray:
    """Separable bilinear resampling of float64 ``src`` at positions ``scale * k + off``
    (``off_y`` for rows, ``off_x`` for columns), rows first, 0 outside: ``align.resample``'s
    interpolation, the same operations in the same order (equal to the bit)."""
    y0, y1, wy0, wy1 = _taps(src.shape[0], out_h, scale, off_y)
    x0, x1, wx0, wx1 = _taps(src.shape[1], out_w, scale, off_x)
    rows = np.empty((out_h, src.shape[1]))
    for i in range(out_h):
        for j in range(src.shape[1]):
            rows[i, j] = src[y0[i], j] * wy0[i] + src[y1[i], j] * wy1[i]
    out = np.empty((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            out[i, j] = rows[i, x0[j]] * wx0[j] + rows[i, x1[j]] * wx1[j]
    return out


@njit(cache=True, nogil=True)
def cross_power(f_ref: np.ndarray, f_mov: np.ndarray, eps: float) -> np.ndarray:
    """The normalised cross-power spectrum ``conj(f_mov) f_ref / max(|.|, eps)`` of two
    complex128 2-D spectra, in one pass: ``align._spectrum_shift``'s five NumPy calls
    (conjugate, product, modulus, maximum, scaling by the reciprocal as a complex with a
    zero imaginary part), the same operations in the same order (equal to the bit)."""
    out = np.empty_like(f_ref)
    for i in range(f_ref.shape[0]):
        for j in range(f_ref.shape[1]):
            p = f_mov[i, j].conjugate() * f_ref[i, j]
            mag = abs(p)
            if mag < eps:
                mag = eps
            out[i, j] = p * complex(1.0 / mag, 0.0)
    return out


@njit(cache=True, nogil=True)
def abs_argmax(values: np.ndarray) -> int:
    """Flat index of the first largest ``|value|`` of a real 2-D array (``np.argmax(np.abs(values))``)."""
    best, where = -1.0, 0
    h, w = values.shape
    for i in range(h):
        for j in range(w):
            v = abs(values[i, j])
            if v > best:
                best, where = v, i * w + j
    return where
