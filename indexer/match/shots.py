"""Shot identity: whether two files can hold one exposure, from what their metadata says.

Pixels alone cannot tell a copy from a second exposure of a still scene (a tripod shot
of a colour chart repeated 5 s later correlates 0.999 on 128 px thumbnails, like a
recompressed copy), nor one camera's photo of a chart from another camera's photo of the
same chart closely enough to stake a user's originals on it. Metadata can: two files are
**different shots** when

* their camera bodies differ: make or model differ (compared without case or repeated
  spaces), or both carry a body serial and the serials differ; or
* both carry a capture time (EXIF ``DateTimeOriginal`` with ``SubSecTimeOriginal``) and
  those times show two exposures (:func:`indexer.match.verdict.separate_shots`: they
  differ in whole seconds, or both carry sub-seconds and those differ; a copy may have
  lost its sub-seconds, so a missing fraction is not a difference).

They are **one shot** when the same body recorded the same capture time in both. Anything
else is **unknown** (a copy whose EXIF was stripped, a scan, a screenshot), and the
pixels decide alone. The relation is stored per pair (``pairs.same_camera``,
``pairs.same_shot``: true, false or NULL for unknown) so SQL can ask for it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from indexer.match.verdict import separate_shots

Body = tuple[str, str, str]  # (make, model, serial); serial '' when unknown

RAW_FORMATS = frozenset({"raw", "dng", "cr2", "cr3", "crw", "nef", "nrw", "arw", "srf", "sr2", "raf", "rw2",
                         "orf", "pef", "srw", "kdc", "dcr", "mrw", "iiq", "x3f", "3fr", "erf", "mef",
                         "mos", "qtk", "gpr"})


def is_raw(fmt: str | None) -> bool:
    """Whether a stored format name is a camera RAW: the decoder stores ``RAW-<ext>``
    (``RAW-CRW``, ``RAW-KDC``); a bare extension (``dng``) is accepted too."""
    name = (fmt or "").lower()
    return name.startswith("raw") or name in RAW_FORMATS


def body_key(make: str | None, model: str | None, serial: str | None = "") -> Body | None:
    """A comparable camera body, or None when make and model are both unknown."""
    norm = [" ".join((v or "").split()).casefold() for v in (make, model, serial)]
    if not norm[0] and not norm[1]:
        return None
    return norm[0], norm[1], norm[2]


def same_body(a: Body | None, b: Body | None) -> bool | None:
    """True / False for two known bodies (serials compared only when both are known),
    None when either is unknown."""
    if a is None or b is None:
        return None
    if a[:2] != b[:2]:
        return False
    return not (a[2] and b[2] and a[2] != b[2])


@dataclass(frozen=True)
class ShotRelation:
    """What metadata says of a pair: ``same_camera`` and ``same_shot`` are True, False or
    None (unknown); ``reason`` says why in words ('' when nothing is known)."""

    same_camera: bool | None
    same_shot: bool | None
    reason: str = ""


def relate(body_a: Body | None, body_b: Body | None, time_a: datetime | None, time_b: datetime | None, *,
           raw_pair: bool = False) -> ShotRelation:
    """The shot relation of two images from their bodies and capture times (module rule).

    ``raw_pair``: one is a RAW and the other a rendered file. The camera may stamp its
    JPEG up to a second after the RAW: the Canon PowerShot S40's ``.THM`` JPEGs carry
    ``DateTimeOriginal`` one second later than their CRW in 3 of 5 frames, so a body's
    RAW and rendered file up to 1 s apart (whole seconds) are one shot.
    """
    camera = same_body(body_a, body_b)
    if camera is False:
        return ShotRelation(False, False, "different cameras")
    if raw_pair and camera and _within_a_second(time_a, time_b):
        return ShotRelation(True, True, "same camera, same capture")
    if separate_shots(time_a, time_b):
        gap = abs((time_b - time_a).total_seconds())
        return ShotRelation(camera, False, f"taken {gap_words(gap)} apart")
    if camera and time_a is not None and time_b is not None:
        return ShotRelation(True, True, "same camera, same capture time")
    return ShotRelation(camera, None, "")


def _within_a_second(ta: datetime | None, tb: datetime | None) -> bool:
    if ta is None or tb is None or ta.microsecond or tb.microsecond:
        return False
    return abs((tb - ta).total_seconds()) <= 1.0


def gap_words(seconds: float) -> str:
    """A time gap in words: '0.12 s', '26 s', '48 min', '3.2 h', '287 days'."""
    if seconds < 10:
        return f"{seconds:.2g} s" if seconds < 1 else f"{seconds:.0f} s"
    if seconds < 600:
        return f"{seconds:.0f} s"
    if seconds < 3 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def settle(verdict: str | None, rel: ShotRelation, *, raw_a: bool = False, raw_b: bool = False) -> str | None:
    """The pair's verdict once shot identity is known (pixel ``verdict`` in, final out).

    Equal bytes or pixels stay what they are. Different shots are never copies:
    ``derived`` becomes ``similar``. One shot (same body, same capture time) in two
    exposures is an edit: ``exposure_variant`` becomes ``derived`` ("brighter by 1.0 EV");
    one shot as a RAW and a rendered file (the camera's JPEG, its THM thumbnail, an
    export that kept the EXIF) is ``raw_jpeg``, which most photographers keep both of.
    Unknown shot identity leaves the pixel verdict: an exposure difference then stays
    ``exposure_variant`` (a related shot, not a copy), because a bracket frame and a
    brightened copy of a still scene measure alike on thumbnails.
    """
    if verdict is None or verdict in ("same_file", "same_pixels"):
        return verdict
    if rel.same_shot is False:
        return "similar" if verdict == "derived" else verdict
    if rel.same_shot:
        if raw_a != raw_b:
            return "raw_jpeg"
        if verdict == "exposure_variant":
            return "derived"
    return verdict
