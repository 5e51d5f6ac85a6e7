"""Per-frame residual of each photosite against its same-colour neighbours.

For every site ``v`` the *residual* is ``r = v - m`` where ``m`` is Tukey's ninther (the
median of the three row-medians) of the 3x3 grid of same-colour sites around it: on a
Bayer CFA plane those sit 2 pixels apart (RawTherapee's hot/dead filter and
``rawpy.enhance.find_bad_pixels`` use the same 3x3 same-colour grid with a full median);
on a demosaiced image, per channel, ``rgb_step`` (default 2) pixels apart. The ninther
costs 8 min/max passes on the integer data, far less than a full 3x3
``scipy.ndimage.median_filter`` (timed by ``bench/sensor_update.py --median-filter``),
and is as robust to a lone defect, a defect pair, or a bad row/column (the other two rows
or columns outvote it). See Tukey (1977) and Rousseeuw & Bassett (1990), "The remedian".

*Local noise* is a robust mean absolute residual over a tile (default 32x32 sensor pixels,
taken per CFA colour, i.e. 256 same-colour sites): the lower quartile of the mean
|residual| of its 16 sub-tiles, floored at ``noise_floor``. A defect or a scene edge
only raises the sub-tiles it crosses, so it neither hides itself nor the defects near it;
widespread texture raises the noise, which keeps texture from counting as outliers. For Gaussian
noise of sigma ``s`` the estimate is about ``0.7 s``.

A site *stands out* bright when ``r > margin * noise`` and dark when ``r < -margin * noise``
(default margin 4 on RAW, 3 on demosaiced images). One frame decides nothing: :mod:`.defects` requires a site to stand
out in most frames of varied scenes, which is where precision comes from.

Frames are processed in strips of ``tile`` rows so every intermediate stays in cache; the
accumulator consumes the same strips (:func:`iter_cfa_strips`, :func:`iter_rgb_strips`).
Rendered frames go through a compiled kernel (:mod:`.kernels`, same results element for
element as :func:`reference_rgb_strips`): the NumPy passes cost ~0.25-0.5 s of CPU on a
12 MP RGB frame, the kernel ~40 ms with the stuck-fit sampling (``bench/sensor_residual.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

# A site stands out *strongly* when |r| exceeds STRONG times the outlier threshold. Only
# strong outliers date a defect (first/last seen, :mod:`.accumulator`): a chance outlier of
# a sound site is rarely strong (Gaussian noise: ~5e-5 per frame at the rendered-frame
# margin, against ~3e-3 for a plain outlier), so it seldom back-dates a defect.
STRONG = np.float32(4.0)
# A site of a rendered frame whose |r| exceeds SAMPLE times the outlier threshold in some
# channel has its channels' values and ninthers sent for the stuck fit (indexer.sensor.
# stuckfit). Every outlier would be unbiased but costs too much: on a textured 12 MP
# frame 2.5 M sites (21%) stand out, +40 ms of kernel CPU (1.6x) and 15 MB a delta.
SAMPLE = np.float32(2.0)


@dataclass(frozen=True)
class ResidualParams:
    """Tuning of the per-frame outlier test (stored with each accumulator).

    margin:          outlier when |residual| > margin * local noise (default 4.0, ~2.8
                     sigma of Gaussian noise: sensitive per frame; the rate rule over many
                     frames, not this margin, is what keeps scene detail out of the map).
    tile:            side of the noise tile, sensor pixels; a multiple of 8; default 32.
    noise_floor:     lower bound of the local noise, in DN / code values (default 1.0), so
                     flat or clipped tiles do not make every 1-DN wiggle an outlier.
    stuck_tolerance: a site is "unchanged" between consecutive frames when its raw value
                     moves by at most this many DN (default 0: identical value).
    rgb_step:        neighbour distance on demosaiced images (default 2: the 5x5 grid
                     skips the direct neighbours, which demosaicing and JPEG chroma
                     subsampling have contaminated with the defect itself).
    rgb_margin:      the margin on demosaiced images (default 3.0): JPEG chroma subsampling
                     dilutes a blue or red defect about 4x, and the spread suppression in
                     :mod:`.defects` keeps the extra per-frame hits from becoming records.
    """

    margin: float = 4.0
    tile: int = 32
    noise_floor: float = 1.0
    stuck_tolerance: int = 0
    rgb_step: int = 2
    rgb_margin: float = 3.0

    def __post_init__(self) -> None:
        if self.tile < 16 or self.tile % 8:
            raise ValueError(f"tile must be a multiple of 8 >= 16, got {self.tile}")
        if min(self.margin, self.rgb_margin, self.noise_floor) <= 0 or self.stuck_tolerance < 0 \
                or self.rgb_step < 1:
            raise ValueError(f"invalid residual parameters: {self}")


@dataclass
class Strip:
    """Rows ``y0:y1`` of one frame, all arrays shaped (y1 - y0, width).

    residual float32 (DN or code values), bright/dark bool (stood out), value uint16 (raw
    value, for stuck detection), noise_rows float32 (period, width): the local noise of
    strip row ``i`` is ``noise_rows[i % period]`` (see :meth:`noise`),
    judgeable bool (value strictly between black and white: clipped sites are no
    evidence of being stuck).
    """

    y0: int
    y1: int
    residual: np.ndarray
    noise_rows: np.ndarray
    bright: np.ndarray
    dark: np.ndarray
    value: np.ndarray
    judgeable: np.ndarray
    strong: np.ndarray | None = None  # bool: |r| > STRONG x the threshold (see STRONG)

    def noise(self) -> np.ndarray:
        """Local noise per site, float32 (rows, width)."""
        rows = self.y1 - self.y0
        period = self.noise_rows.shape[0]
        return np.tile(self.noise_rows, (-(-rows // period), 1))[:rows]


@dataclass
class FrameResidual:
    """Whole-frame result: the fields of :class:`Strip` for all rows, shape (H, W)."""

    residual: np.ndarray
    noise: np.ndarray
    bright: np.ndarray
    dark: np.ndarray
    value: np.ndarray
    judgeable: np.ndarray


def _med3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Elementwise median of three arrays with four min/max passes."""
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    np.minimum(hi, c, out=hi)
    return np.maximum(lo, hi, out=lo)


def _pad(plane: np.ndarray, tile: int, step: int) -> np.ndarray:
    """Mirror-pad by ``step`` all round and up to whole tiles; keeps the CFA phase."""
    h, w = plane.shape
    extra_h, extra_w = -h % tile, -w % tile
    return np.pad(plane, ((step, step + extra_h), (step, step + extra_w)), mode="reflect")


def _strip_residual(padded: np.ndarray, y: int, tile: int, step: int):
    """Residual of rows ``y:y+tile`` (unpadded coordinates) of a padded plane."""
    blk = padded[y : y + tile + 2 * step]
    hmed = _med3(blk[:, : -2 * step], blk[:, step:-step], blk[:, 2 * step :])
    med = _med3(hmed[: -2 * step], hmed[step:-step], hmed[2 * step :])
    value = blk[step:-step, step:-step]
    residual = value.astype(np.float32)
    residual -= med
    return value, residual


def _tile_noise(residual: np.ndarray, tile: int, period: int, floor: float) -> np.ndarray:
    """Robust local noise per tile and CFA colour, one row per colour: (period, width).

    Each tile is cut into 4x4 sub-tiles; the noise is the lower quartile (4th smallest of
    16) of the sub-tiles' mean |residual|. A scene edge or a defect only raises the
    sub-tiles it crosses, so it does not inflate the tile's noise (a plain tile mean, and
    even the median, let texture hide defects in the synthetic Kodak test).
    Reductions run along the contiguous axis first, which keeps this pass cheap.
    """
    rows, width = residual.shape
    n, q = tile // period, tile // period // 4
    rowsum = np.abs(residual).reshape(4, q, period, width).sum(axis=1)  # (4, p, W)
    cols = rowsum.reshape(4, period, width // tile, 4, q, period)
    sub = cols[..., 0, :].copy()  # (4, p, nt, 4, p); slice adds beat strided .sum(axis=4) 4x (2026-11)
    for j in range(1, q):
        sub += cols[..., j, :]
    sub = sub.transpose(1, 2, 4, 0, 3).reshape(period, width // tile, period, 16)
    tiles = np.partition(sub, 3, axis=3)[..., 3].astype(np.float32) / np.float32(q * q)
    np.maximum(tiles, np.float32(floor), out=tiles)
    return np.repeat(tiles[:, :, None, :], n, axis=2).reshape(period, width)


def _by_colour_row(arr: np.ndarray, period: int) -> np.ndarray:
    """View (rows, width) as (rows / period, period, width) to broadcast per-colour rows."""
    return arr.reshape(arr.shape[0] // period, period, arr.shape[1])


def _outliers(residual: np.ndarray, noise_rows: np.ndarray, margin: float):
    """Bright, dark and strong masks (rows, width) from the per-colour-row noise (period, width)."""
    period = noise_rows.shape[0]
    r3 = _by_colour_row(residual, period)
    thr = noise_rows * np.float32(margin)
    bright = np.greater(r3, thr).reshape(residual.shape)
    dark = np.less(r3, -thr).reshape(residual.shape)
    strong = np.greater(np.abs(r3), thr * STRONG).reshape(residual.shape)
    return bright, dark, strong


def _judgeable(value: np.ndarray, black2: np.ndarray, white: int) -> np.ndarray:
    """Sites strictly inside (black, white); ``black2`` is the per-site black of one period."""
    period = black2.shape[0]
    black_rows = np.tile(black2, (1, value.shape[1] // period))
    inside = np.greater(_by_colour_row(value, period), black_rows).reshape(value.shape)
    inside &= value < white
    return inside


def _plane_strips(plane, *, step, period, black2, white, margin, params) -> Iterator[Strip]:
    """Strips of one plane; ``step`` is the same-colour neighbour distance."""
    h, w = plane.shape
    tile = params.tile
    padded = _pad(plane, tile, step)
    for y in range(0, h, tile):
        value, residual = _strip_residual(padded, y, tile, step)
        noise_rows = _tile_noise(residual, tile, period, params.noise_floor)
        bright, dark, strong = _outliers(residual, noise_rows, margin)
        judge = _judgeable(value, black2, white)
        y1 = min(y + tile, h)
        rows, cols = slice(0, y1 - y), slice(0, w)
        yield Strip(y, y1, residual[rows, cols], noise_rows[:, cols], bright[rows, cols],
                    dark[rows, cols], value[rows, cols], judge[rows, cols], strong[rows, cols])


def black_per_site(pattern: np.ndarray, black_level: float | Sequence[float]) -> np.ndarray:
    """Black level of each site of one 2x2 CFA period, from a scalar or per-channel levels.

    ``pattern`` is rawpy's ``raw_pattern`` (colour index per site, e.g. RGGB = [[0,1],[3,2]]);
    per-channel levels are indexed by those colour indices (rawpy's
    ``black_level_per_channel``).
    """
    pattern = np.asarray(pattern)
    if pattern.shape != (2, 2):
        raise ValueError(f"only 2x2 CFA patterns are supported, got shape {pattern.shape}")
    levels = np.atleast_1d(np.asarray(black_level, dtype=np.float64))
    if levels.size == 1:
        return np.full((2, 2), levels[0])
    if pattern.max() >= levels.size or pattern.min() < 0:
        raise ValueError(f"black levels {levels.tolist()} do not cover pattern {pattern.tolist()}")
    return levels[pattern]


def _check_cfa(cfa: np.ndarray) -> None:
    if cfa.ndim != 2 or cfa.dtype != np.uint16:
        raise ValueError(f"CFA plane must be 2-D uint16, got {cfa.ndim}-D {cfa.dtype}")
    if min(cfa.shape) < 6:
        raise ValueError(f"CFA plane must be at least 6x6, got {cfa.shape}")


def iter_cfa_strips(cfa, pattern, *, black_level, white_level, params=ResidualParams()):
    """Strips of a CFA frame's residual (see :class:`Strip`).

    cfa:         (H, W) uint16, the visible CFA plane (rawpy ``raw_image_visible``); odd
                 sides are fine (mirror padding keeps the CFA phase).
    pattern:     (2, 2) colour indices (rawpy ``raw_pattern``); only its shape and the
                 per-channel black indexing matter: the four sites of a period are handled
                 as four separate planes (the two greens apart, as G1/G2 can differ).
    black_level: scalar or per-channel sequence (rawpy ``black_level_per_channel``), DN.
    white_level: saturation DN (rawpy ``white_level``); sites at or above it are clipped.
    Residuals are in DN (black cancels in a same-colour difference).
    """
    _check_cfa(cfa)
    black2 = black_per_site(pattern, black_level)
    yield from _plane_strips(cfa, step=2, period=2, black2=black2, white=int(white_level),
                             margin=params.margin, params=params)


def check_rendered(image: np.ndarray) -> None:
    """ValueError unless ``image`` is (H, W) or (H, W, C) uint8/uint16 with C in 1..4."""
    if image.ndim not in (2, 3) or image.dtype not in (np.uint8, np.uint16) \
            or (image.ndim == 3 and not 1 <= image.shape[2] <= 4):
        raise ValueError(f"image must be (H, W) or (H, W, C<=4) uint8/uint16, got {image.shape} {image.dtype}")


def _rgb_planes(image: np.ndarray) -> list[np.ndarray]:
    check_rendered(image)
    if image.ndim == 2:
        image = image[:, :, None]
    return [np.ascontiguousarray(image[:, :, c]) for c in range(image.shape[2])]


def iter_rgb_strips(image, *, white_level=None, params=ResidualParams()):
    """Strips of a demosaiced frame's residual, channels combined per pixel.

    image: (H, W, C) or (H, W) uint8/uint16 in stored (un-rotated) orientation.
    Each channel gets its own residual and noise; a pixel is bright (dark) when any channel
    is. Its residual and noise are those of the channel with the largest |r| / noise, so a
    red hot pixel is judged on red. ``value`` (for stuck detection) is that channel's value
    too: a photosite stuck under a red filter keeps the red value of its pixel while green
    and blue are interpolated from its neighbours (and vary); judged in the channel it
    stands out in, a stuck site of any colour shows as an unchanged value, as on RAW.
    white_level defaults to the dtype maximum.

    Computed by the compiled kernel (:mod:`.kernels`, imported on first use: numba is
    heavy); :func:`reference_rgb_strips` is the NumPy definition it equals element for
    element.
    """
    check_rendered(image)
    white = int(white_level if white_level is not None else np.iinfo(image.dtype).max)
    from indexer.sensor.kernels import rgb_strip_arrays

    residual, noise, *packed = rgb_strip_arrays(
        image, tile=params.tile, step=params.rgb_step, floor=params.noise_floor,
        margin=params.rgb_margin, white=white)
    bright, dark, value, judge, strong = (
        arr if arr.ndim == 2 else np.unpackbits(arr, count=residual.size).view(bool).reshape(residual.shape)
        for arr in packed)
    height = image.shape[0]
    for k, y in enumerate(range(0, height, params.tile)):
        rows = slice(y, min(y + params.tile, height))
        yield Strip(y, rows.stop, residual[rows].astype(np.float32), noise[k : k + 1], bright[rows],
                    dark[rows], value[rows].astype(np.uint16), judge[rows], strong[rows])


def reference_rgb_strips(image, *, white_level=None, params=ResidualParams()):
    """:func:`iter_rgb_strips` in plain NumPy, strip by strip (the definition; ~4x slower)."""
    planes = _rgb_planes(image)
    white = int(white_level if white_level is not None else np.iinfo(image.dtype).max)
    black1 = np.zeros((1, 1))
    kw = dict(step=params.rgb_step, period=1, black2=black1, white=white,
              margin=params.rgb_margin, params=params)
    streams = [_plane_strips(p, **kw) for p in planes]
    green = min(1, len(planes) - 1)
    for parts in zip(*streams):
        yield _combine_channels(parts, green)


def _combine_channels(parts: Sequence[Strip], green: int) -> Strip:
    g = parts[green]
    if len(parts) == 1:
        value = g.value.astype(np.uint16, copy=False)
        return Strip(g.y0, g.y1, g.residual, g.noise_rows, g.bright, g.dark, value, g.judgeable, g.strong)
    residual = parts[0].residual.copy()
    value, judge = parts[0].value.astype(np.uint16), parts[0].judgeable.copy()
    best = np.abs(residual) / parts[0].noise_rows[0]  # period 1: one noise row per channel
    bright, dark, strong = parts[0].bright.copy(), parts[0].dark.copy(), parts[0].strong.copy()
    for s in parts[1:]:
        z = np.abs(s.residual) / s.noise_rows[0]
        better = z > best
        np.copyto(residual, s.residual, where=better)
        np.copyto(value, s.value, where=better)
        np.copyto(judge, s.judgeable, where=better)
        np.maximum(best, z, out=best)
        bright |= s.bright
        dark |= s.dark
        strong |= s.strong
    # the picked channel's noise varies per pixel and no longer fits one row per period:
    # the strip keeps the green channel's noise as its representative
    return Strip(g.y0, g.y1, residual, g.noise_rows, bright, dark, value, judge, strong)


def _assemble(strips: Iterator[Strip], shape: tuple[int, int]) -> FrameResidual:
    out = FrameResidual(np.empty(shape, np.float32), np.empty(shape, np.float32),
                        np.empty(shape, bool), np.empty(shape, bool),
                        np.empty(shape, np.uint16), np.empty(shape, bool))
    for s in strips:
        for name in ("residual", "bright", "dark", "value", "judgeable"):
            getattr(out, name)[s.y0 : s.y1] = getattr(s, name)
        out.noise[s.y0 : s.y1] = s.noise()
    return out


def cfa_residual(cfa, pattern, *, black_level, white_level, params=ResidualParams()) -> FrameResidual:
    """Whole-frame residual, noise and outlier masks of a CFA plane (see :func:`iter_cfa_strips`)."""
    strips = iter_cfa_strips(cfa, pattern, black_level=black_level, white_level=white_level,
                             params=params)
    return _assemble(strips, cfa.shape)


def rgb_residual(image, *, white_level=None, params=ResidualParams()) -> FrameResidual:
    """Whole-frame residual of a demosaiced image (see :func:`iter_rgb_strips`)."""
    strips = iter_rgb_strips(image, white_level=white_level, params=params)
    return _assemble(strips, image.shape[:2])
