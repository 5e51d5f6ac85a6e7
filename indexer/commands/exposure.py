"""Library functions behind ``photoqa exposure`` (``photoqa diff``: :mod:`indexer.commands.diff`).

``exposure``: flagged images with their measured values and thresholds, and the stored
pairs of one scene that differ in exposure, with the delta EV measured on the pixels and
the one predicted by EXIF (exposure time x ISO / f-number^2). Their difference is what a
photographer looks for: a flash that did not fire, exposure compensation left on, a
camera HDR merge (the prediction says 0, the pixels say otherwise).
"""
from __future__ import annotations

import math
from pathlib import Path

from db import flags as dbflags
from db.queries import present_sizes
from indexer.exposure.flags import FLAG_NAMES, odd_sizes
from indexer.session import Session


class ExposureError(ValueError):
    """A request the exposure commands cannot serve (unknown flag, unreadable input...)."""


def check_flag(name: str | None) -> None:
    if name is not None and name not in FLAG_NAMES:
        raise ExposureError(f"unknown flag {name!r}; choose from {', '.join(FLAG_NAMES)}")


def exposure_report(session: Session, *, flag: str | None = None) -> dict:
    """``{"images": [{"path", "flags": [{"name", "value", "threshold"}], "ev"}],
    "pairs": [{"a", "b", "delta_ev", "delta_ev_exif"}]}``: images with flags, by path;
    exposure pairs (:func:`db.flags.exposure_pairs`). With ``flag``: only that flag, and
    only the pairs with an image carrying it.

    ``odd_size`` is dataset-relative, so it is computed here, over the images present
    now (:func:`indexer.exposure.flags.odd_sizes`), not read from ``image_flags``
    (written while indexing, against the dataset of that moment)."""
    check_flag(flag)
    images: dict[str, dict] = {}
    for path, ev, name, value, threshold in dbflags.flagged_images(session.engine, flag):
        if name == "odd_size":
            continue
        entry = images.setdefault(path, {"path": path, "flags": [], "ev": ev})
        entry["flags"].append({"name": name, "value": value, "threshold": threshold})
    if flag in (None, "odd_size"):
        for (path, ev, _, _), f in zip(*dataset_flags(session)):
            if f.fired:
                entry = images.setdefault(path, {"path": path, "flags": [], "ev": ev})
                entry["flags"].append({"name": f.name, "value": f.value, "threshold": f.threshold})
                entry["flags"].sort(key=lambda x: x["name"])
    flagged = set(images)
    pairs = [{"a": a, "b": b, "delta_ev": dev, "delta_ev_exif": dexif}
             for a, b, _, dev, dexif in dbflags.exposure_pairs(session.engine)
             if flag is None or a in flagged or b in flagged]
    return {"images": sorted(images.values(), key=lambda im: im["path"]), "pairs": pairs}


def dataset_flags(session: Session) -> tuple[list[tuple], list]:
    """(rows (path, ev, width, height) of the present images, their ``odd_size`` checks)."""
    rows = present_sizes(session.engine)
    t = session.settings.flags
    checks = odd_sizes([r[2] for r in rows], [r[3] for r in rows], min_share=t.odd_size_min_share,
                       min_side=t.odd_size_min_side)
    return rows, checks


def refresh(session: Session) -> tuple[int, int]:
    """Recompute every image's flags and every stored pair's delta EV from stored data
    (no decoding except RAW exposure variants); returns (images flagged, pairs refined)."""
    from indexer.pipeline.exposurestage import refresh_flags, refresh_pair_ev

    return refresh_flags(session), refresh_pair_ev(session)


def format_ev(v: float | None, spec: str = "+.2f") -> str:
    """``v`` formatted, or "" when unknown or not finite."""
    return "" if v is None or not math.isfinite(v) else format(v, spec)


def ev_difference(measured: float | None, predicted: float | None) -> float | None:
    """measured - predicted delta EV, None unless both are known."""
    if measured is None or predicted is None:
        return None
    return measured - predicted


def image_rows(report: dict) -> list[tuple]:
    """Table rows (path, ev, flags as "name value (threshold)")."""
    return [(im["path"], format_ev(im["ev"]),
             ", ".join(f"{f['name']} {f['value']:.3g} ({f['threshold']:.3g})" for f in im["flags"]))
            for im in report["images"]]


def pair_rows(report: dict) -> list[tuple]:
    """Table rows (a, b, measured, predicted, measured - predicted)."""
    return [(p["a"], p["b"], format_ev(p["delta_ev"]), format_ev(p["delta_ev_exif"]),
             format_ev(ev_difference(p["delta_ev"], p["delta_ev_exif"])))
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
