"""Compiled loops of the multi-index hashing search (:mod:`indexer.match.mih`).

Numba ``@njit(cache=True)`` kernels: the machine code is cached beside this file (or in
numba's user-wide cache when that is read-only), so the JIT cost is paid once per
machine, not per process. Hashes are ``uint64`` views of the stored signed int64 codes.
A table over ``b``-bit substrings is ``starts`` (int64, ``2**b + 1``: bucket ``k`` holds
sorted positions ``starts[k]:starts[k + 1]``), ``order`` (int32 below 2**31 entries, else int64: entry id per sorted
position), ``sorted_hashes`` (uint64, the full code per sorted position) and ``bitmap``
(uint64, ``ceil(2**b / 64)`` words, bit ``k`` set when bucket ``k`` is non-empty: 512 KB
at 22 bits, so the random occupancy tests of a join stay in cache).

Found pairs are written encoded as ``row * n_cols + col`` (int64) into a caller's buffer;
kernels stop at a unit (probe or mask group) that overflows it so the caller can grow it
and resume there.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def _ctpop(typingctx, x):
    """LLVM ``ctpop`` on a uint64, as int64 (compared with an int64 radius without a float
    conversion): one POPCNT instruction on x86-64 (numba has no popcount)."""
    sig = types.int64(types.uint64)

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Hint the cache line of ``arr[idx]`` into all cache levels (LLVM ``prefetch``, read)."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, inline="always")
def _key(h, shift, mask):
    """Substring of ``h`` (uint64) at ``shift`` of width ``mask`` (= 2**b - 1); int64."""
    return np.int64((h >> np.uint64(shift)) & np.uint64(mask))


@njit(cache=True, inline="always")
def _occupied(bitmap, k):
    """1 if bucket ``k`` is non-empty else 0; int64."""
    return np.int64((bitmap[k >> 6] >> np.uint64(k & 63)) & np.uint64(1))


@njit(cache=True, inline="always")
def _put(out, n, value):
    """Write ``value`` at ``out[n]`` if it fits; returns ``n + 1`` either way (the caller
    resumes with a larger buffer; no array is reassigned in hot loops, which would cost
    an atomic reference count per step)."""
    if n < out.shape[0]:
        out[n] = value
    return n + 1


@njit(cache=True, inline="always")
def _count_near(h, hashes, lo, hi, radius):
    """How many of ``hashes[lo:hi]`` lie within ``radius`` of ``h``: a branch-free loop that
    LLVM vectorises (AVX2 popcount). Hits are rare (about one candidate in 10**4 at
    radius 10), so kernels count first and rescan only the ranges that hit."""
    hits = 0
    for y in range(lo, hi):
        hits += _ctpop(h ^ hashes[y]) <= radius
    return hits


@njit(cache=True)
def build_table(hashes, shift, bits, order):
    """Counting sort of ``hashes`` (uint64, (n,)) by the ``bits``-bit substring at ``shift``.

    Stable, O(n + 2**b). Fills ``order`` (int32 or int64, (n,): entry id per sorted
    position; int32 saves a quarter of a large index's memory) and returns
    (starts, sorted_hashes, bitmap) as described in the module docstring. (A two-pass
    LSD radix sort, whose scatters stay in cache, measured within noise of this.)
    """
    n, mask = hashes.shape[0], (1 << bits) - 1
    starts = np.zeros((1 << bits) + 1, dtype=np.int64)
    for i in range(n):
        starts[_key(hashes[i], shift, mask) + 1] += 1
    bitmap = np.zeros(((1 << bits) + 63) >> 6, dtype=np.uint64)
    for k in range(1 << bits):
        if starts[k + 1]:
            bitmap[k >> 6] |= np.uint64(1) << np.uint64(k & 63)
        starts[k + 1] += starts[k]
    fill = starts[:-1].copy()
    sorted_hashes = np.empty(n, dtype=np.uint64)
    for i in range(n):
        k = _key(hashes[i], shift, mask)
        order[fill[k]], sorted_hashes[fill[k]] = i, hashes[i]
        fill[k] += 1
    return starts, sorted_hashes, bitmap


_AHEAD = 32  # buckets between prefetch and use in query_table (a few DRAM latencies)


@njit(cache=True)
def query_table(probes, shift, bits, masks, radius, starts, order, sorted_hashes, bitmap,
                n_entries, first, out, n_out):
    """Entries of one table within ``radius`` of each probe (uint64, (p,)).

    Looks up the buckets ``key(probe) ^ mask`` for each mask (int64, (V,)) and checks each
    occupant on all 64 bits, appending ``probe_row * n_entries + entry`` to ``out`` at
    ``n_out``. Starts at probe ``first``; returns (n_out, next probe): when ``out`` is
    full the next probe is the one that did not fit (its hits are not counted).

    In a large index every bucket is a cache miss, and the bucket's hashes a second one
    that depends on the first: the buckets are software-pipelined (prefetch the start
    offset, ``_AHEAD`` buckets later read it and prefetch the hashes, ``_AHEAD`` later
    scan them) so that misses overlap instead of queueing.
    """
    wmask = (1 << bits) - 1
    keys = np.empty(masks.shape[0], dtype=np.int64)
    lo, hi = np.empty(masks.shape[0], dtype=np.int64), np.empty(masks.shape[0], dtype=np.int64)
    for p in range(first, probes.shape[0]):
        h, k, n_before, c = probes[p], _key(probes[p], shift, wmask), n_out, 0
        for j in range(masks.shape[0]):
            keys[c] = k ^ masks[j]
            c += _occupied(bitmap, keys[c])  # branch-free: keep the occupied buckets
        for i in range(c + 2 * _AHEAD):
            if i < c:
                _prefetch(starts, keys[i])
            j = i - _AHEAD
            if 0 <= j < c:
                lo[j], hi[j] = starts[keys[j]], starts[keys[j] + 1]
                _prefetch(sorted_hashes, lo[j])
            j -= _AHEAD
            if j < 0 or _count_near(h, sorted_hashes, lo[j], hi[j], radius) == 0:
                continue
            for x in range(lo[j], hi[j]):
                if _ctpop(sorted_hashes[x] ^ h) <= radius:
                    n_out = _put(out, n_out, p * n_entries + order[x])
        if n_out > out.shape[0]:
            return n_before, p
    return n_out, probes.shape[0]


@njit(cache=True)
def join_blocks(a_keys, a_ptr, a_starts, a_order, a_hashes, block_bits, mask_hi, mask_ptr, mask_lo,
                radius, b_starts, b_order, b_hashes, b_bitmap, same, n_cols, first, out, n_out):
    """Pairs between bucket ``u`` of table A and bucket ``u ^ mask`` of table B, cache-blocked.

    The key space is cut into blocks of ``2**block_bits`` keys; ``a_keys`` (int64) are
    A's occupied keys, ascending, block ``k`` being ``a_keys[a_ptr[k]:a_ptr[k + 1]]``.
    Masks come grouped by their high part: group ``g`` is ``mask_hi[g] << block_bits``
    OR'ed with each of ``mask_lo[mask_ptr[g]:mask_ptr[g + 1]]``, so a whole group pairs
    block ``k`` of A with block ``k ^ mask_hi[g]`` of B and both stay in cache (walking
    mask by mask over the whole table streams the 32 MB bucket array once per mask).
    Pairs within ``radius`` on all 64 bits are appended as ``a_id * n_cols + b_id``.
    With ``same`` (A is B, a self-join) each pair of buckets is visited once, from the
    smaller key, pairs come as ``min * n_cols + max``, and mask 0 pairs only positions
    x < y of one bucket. Starts at group ``first``; returns (n_out, next group), as
    :func:`query_table` does for probes.
    """
    for g in range(first, mask_hi.shape[0]):
        n_before = n_out
        for blk in range(a_ptr.shape[0] - 1):
            if same and blk ^ mask_hi[g] < blk:
                continue
            for j in range(mask_ptr[g], mask_ptr[g + 1]):
                m = (mask_hi[g] << block_bits) | mask_lo[j]
                for i in range(a_ptr[blk], a_ptr[blk + 1]):
                    u = a_keys[i]
                    v = u ^ m
                    if (same and v < u) or not _occupied(b_bitmap, v):
                        continue
                    n_out = _bucket_pairs(a_starts[u], a_starts[u + 1], a_order, a_hashes,
                                          b_starts[v], b_starts[v + 1], b_order, b_hashes,
                                          radius, same, m == 0, n_cols, out, n_out)
        if n_out > out.shape[0]:
            return n_before, g
    return n_out, mask_hi.shape[0]


@njit(cache=True, inline="always")
def _bucket_pairs(a_lo, a_hi, a_order, a_hashes, b_lo, b_hi, b_order, b_hashes, radius, same,
                  one_bucket, n_cols, out, n_out):
    """Pairs of positions (x in A's bucket, y in B's) within ``radius``; see join_blocks.

    Each row is first counted by :func:`_count_near` and scanned again only when it hits.
    """
    for x in range(a_lo, a_hi):
        h, y0 = a_hashes[x], x + 1 if one_bucket and same else b_lo
        if _count_near(h, b_hashes, y0, b_hi, radius) == 0:
            continue
        for y in range(y0, b_hi):
            if _ctpop(h ^ b_hashes[y]) <= radius:
                p, q = a_order[x], b_order[y]
                if same and p > q:
                    p, q = q, p
                n_out = _put(out, n_out, p * n_cols + q)
    return n_out
