"""The eight rotations and flips of a rectangle (the dihedral group D4) on array axes.

A transform acts on the first two axes of an array (rows, columns), so it works on
grey (H, W) and colour (H, W, C) images alike. ``rot90`` is counter-clockwise, as
:func:`numpy.rot90`. EXIF orientation values (TIFF 6.0 tag 0x0112, 1..8) map to the
transform that turns the stored pixels into the upright, displayed image.
"""
from __future__ import annotations

import numpy as np

D4: tuple[str, ...] = (
    "identity", "rot90", "rot180", "rot270", "flip_h", "flip_v", "transpose", "transverse",
)

_APPLY = {
    "identity": lambda a: a,
    "rot90": lambda a: np.rot90(a, 1),
    "rot180": lambda a: np.rot90(a, 2),
    "rot270": lambda a: np.rot90(a, 3),
    "flip_h": lambda a: a[:, ::-1],
    "flip_v": lambda a: a[::-1],
    "transpose": lambda a: np.swapaxes(a, 0, 1),
    "transverse": lambda a: np.rot90(np.swapaxes(a, 0, 1), 2),
}

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
        return _APPLY[name](a)
    except KeyError:
        raise ValueError(f"unknown transform {name!r}; expected one of {D4}") from None


def _signature(name: str) -> bytes:
    probe = np.arange(6).reshape(2, 3)
    out = apply(probe, name)
    return out.shape[0].to_bytes(1, "little") + out.tobytes()


_BY_SIGNATURE = {_signature(n): n for n in D4}


def compose(first: str, then: str) -> str:
    """The single transform equal to applying ``first`` and then ``then``."""
    probe = np.arange(6).reshape(2, 3)
    out = apply(apply(probe, first), then)
    return _BY_SIGNATURE[out.shape[0].to_bytes(1, "little") + out.tobytes()]


def inverse(name: str) -> str:
    """The transform that undoes ``name``."""
    return next(t for t in D4 if compose(name, t) == "identity")


def swaps_axes(name: str) -> bool:
    """True when the transform exchanges width and height."""
    return name in ("rot90", "rot270", "transpose", "transverse")


def from_exif(orientation: int | None) -> str:
    """Transform for an EXIF orientation value; unknown or missing values mean identity."""
    return EXIF_TO_TRANSFORM.get(orientation or 1, "identity")
