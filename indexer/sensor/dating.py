"""How precise a defect's first date is when its body learnt only a sample of its frames.

A defect's ``first_seen`` is the capture time of the first *learnt* frame in which it
stood out strongly (:mod:`.defects`). When the learning budget skipped frames
(:mod:`.budget`), the defect may have appeared in any of the skipped frames after the
last learnt frame in which it did not stand out: its onset lies in the bracket
``(clean_before, first_seen]``. photoqa reports the bracket rather than pretend: the
last clean learnt frame's time (``first_seen_after``) and the earliest indexed frame of
the body that may carry the defect (``onset_from``, the first frame after that clean
one). A ``.badpixels`` file gets ``onset_from`` as its third column, so LibRaw fixes
every frame that may carry the defect (a few clean ones too, where interpolating a good
photosite costs nothing visible) and never leaves a defective one unfixed.

When no frame was skipped between them, ``onset_from == first_seen`` and there is no
bracket: the date is exact.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass


@dataclass(frozen=True)
class Onset:
    """first_seen_after: capture time (s since 1970, camera clock) of the last learnt frame
    before ``first_seen`` (a frame the defect did not stand out in), None when the date
    is exact or no learnt frame came before; onset_from: the earliest indexed frame's
    time that may carry the defect (== first_seen when exact); skipped: indexed frames
    not learnt within the bracket."""

    first_seen_after: int | None
    onset_from: int
    skipped: int

    @property
    def exact(self) -> bool:
        return self.skipped == 0


def onset(first_seen: int, learnt: list[int], skipped: list[int]) -> Onset:
    """The bracket of a defect first seen at ``first_seen``; ``learnt``: sorted capture
    times of the body's learnt frames (this sensor's), ``skipped``: sorted capture times
    of its indexed frames that were not learnt (same geometry)."""
    i = bisect.bisect_left(learnt, first_seen)
    after = learnt[i - 1] if i > 0 else None
    lo = bisect.bisect_right(skipped, after) if after is not None else 0
    hi = bisect.bisect_left(skipped, first_seen)
    if hi <= lo:
        return Onset(None, first_seen, 0)
    return Onset(after, skipped[lo], hi - lo)
