"""Size limits of decoding, defined once: defaults of the decode functions and of
[index] in :mod:`indexer.config`.

A module of plain numbers, apart from :mod:`indexer.decode.image`, so reading settings
imports neither NumPy nor Pillow (issue 13 item 4: `photoqa status`, `sql`, `dupes` start
without them).
"""
from __future__ import annotations

WORK_SIZE = 256  # long side (px) of the working image features are measured on
RAW_PREVIEW_MIN = 512  # an embedded RAW preview at least this long is used instead of developing
MAX_PIXELS = 250_000_000  # larger images are refused (decompression bombs)
