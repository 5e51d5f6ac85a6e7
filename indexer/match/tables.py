"""The matcher's bookkeeping tables: growable columns, ids by key, and what the index
holds of each image. Arrays from start-up (sorted, compact), small dicts for later
changes: a dict of a million keys costs seconds to build and ~100 MB.

The dicts of later changes are folded into the arrays once they hold more than
:func:`fold_due` entries: a run or daemon that adds every image one at a time (an
archive indexed from empty) otherwise kept ~0.75 kB of Python objects per image in
them (a dict slot, int key, list and id in each :class:`KeyIndex`; a :class:`Held`
tuple of five ints in :class:`HeldTable`), against 16 and 48 bytes in the arrays.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

FOLD_MIN = 4096  # changes a table keeps in its dict before folding them into its arrays, at least


def fold_due(changes: int, size: int) -> bool:
    """Are ``changes`` entries in a dict of later changes enough to fold into arrays of
    ``size``? More than :data:`FOLD_MIN` and an eighth of ``size``: a fold re-sorts the
    arrays (O(n log n)), so at most every n/8 changes: O(log n) amortised per change,
    and the dict stays under ~1/8 of the table (~0.1 kB a held image)."""
    return changes > max(FOLD_MIN, size >> 3)


class Column:
    """A growable 1-D array (amortised doubling); :meth:`view` is writable in place.
    An array of the right dtype is used as given, not copied."""

    def __init__(self, dtype, values=()):
        self.data = np.asarray(values, dtype=dtype)
        self.n = len(self.data)

    def extend(self, values) -> None:
        values = np.asarray(values, dtype=self.data.dtype)
        if self.n + len(values) > len(self.data):
            grown = np.empty(max(2 * len(self.data), self.n + len(values), 16), dtype=self.data.dtype)
            grown[:self.n] = self.data[:self.n]
            self.data = grown
        self.data[self.n:self.n + len(values)] = values
        self.n += len(values)

    def view(self) -> np.ndarray:
        return self.data[:self.n]

    def __getitem__(self, i):
        return self.data[:self.n][i]

    def __len__(self) -> int:
        return self.n


class KeyIndex:
    """Image ids by an int64 key: a sorted array from start-up, a dict for later adds,
    and the (key, id) pairs of the array removed since."""

    def __init__(self, keys: np.ndarray, ids: np.ndarray, *, presorted: bool = False):
        """``presorted``: already ordered by key, then id (as :meth:`arrays` returns them)."""
        keys, ids = np.asarray(keys), np.asarray(ids)
        if not presorted:  # by key, then id: get() lists ids ascending
            ascending = len(ids) < 2 or bool((ids[1:] >= ids[:-1]).all())
            order = np.argsort(keys, kind="stable") if ascending else np.lexsort((ids, keys))
            keys, ids = keys[order], ids[order]
        self.keys, self.ids = keys, ids
        self.added: dict[int, list[int]] = {}
        self.dropped: set[tuple[int, int]] = set()

    def get(self, key: int) -> list[int]:
        lo, hi = np.searchsorted(self.keys, key, side="left"), np.searchsorted(self.keys, key, side="right")
        base = self.ids[lo:hi].tolist()
        if self.dropped:
            base = [i for i in base if (key, i) not in self.dropped]
        later = self.added.get(key)
        return sorted([*base, *later]) if later else base

    def add(self, key: int, image_id: int) -> None:
        self.added.setdefault(key, []).append(image_id)
        if fold_due(len(self.added) + len(self.dropped), len(self.keys)):
            self.fold()

    def fold(self) -> None:
        """The later adds and removals into the sorted arrays (:meth:`arrays`); the dict
        and set start empty again. Answers are unchanged."""
        self.keys, self.ids = self.arrays()
        self.added, self.dropped = {}, set()

    def remove(self, key: int, image_id: int) -> None:
        """Forget ``image_id`` under ``key`` (nothing if it is not there)."""
        later = self.added.get(key)
        if later and image_id in later:
            later.remove(image_id)
            if not later:
                del self.added[key]
            return
        lo, hi = np.searchsorted(self.keys, key, side="left"), np.searchsorted(self.keys, key, side="right")
        if image_id in self.ids[lo:hi].tolist():
            self.dropped.add((key, image_id))
            if fold_due(len(self.added) + len(self.dropped), len(self.keys)):
                self.fold()

    def groups(self) -> Iterable[list[int]]:
        """Every set of two or more ids sharing a key."""
        keys, counts = np.unique(self.keys, return_counts=True)
        for key in set(keys[counts > 1].tolist()) | set(self.added):
            ids = self.get(key)
            if len(ids) > 1:
                yield ids

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys, ids) of every current entry, int64, keys ascending: what a new
        ``KeyIndex`` needs (no dict, nothing dropped)."""
        keep = np.ones(len(self.keys), dtype=bool)
        if self.dropped:
            gone = {(int(k), int(i)) for k, i in self.dropped}
            idx = np.flatnonzero(np.isin(self.ids, np.array([i for _, i in gone], dtype=np.int64)))
            keep[[j for j in idx.tolist() if (int(self.keys[j]), int(self.ids[j])) in gone]] = False
        extra = [(k, i) for k, ids in self.added.items() for i in ids]
        keys = np.concatenate([self.keys[keep], np.array([k for k, _ in extra], dtype=np.int64)])
        ids = np.concatenate([self.ids[keep], np.array([i for _, i in extra], dtype=np.int64)])
        order = np.lexsort((ids, keys))
        return keys[order], ids[order]


class Held(NamedTuple):
    """What the index holds of one image: its hash signature and SHA-256 prefix, and
    where its entries are (``estart``/``ecount`` in the main index, ``pstart`` in the
    crop-probe index; ``estart`` = -1: none, a gated image or a twin)."""

    sig: int
    sha: int
    estart: int
    ecount: int
    pstart: int


HELD_FIELDS = Held._fields


class HeldTable:
    """image id -> :class:`Held`: sorted arrays from start-up, a dict of later changes
    (``None``: forgotten)."""

    def __init__(self, ids: np.ndarray, **columns: np.ndarray):
        order = np.argsort(ids, kind="stable")
        self.ids = np.asarray(ids, dtype=np.int64)[order]
        self.cols = {f: np.asarray(columns[f], dtype=np.int64)[order] for f in HELD_FIELDS}
        self.changed: dict[int, Held | None] = {}
        self.count = len(self.ids)

    @classmethod
    def empty(cls) -> "HeldTable":
        return cls(np.zeros(0, dtype=np.int64), **{f: np.zeros(0, dtype=np.int64) for f in HELD_FIELDS})

    def get(self, image_id: int) -> Held | None:
        if image_id in self.changed:
            return self.changed[image_id]
        i = int(np.searchsorted(self.ids, image_id))
        if i < len(self.ids) and self.ids[i] == image_id:
            return Held(*(int(self.cols[f][i]) for f in HELD_FIELDS))
        return None

    def lookup(self, ids: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Vectorised :meth:`get`: (bool (n,) held or not, :class:`Held` columns int64 (n,),
        0 where not held) for int64 ``ids``."""
        ids = np.asarray(ids, dtype=np.int64)
        found = np.zeros(len(ids), dtype=bool)
        out = {f: np.zeros(len(ids), dtype=np.int64) for f in HELD_FIELDS}
        if len(self.ids) and len(ids):
            pos = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
            found = self.ids[pos] == ids
            for f in HELD_FIELDS:
                out[f][found] = self.cols[f][pos[found]]
        if self.changed and len(ids):
            later = np.fromiter(self.changed, dtype=np.int64, count=len(self.changed))
            for k in np.flatnonzero(np.isin(ids, later)).tolist():
                held = self.changed[int(ids[k])]
                found[k] = held is not None
                for f in HELD_FIELDS:
                    out[f][k] = getattr(held, f) if held is not None else 0
        return found, out

    def set(self, image_id: int, held: Held | None) -> None:
        self.count += (held is not None) - (self.get(image_id) is not None)
        self.changed[image_id] = held
        if fold_due(len(self.changed), len(self.ids)):
            self.fold()

    def fold(self) -> None:
        """The later changes into the sorted arrays (:meth:`arrays`: forgotten images
        dropped); the dict starts empty again. Answers are unchanged."""
        self.ids, self.cols = self.arrays()
        self.changed = {}

    def __contains__(self, image_id: int) -> bool:
        return self.get(image_id) is not None

    def arrays(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(ids, columns) of every image held now, ids ascending."""
        keep = ~np.isin(self.ids, np.fromiter(self.changed, dtype=np.int64, count=len(self.changed)))
        later = sorted((i, h) for i, h in self.changed.items() if h is not None)
        ids = np.concatenate([self.ids[keep], np.array([i for i, _ in later], dtype=np.int64)])
        cols = {f: np.concatenate([self.cols[f][keep], np.array([getattr(h, f) for _, h in later], dtype=np.int64)])
                for f in HELD_FIELDS}
        order = np.argsort(ids, kind="stable")
        return ids[order], {f: c[order] for f, c in cols.items()}

    def __len__(self) -> int:
        return self.count


class TwinLinks(dict):
    """twin id -> representative id, with the reverse (representative -> its twins) kept
    alongside, so taking a representative out costs its own twins, not a scan of all."""

    def __init__(self, items: Iterable[tuple[int, int]] = ()):
        super().__init__()
        self.copies: dict[int, set[int]] = {}
        for twin, rep in items:
            self[twin] = rep

    def __setitem__(self, twin: int, rep: int) -> None:
        self.pop(twin, None)
        super().__setitem__(twin, rep)
        self.copies.setdefault(rep, set()).add(twin)

    def __delitem__(self, twin: int) -> None:
        rep = super().pop(twin)
        self.copies[rep].discard(twin)
        if not self.copies[rep]:
            del self.copies[rep]

    def pop(self, twin: int, *default):
        if twin not in self:
            if default:
                return default[0]
            raise KeyError(twin)
        rep = self[twin]
        del self[twin]
        return rep

    def update(self, other=()) -> None:
        for twin, rep in (other.items() if hasattr(other, "items") else other):
            self[twin] = rep

    def clear(self) -> None:
        super().clear()
        self.copies.clear()

    def twins_of(self, rep: int) -> list[int]:
        """The twins of ``rep``, ascending."""
        return sorted(self.copies.get(rep, ()))
