"""Exact sRGB <-> linear transfer and exposure in EV against 18% grey.

References: IEC 61966-2-1:1999 (sRGB transfer function, with the linear toe below
0.04045 / 0.0031308), ITU-R BT.709 relative luminance weights for linear RGB.
Exposure arithmetic must happen in linear light: ratios of sRGB code values understate
an exposure change about 2x (a true -1.30 EV reads as about -0.61 EV).
"""
from __future__ import annotations

import numpy as np

REC709 = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)  # BT.709 / sRGB primaries
MID_GREY = 0.18  # linear reflectance of the photographic mid-grey card
EV_FLOOR = -20.0  # EV reported for an all-black frame (log2 of 0 is -inf)

_LUT8: np.ndarray | None = None
_ENC16: np.ndarray | None = None


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """Decode sRGB values in [0, 1] to linear light in [0, 1]; float32, same shape.

    Exact IEC 61966-2-1 curve: ``v / 12.92`` for ``v <= 0.04045``, else
    ``((v + 0.055) / 1.055) ** 2.4``. Values outside [0, 1] are clipped first.
    """
    v = np.clip(np.asarray(v, dtype=np.float32), 0.0, 1.0)
    out = np.where(v <= 0.04045, v / np.float32(12.92),
                   ((v + np.float32(0.055)) / np.float32(1.055)) ** np.float32(2.4))
    return out.astype(np.float32)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    """Encode linear light in [0, 1] to sRGB in [0, 1]; float32, same shape (inverse of
    :func:`srgb_to_linear`). Values outside [0, 1] are clipped first."""
    v = np.clip(np.asarray(v, dtype=np.float32), 0.0, 1.0)
    out = np.where(v <= 0.0031308, v * np.float32(12.92),
                   np.float32(1.055) * v ** np.float32(1 / 2.4) - np.float32(0.055))
    return out.astype(np.float32)


def bt709_to_linear(v: np.ndarray) -> np.ndarray:
    """Invert the ITU-R BT.709 OETF (``4.5 L`` below 0.018, ``1.099 L**0.45 - 0.099``
    above): float32 linear light in [0, 1], same shape. dcraw / LibRaw write this curve
    by default; some "sRGB" JPEGs made from RAW files carry it (the frobisher bracket)."""
    v = np.clip(np.asarray(v, dtype=np.float32), 0.0, 1.0)
    out = np.where(v < 0.081, v / np.float32(4.5),
                   ((v + np.float32(0.099)) / np.float32(1.099)) ** np.float32(1 / 0.45))
    return out.astype(np.float32)


DECODERS = {"srgb": srgb_to_linear, "bt709": bt709_to_linear}


def decode(v: np.ndarray, encoding: str = "srgb") -> np.ndarray:
    """Encoded values in [0, 1] -> float32 linear light, by name (see :data:`DECODERS`)."""
    try:
        return DECODERS[encoding](v)
    except KeyError:
        raise ValueError(f"unknown encoding {encoding!r} (known: {', '.join(DECODERS)})") from None


def srgb8_to_linear(codes: np.ndarray) -> np.ndarray:
    """uint8 sRGB code values (any shape) -> float32 linear light via a 256-entry table."""
    global _LUT8
    if _LUT8 is None:
        _LUT8 = srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)
    return _LUT8[np.asarray(codes, dtype=np.uint8)]


def linear_to_srgb8(v: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] (any shape) -> uint8 sRGB codes, via a 65536-entry table
    (input quantised to 1/65535, far below one output code). A lookup instead of the sRGB
    power curve per pixel that ``rint(linear_to_srgb(v) * 255)`` evaluates, so much faster
    on large images, and equal to it within 1 code."""
    global _ENC16
    if _ENC16 is None:
        grid = np.arange(65536, dtype=np.float32) / np.float32(65535)
        _ENC16 = np.rint(linear_to_srgb(grid) * 255).astype(np.uint8)
    idx = np.clip(np.asarray(v, dtype=np.float32) * np.float32(65535) + np.float32(0.5), 0, 65535)
    return _ENC16[idx.astype(np.uint16)]


def luminance(linear_rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 relative luminance Y of linear RGB (..., 3) -> float32 (...).

    A 2-D array is taken to be grey already and returned as float32 unchanged.
    """
    a = np.asarray(linear_rgb, dtype=np.float32)
    if a.ndim == 2:
        return a
    return a @ REC709


def ev_of_mean(mean_linear: float) -> float:
    """EV of a mean linear luminance against 18% grey: ``log2(mean / 0.18)``.

    0 EV is a frame averaging mid-grey; each +1 doubles the light. A non-positive mean
    returns :data:`EV_FLOOR` instead of -inf so the value can be stored.
    """
    if not mean_linear > MID_GREY * 2.0**EV_FLOOR:
        return EV_FLOOR
    return float(np.log2(mean_linear / MID_GREY))


def exposure_ev(rgb: np.ndarray, *, linear: bool = False) -> float:
    """Exposure estimate (EV vs 18% grey) of an image: log2 of its mean Rec. 709
    luminance in linear light over 0.18.

    ``rgb``: float (H, W, 3) or grey (H, W) in [0, 1]; sRGB-encoded unless ``linear``.
    Matches ``indexer.measure.features.exposure_ev`` for sRGB input.
    """
    lin = np.asarray(rgb, dtype=np.float32) if linear else srgb_to_linear(rgb)
    return ev_of_mean(float(luminance(lin).mean()))
