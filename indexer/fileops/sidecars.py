"""The sidecars of a photo: files beside it that describe it and travel with it.

``NAME.EXT.xmp`` (darktable, digiKam) belongs to ``NAME.EXT`` alone. ``NAME.xmp``
(Lightroom, RawTherapee), ``NAME.THM`` (camera previews) and ``NAME.AAE`` (Apple edits)
belong to every file named ``NAME.*``: they travel with a photo only when it is the one
file of that name in its folder (a RAW and its JPEG share one ``NAME.xmp``; moving the
JPEG must leave it to the RAW). Extensions compare without case.
"""
from __future__ import annotations

import os
from pathlib import Path

from indexer.decode.sniff import SIDECAR_EXTENSIONS


def _split(name: str) -> tuple[str, str]:
    stem, ext = os.path.splitext(name)
    return stem, ext.lower()


def sidecars_of(path: Path) -> list[Path]:
    """The sidecar files that travel with ``path``, sorted by name."""
    path = Path(path)
    try:
        names = sorted(os.listdir(path.parent))
    except OSError:
        return []
    stem = _split(path.name)[0]
    shared = any(n != path.name and _split(n)[0] == stem and _split(n)[1] not in SIDECAR_EXTENSIONS
                 for n in names)
    found = []
    for name in names:
        if name == path.name:
            continue
        own = name.lower().endswith(".xmp") and name[:-4] == path.name
        by_stem = not shared and _split(name)[0] == stem and _split(name)[1] in SIDECAR_EXTENSIONS
        candidate = path.parent / name
        if (own or by_stem) and (candidate.is_file() or candidate.is_symlink()):
            found.append(candidate)
    return found


def sidecar_name(sidecar: Path, photo: Path, new_photo_name: str) -> str:
    """The sidecar's name beside the photo renamed ``new_photo_name`` (``a.jpg.xmp`` of
    ``a.jpg`` -> ``a.2.jpg.xmp`` of ``a.2.jpg``; ``a.xmp`` -> ``a.2.xmp``)."""
    if sidecar.name.startswith(photo.name):
        return new_photo_name + sidecar.name[len(photo.name):]
    old_stem, new_stem = _split(photo.name)[0], _split(new_photo_name)[0]
    return new_stem + sidecar.name[len(old_stem):]
