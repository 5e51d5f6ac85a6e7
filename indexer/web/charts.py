"""Numbers in, SVG text out: the charts of ``photoqa serve``, drawn on the server.

Pure functions with no state: each returns one ``<svg>`` element as a string, sized in
CSS pixels, with every label escaped. No JavaScript and no chart library: a bar chart,
a histogram, line plots and a defect map are a few rectangles and polylines, and the
page then works offline and in a static copy.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import numpy as np

PALETTE = ("#3a6ea5", "#c0504d", "#9bbb59", "#8064a2", "#f79646", "#4bacc6", "#7f7f7f")
CHANNELS = ("#d33", "#393", "#36c", "#444")  # R, G, B, luma
DEFECT_COLOURS = {"hot": "#e33", "dead": "#39f", "stuck": "#ec3"}
FONT = 'font-family="sans-serif" font-size="11"'


def _svg(width: int, height: int, body: list[str], title: str = "") -> str:
    label = f'<title>{escape(title)}</title>' if title else ""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">{label}{"".join(body)}</svg>')


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _tick(v: float) -> str:
    return f"{v:.3g}" if abs(v) >= 0.01 or v == 0 else f"{v:.1e}"


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str = "", width: int = 420,
              bar_height: int = 18, label_width: int = 160, colour: str = PALETTE[0]) -> str:
    """Horizontal bars, one per label, with the value printed after each bar."""
    top = 22 if title else 4
    height = top + bar_height * max(1, len(values)) + 6
    peak = max([float(v) for v in values] + [1e-12])
    span = width - label_width - 50
    body = [f'<text x="4" y="14" {FONT} font-weight="bold">{escape(title)}</text>'] if title else []
    if not values:
        body.append(f'<text x="4" y="{top + 13}" {FONT}>nothing to show</text>')
    for i, (label, v) in enumerate(zip(labels, values)):
        y = top + i * bar_height
        w = span * float(v) / peak
        body.append(f'<text x="{label_width - 6}" y="{y + bar_height - 5}" {FONT} text-anchor="end">'
                    f'{escape(str(label))}</text>'
                    f'<rect class="bar" x="{label_width}" y="{y + 2}" width="{_num(w)}" height="{bar_height - 4}" '
                    f'fill="{colour}"><title>{escape(str(label))}: {v:g}</title></rect>'
                    f'<text x="{_num(label_width + w + 4)}" y="{y + bar_height - 5}" {FONT}>{v:g}</text>')
    return _svg(width, height, body, title)


def histogram(values: Sequence[float], *, bins: int = 24, value_range: tuple[float, float] | None = None,
              title: str = "", unit: str = "", width: int = 420, height: int = 160) -> str:
    """Vertical bars of counts of ``values`` in ``bins`` equal bins over ``value_range``
    (default: the values' own range), with the range's ends and the peak count labelled."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if value_range is None:
        value_range = (float(data.min()), float(data.max())) if data.size else (0.0, 1.0)
    lo, hi = value_range
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(data, bins=bins, range=(lo, hi))
    return column_chart(counts.tolist(), edges.tolist(), title=title, unit=unit, width=width, height=height)


def column_chart(counts: Sequence[float], edges: Sequence[float], *, title: str = "", unit: str = "",
                 width: int = 420, height: int = 160) -> str:
    """Columns of ``counts`` between consecutive ``edges`` (len(edges) = len(counts) + 1)."""
    left, right, top, bottom = 34, 8, 22 if title else 6, 20
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([float(c) for c in counts] + [1e-12])
    step = plot_w / max(1, len(counts))
    body = [f'<text x="4" y="14" {FONT} font-weight="bold">{escape(title)}</text>'] if title else []
    body.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>')
    for i, c in enumerate(counts):
        h = plot_h * float(c) / peak
        tip = f"{edges[i]:g} to {edges[i + 1]:g}{unit}: {c:g}"
        body.append(f'<rect class="bar" x="{_num(left + i * step + 1)}" y="{_num(top + plot_h - h)}" '
                    f'width="{_num(max(step - 2, 1))}" height="{_num(h)}" fill="{PALETTE[0]}"><title>{escape(tip)}'
                    f'</title></rect>')
    body.append(f'<text x="{left - 4}" y="{top + 9}" {FONT} text-anchor="end">{peak:g}</text>'
                f'<text x="{left}" y="{height - 6}" {FONT}>{_tick(edges[0])}{escape(unit)}</text>'
                f'<text x="{left + plot_w}" y="{height - 6}" {FONT} text-anchor="end">'
                f'{_tick(edges[-1])}{escape(unit)}</text>')
    return _svg(width, height, body, title)


def line_chart(series: Sequence[Sequence[float]], *, xs: Sequence[float] | None = None, title: str = "",
               colours: Sequence[str] = PALETTE, names: Sequence[str] = (), width: int = 420, height: int = 160,
               x_labels: tuple[str, str] | None = None, y_range: tuple[float, float] | None = None,
               identity: bool = False) -> str:
    """One polyline per series over shared ``xs`` (default 0..n-1); ``identity`` draws the
    y = x line (a transfer curve of two equal exposures lies on it)."""
    left, right, top, bottom = 34, 8, 22 if title else 6, 20
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max((len(s) for s in series), default=0)
    xs = list(range(n)) if xs is None else list(xs)
    finite = [v for s in series for v in s if v is not None and math.isfinite(v)]
    y0, y1 = y_range or ((min(finite), max(finite)) if finite else (0.0, 1.0))
    if y1 <= y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    x1 = x1 if x1 > x0 else x0 + 1

    def px(x: float, y: float) -> str:
        return f"{_num(left + plot_w * (x - x0) / (x1 - x0))},{_num(top + plot_h * (1 - (y - y0) / (y1 - y0)))}"

    body = [f'<text x="4" y="14" {FONT} font-weight="bold">{escape(title)}</text>'] if title else []
    body.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#bbb"/>')
    if identity:
        lo, hi = max(x0, y0), min(x1, y1)
        body.append(f'<polyline points="{px(lo, lo)} {px(hi, hi)}" fill="none" stroke="#999" '
                    f'stroke-dasharray="4 3"/>')
    for k, s in enumerate(series):
        points = " ".join(px(x, y) for x, y in zip(xs, s) if y is not None and math.isfinite(y))
        name = names[k] if k < len(names) else ""
        body.append(f'<polyline class="series" points="{points}" fill="none" stroke="{colours[k % len(colours)]}" '
                    f'stroke-width="1.5"><title>{escape(name)}</title></polyline>')
    lx = x_labels or (_tick(x0), _tick(x1))
    body.append(f'<text x="{left - 4}" y="{top + 9}" {FONT} text-anchor="end">{_tick(y1)}</text>'
                f'<text x="{left - 4}" y="{top + plot_h}" {FONT} text-anchor="end">{_tick(y0)}</text>'
                f'<text x="{left}" y="{height - 6}" {FONT}>{escape(lx[0])}</text>'
                f'<text x="{left + plot_w}" y="{height - 6}" {FONT} text-anchor="end">{escape(lx[1])}</text>')
    return _svg(width, height, body, title)


def channel_histograms(hist: np.ndarray, *, title: str = "", width: int = 420, height: int = 160) -> str:
    """The stored per-image histogram (uint32 (4, 256): R, G, B, luma counts) as four
    lines on a square-root count scale (so shadows with few pixels still show)."""
    counts = np.sqrt(np.asarray(hist, dtype=np.float64))
    return line_chart([c.tolist() for c in counts], xs=list(range(256)), title=title, colours=CHANNELS,
                      names=("R", "G", "B", "luma"), width=width, height=height, x_labels=("0", "255"),
                      y_range=(0.0, float(counts.max()) or 1.0))


def defect_map(defects: Sequence[tuple[int, int, str]], width: int, height: int, *, max_side: int = 480,
               mark: int = 3) -> str:
    """The sensor area (``width`` x ``height`` photosites) scaled so its long side is
    ``max_side`` px, each defect (x, y, kind) a square of ``2*mark+1`` px (hot red, dead
    blue, stuck yellow), as ``photoqa hotpixels --map`` draws it."""
    scale = max_side / max(width, height, 1)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    body = [f'<rect x="0" y="0" width="{w}" height="{h}" fill="#282828" stroke="#6e6e6e"/>']
    for x, y, kind in defects:
        cx, cy = x * scale, y * scale
        body.append(f'<rect class="defect {escape(kind)}" x="{_num(cx - mark)}" y="{_num(cy - mark)}" '
                    f'width="{2 * mark + 1}" height="{2 * mark + 1}" fill="{DEFECT_COLOURS.get(kind, "#fff")}">'
                    f'<title>{escape(kind)} at x {x}, y {y}</title></rect>')
    return _svg(w, h, body, f"defect map {width}x{height}")
