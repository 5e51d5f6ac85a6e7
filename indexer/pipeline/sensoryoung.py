"""A young body's frames, kept as the compact deltas they arrive as until it has ``min_frames``.

Below ``[sensor] min_frames`` a sensor reports nothing (``classify_defects`` raises
``NotEnoughFrames``), yet a dense accumulator costs 26 bytes a site (312 MB for 12 MP,
faulted in by the first add) and its flush a load, merge and save of as much. A body's
first frames are therefore kept here as their :class:`~indexer.sensor.delta.FrameDelta`
(~2.4 bytes a site for 8-bit frames; the writer keeps no more of them than an
accumulator's size) and the accumulator is built only when the body reaches
``min_frames``, by :func:`replay`: the same adds, in the same (arrival) order, on the same
fresh accumulator as one by one, so bit for bit the same statistics. A body still young
when its writer closes is never built nor saved: its frames stay in the spool
(``pipeline.sensorspool``: parked) for the next writer, which counts them first.

The kept deltas are a copy of what the spool holds: to stay within ``[sensor] memory_mb``
the writer may :meth:`YoungBodies.write_out` a body's deltas (drop them from memory) and
read them back from the spool when the body grows (``load``).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import numpy as np

from indexer.sensor.accumulator import SensorAccumulator
from indexer.sensor.delta import FrameDelta


def fits(first: FrameDelta, delta: FrameDelta) -> bool:
    """Whether ``delta`` can join an accumulator of ``first``'s (geometry, layout, outlier
    test, CFA pattern): what :meth:`SensorAccumulator.add` checks."""
    return (delta.shape, delta.layout, delta.params) == (first.shape, first.layout, first.params) and (
        first.layout != "cfa" or np.array_equal(first.pattern, delta.pattern))


def replay(deltas: list[FrameDelta], *, prev: np.ndarray | None = None) -> SensorAccumulator:
    """An accumulator of ``deltas`` added in order (``prev``: the sensor's last frame values,
    kept by the writer from a previous flush, as ``SensorAccumulator(chained=True)``).
    Raises ValueError or OverflowError as :meth:`SensorAccumulator.add`."""
    first = deltas[0]
    chained = prev is not None and prev.shape == first.shape
    acc = SensorAccumulator(first.height, first.width, layout=first.layout, pattern=first.pattern,
                            params=first.params, prev=prev if chained else None, chained=chained)
    for delta in deltas:
        acc.add(delta)
    return acc


class YoungBodies:
    """Per young sensor id, its frames (SHA-256, delta or None when written out, the delta's
    bytes) in arrival order, least recently fed first."""

    def __init__(self) -> None:
        self._bodies: OrderedDict[int, list[list]] = OrderedDict()
        self._first: dict[int, FrameDelta] = {}  # what a body's next delta must fit

    def __contains__(self, sid: int) -> bool:
        return sid in self._bodies

    def __iter__(self):
        return iter(list(self._bodies))

    def count(self, sid: int) -> int:
        return len(self._bodies.get(sid, ()))

    def keep(self, sid: int, sha256: str, delta: FrameDelta) -> None:
        """Keep one more frame of ``sid``; ValueError when it does not fit the first."""
        first = self._first.setdefault(sid, delta)
        if not fits(first, delta):
            raise ValueError(f"frame delta {(delta.shape, delta.layout, delta.params)} does not fit sensor "
                             f"{(first.shape, first.layout, first.params)}")
        self._bodies.setdefault(sid, []).append([sha256, delta, delta.nbytes])
        self._bodies.move_to_end(sid)

    def take(self, sid: int, load: Callable[[int, str], FrameDelta]) -> tuple[list[FrameDelta], list[str]]:
        """``sid``'s frames, forgotten here: (their deltas in arrival order, those written
        out read back by ``load(sid, sha256)``; the SHA-256s of those ``load`` could not
        read back, OSError or ValueError)."""
        frames, lost = [], []
        for sha, delta, _ in self._bodies.pop(sid, []):
            try:
                frames.append(delta if delta is not None else load(sid, sha))
            except (OSError, ValueError):
                lost.append(sha)
        self._first.pop(sid, None)
        return frames, lost

    def write_out(self, sid: int) -> None:
        """Drop ``sid``'s deltas from memory (the spool has them: :meth:`take` reads them back)."""
        for frame in self._bodies.get(sid, []):
            frame[1] = None
        if sid in self._first:  # a light stand-in keeps the geometry to check the next ones against
            first = self._first[sid]
            self._first[sid] = FrameDelta(first.layout, first.height, first.width, first.pattern, first.params,
                                          *(np.empty(0, np.uint8),) * 5)

    def nbytes(self, sid: int | None = None) -> int:
        """Bytes of the deltas in memory (of ``sid``'s only, when given)."""
        bodies = self._bodies.values() if sid is None else [self._bodies.get(sid, [])]
        return sum(size for kept in bodies for _, delta, size in kept if delta is not None)

    def size(self, sid: int) -> int:
        """Bytes of all of ``sid``'s deltas, in memory or written out."""
        return sum(size for _, _, size in self._bodies.get(sid, []))

    def least_recent(self, but: int) -> int | None:
        """The least recently fed body other than ``but`` with deltas in memory (None if none)."""
        return next((s for s in self._bodies if s != but and self.nbytes(s)), None)


__all__ = ["YoungBodies", "fits", "replay"]
