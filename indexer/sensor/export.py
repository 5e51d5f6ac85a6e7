"""Defect maps in the text forms other raw developers read.

dcraw / LibRaw (``dcraw -P file``, ``rawpy.Params.bad_pixels``): one defect per line,
``col row time`` where time is the UNIX time the pixel died; dcraw skips entries whose
time is later than the photo's timestamp, so 0 means "always". Coordinates are those of
the visible raw area before any rotation (dcraw(1), FILES: ".badpixels"); ``#`` starts a
comment. Defect records from :mod:`.defects` are in exactly those coordinates for RAW.

RawTherapee (``rtengine/dfmanager.cc``, ``scanBadPixelsFile``): a file named
``<make> <model> <serial>.badpixels`` (looked up first) or ``<make> <model>.badpixels`` in
the dark-frame folder; lines ``x y``; a first line holding a single integer is an offset
added to both coordinates. Lines that do not parse are skipped, but a comment first line
would stop an offset from being read, so the RawTherapee text has no comments.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from indexer import atomicfile
from indexer.sensor.defects import Defect

_UNSAFE = str.maketrans({c: "_" for c in '/\\:*?"<>|\0'})


def _sorted(defects: Iterable[Defect]) -> list[Defect]:
    """Unique positions, row-major, so equal maps give byte-equal files."""
    seen, out = set(), []
    for d in sorted(defects, key=lambda d: (d.y, d.x)):
        if (d.x, d.y) not in seen:
            seen.add((d.x, d.y))
            out.append(d)
    return out


def dcraw_badpixels(defects: Iterable[Defect], *, title: str = "", time: int = 0) -> str:
    """dcraw/LibRaw ``.badpixels`` text: ``#`` header, then ``col row time`` lines.

    title: shown in the header (e.g. "Canon PowerShot S40 serial 123", sensor size).
    time:  UNIX time of death for defects without a ``first_seen`` (default 0: applies to
           every photo). The caller passes as ``first_seen`` the earliest frame that may
           carry the defect (``indexer.sensor.dating``: its first sighting among the learnt
           frames, or, when the budget skipped frames before it, the first of those after
           the last clean learnt frame), so LibRaw leaves only frames surely taken before
           it alone.
    """
    rows = _sorted(defects)
    header = ["# dcraw/LibRaw bad pixel list written by photoqa",
              "# columns: col row unix_time (earliest frame that may carry it, camera clock; 0 = always); "
              "visible raw coordinates"]
    if title:
        header.insert(1, f"# {title}")
    header.append(f"# {len(rows)} defects: " + _kinds_summary(rows))
    lines = [f"{d.x} {d.y} {d.first_seen or time}  # {d.kind} rate {d.rate:.2f}" for d in rows]
    return "\n".join(header + lines) + "\n"


def rawtherapee_badpixels(defects: Iterable[Defect], *, offset: int = 0) -> str:
    """RawTherapee ``.badpixels`` text: optional single-integer offset line, ``x y`` lines."""
    lines = [str(offset)] if offset else []
    lines += [f"{d.x} {d.y}" for d in _sorted(defects)]
    return "\n".join(lines) + "\n"


def rawtherapee_filename(make: str, model: str, serial: str | None = None) -> str:
    """``<make> <model> [serial].badpixels``; characters illegal in file names become ``_``.

    RawTherapee matches the name against the make/model its decoder reports (dcraw-style,
    e.g. "Canon" / "PowerShot S40"), so pass those spellings, not upper-cased EXIF ones.
    """
    parts = [p.strip() for p in (make, model, serial or "") if p and p.strip()]
    if len(parts) < 2:
        raise ValueError("RawTherapee needs at least a make and a model")
    return " ".join(parts).translate(_UNSAFE) + ".badpixels"


def _kinds_summary(rows: list[Defect]) -> str:
    counts = {}
    for d in rows:
        counts[d.kind] = counts.get(d.kind, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` atomically (see :mod:`indexer.atomicfile`)."""
    return atomicfile.write_text(path, text)


def export_badpixels(defects: Iterable[Defect], folder: str | os.PathLike, *, make: str,
                     model: str, serial: str | None = None, stem: str | None = None,
                     title: str = "") -> tuple[Path, Path]:
    """Write both forms into ``folder``: ``<stem>.badpixels`` (dcraw/LibRaw, stem defaults
    to the RawTherapee name without extension plus ``.dcraw``) and the RawTherapee file.
    Returns (dcraw_path, rawtherapee_path)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    defects = list(defects)
    rt_name = rawtherapee_filename(make, model, serial)
    dcraw_name = f"{stem}.badpixels" if stem else rt_name[: -len(".badpixels")] + ".dcraw.badpixels"
    text_title = title or " ".join(p for p in (make, model, serial or "") if p)
    dcraw_path = write_text(folder / dcraw_name, dcraw_badpixels(defects, title=text_title))
    rt_path = write_text(folder / rt_name, rawtherapee_badpixels(defects))
    return dcraw_path, rt_path


MAP_COLOURS = {"hot": (255, 64, 32), "dead": (64, 128, 255), "stuck": (255, 220, 0)}


def defect_map(defects: Iterable[Defect], height: int, width: int, *, max_side: int = 1024,
               radius: int = 3) -> np.ndarray:
    """A picture of the sensor area, uint8 (h, w, 3), scaled so its longer side is at most
    ``max_side``; each defect is an enlarged square of half-side ``radius`` px (hot red,
    dead blue, stuck yellow) so single sites stay visible. Save it with Pillow."""
    scale = min(1.0, max_side / max(height, width))
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    image = np.full((h, w, 3), 40, np.uint8)
    image[[0, -1], :] = image[:, [0, -1]] = 110  # frame the sensor area
    for d in defects:
        cy, cx = min(h - 1, int(d.y * scale)), min(w - 1, int(d.x * scale))
        image[max(0, cy - radius) : cy + radius + 1, max(0, cx - radius) : cx + radius + 1] = \
            MAP_COLOURS.get(d.kind, (255, 255, 255))
    return image
