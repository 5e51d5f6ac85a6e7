"""Detail of a resized pair at native resolution: is the bigger image an upscale?

More pixels are not more detail: a 1.5x upscaled export of a camera JPEG holds nothing
its source did not (issue 14). For a pair whose sides differ in size by ``scale`` (the
big side's pixels per small-side pixel, > 1), two measures compare the spectra of the
two full-size grey images at the same *physical* frequencies ``nu`` (cycles per pixel of
the small side; its Nyquist limit is 0.5):

* ``gain``: the big side's power in ``nu`` in [0.3, 0.5) (the top of the small side's
  band) over the small side's, each relative to its own power in [0.02, 0.3) (the
  band both sides hold in full). A downscale was low-pass filtered on the way down, so
  its original has more there: 1.14-3.89 measured for 8 camera JPEGs against their
  Lanczos and bilinear 1/1.5 and 1/2 downscales at JPEG quality 80 and 95; an upscale's
  interpolation attenuates that band: 0.37-0.98 for bicubic, Lanczos and bilinear 1.5x
  upscales at quality 80 and 95 and 2x bicubic PNGs (Lanczos is the sharpest, 0.73-0.98).
* ``above``: the big side's power in ``nu`` in [0.55, 0.475 scale) -- above what the
  small side can hold -- in the same unit. An upscale has there only the attenuated
  images of the interpolation and its own JPEG noise (0.03-0.37 measured); an original
  has its detail (0.06-2.26: a soft camera, the Sony Mavica FD92, has little of it even
  at native size, which is why ``gain`` decides first).

Normalising by the shared band, not by the total: an original's total includes its
detail above the small side's band, which diluted its top-band share until a sharp
synthetic original measured gain 0.98-1.01 against its own downscale.
Spectra are the mean periodogram of a 4x4 grid of Hann-windowed tiles, ``tile`` px
on the small side and ``tile * scale`` (a multiple of 8) on the big one, so both tiles
cover the same part of the scene. Frequencies within one bin of the lines ``f = k/8``
cycles/px of either side are left out: the 8x8 block edges of a JPEG put their energy
there, in the original and in a re-encoded upscale alike (with them, a quality-80
upscale of the Canon 350D frame measured more detail above its source than the frame
had above its own downscale). Measured on camera JPEGs of ../shared/data
(scenes/digicam_corpus Nikon S3100, Canon 350D, iPhone XR, Sony FD92; inria_holidays;
brackets; ukbench; 2026-12-07).

Input: grey arrays (h, w) on any scale, full size (:func:`indexer.decode.load_grey`);
pure NumPy: 13 ms CPU for a 12 MP iPhone XR frame against its 27 MP upscale, beside
53 ms and 192 ms for their grey decodes (2026-12-07, one run on a loaded 2-core box).
The spectra come from ``rfft2`` (the half plane; the other half is its mirror image,
bit for bit what ``fft2`` gives): a 768x512 source's 424-px tiles (a 3.3x downscale's
pair) cost 37 ms against 138 ms with ``fft2`` (2026-12-07, load ~1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TILE = 128  # px on the small side; the big side's tile covers the same part of the scene
GRID = 4  # tiles per axis
LOW_CUT = 0.02  # cycles per small-side pixel: below it, exposure and framing, not detail
TOP_BAND = (0.3, 0.5)
ABOVE_FROM = 0.55  # cycles per small-side pixel: clear of the Nyquist transition


@dataclass(frozen=True)
class Detail:
    """``gain`` and ``above`` of a resized pair (module docstring); dimensionless."""

    gain: float
    above: float


def periodogram(grey: np.ndarray, tile: int, grid: int = GRID) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean power spectrum of ``grid`` x ``grid`` Hann-windowed tiles of ``grey`` (h, w);
    returns (power (t, t) float64, radial frequency (t, t) in cycles/px, mask (t, t) bool
    of frequencies away from the JPEG block lines f = k/8). ``t`` = min(tile, h, w)."""
    h, w = grey.shape
    t = max(8, min(tile, h, w))
    win = np.outer(np.hanning(t), np.hanning(t)).astype(np.float32)
    half = np.zeros((t, t // 2 + 1))
    for y in np.linspace(0, h - t, grid).astype(int):
        for x in np.linspace(0, w - t, grid).astype(int):
            patch = grey[y:y + t, x:x + t].astype(np.float32)
            half += np.abs(np.fft.rfft2((patch - patch.mean()) * win)) ** 2
    # a real tile's spectrum is Hermitian, |X[k, l]| = |X[-k, -l]|: the half plane rfft2
    # gives is all of it, at half the FFT work (19 resized pairs of bench/end_to_end.py's
    # dense set spent 2.6 s of CPU in fft2 of 768x512 sources' 424-px tiles; 2026-12-07)
    rest = np.arange(t // 2 + 1, t)
    acc = np.empty((t, t))
    acc[:, :t // 2 + 1] = half
    acc[:, rest] = half[(-np.arange(t)) % t][:, t - rest]
    f = np.fft.fftfreq(t)
    radius = np.hypot(f[:, None], f[None, :])
    off_line = np.abs(f * 8 - np.round(f * 8)) * t / 8 > 1.01  # bins from the nearest k/8 line
    return acc, radius, off_line[:, None] & off_line[None, :]


def _share(spec: tuple[np.ndarray, np.ndarray, np.ndarray], scale: float, lo: float, hi: float) -> float:
    """Power in the physical band [lo, hi) (cycles per small-side pixel) over the power in
    [:data:`LOW_CUT`, 0.3) of a side ``scale`` times the small one."""
    power, radius, ok = spec
    base = power[(radius > LOW_CUT / scale) & (radius < TOP_BAND[0] / scale) & ok].sum()
    band = power[(radius >= lo / scale) & (radius < hi / scale) & ok].sum()
    return float(band / base) if base > 0 else 0.0


MIN_SIDE = 32  # px: a smaller image has too few frequency bins to tell bands apart


def detail(small: np.ndarray, big: np.ndarray, scale: float, tile: int = TILE) -> Detail | None:
    """:class:`Detail` of ``big`` (grey (H, W)) against ``small`` (grey (h, w)), ``big``
    being ``scale`` (> 1) times ``small`` in linear size; None when a side of ``small``
    is under :data:`MIN_SIDE` px."""
    if min(small.shape[:2]) < MIN_SIDE or min(big.shape[:2]) < MIN_SIDE:
        return None
    s = float(scale)
    spec_small = periodogram(small, tile)
    spec_big = periodogram(big, 8 * max(1, round(tile * s / 8)))
    top = _share(spec_small, 1.0, *TOP_BAND)
    if top <= 0:
        return Detail(gain=0.0, above=0.0)
    return Detail(gain=_share(spec_big, s, *TOP_BAND) / top,
                  above=_share(spec_big, s, ABOVE_FROM, 0.475 * s) / top)


def grey_of(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma (h, w) float32 of an RGB array (h, w, 3) on any scale."""
    return (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114).astype(np.float32)
