"""Per-sensor running photosite statistics, mergeable exactly, stored atomically.

Layout: 26 bytes per site, all arrays (H, W) in sensor coordinates.

==============  ========  =================================================================
field           dtype     meaning
==============  ========  =================================================================
``mean``        float32   Welford running mean of the residual (DN / code values)
``m2``          float32   Welford sum of squared deviations of the residual
``bright``      uint16    frames in which the site stood out bright
``dark``        uint16    frames in which the site stood out dark
``prev``        uint16    raw value in the last frame (stuck detection)
``unchanged``   uint16    consecutive-frame pairs in which the value moved <= tolerance
``strong``      uint16    dated frames in which the site stood out strongly (residual.STRONG)
``first``       uint32    earliest capture time of those frames (s since 1970; 0: none)
``last``        uint32    latest capture time of those frames (s since 1970; 0: none)
==============  ========  =================================================================

Scalars: ``frames`` (n, every site sees every frame, so one count serves all sites),
``pairs`` (consecutive-frame pairs counted for ``unchanged``), and ``times`` (int64, the
capture times of the dated frames: the sensor's timeline, which tells how many frames
fall between a defect's first and last sighting). Frames arrive in any order (workers
finish out of order, folders are not chronological): min/max and counts do not care. Counters are uint16, so one
accumulator holds at most 65,535 frames; :meth:`update` and :meth:`merge` refuse more.

"rgb" sensors also keep a sparse record of stuck *candidates* (:mod:`.stuckfit`: per
site that stands out in most frames, the sums of a per-colour regression of its value on
its neighbourhood, 152 bytes a candidate), fed from the deltas' standing-out sites; it
merges by adding sums and is stored beside the arrays (``stuck_at``, ``stuck_since``,
``stuck_sums``; absent from older files: no candidates yet).

Merging follows Chan, Golub & LeVeque (1979), "Updating formulae and a pairwise algorithm
for computing sample variances": ``mean = mean_a + d * n_b / n`` and
``m2 = m2_a + m2_b + d^2 * n_a * n_b / n`` with ``d = mean_b - mean_a``; counters add.
Both are exact (up to float rounding) whatever the split. The one exception is the pair
that straddles the split: a worker never sees the other worker's last frame, so the merged
``unchanged`` counts ``n - 2`` pairs where one pass counts ``n - 1``; ``pairs`` records
the denominator, so the stuck *rate* stays an unbiased estimate.
"""
from __future__ import annotations

import io
import itertools
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.atomicfile import replace_with
from indexer.sensor import stuckfit
from indexer.sensor.residual import ResidualParams, Strip, iter_cfa_strips, iter_rgb_strips
from indexer.sensor.stuckfit import StuckRecord

FORMAT_VERSION = 2  # 2: strong/first/last/times (defect dates); version 1 files still load
MAX_FRAMES = np.iinfo(np.uint16).max
LAYOUTS = ("cfa", "rgb")
_ARRAYS = {"mean": np.float32, "m2": np.float32, "bright": np.uint16, "dark": np.uint16,
           "prev": np.uint16, "unchanged": np.uint16, "strong": np.uint16, "first": np.uint32,
           "last": np.uint32}
_DATED = ("strong", "first", "last")  # absent from version 1 files: zeros


# what np.load and zipfile raise on damaged files: found by tests/fuzz (zlib.error on a
# corrupt deflate stream, NotImplementedError on odd zip flags, MemoryError on a header
# declaring huge arrays)
_UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, zlib.error, NotImplementedError,
               MemoryError)


class AccumulatorFileError(ValueError):
    """A stored accumulator is missing, truncated, corrupt or of another format version."""


@dataclass(eq=False)  # arrays: compare fields explicitly, not with ==
class SensorAccumulator:
    """Running statistics of one sensor (camera body + geometry).

    layout:  "cfa" (RAW visible CFA plane, residual against same-colour sites 2 px away)
             or "rgb" (demosaiced image in stored orientation, per channel, 1 px away).
    pattern: (2, 2) int colour indices for "cfa" (rawpy ``raw_pattern``), None for "rgb".
    params:  the per-frame outlier test; accumulators merge only with equal params.
    """

    height: int
    width: int
    layout: str = "cfa"
    pattern: np.ndarray | None = None
    params: ResidualParams = field(default_factory=ResidualParams)
    frames: int = 0
    pairs: int = 0
    mean: np.ndarray = None
    m2: np.ndarray = None
    bright: np.ndarray = None
    dark: np.ndarray = None
    prev: np.ndarray = None
    unchanged: np.ndarray = None
    strong: np.ndarray = None
    first: np.ndarray = None
    last: np.ndarray = None
    times: np.ndarray = None
    # ``prev`` already holds the sensor's previous frame (a writer's delta resumed after
    # a flush, prev kept): the first frame then counts a consecutive pair, as one pass would
    chained: bool = False
    stuck_fit: StuckRecord = None  # "rgb": the stuck candidates (module docstring)

    def __post_init__(self) -> None:
        if self.stuck_fit is None:
            self.stuck_fit = StuckRecord.empty()
        self.stuck_fit.check(self.height * self.width)
        self.times = np.asarray(self.times if self.times is not None else [], dtype=np.int64)
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.layout == "cfa":
            self.pattern = np.asarray(self.pattern if self.pattern is not None else [[0, 1], [3, 2]],
                                      dtype=np.int8)
            if self.pattern.shape != (2, 2):
                raise ValueError(f"only 2x2 CFA patterns are supported, got {self.pattern.shape}")
        shape = (self.height, self.width)
        for name, dtype in _ARRAYS.items():
            if getattr(self, name) is None:
                # np.zeros: pages are mapped when first written. The first update then
                # pays the faults np.full would pay up front, but arrays a young sensor
                # barely writes (first/last: only where a site stood out strongly) are
                # never faulted, and nothing is written twice: a new 12 MP body's
                # allocation + first add went from 0.70 s to 0.32 s of CPU (2026-12-07)
                setattr(self, name, np.zeros(shape, dtype))
            arr = getattr(self, name)
            if arr.shape != shape or arr.dtype != dtype:
                raise ValueError(f"{name}: expected {shape} {np.dtype(dtype)}, got {arr.shape} {arr.dtype}")

    # ------------------------------------------------------------------ geometry
    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def nbytes(self) -> int:
        """Bytes held by the per-site arrays (26 per site) and the stuck candidates."""
        return sum(getattr(self, name).nbytes for name in _ARRAYS) + self.stuck_fit.nbytes

    def variance(self) -> np.ndarray:
        """Sample variance of the residual per site (float32, NaN with fewer than 2 frames)."""
        if self.frames < 2:
            return np.full(self.shape, np.nan, np.float32)
        return self.m2 / np.float32(self.frames - 1)

    # ------------------------------------------------------------------ update
    def update(self, frame: np.ndarray, *, black_level=0, white_level=None, time: int | None = None) -> None:
        """Add one frame in place (``time``: its capture time, see :meth:`add`).

        "cfa": ``frame`` (H, W) uint16 visible CFA plane; ``black_level`` scalar or
        per-channel (rawpy ``black_level_per_channel``); ``white_level`` required (rawpy
        ``white_level``). "rgb": ``frame`` (H, W, C) or (H, W) uint8/uint16, stored
        orientation; ``white_level`` defaults to the dtype maximum; black is 0.
        Raises ValueError on a geometry mismatch, OverflowError past 65,535 frames.
        """
        if frame.shape[:2] != self.shape:
            raise ValueError(f"frame is {frame.shape[:2]}, sensor is {self.shape}")
        if self.frames >= MAX_FRAMES:
            raise OverflowError(f"accumulator already holds {self.frames} frames (uint16 counters)")
        if self.layout == "cfa":
            if white_level is None:
                raise ValueError("white_level is required for CFA frames")
            strips = iter_cfa_strips(frame, self.pattern, black_level=black_level,
                                     white_level=white_level, params=self.params)
        else:
            strips = iter_rgb_strips(frame, white_level=white_level, params=self.params)
        # the strip generators check dtype and size on their first step: take it before
        # counting the frame, so a refused frame leaves the accumulator as it was
        head = next(strips)
        inv_n, first, stamp = self._count(time)
        for strip in itertools.chain([head], strips):
            self._update_strip(strip, inv_n, first, stamp)
        if not first:
            self.pairs += 1
        if self.layout == "rgb":  # the stuck-fit samples, as a worker's delta carries them
            from indexer.sensor.delta import rgb_delta

            delta = rgb_delta(frame, white_level=white_level, params=self.params)
            self._fit_frame(delta.stood_at(), delta.stood_v, delta.stood_m, int(delta.white))

    def _fit_frame(self, at: np.ndarray, v: np.ndarray, m: np.ndarray, white: int) -> None:
        """Add one counted frame's standing-out sites to the stuck candidates: a new site
        enters once it stood out in >= 2 frames and >= half of this accumulator's."""
        if at.size == 0 and len(self.stuck_fit) == 0:
            return
        counts = self.bright.reshape(-1)[at].astype(np.int64) + self.dark.reshape(-1)[at]
        admit = (counts >= 2) & (2 * counts >= self.frames)
        self.stuck_fit = stuckfit.add_frame(self.stuck_fit, self.frames, at, stuckfit.samples(v, m, white), admit,
                                            cap=stuckfit.cap_for(self.height * self.width))

    def _count(self, time: int | None) -> tuple[np.float32, bool, int | None]:
        """Count a new frame: (1/n, whether it is the first, its usable capture time)."""
        self.frames += 1
        stamp = int(time) if time is not None and 0 < int(time) < 2**32 else None
        if stamp is not None:
            self.times = np.append(self.times, np.int64(stamp))
        return np.float32(1.0 / self.frames), self.frames == 1 and not self.chained, stamp

    def add(self, delta) -> None:
        """Add one frame's :class:`indexer.sensor.delta.FrameDelta` (computed by a decode
        worker) in place: the same result, bit for bit, as :meth:`update` with the frame.
        Raises ValueError when geometry, layout, pattern or params differ, OverflowError
        past 65,535 frames; a refused delta leaves the accumulator as it was."""
        theirs = (delta.shape, delta.layout, delta.params)
        if theirs != (self.shape, self.layout, self.params) or (
                self.layout == "cfa" and not np.array_equal(self.pattern, delta.pattern)):
            raise ValueError(f"frame delta {theirs} does not fit sensor {(self.shape, self.layout, self.params)}")
        if self.frames >= MAX_FRAMES:
            raise OverflowError(f"accumulator already holds {self.frames} frames (uint16 counters)")
        bright, dark, judge, strong = (delta.mask(name) for name in ("bright", "dark", "judgeable", "strong"))
        stood_at = delta.stood_at() if self.layout == "rgb" else None
        if stood_at is not None and delta.stood_v.shape[0] and delta.stood_v.shape[0] != stood_at.size:
            raise ValueError(f"frame delta has values of {delta.stood_v.shape[0]} sites, {stood_at.size} stood out")
        inv_n, first, stamp = self._count(delta.time)
        tile = self.params.tile  # the strips update() walks: same cache behaviour
        for y in range(0, self.height, tile):
            rows = slice(y, min(y + tile, self.height))
            strip = Strip(rows.start, rows.stop, delta.residual_rows(rows.start, rows.stop), None,
                          bright[rows], dark[rows], delta.value[rows].astype(np.uint16, copy=False),
                          judge[rows], strong[rows])
            self._update_strip(strip, inv_n, first, stamp)
        if not first:
            self.pairs += 1
        if self.layout == "rgb":
            white = int(delta.white or np.iinfo(delta.stood_v.dtype).max)
            if delta.stood_v.shape[0] == stood_at.size:  # a delta of before the stuck fit (spooled) has none
                self._fit_frame(stood_at, delta.stood_v, delta.stood_m, white)

    def _update_strip(self, s: Strip, inv_n: np.float32, first: bool, stamp: int | None) -> None:
        rows = slice(s.y0, s.y1)
        if stamp is not None and s.strong is not None and s.strong.any():
            self._date_strip(rows, s.strong, stamp)
        mean, m2 = self.mean[rows], self.m2[rows]
        delta = np.subtract(s.residual, mean)
        mean += delta * inv_n
        delta *= np.subtract(s.residual, mean)
        m2 += delta
        # bool -> uint8 view: adding uint8 into uint16 avoids a slow bool cast
        np.add(self.bright[rows], s.bright.view(np.uint8), out=self.bright[rows])
        np.add(self.dark[rows], s.dark.view(np.uint8), out=self.dark[rows])
        prev = self.prev[rows]
        if not first:
            tol = self.params.stuck_tolerance
            if tol == 0:
                still = np.equal(prev, s.value)
            else:
                still = (np.maximum(prev, s.value) - np.minimum(prev, s.value)) <= tol
            still &= s.judgeable
            np.add(self.unchanged[rows], still.view(np.uint8), out=self.unchanged[rows])
        prev[...] = s.value

    def _date_strip(self, rows: slice, strong: np.ndarray, stamp: int) -> None:
        np.add(self.strong[rows], strong.view(np.uint8), out=self.strong[rows])
        t = np.uint32(stamp)
        first, last = self.first[rows], self.last[rows]
        np.copyto(first, t, where=strong & ((first == 0) | (first > t)))
        np.copyto(last, t, where=strong & (last < t))

    # ------------------------------------------------------------------ merge
    def merge(self, later: "SensorAccumulator") -> "SensorAccumulator":
        """A new accumulator equal to one pass over this one's frames then ``later``'s.

        Chan et al. (1979) for mean/M2; counters add; ``prev`` comes from ``later``.
        Inputs are not modified. Raises ValueError when geometry, layout, pattern or
        params differ, OverflowError past 65,535 frames.
        """
        self._check_compatible(later)
        if later.frames == 0:
            return self.copy()
        if self.frames == 0:
            return later.copy()
        n_a, n_b = self.frames, later.frames
        n = n_a + n_b
        if n > MAX_FRAMES:
            raise OverflowError(f"merged accumulator would hold {n} frames (max {MAX_FRAMES})")
        delta = later.mean.astype(np.float64) - self.mean
        mean = self.mean + delta * (n_b / n)
        m2 = self.m2.astype(np.float64) + later.m2 + delta * delta * (n_a * n_b / n)
        # first: the earlier of two sightings, where 0 (never) loses
        first = np.where((self.first == 0) | ((later.first != 0) & (later.first < self.first)),
                         later.first, self.first)
        return SensorAccumulator(
            self.height, self.width, self.layout, self.pattern, self.params,
            frames=n, pairs=self.pairs + later.pairs,
            mean=mean.astype(np.float32), m2=m2.astype(np.float32),
            bright=self.bright + later.bright, dark=self.dark + later.dark,
            prev=later.prev.copy(), unchanged=self.unchanged + later.unchanged,
            strong=self.strong + later.strong, first=first, last=np.maximum(self.last, later.last),
            times=np.concatenate([self.times, later.times]),
            stuck_fit=stuckfit.merge(self.stuck_fit, later.stuck_fit, n_a, n,
                                     cap=stuckfit.cap_for(self.height * self.width)))

    def _check_compatible(self, other: "SensorAccumulator") -> None:
        mine = (self.shape, self.layout, self.params)
        theirs = (other.shape, other.layout, other.params)
        if mine != theirs:
            raise ValueError(f"cannot merge accumulators: {mine} vs {theirs}")
        if self.layout == "cfa" and not np.array_equal(self.pattern, other.pattern):
            raise ValueError(f"cannot merge CFA patterns {self.pattern.tolist()} and {other.pattern.tolist()}")

    def copy(self) -> "SensorAccumulator":
        arrays = {name: getattr(self, name).copy() for name in _ARRAYS}
        return SensorAccumulator(self.height, self.width, self.layout, self.pattern, self.params,
                                 frames=self.frames, pairs=self.pairs, times=self.times.copy(),
                                 stuck_fit=self.stuck_fit.copy(), **arrays)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike, *, compress: bool = False) -> None:
        """Write atomically: temp file in the same folder, fsync, ``os.replace``.

        One ``.npz`` with the arrays plus ``meta`` (format version, geometry, layout,
        pattern, frames, pairs, params). An interrupted save leaves the old file intact.
        """
        writer = np.savez_compressed if compress else np.savez
        replace_with(Path(path), lambda fh: writer(fh, **self._payload()))

    def to_bytes(self, *, compress: bool = False) -> bytes:
        """The bytes :meth:`save` would write (an ``.npz``), for storage other than a file
        (a PostgreSQL ``bytea``); :meth:`from_bytes` reads them back."""
        out = io.BytesIO()
        (np.savez_compressed if compress else np.savez)(out, **self._payload())
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "sensor accumulator") -> "SensorAccumulator":
        """Read :meth:`to_bytes` output; raises :class:`AccumulatorFileError` (naming
        ``where``) when it is truncated, corrupt or of another format version."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                content = {key: npz[key] for key in npz.files}
        except _UNREADABLE as exc:
            raise AccumulatorFileError(f"{where}: not a readable sensor accumulator ({exc})") from exc
        return cls._from_content(where, content)

    def _payload(self) -> dict[str, np.ndarray]:
        meta = np.array([FORMAT_VERSION, self.height, self.width, LAYOUTS.index(self.layout),
                         self.frames, self.pairs, self.params.tile, self.params.stuck_tolerance,
                         self.params.rgb_step],
                        dtype=np.int64)
        extra = {"meta": meta, "pattern": np.asarray(self.pattern if self.pattern is not None
                                                     else np.zeros((2, 2)), dtype=np.int8),
                 "params_f": np.array([self.params.margin, self.params.noise_floor,
                                       self.params.rgb_margin]),
                 "times": self.times, "stuck_at": self.stuck_fit.at, "stuck_since": self.stuck_fit.since,
                 "stuck_sums": self.stuck_fit.sums}
        return {**extra, **{name: getattr(self, name) for name in _ARRAYS}}

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SensorAccumulator":
        """Read a file written by :meth:`save`; raises :class:`AccumulatorFileError` when the
        file is missing, truncated, corrupt (zip CRC) or of another format version."""
        try:
            with np.load(path, allow_pickle=False) as data:
                content = {key: data[key] for key in data.files}
        except _UNREADABLE as exc:
            raise AccumulatorFileError(f"{path}: not a readable sensor accumulator ({exc})") from exc
        return cls._from_content(path, content)

    @classmethod
    def _from_content(cls, path, content: dict) -> "SensorAccumulator":
        meta = [int(v) for v in content["meta"]] if "meta" in content else []
        if len(meta) != 9 or meta[0] not in (1, FORMAT_VERSION):
            raise AccumulatorFileError(f"{path}: format {meta[:1]}, expected [{FORMAT_VERSION}]")
        if meta[0] == 1:  # before defect dates: nothing dated yet
            shape = (meta[1], meta[2])
            content = {**content, "times": np.empty(0, np.int64),
                       **{name: np.zeros(shape, _ARRAYS[name]) for name in _DATED}}
        missing = {"meta", "pattern", "params_f", "times", *_ARRAYS} - set(content)
        if missing:
            raise AccumulatorFileError(f"{path}: sensor accumulator lacks {sorted(missing)}")
        _, height, width, layout, frames, pairs, tile, tol, rgb_step = meta
        margin, floor, rgb_margin = (float(v) for v in content["params_f"])
        layout_name = LAYOUTS[layout] if 0 <= layout < len(LAYOUTS) else "?"
        try:
            params = ResidualParams(margin=margin, tile=tile, noise_floor=floor,
                                    stuck_tolerance=tol, rgb_step=rgb_step, rgb_margin=rgb_margin)
            stored = [content.get(name) for name in ("stuck_at", "stuck_since", "stuck_sums")]
            if any(a is None for a in stored) and any(a is not None for a in stored):
                raise ValueError("stuck candidates stored in part")
            fit = StuckRecord(*stored) if stored[0] is not None else None
            return cls(height, width, layout_name,
                       content["pattern"] if layout_name == "cfa" else None, params,
                       frames=frames, pairs=pairs, times=content["times"], stuck_fit=fit,
                       **{name: content[name] for name in _ARRAYS})
        except ValueError as exc:
            raise AccumulatorFileError(f"{path}: inconsistent sensor accumulator ({exc})") from exc


def check_file(path: str | os.PathLike) -> tuple[int, int, int]:
    """(height, width, frames) from a stored accumulator's header, without reading its
    arrays (cheap: for reports). Raises :class:`AccumulatorFileError` when the file is
    missing, truncated (its zip directory is at the end) or of another format version;
    corruption inside the arrays shows only on :meth:`SensorAccumulator.load`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = [int(v) for v in data["meta"]] if "meta" in data.files else []
            files = set(data.files)
    except _UNREADABLE as exc:
        raise AccumulatorFileError(f"{path}: not a readable sensor accumulator ({exc})") from exc
    if len(meta) != 9 or meta[0] not in (1, FORMAT_VERSION):
        raise AccumulatorFileError(f"{path}: format {meta[:1]}, expected [{FORMAT_VERSION}]")
    missing = {"meta", *_ARRAYS} - set(_DATED if meta[0] == 1 else ()) - files
    if missing:
        raise AccumulatorFileError(f"{path}: sensor accumulator lacks {sorted(missing)}")
    return meta[1], meta[2], meta[4]


def field_names() -> list[str]:
    """Names of the per-site arrays, in file order."""
    return list(_ARRAYS)


__all__ = ["AccumulatorFileError", "FORMAT_VERSION", "MAX_FRAMES", "SensorAccumulator", "check_file",
           "field_names"]
