"""The eight rotations and flips of a rectangle (the dihedral group D4) on array axes.

A transform acts on the first two axes of an array (rows, columns), so it works on
grey (H, W) and colour (H, W, C) images alike. ``rot90`` is counter-clockwise, as
:func:`numpy.rot90`. EXIF orientation values (TIFF 6.0 tag 0x0112, 1..8) map to the
transform that turns the stored pixels into the upright, displayed image.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # NumPy is not imported here: the verdict and group rules read the tables
    import numpy as np  # below, and `photoqa status/sql/dupes` must not pay numpy's 0.12 s CPU

D4: tuple[str, ...] = (
    "identity", "rot90", "rot180", "rot270", "flip_h", "flip_v", "transpose", "transverse",
)

# Each transform as steps over the first two axes, applied left to right: "h" reverses the
# columns, "v" the rows, "t" swaps rows and columns. "rot90" = h then t is numpy.rot90(a, 1)
# (counter-clockwise), "rot270" = t then h is numpy.rot90(a, 3); both give the same views.
_STEPS: dict[str, str] = {
    "identity": "", "rot90": "ht", "rot180": "hv", "rot270": "th",
    "flip_h": "h", "flip_v": "v", "transpose": "t", "transverse": "thv",
}

_ARRAY_STEP = {"h": lambda a: a[:, ::-1], "v": lambda a: a[::-1], "t": lambda a: a.swapaxes(0, 1)}
_TABLE_STEP = {"h": lambda m: tuple(r[::-1] for r in m), "v": lambda m: m[::-1], "t": lambda m: tuple(zip(*m))}

# Stored pixels -> displayed pixels, per EXIF orientation value.
EXIF_TO_TRANSFORM: dict[int, str] = {
    1: "identity", 2: "flip_h", 3: "rot180", 4: "flip_v",
    5: "transpose", 6: "rot270", 7: "transverse", 8: "rot90",
}

# Words a photographer reads in a report.
DESCRIPTION: dict[str, str] = {
    "identity": "", "rot90": "rotated 90° counter-clockwise", "rot180": "rotated 180°",
    "rot270": "rotated 90° clockwise", "flip_h": "mirrored left-right",
    "flip_v": "mirrored top-bottom", "transpose": "transposed (mirrored and rotated)",
    "transverse": "anti-transposed (mirrored and rotated)",
}


def apply(a: np.ndarray, name: str) -> np.ndarray:
    """Return ``a`` transformed by ``name`` (a view where NumPy allows)."""
    try:
        steps = _STEPS[name]
    except KeyError:
        raise ValueError(f"unknown transform {name!r}; expected one of {D4}") from None
    for step in steps:
        a = _ARRAY_STEP[step](a)
    return a


def _on_probe(name: str, m: tuple = ((0, 1, 2), (3, 4, 5))) -> tuple:
    """``name`` applied to a 2x3 table of distinct values, in pure Python: its result
    tells the eight transforms apart."""
    for step in _STEPS[name]:
        m = _TABLE_STEP[step](m)
    return m


_BY_PROBE = {_on_probe(n): n for n in D4}


def compose(first: str, then: str) -> str:
    """The single transform equal to applying ``first`` and then ``then``."""
    if first not in _STEPS or then not in _STEPS:
        raise ValueError(f"unknown transform {first!r} or {then!r}; expected one of {D4}")
    return _BY_PROBE[_on_probe(then, _on_probe(first))]


def inverse(name: str) -> str:
    """The transform that undoes ``name``."""
    return next(t for t in D4 if compose(name, t) == "identity")


def swaps_axes(name: str) -> bool:
    """True when the transform exchanges width and height."""
    return name in ("rot90", "rot270", "transpose", "transverse")


def from_exif(orientation: int | None) -> str:
    """Transform for an EXIF orientation value; unknown or missing values mean identity."""
    return EXIF_TO_TRANSFORM.get(orientation or 1, "identity")
