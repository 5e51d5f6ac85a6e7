"""Sensor statistics on a Dask cluster: frame deltas stay on the workers, merged there by a tree.

Without a cluster every learnt frame's :class:`~indexer.sensor.delta.FrameDelta` travels to
the writer, which adds it to the sensor's accumulator (a Welford step over every site).
With ``--cluster`` the delta stays where it was computed, in the result of the batch's
Dask task, and the writer receives a :class:`DeltaRef` instead: the delta's geometry
(enough to pick the sensor) and its place in the batch. The writer's sensor stage
(:mod:`indexer.pipeline.sensorstage`) decides, as always, whether the frame counts (its
file was stored, it names a camera, its SHA-256 is not in the frame ledger nor seen in
this run) and collects the refs of the frames that do in a :class:`Pending`. At a flush,
:meth:`Pending.gather` asks the workers for one accumulator per batch of the accepted
frames (:func:`accumulate_part`, Welford, on the worker holding the batch), reduces them
pairwise (:func:`merge_pair`, Chan et al. 1979, exact whatever the split) and fetches one
merged accumulator: the writer merges one accumulator per sensor and flush instead of
adding every frame.

Exactly once: only the refs the stage accepted are reduced, each once, so the ledger
rules stay the writer's. A worker that dies holding a batch's result has it recomputed by
the scheduler from the same files (Dask keeps the lineage of every future still held),
and the refs point at the batch, not at a worker.

No Dask import here: the futures come from :mod:`indexer.pipeline.cluster`, and the
functions below run on the workers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from indexer.sensor.accumulator import MAX_FRAMES, SensorAccumulator
from indexer.sensor.delta import FrameDelta
from indexer.sensor.residual import ResidualParams


class DeltasLost(ValueError):
    """The cluster could not give back the accepted frames' statistics (it was lost)."""


@dataclass
class DeltaRef:
    """A frame delta left on the cluster: geometry as :class:`FrameDelta` has it, and
    where it is (``index`` in the result of the Dask future ``source``, set by the writer
    when the batch's outcomes arrive; None before)."""

    layout: str
    height: int
    width: int
    pattern: np.ndarray | None
    params: ResidualParams
    colors: str
    index: int
    source: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, delta: FrameDelta, index: int) -> "DeltaRef":
        return cls(delta.layout, delta.height, delta.width, delta.pattern, delta.params, delta.colors, index)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)


@dataclass
class Batch:
    """What a batch task keeps on its worker: the outcomes (their deltas replaced by
    :class:`DeltaRef`) and the deltas themselves, ``deltas[ref.index]``."""

    outcomes: list
    deltas: list[FrameDelta]


def keep_deltas(outcomes: list) -> Batch:
    """Run on the worker: move each outcome's delta into the batch, leave a ref in its place."""
    deltas: list[FrameDelta] = []
    for outcome in outcomes:
        delta = getattr(outcome, "sensor", None)
        if isinstance(delta, FrameDelta):
            outcome.sensor = DeltaRef.of(delta, len(deltas))
            deltas.append(delta)
    return Batch(outcomes, deltas)


def outcomes_of(batch: Batch) -> list:
    """Run on the worker holding ``batch``: what the writer fetches (no deltas)."""
    return batch.outcomes


def accumulate_part(batch: Batch, indices: list[int]) -> SensorAccumulator:
    """Run on the worker holding ``batch``: one accumulator of the deltas at ``indices``
    (Welford, in that order: bit for bit what the writer's one-by-one adds give)."""
    first = batch.deltas[indices[0]]
    acc = SensorAccumulator(first.height, first.width, layout=first.layout, pattern=first.pattern,
                            params=first.params)
    for i in indices:
        acc.add(batch.deltas[i])
    return acc


def merge_pair(a: SensorAccumulator, b: SensorAccumulator) -> SensorAccumulator:
    """Run on a worker: one node of the tree, :meth:`SensorAccumulator.merge` (Chan et al.)."""
    return a.merge(b)


def tree_reduce(submit, parts: list) -> Any:
    """Reduce ``parts`` (futures of accumulators) pairwise, ``submit(merge_pair, a, b)``
    per node: log2(len(parts)) levels, each level's merges in parallel; returns the
    future of the root."""
    while len(parts) > 1:
        pairs = [submit(merge_pair, a, b) for a, b in zip(parts[::2], parts[1::2])]
        parts = pairs + parts[len(pairs) * 2:]
    return parts[0]


class Pending:
    """The frames a sensor stage accepted since its last flush, some added here (deltas
    the writer computed itself: :attr:`local`), the others left on the cluster (refs).
    Takes the place of the stage's in-memory accumulator: :meth:`add`, then :meth:`gather`
    at the flush."""

    def __init__(self, local: SensorAccumulator):
        self.local = local
        self.refs: list[DeltaRef] = []

    @property
    def frames(self) -> int:
        return self.local.frames + len(self.refs)

    @property
    def nbytes(self) -> int:
        """Bytes held in this process (the refs' deltas stay on the workers): what
        ``[sensor] memory_mb`` counts."""
        return self.local.nbytes

    def add(self, delta: FrameDelta | DeltaRef) -> None:
        """Add a local delta, or note a ref; raises ValueError (geometry, layout, pattern,
        params differ) or OverflowError (past 65,535 frames), as :meth:`SensorAccumulator.add`."""
        if not isinstance(delta, DeltaRef):
            self.local.add(delta)
            return
        acc = self.local
        if (delta.shape, delta.layout, delta.params) != (acc.shape, acc.layout, acc.params) or (
                acc.layout == "cfa" and not np.array_equal(acc.pattern, delta.pattern)):
            raise ValueError(f"frame delta {(delta.shape, delta.layout, delta.params)} does not fit sensor "
                             f"{(acc.shape, acc.layout, acc.params)}")
        if self.frames >= MAX_FRAMES:
            raise OverflowError(f"accumulator already holds {self.frames} frames (uint16 counters)")
        self.refs.append(delta)

    def gather(self) -> SensorAccumulator:
        """The accumulator of every accepted frame: the refs' deltas reduced on the cluster
        (one part per batch, then pairwise merges), merged with :attr:`local`. Raises
        :class:`DeltasLost` when the cluster cannot give them back."""
        if not self.refs:
            return self.local
        by_batch: dict = {}
        for ref in self.refs:
            by_batch.setdefault(ref.source.key, (ref.source, []))[1].append(ref.index)
        client = self.refs[0].source.client
        try:
            parts = [client.submit(accumulate_part, source, indices, pure=False)
                     for source, indices in by_batch.values()]
            remote = tree_reduce(lambda *args: client.submit(*args, pure=False), parts).result()
        except Exception as exc:  # noqa: BLE001 - whatever Dask raises, the frames are not counted
            raise DeltasLost(f"the cluster lost the statistics of {len(self.refs)} frame(s): "
                             f"{type(exc).__name__}: {exc}") from exc
        return self.local.merge(remote) if self.local.frames else remote


def pending_for(acc: SensorAccumulator | Pending, delta) -> SensorAccumulator | Pending:
    """``acc``, or a :class:`Pending` around it when ``delta`` was left on a cluster."""
    if isinstance(delta, DeltaRef) and not isinstance(acc, Pending):
        return Pending(acc)
    return acc


def settle(acc: SensorAccumulator | Pending) -> SensorAccumulator:
    """The accumulator to merge into the sensor's file (a :class:`Pending` gathered)."""
    return acc.gather() if isinstance(acc, Pending) else acc
