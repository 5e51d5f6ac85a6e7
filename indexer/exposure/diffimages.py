"""``photoqa diff``: align B to A at full resolution, measure, and draw the outputs.

Flow: :func:`align_pair` (sub-pixel translation from phase correlation of
rank-normalised grey, then B resampled onto A's grid with the overlap mask) ->
:func:`compare` (delta EV, transfer curve and correlation in linear light) ->
:func:`render` (Pillow images: clipped differences, their sum, transfer-curve plot,
histograms) -> :func:`write_outputs` (PNG files). Inputs are float (H, W, 3) in [0, 1];
``linear`` says whether they are linear light (RAW developed linearly) or sRGB-encoded.
Output images are sRGB-encoded for viewing. Plots use ``PIL.ImageDraw`` only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from indexer.measure import linear as lin
from indexer.exposure.transfer import ExposureDelta, curve_bend, delta_ev, straighter
from indexer.exposure.shift import measure_shift, shift_image

OUTPUT_NAMES = ("a_minus_b", "b_minus_a", "diff_sum", "transfer_curve",
                "histogram_a", "histogram_b", "histogram_diff")
_RGB = ((220, 50, 47), (60, 160, 60), (38, 110, 210))


@dataclass(frozen=True)
class Aligned:
    """B on A's grid. ``b``: float32 like ``a`` (zeros outside the overlap); ``mask``:
    bool (H, W) overlap; ``dy``, ``dx``: shift applied to B (pixels, skimage
    convention: B shifted by it registers onto A); ``peak``: phase-correlation peak."""

    b: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    dy: float
    dx: float
    peak: float


@dataclass(frozen=True)
class DiffResult:
    """Everything ``diff`` prints and draws. ``a_lin``, ``b_lin``: float32 (H, W, 3)
    linear light, B aligned (``aligned.b`` is the same array); ``ncc``: Pearson
    correlation of the linear luminances over the overlap (a pure exposure change
    leaves it at 1 up to clipping and noise); ``encoding``: the decoding used
    ("linear" for linear input); ``bend``: :func:`curve_bend` of the transfer curve."""

    a_lin: np.ndarray = field(repr=False)
    b_lin: np.ndarray = field(repr=False)
    aligned: Aligned
    delta: ExposureDelta = field(repr=False)
    ncc: float
    encoding: str = "srgb"
    bend: float = math.nan


def align_pair(a: np.ndarray, b: np.ndarray, *, upsample: int = 20, crop: int = 1024,
               coarse: int = 512, order: int = 1) -> Aligned:
    """Register B onto A by a sub-pixel translation and resample B onto A's grid.

    ``a``, ``b``: float (H, W, 3) or (H, W), same shape, any encoding. The shift comes
    from :func:`measure_shift` (:func:`indexer.measure.align.phase_shift` on
    rank-normalised grey: each pixel replaced by its quantile, so exposure and tone
    differences do not bias it); B is then resampled by :func:`shift_image`.
    """
    if np.shape(a) != np.shape(b):
        raise ValueError(f"shapes differ: {np.shape(a)} vs {np.shape(b)}")
    dy, dx, peak = measure_shift(lin.luminance(a), lin.luminance(b), upsample=upsample,
                                 crop=crop, coarse=coarse)
    moved, mask = shift_image(b, dy, dx, order=order)
    return Aligned(moved, mask, dy, dx, peak)


def _ncc(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    den = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    return float((x * y).sum()) / den if den > 0 else math.nan


def _measure(a_lin, b_lin, al: Aligned, encoding: str, delta_kwargs) -> DiffResult:
    d = delta_ev(a_lin, b_lin, mask=al.mask, **delta_kwargs)
    ncc = _ncc(lin.luminance(a_lin)[al.mask], lin.luminance(b_lin)[al.mask])
    bend = curve_bend(d.curve) if d.curve is not None else math.nan
    return DiffResult(a_lin, b_lin, Aligned(b_lin, al.mask, al.dy, al.dx, al.peak), d, ncc,
                      encoding, bend)


def compare(a: np.ndarray, b: np.ndarray, *, linear: bool = False, encoding: str = "srgb",
            align: bool = True, ratio: float = 0.5, margin: float = 0.005,
            **delta_kwargs) -> DiffResult:
    """Align B to A (:func:`align_pair`, unless ``align`` is False), then measure in
    linear light.

    ``a``, ``b``: float (H, W, 3) in [0, 1], same shape; linear light when ``linear``
    (RAW developed linearly), else decoded with ``encoding``: "srgb", "bt709", or
    "auto" (each decoding tried; a later one replaces sRGB only when its transfer curve
    is clearly straighter, :func:`transfer.straighter` with ``ratio`` and ``margin``). The shift is
    measured once on rank-normalised grey, which no monotone decoding changes.
    ``delta_kwargs`` go to :func:`indexer.exposure.transfer.delta_ev`.
    """
    if align:
        al = align_pair(a, b)
    elif np.shape(a) != np.shape(b):
        raise ValueError(f"shapes differ: {np.shape(a)} vs {np.shape(b)}")
    else:
        al = Aligned(np.asarray(b, np.float32), np.ones(np.shape(a)[:2], bool), 0.0, 0.0, math.nan)
    if linear:
        return _measure(np.asarray(a, np.float32), al.b, al, "linear", delta_kwargs)
    best = None
    for enc in (tuple(lin.DECODERS) if encoding == "auto" else (encoding,)):
        res = _measure(lin.decode(a, enc), lin.decode(al.b, enc), al,
                       enc, delta_kwargs)
        if best is None or straighter(res.bend, best.bend, ratio=ratio, margin=margin):
            best = res
    return best


def _to_image(x: np.ndarray) -> Image.Image:
    """Linear float (H, W, 3) -> sRGB-encoded 8-bit RGB Pillow image."""
    return Image.fromarray(lin.linear_to_srgb8(x), "RGB")


def difference_images(a_lin: np.ndarray, b_lin: np.ndarray, mask: np.ndarray | None = None,
                      *, gain: float = 1.0) -> dict[str, Image.Image]:
    """A-B and B-A clipped at 0 (per channel, linear light, times ``gain``), and their
    sum |A-B|; zero outside ``mask``. Returned sRGB-encoded so small differences show."""
    d = (np.asarray(a_lin, np.float32) - np.asarray(b_lin, np.float32)) * np.float32(gain)
    if mask is not None:
        d = d * mask[..., None]
    pos, neg = np.clip(d, 0, 1), np.clip(-d, 0, 1)
    return {"a_minus_b": _to_image(pos), "b_minus_a": _to_image(neg),
            "diff_sum": _to_image(np.clip(pos + neg, 0, 1))}


class _Axes:
    """Maps data (x, y) to pixels inside a framed plot area and draws its frame."""

    def __init__(self, draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int],
                 xr: tuple[float, float], yr: tuple[float, float]):
        self.draw, self.box, self.xr, self.yr = draw, box, xr, yr
        draw.rectangle(box, outline=(0, 0, 0))

    def px(self, x, y):
        x0, y0, x1, y1 = self.box
        fx = (np.asarray(x, float) - self.xr[0]) / (self.xr[1] - self.xr[0])
        fy = (np.asarray(y, float) - self.yr[0]) / (self.yr[1] - self.yr[0])
        return x0 + fx * (x1 - x0), y1 - fy * (y1 - y0)

    def line(self, xs, ys, fill, width=2):
        px, py = self.px(xs, ys)
        pts = [(float(u), float(v)) for u, v in zip(px, py) if np.isfinite(u) and np.isfinite(v)]
        if len(pts) > 1:
            self.draw.line(pts, fill=fill, width=width)

    def ticks(self, xs, ys, xfmt, yfmt):
        x0, y0, x1, y1 = self.box
        for x in xs:
            u = float(self.px(x, self.yr[0])[0])
            self.draw.line([(u, y1), (u, y1 + 4)], fill=(0, 0, 0))
            self.draw.text((u - 10, y1 + 6), xfmt(x), fill=(0, 0, 0))
        for y in ys:
            v = float(self.px(self.xr[0], y)[1])
            self.draw.line([(x0 - 4, v), (x0, v)], fill=(0, 0, 0))
            self.draw.text((x0 - 40, v - 5), yfmt(y), fill=(0, 0, 0))


def transfer_plot(a_lin: np.ndarray, b_lin: np.ndarray, mask: np.ndarray | None,
                  delta: ExposureDelta, *, size: int = 640, n_points: int = 20_000,
                  stops: int = 10) -> Image.Image:
    """Transfer curve on log2 axes (linear luminance of A vs B, ``stops`` stops below 1):
    grey scatter of up to ``n_points`` aligned pixels, the per-level median curve
    (red), the identity (black) and identity + delta EV (dashed blue)."""
    ya, yb = lin.luminance(a_lin), lin.luminance(b_lin)
    sel = np.flatnonzero(mask.ravel()) if mask is not None else np.arange(ya.size)
    if sel.size:
        sel = sel[np.linspace(0, sel.size - 1, min(n_points, sel.size)).astype(np.int64)]
    floor = 2.0 ** -stops
    lx = np.log2(np.maximum(ya.ravel()[sel], floor))
    ly = np.log2(np.maximum(yb.ravel()[sel], floor))
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    ax = _Axes(draw, (60, 30, size - 20, size - 50), (-stops, 0), (-stops, 0))
    px, py = ax.px(lx, ly)
    for u, v in zip(px, py):
        draw.point((float(u), float(v)), fill=(150, 150, 150))
    ax.line([-stops, 0], [-stops, 0], (0, 0, 0), 1)
    if np.isfinite(delta.delta_ev):
        d = delta.delta_ev
        for s in np.arange(max(-stops, -stops - d), min(0.0, -d) - 0.25, 0.5):
            ax.line([s, s + 0.25], [s + d, s + 0.25 + d], (38, 110, 210), 2)
    c = delta.curve
    if c is not None and c.level_a.size:
        ax.line(np.log2(c.level_a), np.log2(np.maximum(c.median_b, floor)), (220, 50, 47), 3)
    ax.ticks(range(-stops, 1, 2), range(-stops, 1, 2), lambda x: f"2^{x}", lambda y: f"2^{y}")
    draw.text((size // 2 - 90, size - 22), "A luminance (linear, log2)", fill=(0, 0, 0))
    draw.text((60, 8), f"B luminance vs A   delta EV {delta.delta_ev:+.2f}  (n={delta.n_used})",
              fill=(0, 0, 0))
    return img


def _channel_counts(values: np.ndarray, value_range, bins: int, mask) -> list[np.ndarray]:
    """Per-channel counts over ``bins`` equal bins of ``value_range`` (bincount: no sort)."""
    lo, hi = value_range
    out = []
    for k in range(3):
        v = values[..., k] if mask is None else values[..., k][mask]
        if v.dtype == np.uint8 and (lo, hi, bins) == (0.0, 1.0, 256):
            idx = v
        else:
            idx = np.clip(((v - lo) * (bins / (hi - lo))).astype(np.int64), 0, bins - 1)
        out.append(np.bincount(idx.ravel(), minlength=bins)[:bins])
    return out


def histogram_plot(values: np.ndarray, *, value_range: tuple[float, float] = (0.0, 1.0),
                   bins: int = 256, title: str = "", mask: np.ndarray | None = None,
                   size: tuple[int, int] = (640, 320)) -> Image.Image:
    """Per-channel histograms of (H, W, 3) ``values`` as R, G, B lines on sqrt(count)
    axes (so small populations stay visible), over ``value_range``. uint8 input is
    taken as codes 0..255 on a 0..1 scale (one bin per code)."""
    v = np.asarray(values)
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    ax = _Axes(draw, (50, 25, size[0] - 15, size[1] - 40), value_range, (0.0, 1.0))
    counts = _channel_counts(v, value_range, bins, mask)
    top = max(1.0, max(float(np.sqrt(c).max()) for c in counts))
    edges = np.linspace(value_range[0], value_range[1], bins + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    for c, colour in zip(counts, _RGB):
        ax.line(centres, np.sqrt(c) / top, colour, 1)
    lo, hi = value_range
    ax.ticks(np.linspace(lo, hi, 5), [], lambda x: f"{x:.2f}", str)
    draw.text((50, 6), f"{title}  (sqrt count, peak {int(top * top)})", fill=(0, 0, 0))
    return img


def render(result: DiffResult, *, gain: float = 1.0) -> dict[str, Image.Image]:
    """All ``diff`` outputs keyed by :data:`OUTPUT_NAMES`. Histograms of A and B are of
    the sRGB-encoded values; that of the differences is of A - B in linear light."""
    a, b, m = result.a_lin, result.b_lin, result.aligned.mask
    out = difference_images(a, b, m, gain=gain)
    out["transfer_curve"] = transfer_plot(a, b, m, result.delta)
    out["histogram_a"] = histogram_plot(lin.linear_to_srgb8(a), title="A (sRGB)", mask=m)
    out["histogram_b"] = histogram_plot(lin.linear_to_srgb8(b), title="B (sRGB, aligned)", mask=m)
    out["histogram_diff"] = histogram_plot(a - b, value_range=(-0.5, 0.5),
                                           title="A - B (linear)", mask=m)
    return out


def write_outputs(images: dict[str, Image.Image], out_dir: str | Path, *,
                  compress_level: int = 1) -> list[Path]:
    """Save each image as ``<out_dir>/<name>.png`` (folder created); returns the paths
    in :data:`OUTPUT_NAMES` order, then any other names in sorted order.
    ``compress_level`` 1 (zlib fast): these are files to look at, not to archive, and
    Pillow's default 6 is much slower on large images (figures: docs/BENCHMARKS.md)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in OUTPUT_NAMES if n in images] + sorted(set(images) - set(OUTPUT_NAMES))
    paths = []
    for name in names:
        path = out / f"{name}.png"
        images[name].save(path, format="PNG", compress_level=compress_level)
        paths.append(path)
    return paths
