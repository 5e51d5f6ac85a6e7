"""The per-image quality checks' names, result type and default thresholds.

Apart from the NumPy code of :mod:`indexer.exposure.flags` (which re-exports them) so
that reading settings (:mod:`indexer.config`) imports no NumPy (issue 13 item 4). Bump
:data:`FLAGS_VERSION` when a definition in ``flags`` or a default here changes.
"""
from __future__ import annotations

from dataclasses import dataclass

FLAGS_VERSION = 1

FLAG_NAMES = ("dark", "light", "blurry", "low_information", "grayscale", "odd_size",
              "odd_aspect_ratio", "clipped_highlights", "crushed_shadows", "low_contrast",
              "underexposed", "overexposed")


@dataclass(frozen=True)
class Flag:
    """One check: ``value`` (units per check) compared with ``threshold``; ``fired``
    is True when the image has the problem."""

    name: str
    value: float
    threshold: float
    fired: bool


@dataclass(frozen=True)
class FlagThresholds:
    """Defaults for every check (the central config passes overrides).

    dark: 99th-percentile luma below this (cleanvision dark: 0.32 on its brightness).
    light: 5th-percentile luma above this (cleanvision light: 1 - p5 < 0.05).
    blurry: variance of the Laplacian at 256 px below this (grey 0..255 units);
        calibrated on the Kodak set: sharp photos 255-2930, Gaussian blur of radius
        4 px at 768 px gives 9-77 (radius 2: 47-578); the project's smooth synthetic
        scenes read 50-60. Not evaluated on dark or low-contrast images.
    low_information: Shannon entropy (bits) of the concatenated R, G, B histograms
        below this (cleanvision: Pillow ``Image.entropy()`` x 0.1 < 0.3, i.e. 3 bits).
    grayscale: Hasler & Suesstrunk colourfulness M (0..255 units) below this.
    odd_aspect_ratio: min(w/h, h/w) below this (cleanvision: 0.35).
    odd_size_iqr_factor: fences q1 - k*IQR, q3 + k*IQR on sqrt(w*h) over the dataset
        (cleanvision: k = 3).
    odd_size_min_side: without dataset quartiles, a shorter side below this many
        pixels is odd.
    odd_size_min_share: the reports' dataset rule (:func:`odd_sizes`): a size is odd
        when fewer than this share of the other images are within a factor of 2 of it
        (sqrt(w*h)), so an archive mixing camera originals and web copies has two
        ordinary sizes.
    clipped_highlights / crushed_shadows: fraction of pixels with luma >= 250/255 or
        <= 5/255 above this.
    low_contrast: (p99 - p1) luma range below this (scikit-image ``is_low_contrast``
        with percentiles 1/99; its default 0.05 only catches near-flat frames).
    underexposed / overexposed: EV (log2 mean linear luminance / 0.18) below / above.
    """

    dark: float = 0.32
    light: float = 0.95
    blurry: float = 30.0
    low_information: float = 3.0
    grayscale: float = 2.0
    odd_aspect_ratio: float = 0.35
    odd_size_iqr_factor: float = 3.0
    odd_size_min_side: int = 32
    odd_size_min_share: float = 0.02
    clipped_highlights: float = 0.05
    crushed_shadows: float = 0.05
    low_contrast: float = 0.25
    underexposed: float = -3.0
    overexposed: float = 2.0
