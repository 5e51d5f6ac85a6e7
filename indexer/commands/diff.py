"""Library function behind ``photoqa diff``: two files compared at full resolution.

Any pair ``photoqa dupes`` reports can be diffed: the rotation/flip, scale and offset
between the two files are measured first on grey thumbnails (the matcher's own
:func:`indexer.match.verify.compare`, tried under each of the 8 rotations and flips),
B is turned into A's orientation, both are brought to the coarser of the two pixel grids
(:func:`indexer.measure.align.resample`, anti-aliased when shrinking) and cut to their
overlap; :mod:`indexer.exposure.diffimages` then refines the shift to a sub-pixel,
measures delta EV and the transfer curve in linear light and draws the PNG outputs.
Two files that do not show one scene (correlation below :data:`MIN_CORRELATION`) are
refused: a delta EV between unrelated pictures means nothing.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer import decode
from indexer.commands.exposure import ExposureError, ev_difference, format_ev
from indexer.commands.output import OutputDirError, check_out_dir
from indexer.exposure import diffimages
from indexer.exposure.transfer import delta_ev_exif
from indexer.match.verify import compare as compare_thumbs
from indexer.measure import orient
from indexer.measure.align import resample
from indexer.decode import MAX_PIXELS
from indexer.measure.features import THUMB_SIZE, histograms, luma8, thumbnail, to_uint8
from indexer.measure.linear import srgb_to_linear

MIN_CORRELATION = 0.3  # linear-luminance correlation on the overlap; unrelated photos read ~0.0-0.1
MIN_OVERLAP_PIXELS = 4096


class DiffError(ExposureError):
    """Inputs ``diff`` cannot compare (unreadable, no overlap, unrelated scenes)."""


@dataclass(frozen=True)
class Geometry:
    """How B sits on A: ``transform`` turns B into A's orientation (D4 name), B's
    top-left corner lands at (``x``, ``y``) in A's pixels, ``scale`` B pixels per A pixel."""

    transform: str
    x: float
    y: float
    scale: float
    peak: float

    @property
    def plain(self) -> bool:
        """Same orientation and pixel scale: a translation is all there is."""
        return self.transform == "identity" and abs(self.scale - 1.0) < 0.02


@dataclass(frozen=True)
class DiffSummary:
    """What ``photoqa diff`` prints. ``transform``, ``scale``: how B was brought onto A
    (B turned by ``transform`` into A's orientation; ``scale`` B pixels per A pixel);
    ``width``, ``height``: the compared area (the overlap, on the coarser grid); ``dx``,
    ``dy``: shift applied to B to register it on A, in those pixels (B's content sits at
    A's position minus it); ``correlation``: Pearson of linear luminance over the overlap;
    ``delta_ev``: B over A (positive: B brighter); ``delta_ev_exif``: predicted by EXIF,
    None unless both files carry time, ISO and f-number; ``encoding``: how the inputs
    were made linear."""

    a: str
    b: str
    transform: str
    scale: float
    width: int
    height: int
    dx: float
    dy: float
    correlation: float
    delta_ev: float
    spread_ev: float
    pixels_used: int
    encoding: str
    delta_ev_exif: float | None
    outputs: tuple[str, ...]
    seconds: float

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["outputs"] = list(self.outputs)
        d["ev_difference"] = ev_difference(self.delta_ev, self.delta_ev_exif)
        return d


def load(path: Path, max_pixels: int) -> decode.FullImage:
    try:
        return decode.load_full(path, raw_linear=True, max_pixels=max_pixels)
    except decode.DecodeError as exc:
        raise DiffError(f"cannot read {path}: {exc}") from exc
    except OSError as exc:
        raise DiffError(f"cannot read {path}: {exc.strerror or exc}") from exc


def check_outputs(out_dir: Path, inputs: tuple[Path, Path], force: bool) -> None:
    """Refuse outputs that would replace an input, then apply the shared --out rule."""
    protected = {p.resolve() for p in inputs}
    for name in diffimages.OUTPUT_NAMES:
        if (out_dir / f"{name}.png").resolve() in protected:
            raise DiffError(f"refusing to write {out_dir / (name + '.png')} over an input")
    try:
        check_out_dir(out_dir, force=force)
    except OutputDirError as exc:
        raise DiffError(str(exc)) from exc


def linear_pair(fa: decode.FullImage, fb: decode.FullImage):
    """(a, b, linear): both linear when either is (the sRGB one is linearised)."""
    if fa.linear == fb.linear:
        return fa.pixels, fb.pixels, fa.linear
    a = fa.pixels if fa.linear else srgb_to_linear(fa.pixels)
    b = fb.pixels if fb.linear else srgb_to_linear(fb.pixels)
    return a, b, True


def _thumb(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rgb8 = to_uint8(np.clip(pixels, 0.0, 1.0))
    grey = luma8(rgb8)
    return thumbnail(grey, THUMB_SIZE), histograms(rgb8, grey)


def measure_geometry(a: np.ndarray, b: np.ndarray) -> Geometry:
    """The orientation, offset and scale of B on A, from grey thumbnails (best
    phase-correlation peak over the 8 rotations and flips)."""
    (ta, ha), (tb, hb) = _thumb(a), _thumb(b)
    size_a, size_b = (a.shape[1], a.shape[0]), (b.shape[1], b.shape[0])
    best = None
    for transform in orient.D4:
        ev = compare_thumbs(ta, tb, ha, hb, transform=transform, size_a=size_a, size_b=size_b)
        if best is None or ev.peak > best.peak + 1e-9:
            best = ev
    return Geometry(best.transform, best.x, best.y, best.scale, best.peak)


def _resampled(img: np.ndarray, scale: float) -> np.ndarray:
    """``img`` on a grid of ``scale`` source pixels per output pixel (scale >= 1 shrinks)."""
    if abs(scale - 1.0) < 1e-3:
        return img
    shape = (max(1, round(img.shape[0] / scale)), max(1, round(img.shape[1] / scale)))
    return np.stack([resample(img[..., c], scale, shape) for c in range(img.shape[2])],
                    axis=-1).astype(np.float32)


def on_common_grid(a: np.ndarray, b: np.ndarray, g: Geometry) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """A and B (turned into A's orientation) on the coarser of their two pixel grids, cut
    to their overlap; returns (a, b, (ox, oy)): B's top-left corner in that grid, rounded."""
    bo = orient.apply(b, g.transform)
    k = min(1.0, g.scale)  # grid pixels per A pixel
    ac, bc = _resampled(a, 1.0 / k), _resampled(bo, g.scale / k)
    ox, oy = round(g.x * k), round(g.y * k)
    x0, x1 = max(0, ox), min(ac.shape[1], ox + bc.shape[1])
    y0, y1 = max(0, oy), min(ac.shape[0], oy + bc.shape[0])
    if (x1 - x0) * (y1 - y0) < MIN_OVERLAP_PIXELS:
        raise DiffError("the two files do not align: their overlap is too small to compare")
    return (np.ascontiguousarray(ac[y0:y1, x0:x1]),
            np.ascontiguousarray(bc[y0 - oy:y1 - oy, x0 - ox:x1 - ox]), (ox, oy))


@dataclass(frozen=True)
class Compared:
    """Two files brought onto one grid and measured (:func:`compare_files`): the
    :class:`diffimages.DiffResult`, how B was placed on A, B's offset in the common grid,
    and the EXIF delta EV (None unless both files carry time, ISO and f-number)."""

    result: diffimages.DiffResult
    geometry: Geometry
    offset: tuple[int, int]
    delta_ev_exif: float | None


def compare_files(path_a: Path, path_b: Path, *, max_pixels: int = MAX_PIXELS) -> Compared:
    """Decode both files at full size, bring B onto A (orientation, scale, offset) and
    measure; raises :class:`DiffError` for unreadable files and unrelated scenes. The
    part of ``photoqa diff`` that writes nothing (``photoqa serve``'s pair view uses it)."""
    path_a, path_b = Path(path_a), Path(path_b)
    fa, fb = load(path_a, max_pixels), load(path_b, max_pixels)
    a, b, linear = linear_pair(fa, fb)
    geometry = measure_geometry(fa.pixels, fb.pixels)
    offset = (0, 0)
    if not (geometry.plain and a.shape == b.shape):
        a, b, offset = on_common_grid(a, b, geometry)
    result = diffimages.compare(a, b, linear=linear, encoding="auto")
    if not math.isfinite(result.ncc) or result.ncc < MIN_CORRELATION:
        raise DiffError(f"{path_a.name} and {path_b.name} do not align (correlation {result.ncc:.2f}, "
                        f"below {MIN_CORRELATION}): not two shots of one scene, so no delta EV")
    predicted = delta_ev_exif(fa.exposure_time, fa.iso, fa.f_number,
                              fb.exposure_time, fb.iso, fb.f_number)
    return Compared(result, geometry, offset, predicted)


def diff_files(path_a: Path, path_b: Path, out_dir: Path, *, force: bool = False,
               max_pixels: int = MAX_PIXELS) -> DiffSummary:
    """Bring B onto A (orientation, scale, offset), measure, write the PNGs into ``out_dir``.

    RAW files are developed linearly (:func:`indexer.decode.load_full`); two sRGB-encoded
    files are decoded with the straightest-curve rule ("auto": sRGB or BT.709); a mix
    has its sRGB side linearised. Raises :class:`DiffError` for unreadable inputs, an
    output folder that is not empty (without ``force``) or whose outputs would replace
    an input, and for two files that do not show one scene.
    """
    started = time.perf_counter()
    path_a, path_b, out_dir = Path(path_a), Path(path_b), Path(out_dir)
    check_outputs(out_dir, (path_a, path_b), force)
    c = compare_files(path_a, path_b, max_pixels=max_pixels)
    result, geometry, offset = c.result, c.geometry, c.offset
    written = diffimages.write_outputs(diffimages.render(result), out_dir)
    al, d = result.aligned, result.delta
    height, width = result.a_lin.shape[:2]
    return DiffSummary(str(path_a), str(path_b), geometry.transform if not geometry.plain else "identity",
                       round(geometry.scale, 4) if not geometry.plain else 1.0,
                       int(width), int(height), float(al.dx) + offset[0], float(al.dy) + offset[1],
                       float(result.ncc), float(d.delta_ev), float(d.spread_ev), int(d.n_used),
                       result.encoding, c.delta_ev_exif, tuple(str(p) for p in written),
                       time.perf_counter() - started)


def diff_text(s: DiffSummary) -> list[str]:
    """Lines for the text format."""
    lines = [f"A: {s.a}", f"B: {s.b}"]
    if s.transform != "identity" or s.scale != 1.0:
        turned = orient.DESCRIPTION.get(s.transform) or "same orientation"
        lines.append(f"B onto A: {turned}, {s.scale:.4g} B pixels per A pixel")
    lines += [f"size: {s.width}x{s.height}",
              f"shift: dx {s.dx:+.2f} px, dy {s.dy:+.2f} px (applied to B to register it on A)",
              f"correlation: {s.correlation:.4f}",
              f"delta EV: {format_ev(s.delta_ev) or 'n/a'} (B over A; spread {format_ev(s.spread_ev, '.2f')} EV, "
              f"{s.pixels_used} pixels, decoded as {s.encoding})"]
    if s.delta_ev_exif is not None:
        lines.append(f"EXIF predicts: {s.delta_ev_exif:+.2f} EV "
                     f"(measured - predicted: {format_ev(ev_difference(s.delta_ev, s.delta_ev_exif)) or 'n/a'})")
    lines += [f"wrote {p}" for p in s.outputs]
    return lines
