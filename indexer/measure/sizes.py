"""Sizes of what features keep, defined once: defaults of :mod:`indexer.measure.features`
and of [index] in :mod:`indexer.config`.

Plain numbers apart from the NumPy code, so reading settings imports neither NumPy nor
Pillow (issue 13 item 4).
"""
from __future__ import annotations

THUMB_SIZE = 128  # long side (px) of the grey thumbnail kept for alignment ([index] thumb_size)
