"""Thumbnails for the pages: a database row's file decoded through :mod:`indexer.decode`,
scaled, encoded as JPEG, kept in memory.

Only image ids are accepted, and the path comes from the ``images`` row: nothing else
on disk can be reached, and what is sent is always a re-encoded picture, never a file's
bytes. When the file is gone or cannot be decoded any more, the grey thumbnail stored
in the row (``images.thumb``) is sent instead, so a trashed copy still shows.
"""
from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
from PIL import Image

from indexer import decode

SIZES = (160, 320, 640, 1280)  # long sides served; a request is rounded up to one of these
CACHE_BYTES = 64 * 1024 * 1024  # ~2,000 thumbnails of 320 px at ~30 kB


def nearest_size(requested: int) -> int:
    """The smallest served size at least ``requested`` (the largest when none is)."""
    return next((s for s in SIZES if s >= requested), SIZES[-1])


def to_jpeg(pixels: np.ndarray, quality: int = 82) -> bytes:
    """uint8 (h, w) grey or (h, w, 3) RGB, or float in [0, 1] -> JPEG bytes."""
    if pixels.dtype != np.uint8:
        pixels = np.clip(np.asarray(pixels, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def render(path: str, size: int) -> bytes:
    """The file at ``path`` decoded at long side ``size`` (EXIF orientation applied; RAW
    from its preview when large enough), as JPEG. Raises DecodeError / OSError."""
    decoded = decode.decode_file(path, work_size=size)
    return to_jpeg(decoded.rgb)


class ThumbCache:
    """JPEG thumbnails by (image id, size), least recently used dropped past ``limit`` bytes.

    ``lookup(id)`` gives the row's path and its stored grey thumbnail (or None when the id
    is not a row); the cache never sees any other path. Safe to call from several threads.
    """

    def __init__(self, lookup: Callable[[int], tuple[str, np.ndarray] | None], *, limit: int = CACHE_BYTES):
        self.lookup = lookup
        self.limit = limit
        self.used = 0
        self.entries: OrderedDict[tuple, bytes] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, image_id: int, size: int) -> bytes | None:
        """JPEG bytes for the image, or None when ``image_id`` is not a row."""
        found = self.lookup(image_id)
        if found is None:
            return None
        path, stored = found
        size = nearest_size(size)
        try:
            key = (image_id, size, path, os.stat(path).st_mtime_ns)
        except OSError:
            key = (image_id, size, path, None)
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
        data = self.make(path, size, stored, key[3] is not None)
        with self.lock:
            self.entries[key] = data
            self.used += len(data)
            while self.used > self.limit and len(self.entries) > 1:
                _, dropped = self.entries.popitem(last=False)
                self.used -= len(dropped)
        return data

    @staticmethod
    def make(path: str, size: int, stored: np.ndarray, exists: bool) -> bytes:
        if exists:
            try:
                return render(path, size)
            except (decode.DecodeError, OSError, ValueError):
                pass  # a file that no longer decodes still has its stored thumbnail
        return to_jpeg(stored)
