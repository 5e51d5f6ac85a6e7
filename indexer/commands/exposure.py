"""Library functions behind ``photoqa exposure`` and ``photoqa diff``.

``exposure``: flagged images with their measured values and thresholds, and the stored
pairs of one scene that differ in exposure, with the delta EV measured on the pixels and
the one predicted by EXIF (exposure time x ISO / f-number^2). Their difference is what a
photographer looks for: a flash that did not fire, exposure compensation left on, a
camera HDR merge (the prediction says 0, the pixels say otherwise).

``diff``: two files compared at full resolution by :mod:`indexer.exposure.diffimages`
(sub-pixel alignment, delta EV and transfer curve in linear light, PNG outputs).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from db import flags as dbflags
from indexer import decode
from indexer.exposure import diffimages
from indexer.exposure.flags import FLAG_NAMES
from indexer.measure.linear import srgb_to_linear
from indexer.exposure.transfer import delta_ev_exif
from indexer.session import Session


class ExposureError(ValueError):
    """A request the exposure commands cannot serve (unknown flag, unreadable input...)."""


def check_flag(name: str | None) -> None:
    if name is not None and name not in FLAG_NAMES:
        raise ExposureError(f"unknown flag {name!r}; choose from {', '.join(FLAG_NAMES)}")


def exposure_report(session: Session, *, flag: str | None = None) -> dict:
    """``{"images": [{"path", "flags": [{"name", "value", "threshold"}], "ev"}],
    "pairs": [{"a", "b", "delta_ev", "delta_ev_exif"}]}``: images with flags (only
    ``flag`` when given), by path; exposure pairs (:func:`db.flags.exposure_pairs`)."""
    check_flag(flag)
    images: dict[str, dict] = {}
    for path, ev, name, value, threshold in dbflags.flagged_images(session.engine, flag):
        entry = images.setdefault(path, {"path": path, "flags": [], "ev": ev})
        entry["flags"].append({"name": name, "value": value, "threshold": threshold})
    pairs = [{"a": a, "b": b, "delta_ev": dev, "delta_ev_exif": dexif}
             for a, b, _, dev, dexif in dbflags.exposure_pairs(session.engine)]
    return {"images": list(images.values()), "pairs": pairs}


def refresh(session: Session) -> tuple[int, int]:
    """Recompute every image's flags and every stored pair's delta EV from stored data
    (no decoding except RAW exposure variants); returns (images flagged, pairs refined)."""
    from indexer.pipeline.exposurestage import refresh_flags, refresh_pair_ev

    return refresh_flags(session), refresh_pair_ev(session)


def _fmt(v: float | None, spec: str = "+.2f") -> str:
    return "" if v is None or not math.isfinite(v) else format(v, spec)


def ev_difference(measured: float | None, predicted: float | None) -> float | None:
    """measured - predicted delta EV, None unless both are known."""
    if measured is None or predicted is None:
        return None
    return measured - predicted


def image_rows(report: dict) -> list[tuple]:
    """Table rows (path, ev, flags as "name value (threshold)")."""
    return [(im["path"], _fmt(im["ev"]),
             ", ".join(f"{f['name']} {f['value']:.3g} ({f['threshold']:.3g})" for f in im["flags"]))
            for im in report["images"]]


def pair_rows(report: dict) -> list[tuple]:
    """Table rows (a, b, measured, predicted, measured - predicted)."""
    return [(p["a"], p["b"], _fmt(p["delta_ev"]), _fmt(p["delta_ev_exif"]),
             _fmt(ev_difference(p["delta_ev"], p["delta_ev_exif"])))
            for p in report["pairs"]]


CSV_COLUMNS = ["kind", "a", "b", "flag", "value", "threshold", "ev", "delta_ev", "delta_ev_exif",
               "ev_difference"]


def csv_rows(report: dict) -> list[tuple]:
    """One row per flag (kind "flag", path in ``a``) and per pair (kind "pair")."""
    rows = [("flag", im["path"], None, f["name"], f["value"], f["threshold"], im["ev"], None, None, None)
            for im in report["images"] for f in im["flags"]]
    rows += [("pair", p["a"], p["b"], None, None, None, None, p["delta_ev"], p["delta_ev_exif"],
              ev_difference(p["delta_ev"], p["delta_ev_exif"])) for p in report["pairs"]]
    return rows


def show_exposure(session: Session, root: Path | None = None) -> None:
    """Print the exposure report as two tables (for ``photoqa demo``); paths relative
    to ``root`` when given."""
    from indexer.commands.output import emit

    report = exposure_report(session)

    def short(path: str) -> str:
        return str(Path(path).relative_to(root.resolve())) if root is not None else path

    emit(["file", "ev", "flags: value (threshold)"],
         [(short(p), ev, flags) for p, ev, flags in image_rows(report)], "table", title="\nflagged images")
    emit(["a", "b", "delta EV", "EXIF", "measured - EXIF"],
         [(short(a), short(b), *rest) for a, b, *rest in pair_rows(report)], "table",
         title="\nexposure pairs (delta EV of b over a)")


@dataclass(frozen=True)
class DiffSummary:
    """What ``photoqa diff`` prints. ``dx``, ``dy``: shift applied to B to register it on
    A (pixels; B's content sits at A's position minus it); ``correlation``: Pearson of
    linear luminance over the overlap; ``delta_ev``: B over A (positive: B brighter);
    ``delta_ev_exif``: predicted by EXIF, None unless both files carry time, ISO and
    f-number; ``encoding``: how the inputs were made linear."""

    a: str
    b: str
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


def _load(path: Path, max_pixels: int) -> decode.FullImage:
    try:
        return decode.load_full(path, raw_linear=True, max_pixels=max_pixels)
    except decode.DecodeError as exc:
        raise ExposureError(f"cannot read {path}: {exc}") from exc
    except OSError as exc:
        raise ExposureError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _check_outputs(out_dir: Path, inputs: tuple[Path, Path]) -> None:
    """Refuse an output folder that is a file, or outputs that would replace an input."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ExposureError(f"--out {out_dir} is a file, not a folder")
    protected = {p.resolve() for p in inputs}
    for name in diffimages.OUTPUT_NAMES:
        if (out_dir / f"{name}.png").resolve() in protected:
            raise ExposureError(f"refusing to write {out_dir / (name + '.png')} over an input")


def _linear_pair(fa: decode.FullImage, fb: decode.FullImage):
    """(a, b, linear): both linear when either is (the sRGB one is linearised)."""
    if fa.linear == fb.linear:
        return fa.pixels, fb.pixels, fa.linear
    a = fa.pixels if fa.linear else srgb_to_linear(fa.pixels)
    b = fb.pixels if fb.linear else srgb_to_linear(fb.pixels)
    return a, b, True


def diff_files(path_a: Path, path_b: Path, out_dir: Path, *,
               max_pixels: int = 250_000_000) -> DiffSummary:
    """Align B to A at full resolution, measure, write the PNG outputs into ``out_dir``.

    RAW files are developed linearly (:func:`indexer.decode.load_full`); two sRGB-encoded
    files are decoded with the straightest-curve rule ("auto": sRGB or BT.709); a mix
    has its sRGB side linearised. Raises :class:`ExposureError` for unreadable inputs,
    different sizes, or an output that would replace an input.
    """
    started = time.perf_counter()
    path_a, path_b, out_dir = Path(path_a), Path(path_b), Path(out_dir)
    _check_outputs(out_dir, (path_a, path_b))
    fa, fb = _load(path_a, max_pixels), _load(path_b, max_pixels)
    if fa.pixels.shape != fb.pixels.shape:
        sa, sb = fa.pixels.shape, fb.pixels.shape
        raise ExposureError(f"sizes differ: {sa[1]}x{sa[0]} vs {sb[1]}x{sb[0]} "
                            "(diff compares two frames of one size)")
    a, b, linear = _linear_pair(fa, fb)
    result = diffimages.compare(a, b, linear=linear, encoding="auto")
    written = diffimages.write_outputs(diffimages.render(result), out_dir)
    al, d = result.aligned, result.delta
    predicted = delta_ev_exif(fa.exposure_time, fa.iso, fa.f_number,
                              fb.exposure_time, fb.iso, fb.f_number)
    return DiffSummary(str(path_a), str(path_b), int(a.shape[1]), int(a.shape[0]), float(al.dx),
                       float(al.dy), float(result.ncc), float(d.delta_ev), float(d.spread_ev),
                       int(d.n_used), result.encoding, predicted, tuple(str(p) for p in written),
                       time.perf_counter() - started)


def diff_text(s: DiffSummary) -> list[str]:
    """Lines for the text format."""
    lines = [f"A: {s.a}", f"B: {s.b}", f"size: {s.width}x{s.height}",
             f"shift: dx {s.dx:+.2f} px, dy {s.dy:+.2f} px (applied to B to register it on A)",
             f"correlation: {s.correlation:.4f}",
             f"delta EV: {_fmt(s.delta_ev) or 'n/a'} (B over A; spread {_fmt(s.spread_ev, '.2f')} EV, "
             f"{s.pixels_used} pixels, decoded as {s.encoding})"]
    if s.delta_ev_exif is not None:
        lines.append(f"EXIF predicts: {s.delta_ev_exif:+.2f} EV "
                     f"(measured - predicted: {_fmt(ev_difference(s.delta_ev, s.delta_ev_exif)) or 'n/a'})")
    lines += [f"wrote {p}" for p in s.outputs]
    return lines
