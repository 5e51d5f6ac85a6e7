"""Exact Hamming-radius search over 64-bit hashes by multi-index hashing.

Multi-index hashing (Norouzi, Punjani & Fleet, "Fast search in Hamming space with
multi-index hashing", CVPR 2012): cut each 64-bit code into ``m`` substrings and keep one
hash table per substring. With the generalised pigeonhole principle (Qin et al., "GPH:
similarity search in Hamming space", ICDE 2018) a pair within distance ``r`` agrees within
``t_i`` bits on at least one substring ``i`` whenever ``sum(t_i) = r - m + 1`` (a table
with ``t_i = -1`` is skipped). Candidates come from the buckets whose key differs from
the probe by at most ``t_i`` bits; every candidate is then checked on all 64 bits, so
results equal brute force exactly.

Tables are dense: per substring, the entries sorted by key and a ``2**b + 1`` array of
bucket start offsets (``b`` <= 22 bits, 16 MB). Batch joins walk occupied buckets (not
items) for each neighbour mask, so a whole join costs about ``U * sum(V(b_i, t_i))``
bucket look-ups plus the candidate checks, never N². Hashes are stored as signed int64
(SQL-friendly) and compared as their 64-bit patterns.
"""
from __future__ import annotations

from functools import lru_cache
from itertools import combinations
from math import comb

import numpy as np

_MAX_BITS = 22
_CHUNK = 1 << 22  # candidate pairs checked per step (bounds memory)


@lru_cache(maxsize=None)
def neighbour_masks(bits: int, radius: int) -> np.ndarray:
    """All ``bits``-bit XOR masks of popcount <= ``radius``, popcount 0 first; int64."""
    out = [0]
    for k in range(1, max(radius, 0) + 1):
        out.extend(sum(1 << i for i in c) for c in combinations(range(bits), k))
    return np.array(out if radius >= 0 else [], dtype=np.int64)


def split_bits(m: int) -> list[int]:
    """Widths of ``m`` near-equal substrings of 64 bits, widest first."""
    return [64 // m + (1 if i < 64 % m else 0) for i in range(m)]


def thresholds(radius: int, widths: list[int]) -> list[int]:
    """Per-substring radii ``t_i`` summing to ``radius - m + 1``, wider substrings first."""
    total, m = radius - len(widths) + 1, len(widths)
    base, extra = divmod(total + m, m)  # balanced over t_i + 1 >= 0
    return [base - 1 + (1 if i < extra else 0) for i in range(m)]


def choose_m(n: int, radius: int, *, candidate_cost: float = 4.0) -> int:
    """Substring count minimising the expected work for ``n`` uniform random codes.

    Work = bucket look-ups (each mask over each occupied bucket,
    ``U_i = 2**b_i * (1 - exp(-n / 2**b_i))``) plus ``candidate_cost`` per candidate pair
    (``n**2 / 2 * V_i / 2**b_i``), with ``V_i = V(b_i, t_i)`` the Hamming-ball volume.
    ``candidate_cost`` = 4 was measured: at n = 1 M, r = 10, m = 4 (few look-ups, many
    candidates) took 111 s CPU against ~35 s for m = 3. Substrings are <= 22 bits.
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


class _Table:
    """One substring table: entry ids sorted by key, dense bucket starts and occupancy.

    ``occupied`` (int32) lists non-empty buckets; ``hit`` (bool, 2**b) is the occupancy
    map, small enough to stay in cache while batch joins probe it at random.
    """

    def __init__(self, keys: np.ndarray, bits: int, hashes: np.ndarray):
        self.bits = bits
        self.order = np.argsort(keys, kind="stable").astype(np.int64)
        self.sorted_hashes = hashes[self.order]
        counts = np.bincount(keys, minlength=1 << bits)
        self.starts = np.zeros((1 << bits) + 1, dtype=np.int64)
        np.cumsum(counts, out=self.starts[1:])
        self.hit = counts > 0
        self.occupied = np.flatnonzero(self.hit).astype(np.int32)
        # Compact per-bucket arrays: int32 start/size, gathered at random in batch joins.
        self.start32 = self.starts[:-1].astype(np.int32)
        self.size32 = counts.astype(np.int32)
        self.occ_start, self.occ_size = self.start32[self.occupied], self.size32[self.occupied]
        self._halves: dict[int, tuple] = {}

    def low_half(self, bit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Occupied keys with ``bit`` clear, and their bucket starts and sizes (cached)."""
        if bit not in self._halves:
            self._halves.clear()  # callers walk masks grouped by highest bit: keep one
            sel = (self.occupied >> bit) & 1 == 0
            self._halves[bit] = (self.occupied[sel], self.occ_start[sel], self.occ_size[sel])
        return self._halves[bit]

    def count(self, keys: np.ndarray) -> np.ndarray:
        return self.starts[keys + 1] - self.starts[keys]

    def members(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Entry ids in the buckets ``keys`` and, for each, its position in ``keys``."""
        lo, n = self.starts[keys], self.count(keys)
        owner = np.repeat(np.arange(len(keys)), n)
        pos = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
        return self.order[pos], owner


def _expand(lo_a, n_a, lo_b, n_b):
    """All (i, j) position pairs for bucket pairs given by start/size of each side."""
    single = (n_a == 1) & (n_b == 1)  # the common case: no repeat machinery
    if single.all():
        return lo_a, lo_b
    multi = ~single
    ma, na, mb, nb = lo_a[multi], n_a[multi], lo_b[multi], n_b[multi]
    n = na * nb
    k = np.repeat(np.arange(len(n)), n)
    r = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    return (np.concatenate([lo_a[single], ma[k] + r // nb[k]]),
            np.concatenate([lo_b[single], mb[k] + r % nb[k]]))


class MultiIndex:
    """Exact radius search over signed int64 hashes; entries are numbered 0..n-1.

    ``MultiIndex(hashes, radius=10)`` builds ``m`` tables (chosen by :func:`choose_m` for
    ``radius`` unless given). :meth:`query` finds entries near a few probes (incremental
    mode); :meth:`self_pairs` and :meth:`join` find all pairs (batch mode). :meth:`add`
    appends entries to a small brute-force buffer, folded into the tables by
    :meth:`rebuild` (automatic past ``buffer_limit`` entries).
    """

    def __init__(self, hashes: np.ndarray, *, radius: int = 10, m: int | None = None,
                 buffer_limit: int = 4096):
        self.radius = radius
        self.buffer_limit = buffer_limit
        self._m_fixed = m
        self._build(np.ascontiguousarray(hashes, dtype=np.int64))

    def _build(self, hashes: np.ndarray) -> None:
        self.m = self._m_fixed or choose_m(max(len(hashes), 2), self.radius)
        self.widths = split_bits(self.m)
        if max(self.widths) > _MAX_BITS:
            raise ValueError(f"m={self.m} gives {max(self.widths)}-bit tables; need <= {_MAX_BITS}")
        self.shifts = list(64 - np.cumsum(self.widths))
        self.hashes = hashes
        self._buffer: list[int] = []
        self.tables = [_Table(self.keys(hashes, i), b, hashes) for i, b in enumerate(self.widths)]
        self.n_indexed = len(hashes)

    def __len__(self) -> int:
        return self.n_indexed + len(self._buffer)

    def keys(self, hashes: np.ndarray, i: int) -> np.ndarray:
        """Substring ``i`` of each hash as a non-negative int64."""
        u = np.asarray(hashes, dtype=np.int64).view(np.uint64)
        return ((u >> np.uint64(self.shifts[i])) & np.uint64((1 << self.widths[i]) - 1)).astype(np.int64)

    def all_hashes(self) -> np.ndarray:
        if not self._buffer:
            return self.hashes
        return np.concatenate([self.hashes, np.array(self._buffer, dtype=np.int64)])

    def add(self, hashes) -> np.ndarray:
        """Append hashes; returns their entry numbers."""
        new = np.atleast_1d(np.asarray(hashes, dtype=np.int64))
        first = len(self)
        self._buffer.extend(int(h) for h in new)
        if len(self._buffer) > self.buffer_limit:
            self.rebuild()
        return np.arange(first, first + len(new))

    def rebuild(self) -> None:
        self._build(self.all_hashes())

    def query(self, probes, radius: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Entries within ``radius`` of any probe: (probe index, entry, distance), int64 each.

        Incremental mode: cost per probe is ``sum(V(b_i, t_i))`` bucket look-ups plus the
        occupants of those buckets. Sorted by probe, then entry.
        """
        r = self.radius if radius is None else radius
        probes = np.atleast_1d(np.asarray(probes, dtype=np.int64))
        found_p, found_e = [], []
        for i, t in enumerate(thresholds(r, self.widths)):
            if t < 0:
                continue
            masks = neighbour_masks(self.widths[i], t)
            keys = (self.keys(probes, i)[:, None] ^ masks[None, :]).ravel()
            entries, owner = self.tables[i].members(keys)
            found_p.append(owner // len(masks))
            found_e.append(entries)
        if self._buffer:
            buf = np.arange(self.n_indexed, len(self))
            found_p.append(np.repeat(np.arange(len(probes)), len(buf)))
            found_e.append(np.tile(buf, len(probes)))
        p, e = np.concatenate(found_p), np.concatenate(found_e)
        d = popcount64(probes[p] ^ self.all_hashes()[e]).astype(np.int64)
        keep = d <= r
        key = np.unique(p[keep] * len(self) + e[keep])
        p, e = key // len(self), key % len(self)
        return p, e, popcount64(probes[p] ^ self.all_hashes()[e]).astype(np.int64)

    def self_pairs(self, radius: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All pairs (i < j) of indexed entries within ``radius``: (i, j, distance), int64.

        Batch mode; each pair once, sorted by (i, j). Equals brute force exactly.
        """
        self.rebuild() if self._buffer else None
        return self._pairs(self, self.hashes, radius, same=True)

    def join(self, probes: np.ndarray, radius: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All (probe, entry) pairs within ``radius`` for many probes (bucket-level join)."""
        self.rebuild() if self._buffer else None
        other = MultiIndex(probes, radius=self.radius, m=self.m)
        return self._pairs(other, np.asarray(probes, dtype=np.int64), radius, same=False)

    def _pairs(self, other: MultiIndex, probes: np.ndarray, radius, same: bool):
        r = self.radius if radius is None else radius
        n = len(self.hashes)
        found = []
        for i, t in enumerate(thresholds(r, self.widths)):
            if t < 0:
                continue
            mine, theirs = self.tables[i], other.tables[i]
            for mask in sorted(neighbour_masks(self.widths[i], t).tolist(), key=int.bit_length):
                found.extend(self._mask_pairs(mine, theirs, mask, r, same))
            mine._halves.clear()
        if not found:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        key = np.unique(np.concatenate(found))
        a, b = key // n, key % n
        return a, b, popcount64(probes[a] ^ self.hashes[b]).astype(np.int64)

    def _mask_pairs(self, mine: _Table, theirs: _Table, mask: int, r: int, same: bool):
        """Encoded pairs ``probe * n + entry`` whose keys differ by exactly ``mask``."""
        keys, starts, sizes = theirs.occupied, theirs.occ_start, theirs.occ_size
        if same and mask:  # walk only keys u with partner > u: each bucket pair once, half the work
            keys, starts, sizes = theirs.low_half(mask.bit_length() - 1)
        partner = keys ^ np.int32(mask)
        idx = np.flatnonzero(mine.hit[partner])
        partner = partner[idx]
        pa, pb = _expand(starts[idx], sizes[idx], mine.start32[partner], mine.size32[partner])
        n = len(self.hashes)
        out = []
        for s in range(0, len(pa), _CHUNK):
            a, b = pa[s:s + _CHUNK], pb[s:s + _CHUNK]
            keep = popcount64(theirs.sorted_hashes[a] ^ mine.sorted_hashes[b]) <= r
            a, b = theirs.order[a[keep]], mine.order[b[keep]]
            if same and mask == 0:
                keep = a < b  # both orders and self-pairs come out of one bucket
                a, b = a[keep], b[keep]
            elif same:
                a, b = np.minimum(a, b), np.maximum(a, b)
            out.append(a * n + b)
        return out


def brute_pairs(hashes: np.ndarray, radius: int) -> set[tuple[int, int]]:
    """Reference: all (i < j) within ``radius`` by an O(N²) scan (tests and benchmarks)."""
    h = np.asarray(hashes, dtype=np.int64)
    out = set()
    for i in range(len(h) - 1):
        d = popcount64(h[i + 1:] ^ h[i])
        out.update((i, i + 1 + int(j)) for j in np.flatnonzero(d <= radius))
    return out
