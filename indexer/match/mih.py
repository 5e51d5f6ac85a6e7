"""Exact Hamming-radius search over 64-bit hashes by multi-index hashing.

Multi-index hashing (Norouzi, Punjani & Fleet, "Fast search in Hamming space with
multi-index hashing", CVPR 2012): cut each 64-bit code into ``m`` substrings and keep one
hash table per substring. With the generalised pigeonhole principle (Qin et al., "GPH:
similarity search in Hamming space", ICDE 2018) a pair within distance ``r`` agrees within
``t_i`` bits on at least one substring ``i`` whenever ``sum(t_i) = r - m + 1`` (a table
with ``t_i = -1`` is skipped). Candidates come from the buckets whose key differs from
the probe by at most ``t_i`` bits; every candidate is then checked on all 64 bits, so
results equal brute force exactly.

Tables are dense: per substring, a counting sort of the entries by key (ids and full
codes in key order) and a ``2**b + 1`` array of bucket start offsets (``b`` <= 22 bits),
built in O(n + 2**b). The loops are compiled (numba, :mod:`indexer.match.mih_kernels`).
Batch joins walk occupied buckets (not items) for each neighbour mask, in cache-sized
blocks of keys, so a whole join costs about ``U * sum(V(b_i, t_i))`` bucket look-ups plus
the candidate checks (a vectorised popcount loop), never N². Hashes are stored as signed int64
(SQL-friendly) and compared as their 64-bit patterns.

Figures (self-join and query times, the engine's layout, the compiled kernels against
the former NumPy loops): ``bench/match_scale.py``. At the engine's layout with a million
images, one image's look-ups miss a 2 ms target; meeting it needs a smaller crop radius,
or tables wider than the dense 22-bit ones. First use compiles the kernels; numba caches
them.
"""
from __future__ import annotations

from functools import lru_cache
from itertools import combinations
from math import comb

import numpy as np

_MAX_BITS = 22

# Up to this many entries an index keeps no tables and answers by brute force (NumPy
# popcounts of every probe against every entry), so a small archive never loads numba:
# importing numba and loading the cached kernels costs ~0.55-0.8 s CPU per process, the
# bulk of `photoqa index` of one file (issue 13 item 4). Measured 2026-12-07 (CPU, load
# 0.6, random hashes, radius 10): numba import, kernel load, build and first query of an
# 8,192-entry index 0.55 s, then 0.04 ms a query of 10 probes; flat, 10 probes cost
# 0.17-0.25 ms against 4,096-8,192 entries, and a self-join (batch mode) 59 / 114 /
# 201 ms against 4,096 / 6,144 / 8,192. At 8,192 entries (~740 images) the flat index
# breaks even with the tables only after ~3,000 queries (0.18 ms more each), and its
# self-join stays at a third of the import; past it, the self-join's square growth
# decides. 4,096 before: the dense set of bench/end_to_end.py (432 images, ~4,800
# entries) loaded numba in the writer for its last 60 images (0.7 s CPU of py-spy samples).
FLAT_MAX = 8192


def kernels():
    """:mod:`indexer.match.mih_kernels`, imported on first use (numba: see :data:`FLAT_MAX`)."""
    from indexer.match import mih_kernels

    return mih_kernels


@lru_cache(maxsize=None)
def neighbour_masks(bits: int, radius: int) -> np.ndarray:
    """All ``bits``-bit XOR masks of popcount <= ``radius``, ascending (0 first); int64.

    Ascending, consecutive masks mostly differ in low bits, so a probe's buckets
    ``key ^ mask`` come in clusters close in memory.
    """
    out = [0]
    for k in range(1, max(radius, 0) + 1):
        out.extend(sum(1 << i for i in c) for c in combinations(range(bits), k))
    return np.sort(np.array(out if radius >= 0 else [], dtype=np.int64))


def split_bits(m: int) -> list[int]:
    """Widths of ``m`` near-equal substrings of 64 bits, widest first."""
    return [64 // m + (1 if i < 64 % m else 0) for i in range(m)]


def thresholds(radius: int, widths: list[int]) -> list[int]:
    """Per-substring radii ``t_i`` summing to ``radius - m + 1``, wider substrings first."""
    total, m = radius - len(widths) + 1, len(widths)
    base, extra = divmod(total + m, m)  # balanced over t_i + 1 >= 0
    return [base - 1 + (1 if i < extra else 0) for i in range(m)]


def choose_m(n: int, radius: int, *, candidate_cost: float = 0.25) -> int:
    """Substring count minimising the expected work for ``n`` uniform random codes.

    Work = bucket look-ups (each mask over each occupied bucket,
    ``U_i = 2**b_i * (1 - exp(-n / 2**b_i))``) plus ``candidate_cost`` per candidate pair
    (``n**2 / 2 * V_i / 2**b_i``), with ``V_i = V(b_i, t_i)`` the Hamming-ball volume.
    ``candidate_cost`` = 0.25 was measured with the compiled kernels (a look-up is a
    scattered bucket access, a candidate one step of a vectorised streaming loop): at
    n = 1 M, r = 10, m = 3 took 22 s CPU, m = 4 9 s, m = 5 31 s; at r = 8, m = 3 8.3 s
    and m = 4 5.4 s. Substrings are <= 22 bits.
    """
    def cost(m: int) -> float:
        widths = split_bits(m)
        vols = [sum(comb(b, k) for k in range(t + 1)) for b, t in zip(widths, thresholds(radius, widths))]
        occupied = [2.0**b * -np.expm1(-n / 2.0**b) for b in widths]
        return sum(u * v + candidate_cost * n * n / 2 * v / 2.0**b for u, v, b in zip(occupied, vols, widths))
    return min(range(3, 9), key=cost)


def popcount64(x: np.ndarray) -> np.ndarray:
    """Bits set in each int64 (two's complement pattern); uint8."""
    return np.bitwise_count(x.view(np.uint64))


# Join blocks of 2**10 keys: at 1 M codes in 16-bit tables, 16 k hashes (128 KB) a side,
# so a block pair stays in L2 (13 bits measured 14 s against 9 s for m = 4).
_BLOCK_BITS = 10


@lru_cache(maxsize=None)
def mask_blocks(bits: int, radius: int, block_bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`neighbour_masks` grouped by high part, for ``mih_kernels.join_blocks``.

    Returns (hi, ptr, lo), int64: group ``g`` holds the masks
    ``hi[g] << block_bits | lo[ptr[g]:ptr[g + 1]]``.
    """
    masks = neighbour_masks(bits, radius)
    hi, first = np.unique(masks >> block_bits, return_index=True)
    return hi, np.append(first, len(masks)), masks & ((1 << block_bits) - 1)


class _Table:
    """One substring table (``bits`` wide, at ``shift``): see :mod:`~indexer.match.mih_kernels`.

    ``starts`` int64 (2**b + 1), ``order`` int32 (n,) (int64 past 2**31 entries),
    ``sorted_hashes`` uint64 (n,), ``bitmap`` uint64 (2**b / 64,). Built by a compiled
    counting sort, O(n + 2**b).
    """

    def __init__(self, hashes: np.ndarray, shift: int, bits: int):
        self.shift, self.bits, self.block_bits = shift, bits, min(_BLOCK_BITS, bits)
        self.order = np.empty(len(hashes), dtype=np.int32 if len(hashes) < 2**31 else np.int64)
        self.starts, self.sorted_hashes, self.bitmap = kernels().build_table(
            hashes.view(np.uint64), shift, bits, self.order)
        self._blocks: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_arrays(cls, shift: int, bits: int, order: np.ndarray, starts: np.ndarray,
                    sorted_hashes: np.ndarray, bitmap: np.ndarray) -> "_Table":
        """A table from the arrays of a saved one (no counting sort)."""
        table = cls.__new__(cls)
        table.shift, table.bits, table.block_bits = shift, bits, min(_BLOCK_BITS, bits)
        table.order, table.starts, table.sorted_hashes, table.bitmap = order, starts, sorted_hashes, bitmap
        table._blocks = None
        return table

    def blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """Non-empty bucket keys, ascending (int64), and where each join block of
        ``2**block_bits`` keys starts among them (int64, blocks + 1); cached."""
        if self._blocks is None:
            keys = np.flatnonzero(np.diff(self.starts))
            edges = np.arange((1 << self.bits >> self.block_bits) + 1, dtype=np.int64) << self.block_bits
            self._blocks = keys, np.searchsorted(keys, edges)
        return self._blocks


class Found:
    """Growing int64 buffer filled by the resumable kernels of ``mih_kernels``."""

    def __init__(self, capacity: int = 1024):
        self.buf, self.count = np.empty(capacity, dtype=np.int64), 0

    def run(self, units: int, kernel, *args) -> None:
        """Call ``kernel(*args, first, buf, count)`` until all ``units`` are done,
        doubling the buffer whenever a unit did not fit."""
        first = 0
        while True:
            self.count, first = kernel(*args, first, self.buf, self.count)
            if first >= units:
                return
            grown = np.empty(2 * len(self.buf), dtype=np.int64)
            grown[: self.count] = self.buf[: self.count]
            self.buf = grown

    def values(self) -> np.ndarray:
        return self.buf[: self.count]


class MultiIndex:
    """Exact radius search over signed int64 hashes; entries are numbered 0..n-1.

    ``MultiIndex(hashes, radius=10)`` builds ``m`` tables (chosen by :func:`choose_m` for
    ``radius`` unless given). :meth:`query` finds entries near a few probes (incremental
    mode); :meth:`self_pairs` and :meth:`join` find all pairs (batch mode). :meth:`add`
    appends entries to a small brute-force buffer; past ``buffer_limit`` entries the
    buffer is folded into a second, *recent* index, and only when that outgrows
    ``recent_fraction`` of the main tables is everything rebuilt (:meth:`rebuild`). A
    watched folder adding one image at a time to an index of 11 M entries thus pays a
    small rebuild every ``buffer_limit`` entries instead of a 2-3 s one (one table of
    11 M entries costs ~0.65 s to build), and the full rebuild every
    ``recent_fraction * n`` entries. Entries keep their numbers throughout.

    Up to ``flat_max`` entries (unless ``m`` is given) the index is *flat*: no tables
    (``m`` = 0), every query a brute-force scan (:data:`FLAT_MAX`); it builds its tables
    when an :meth:`add` takes it past ``flat_max``. Results are the same either way.
    """

    def __init__(self, hashes: np.ndarray, *, radius: int, m: int | None = None,
                 buffer_limit: int = 4096, recent_fraction: float = 0.125, flat_max: int = FLAT_MAX):
        self.radius = radius
        self.buffer_limit, self.recent_fraction = buffer_limit, recent_fraction
        self._m_fixed = m
        self.flat_max = flat_max
        self._build(np.ascontiguousarray(hashes, dtype=np.int64))

    @property
    def flat(self) -> bool:
        return self.m == 0

    def _build(self, hashes: np.ndarray) -> None:
        if self._m_fixed is None and len(hashes) <= self.flat_max:
            self.m, self.widths, self.tables = 0, [], []
            self.hashes, self._buffer, self._recent = hashes, np.zeros(0, dtype=np.int64), None
            self.n_indexed = len(hashes)
            return
        self.m = self._m_fixed or choose_m(max(len(hashes), 2), self.radius)
        self.widths = split_bits(self.m)
        if max(self.widths) > _MAX_BITS:
            raise ValueError(f"m={self.m} gives {max(self.widths)}-bit tables; need <= {_MAX_BITS}")
        shifts = 64 - np.cumsum(self.widths)
        self.hashes = hashes
        self._buffer = np.zeros(0, dtype=np.int64)
        self._recent: MultiIndex | None = None  # entries n_indexed .. n_indexed + n_recent - 1
        self.tables = [_Table(hashes, int(s), b) for s, b in zip(shifts, self.widths)]
        self.n_indexed = len(hashes)

    def state(self) -> dict[str, np.ndarray]:
        """Every array of this index by name, for :meth:`from_state` (saving an index
        spares the counting sorts: ~0.5 s per table of 11 M entries)."""
        out = {"params": np.array([self.radius, self.m, self.buffer_limit, self._m_fixed or 0], dtype=np.int64),
               "recent_fraction": np.array([self.recent_fraction]), "flat_max": np.array([self.flat_max]),
               "hashes": self.hashes, "buffer": self._buffer}
        for i, t in enumerate(self.tables):
            out.update({f"t{i}.order": t.order, f"t{i}.starts": t.starts, f"t{i}.sorted": t.sorted_hashes,
                        f"t{i}.bitmap": t.bitmap})
        if self._recent is not None:
            out.update({f"recent.{k}": v for k, v in self._recent.state().items()})
        return out

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> "MultiIndex":
        """The index :meth:`state` described (arrays used as given, not copied)."""
        radius, m, buffer_limit, fixed = (int(v) for v in state["params"])
        if not (0 <= m <= 64 and 0 <= radius <= 64):  # a damaged file: m = 2**40 spent minutes in split_bits
            raise ValueError(f"index parameters out of range: m={m}, radius={radius}")
        ix = cls.__new__(cls)
        ix.radius, ix.m, ix.buffer_limit, ix._m_fixed = radius, m, buffer_limit, fixed or None
        ix.recent_fraction = float(state["recent_fraction"][0])
        # saved before flat indexes (m >= 1 always): such an index stays tabled until rebuilt
        ix.flat_max = int(state["flat_max"][0]) if "flat_max" in state else FLAT_MAX
        ix.widths = split_bits(m) if m else []
        ix.hashes, ix._buffer = state["hashes"], state["buffer"]
        ix.tables = [_Table.from_arrays(int(shift), bits, state[f"t{i}.order"], state[f"t{i}.starts"],
                                        state[f"t{i}.sorted"], state[f"t{i}.bitmap"])
                     for i, (shift, bits) in enumerate(zip(64 - np.cumsum(ix.widths), ix.widths))]
        ix.n_indexed = len(ix.hashes)
        recent = {k[len("recent."):]: v for k, v in state.items() if k.startswith("recent.")}
        ix._recent = cls.from_state(recent) if recent else None
        return ix

    @property
    def n_recent(self) -> int:
        return len(self._recent.hashes) if self._recent is not None else 0

    def __len__(self) -> int:
        return self.n_indexed + self.n_recent + len(self._buffer)

    def all_hashes(self) -> np.ndarray:
        if not len(self._buffer) and self._recent is None:
            return self.hashes
        recent = self._recent.hashes if self._recent is not None else np.zeros(0, dtype=np.int64)
        return np.concatenate([self.hashes, recent, self._buffer])

    def _hashes_at(self, entries: np.ndarray) -> np.ndarray:
        """Hashes of entry numbers (indexed, recent or buffered) without concatenating; int64."""
        out = np.empty(len(entries), dtype=np.int64)
        indexed = entries < self.n_indexed
        buffered = entries >= self.n_indexed + self.n_recent
        recent = ~indexed & ~buffered
        out[indexed] = self.hashes[entries[indexed]]
        if recent.any():
            out[recent] = self._recent.hashes[entries[recent] - self.n_indexed]
        out[buffered] = self._buffer[entries[buffered] - self.n_indexed - self.n_recent]
        return out

    def add(self, hashes) -> np.ndarray:
        """Append hashes; returns their entry numbers."""
        new = np.atleast_1d(np.asarray(hashes, dtype=np.int64))
        first = len(self)
        self._buffer = np.concatenate([self._buffer, new])
        if len(self._buffer) > self.buffer_limit or (self.flat and len(self) > self.flat_max):
            self._fold()
        return np.arange(first, first + len(new))

    def _fold(self) -> None:
        """Buffer into the recent index; everything into the main tables once the recent
        index outgrows ``recent_fraction`` of them."""
        recent = self._buffer if self._recent is None else np.concatenate([self._recent.hashes, self._buffer])
        if self.flat or len(recent) > self.recent_fraction * self.n_indexed:
            self.rebuild()
            return
        self._recent = MultiIndex(recent, radius=self.radius)
        self._buffer = np.zeros(0, dtype=np.int64)

    def rebuild(self) -> None:
        self._build(self.all_hashes())

    def query(self, probes, radius: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Entries within ``radius`` of any probe: (probe index, entry, distance), int64 each.

        Incremental mode: cost per probe is ``sum(V(b_i, t_i))`` bucket look-ups plus the
        occupants of those buckets, plus a scan of the add buffer. Sorted by probe, then entry.
        """
        r = self.radius if radius is None else radius
        probes = np.atleast_1d(np.asarray(probes, dtype=np.int64))
        n, found = len(self), Found()
        for table, t in zip(self.tables, thresholds(r, self.widths) if self.tables else ()):
            if t >= 0:
                found.run(len(probes), kernels().query_table, probes.view(np.uint64), table.shift, table.bits,
                          neighbour_masks(table.bits, t), r, table.starts, table.order,
                          table.sorted_hashes, table.bitmap, n)
        flat = self._flat_hits(probes, r) if self.flat else np.zeros(0, dtype=np.int64)
        key = np.unique(np.concatenate([found.values(), flat, self._recent_hits(probes, r), self._buffer_hits(probes, r)]))
        p, e = key // n, key % n
        return p, e, popcount64(probes[p] ^ self._hashes_at(e)).astype(np.int64)

    def _recent_hits(self, probes: np.ndarray, r: int) -> np.ndarray:
        """Recent-index entries within ``r`` of the probes, encoded ``probe * len + entry``."""
        if self._recent is None:
            return np.zeros(0, dtype=np.int64)
        p, j, _ = self._recent.query(probes, r)
        return p * len(self) + self.n_indexed + j

    def _flat_hits(self, probes: np.ndarray, r: int) -> np.ndarray:
        """Entries of a flat index within ``r`` of the probes, encoded ``probe * len + entry``."""
        d = popcount64(probes[:, None] ^ self.hashes[None, :])
        p, j = np.nonzero(d <= r)
        return p * len(self) + j

    def _buffer_hits(self, probes: np.ndarray, r: int) -> np.ndarray:
        """Buffered entries within ``r`` of the probes, encoded ``probe * len + entry``."""
        d = popcount64(probes[:, None] ^ self._buffer[None, :])
        p, j = np.nonzero(d <= r)
        return p * len(self) + self.n_indexed + self.n_recent + j

    def self_pairs(self, radius: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All pairs (i < j) of indexed entries within ``radius``: (i, j, distance), int64.

        Batch mode; each pair once, sorted by (i, j). Equals brute force exactly.
        """
        self.rebuild() if len(self) > self.n_indexed else None
        if self.flat:
            return _flat_pairs(self.hashes, self.hashes, self.radius if radius is None else radius, same=True)
        return self._pairs(self, self.hashes, radius, same=True)

    def join(self, probes: np.ndarray, radius: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All (probe, entry) pairs within ``radius`` for many probes (bucket-level join)."""
        self.rebuild() if len(self) > self.n_indexed else None
        if self.flat:
            probes = np.ascontiguousarray(probes, dtype=np.int64)
            return _flat_pairs(probes, self.hashes, self.radius if radius is None else radius, same=False)
        other = MultiIndex(probes, radius=self.radius, m=self.m)
        return self._pairs(other, other.hashes, radius, same=False)

    def _pairs(self, other: MultiIndex, probes: np.ndarray, radius, same: bool):
        """Bucket-level join of ``other``'s tables (walked) with this index's tables."""
        r = self.radius if radius is None else radius
        n, found = len(self.hashes), Found()
        for mine, theirs, t in zip(self.tables, other.tables, thresholds(r, self.widths)):
            if t < 0:
                continue
            groups = mask_blocks(mine.bits, t, mine.block_bits)
            found.run(len(groups[0]), kernels().join_blocks, *theirs.blocks(), theirs.starts, theirs.order,
                      theirs.sorted_hashes, mine.block_bits, *groups, r, mine.starts, mine.order,
                      mine.sorted_hashes, mine.bitmap, same, n)
        key = np.unique(found.values())  # a pair close on several substrings is found once per table
        a, b = key // n, key % n
        return a, b, popcount64(probes[a] ^ self.hashes[b]).astype(np.int64)


def _flat_pairs(probes: np.ndarray, hashes: np.ndarray, radius: int, *, same: bool
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probe, entry, distance) within ``radius``, int64, sorted; ``same``: probe < entry
    only (a self-join). Brute force in row blocks of ~1 M popcounts (8 MB of temporaries)."""
    out_a, out_b, out_d = [], [], []
    step = max(1, (1 << 20) // max(len(hashes), 1))
    for start in range(0, len(probes), step):
        d = popcount64(probes[start:start + step, None] ^ hashes[None, :])
        close = d <= radius
        if same:
            close &= np.arange(start, start + len(d))[:, None] < np.arange(len(hashes))[None, :]
        a, b = np.nonzero(close)
        out_a.append(a + start)
        out_b.append(b)
        out_d.append(d[a, b])
    if not out_a:
        return (np.zeros(0, dtype=np.int64),) * 3
    return (np.concatenate(out_a).astype(np.int64), np.concatenate(out_b).astype(np.int64),
            np.concatenate(out_d).astype(np.int64))


def brute_pairs(hashes: np.ndarray, radius: int) -> set[tuple[int, int]]:
    """Reference: all (i < j) within ``radius`` by an O(N²) scan (tests and benchmarks)."""
    h = np.asarray(hashes, dtype=np.int64)
    out = set()
    for i in range(len(h) - 1):
        d = popcount64(h[i + 1:] ^ h[i])
        out.update((i, i + 1 + int(j)) for j in np.flatnonzero(d <= radius))
    return out
