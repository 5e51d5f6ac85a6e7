"""Scale benchmark for the exact Hamming search (indexer.match.mih).

1 M random 64-bit hashes, a tenth of them planted neighbours of others at distances
0..12. Prints: index build time; batch self-join time at each radius; exactness (pair set
identical to brute force) on a 20 k subsample holding planted pairs, with brute-force time
as the baseline measured in the same run; incremental query latency (one hash, and the
10 probes an image sends: 8 D4 variants + 2 crop hashes) against the full index; peak RSS.
Times are wall clock and CPU (process) time; the machine may be shared.

    PYTHONPATH=. python bench/match_scale.py [--n 1000000] [--radius 8 10] [--queries 1000]
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from indexer.match.mih import MultiIndex, brute_pairs


def planted(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n hashes: 90% uniform random, 10% copies of random others with 0..12 bits flipped."""
    rng = np.random.default_rng(seed)
    n_plant = n // 10
    base = rng.integers(-(2**63), 2**63 - 1, n - n_plant, dtype=np.int64)
    src = rng.integers(0, len(base), n_plant)
    dist = np.arange(n_plant) % 13
    flips = np.zeros(n_plant, dtype=np.uint64)
    for d in range(1, 13):  # d distinct random bits per planted hash
        rows = np.flatnonzero(dist == d)
        bits = np.argsort(rng.random((len(rows), 64)), axis=1)[:, :d].astype(np.uint64)
        flips[rows] = np.bitwise_or.reduce(np.uint64(1) << bits, axis=1)
    near = (base[src].view(np.uint64) ^ flips).view(np.int64)
    return np.concatenate([base, near]), src, dist


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--radius", type=int, nargs="+", default=[8, 10])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--sub", type=int, default=20_000)
    args = ap.parse_args()
    hashes, src, dist = planted(args.n)
    n_base = args.n - len(src)
    print(f"{args.n:,} hashes, {len(src):,} planted neighbours at distances 0..12")

    rng = np.random.default_rng(1)
    pick = rng.choice(len(src), args.sub // 2, replace=False)  # planted pairs kept whole
    sub = hashes[np.unique(np.concatenate([src[pick], n_base + pick]))][: args.sub]
    for r in args.radius:
        index, w, c = timed(lambda: MultiIndex(hashes, radius=r))
        print(f"\nradius {r}: m={index.m} tables of {index.widths} bits; build {w:.2f} s wall, {c:.2f} s CPU")
        (a, b, d), w, c = timed(index.self_pairs)
        found = set(zip(a.tolist(), b.tolist()))
        recall = np.mean([(int(s), n_base + i) in found for i, s in enumerate(src) if dist[i] <= r])
        print(f"  batch: {len(a):,} pairs in {w:.1f} s wall, {c:.1f} s CPU "
              f"(target <= 20 s); planted pairs within radius found: {recall:.4f}")
        small = MultiIndex(sub, radius=r)
        (sa, sb, _), w_mih, _ = timed(small.self_pairs)
        brute, w_brute, _ = timed(lambda: brute_pairs(sub, r))
        same = set(zip(sa.tolist(), sb.tolist())) == brute
        print(f"  exactness on {len(sub):,}: {len(brute):,} pairs, identical to brute force: {same}; "
              f"MIH {w_mih:.2f} s vs brute force {w_brute:.2f} s ({w_brute / max(w_mih, 1e-9):.0f}x)")
        report_queries(index, hashes, args.queries, rng)
        del index
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {peak:.0f} MiB (input hashes: {hashes.nbytes / 2**20:.0f} MiB)")


def report_queries(index: MultiIndex, hashes: np.ndarray, n: int, rng) -> None:
    probes = hashes[rng.integers(0, len(hashes), n)]
    variants = rng.integers(-(2**63), 2**63 - 1, (n, 10), dtype=np.int64)
    variants[:, 0] = probes
    for label, batch in (("1 hash", probes[:, None]), ("10 probes (8 D4 + 2 crops)", variants)):
        lat = []
        for q in batch:
            t = time.perf_counter()
            index.query(q)
            lat.append(time.perf_counter() - t)
        lat = np.array(lat) * 1e3
        print(f"  incremental query, {label}: median {np.median(lat):.3f} ms, p99 "
              f"{np.percentile(lat, 99):.3f} ms (target median <= 2 ms)")


if __name__ == "__main__":
    main()
