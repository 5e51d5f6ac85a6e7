"""One frame's contribution to a sensor's statistics, computed where the frame is decoded.

A decode worker turns a learnt frame into a :class:`FrameDelta` (:func:`rgb_delta`,
:func:`cfa_delta`) and sends it to the writer, which adds it to the sensor's accumulator
(:meth:`indexer.sensor.accumulator.SensorAccumulator.add`): the per-site residual work
stays in the workers, the writer only does the Welford step. Adding a delta gives the
same accumulator, bit for bit, as :meth:`~indexer.sensor.accumulator.SensorAccumulator.update`
with the frame itself (``tests/test_sensor_delta.py``).

Compact and exact: inputs are integers, so every residual is an integer. It travels as
int8 with the few sites beyond +-127 listed apart (flat index, value), or, when those are
more than 1 in 16 (noisy 16-bit data), as int16/int32; it converts back to the float32
the accumulator uses without loss. The three masks travel as packed bits. An 8-bit frame
is ~2.4 bytes per site (residual 1, green value 1, masks 3/8, plus 6 bytes per wide
residual) against 3 for the decoded RGB frame and 16 for a one-frame accumulator; a
rendered frame adds a fifth mask and 6 bytes per clearly standing-out site for the stuck
fit (:mod:`.stuckfit`; 336,463 of 12 M sites on a textured frame: +0.3 byte a site).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indexer.sensor.residual import SAMPLE, ResidualParams, check_rendered, iter_cfa_strips

_DEFAULT = ResidualParams()


@dataclass
class FrameDelta:
    """One frame's residual statistics, shapes (H, W) in sensor coordinates.

    layout "cfa" or "rgb"; pattern (2, 2) int8 for "cfa", None for "rgb"; params the
    outlier test used (an accumulator adds only deltas of equal params).
    residual int8/int16/int32: the exact per-site residual (DN / code values), except at the
    flat indices ``wide_at`` (int64) whose residuals are ``wide_values`` (int32); see
    :meth:`residual_rows`.
    value uint8/uint16: raw value (green channel for "rgb"), for stuck detection.
    bright, dark, judgeable, strong: ``np.packbits`` of the (H, W) bool masks, row-major.
    time: capture time of the frame (seconds since 1970, camera clock read as UTC), or
    None when the file records none; it dates the defects (first / last seen).
    sampled: packed mask ("rgb" only) of the K sites that stood out clearly (|r| beyond
    :data:`indexer.sensor.residual.SAMPLE` times the threshold in some channel);
    stood_v / stood_m (K, C) of the image's dtype (empty for "cfa"): at those sites
    (:meth:`stood_at`, raster order), each channel's value and same-colour ninther
    (:mod:`.stuckfit`: the stuck test of rendered frames; 6 bytes a sampled site of an
    8-bit frame); white the code of full scale (0: the dtype's maximum).
    """

    layout: str
    height: int
    width: int
    pattern: np.ndarray | None
    params: ResidualParams
    residual: np.ndarray
    value: np.ndarray
    bright: np.ndarray
    dark: np.ndarray
    judgeable: np.ndarray
    strong: np.ndarray = None
    time: int | None = None
    wide_at: np.ndarray = None
    wide_values: np.ndarray = None
    colors: str = "RGBG"  # rawpy's colour letters of the pattern's indices ("cfa")
    sampled: np.ndarray = None
    stood_v: np.ndarray = None
    stood_m: np.ndarray = None
    white: int = 0

    def __post_init__(self) -> None:
        if self.strong is None:
            self.strong = np.zeros_like(self.bright)
        if self.wide_at is None:
            self.wide_at, self.wide_values = np.empty(0, np.int64), np.empty(0, np.int32)
        if self.sampled is None:
            self.sampled = np.zeros_like(self.bright)
        if self.stood_v is None:
            self.stood_v = self.stood_m = np.zeros((0, 3), np.uint8)

    def residual_rows(self, y0: int, y1: int) -> np.ndarray:
        """float32 (y1 - y0, W) exact residuals of rows ``y0:y1``."""
        out = self.residual[y0:y1].astype(np.float32)
        lo, hi = np.searchsorted(self.wide_at, [y0 * self.width, y1 * self.width])
        if hi > lo:
            out.reshape(-1)[self.wide_at[lo:hi] - y0 * self.width] = self.wide_values[lo:hi]
        return out

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.residual, self.value, self.bright, self.dark, self.judgeable,
                                      self.strong, self.wide_at, self.wide_values, self.sampled, self.stood_v, self.stood_m))

    def mask(self, name: str) -> np.ndarray:
        """One of "bright", "dark", "judgeable", "strong" as bool (H, W)."""
        packed = getattr(self, name)
        return np.unpackbits(packed, count=self.height * self.width).view(bool).reshape(self.shape)

    def stood_at(self) -> np.ndarray:
        """(K,) int64 flat indices (y * W + x), ascending, of the sampled sites: where
        ``stood_v`` / ``stood_m`` were read."""
        return packed_sites(self.sampled, self.height * self.width)

    def stood_out(self) -> np.ndarray:
        """(K, 2) int (y, x) of the sites that stood out bright or dark in this frame."""
        return np.argwhere(self.mask("bright") | self.mask("dark"))


def packed_sites(packed: np.ndarray, count: int) -> np.ndarray:
    """Flat indices (K,) int64, ascending, of the set bits of an ``np.packbits`` mask of
    ``count`` sites: only the non-zero bytes are unpacked (a few % of a frame stand out)."""
    nz = np.flatnonzero(packed)
    bits = np.unpackbits(packed[nz]).reshape(-1, 8).view(bool)
    at = (nz[:, None] * 8 + np.arange(8))[bits]
    return at[at < count]


def packed_residual(residual: np.ndarray) -> dict:
    """Integral residual (float32 or int) -> the ``residual``/``wide_*`` fields (exact)."""
    flat = residual.reshape(-1)
    wide = np.flatnonzero((flat > 127) | (flat < -128))
    if wide.size <= flat.size // 16:
        return dict(residual=residual.astype(np.int8), wide_at=wide.astype(np.int64),
                    wide_values=flat[wide].astype(np.int32))
    lo, hi = (float(residual.min()), float(residual.max()))
    dtype = np.int16 if -32768 <= lo and hi <= 32767 else np.int32
    return dict(residual=residual.astype(dtype))


def _collect(strips, shape, layout, pattern, params, value_dtype) -> FrameDelta:
    height, width = shape
    residual = np.empty(shape, np.float32)
    value = np.empty(shape, value_dtype)
    masks = {name: np.empty(shape, bool) for name in ("bright", "dark", "judgeable", "strong")}
    for s in strips:
        rows = slice(s.y0, s.y1)
        residual[rows], value[rows] = s.residual, s.value
        for name, arr in masks.items():
            arr[rows] = getattr(s, name)
    packed = {name: np.packbits(arr, axis=None) for name, arr in masks.items()}
    return FrameDelta(layout, height, width, pattern, params, value=value, **packed,
                      **packed_residual(residual))


def rgb_delta(image: np.ndarray, *, white_level=None, time: int | None = None,
              params: ResidualParams = _DEFAULT) -> FrameDelta:
    """Delta of a rendered frame: (H, W) or (H, W, C) uint8/uint16, stored orientation;
    ``time`` its capture time (see :class:`FrameDelta`)."""
    check_rendered(image)
    from indexer.sensor.kernels import rgb_strip_arrays

    white = int(white_level if white_level is not None else np.iinfo(image.dtype).max)
    residual, _, bright, dark, value, judge, strong, sampled, stood_v, stood_m = rgb_strip_arrays(
        image, tile=params.tile, step=params.rgb_step, floor=params.noise_floor,  # masks come packed
        margin=params.rgb_margin, white=white, samples=float(SAMPLE))
    return FrameDelta("rgb", *image.shape[:2], None, params, value=value, time=time, bright=bright, dark=dark,
                      judgeable=judge, strong=strong, sampled=sampled, stood_v=stood_v, stood_m=stood_m,
                      white=white, **packed_residual(residual))


def cfa_delta(cfa: np.ndarray, pattern, *, black_level, white_level, colors: str = "RGBG",
              time: int | None = None, params: ResidualParams = _DEFAULT) -> FrameDelta:
    """Delta of a RAW frame's visible CFA plane (arguments as :func:`iter_cfa_strips`)."""
    strips = iter_cfa_strips(cfa, pattern, black_level=black_level, white_level=white_level, params=params)
    delta = _collect(strips, cfa.shape, "cfa", np.asarray(pattern, dtype=np.int8), params, np.uint16)
    delta.colors, delta.time = colors, time
    return delta
