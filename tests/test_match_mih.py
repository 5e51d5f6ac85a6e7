"""Multi-index hashing returns exactly the brute-force pair set."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.match.mih import MultiIndex, brute_pairs, neighbour_masks, thresholds, split_bits

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def _flip(h: int, bits) -> int:
    u = h & 0xFFFFFFFFFFFFFFFF
    for b in bits:
        u ^= 1 << int(b)
    return u - (1 << 64) if u >= 1 << 63 else u


def _planted(n_base: int, seed: int) -> tuple[np.ndarray, dict[tuple[int, int], int]]:
    """Random codes plus one neighbour of each of the first third, at distance 0..12."""
    rng = np.random.default_rng(seed)
    base = rng.integers(-(2**63), 2**63 - 1, n_base, dtype=np.int64)
    planted, truth = [], {}
    for i in range(n_base // 3):
        d = i % 13
        planted.append(_flip(int(base[i]), rng.choice(64, d, replace=False)))
        truth[(i, n_base + i)] = d
    return np.concatenate([base, np.array(planted, dtype=np.int64)]), truth


def test_gph_thresholds_sum():
    for m in range(3, 9):
        for r in range(0, 20):
            t = thresholds(r, split_bits(m))
            assert sum(t) == r - m + 1 and min(t) >= -1 and max(t) - min(t) <= 1


def test_neighbour_masks_count():
    assert len(neighbour_masks(16, 2)) == 1 + 16 + 120
    assert len(set(neighbour_masks(21, 3).tolist())) == 1 + 21 + 210 + 1330


@pytest.mark.parametrize("radius", [0, 3, 6, 8, 10, 12])
@pytest.mark.parametrize("m", [None, 3, 4, "flat"])
def test_planted_neighbours_equal_brute_force(radius, m):
    hashes, truth = _planted(1500, seed=radius)
    index = MultiIndex(hashes, radius=radius, flat_max=10**6) if m == "flat" else \
        MultiIndex(hashes, radius=radius, m=m, flat_max=0)
    assert index.flat == (m == "flat")
    a, b, d = index.self_pairs()
    got = set(zip(a.tolist(), b.tolist()))
    assert got == brute_pairs(hashes, radius)
    for pair, dist in truth.items():
        assert (pair in got) == (dist <= radius)
    assert np.all(d <= radius) and np.all(a < b)


@settings(max_examples=40, deadline=None)
@given(st.lists(INT64, min_size=2, max_size=80), st.integers(0, 64), st.integers(0, 12), st.sampled_from([0, 4096]))
def test_hypothesis_self_pairs_and_query(codes, seed, radius, flat_max):
    rng = np.random.default_rng(seed)
    # Near copies so that small radii have pairs to find.
    near = [_flip(c, rng.choice(64, rng.integers(0, 8), replace=False)) for c in codes[: len(codes) // 2]]
    hashes = np.array(codes + near, dtype=np.int64)
    index = MultiIndex(hashes, radius=radius, flat_max=flat_max)
    a, b, _ = index.self_pairs()
    expected = brute_pairs(hashes, radius)
    assert set(zip(a.tolist(), b.tolist())) == expected
    p, e, d = index.query(hashes[:5])
    for q in range(min(5, len(hashes))):
        want = set(np.flatnonzero(np.bitwise_count((hashes ^ hashes[q]).view(np.uint64)) <= radius).tolist())
        assert set(e[p == q].tolist()) == want


@pytest.mark.parametrize("flat_max", [0, 10**6])
def test_join_and_incremental_add(flat_max):
    hashes, _ = _planted(3000, seed=7)
    index = MultiIndex(hashes, radius=10, flat_max=flat_max)
    assert index.flat == bool(flat_max)
    rng = np.random.default_rng(3)
    probes = np.array([_flip(int(hashes[i]), rng.choice(64, i % 12, replace=False)) for i in range(200)],
                      dtype=np.int64)
    p, e, d = index.join(probes)
    brute = {(i, j) for i in range(len(probes))
             for j in np.flatnonzero(np.bitwise_count((hashes ^ probes[i]).view(np.uint64)) <= 10).tolist()}
    assert set(zip(p.tolist(), e.tolist())) == brute
    q_p, q_e, _ = index.query(probes)
    assert set(zip(q_p.tolist(), q_e.tolist())) == brute
    ids = index.add(probes[:3])  # buffered, found by queries before any rebuild
    _, e2, d2 = index.query(probes[1])
    assert ids[1] in e2.tolist() and 1 in e2.tolist()
    index.rebuild()
    a, b, _ = index.self_pairs()
    assert set(zip(a.tolist(), b.tolist())) == brute_pairs(index.hashes, 10)


def test_empty_and_tiny_index():
    index = MultiIndex(np.array([5], dtype=np.int64), radius=4)
    assert len(index.self_pairs()[0]) == 0
    p, e, d = index.query([5, 4])
    assert e.tolist() == [0, 0] and d.tolist() == [0, 1]


@pytest.mark.parametrize("m", [3, 4])
def test_dense_buckets_and_resumed_output(m, monkeypatch):
    """Repeated codes (pairs inside one bucket) and an output buffer of one slot, so every
    kernel stops at each unit and resumes with a grown buffer."""
    from indexer.match import mih

    monkeypatch.setattr(mih.Found.__init__, "__defaults__", (1,))
    rng = np.random.default_rng(11)
    base = rng.integers(-(2**63), 2**63 - 1, 40, dtype=np.int64)
    hashes = np.array([_flip(int(base[i % 40]), rng.choice(64, i % 5, replace=False)) for i in range(400)],
                      dtype=np.int64)
    index = MultiIndex(hashes, radius=6, m=m)
    a, b, d = index.self_pairs()
    assert set(zip(a.tolist(), b.tolist())) == brute_pairs(hashes, 6)
    assert np.array_equal(d, np.bitwise_count((hashes[a] ^ hashes[b]).view(np.uint64)))
    p, e, _ = index.join(hashes[:50])
    q_p, q_e, _ = index.query(hashes[:50])
    want = {(i, j) for i in range(50)
            for j in np.flatnonzero(np.bitwise_count((hashes ^ hashes[i]).view(np.uint64)) <= 6).tolist()}
    assert set(zip(p.tolist(), e.tolist())) == want == set(zip(q_p.tolist(), q_e.tolist()))


def test_adds_through_buffer_recent_index_and_rebuilds_equal_brute_force():
    """One image at a time (buffer of 8, recent index up to a quarter of the tables):
    every query after every add equals brute force over all entries so far, and entry
    numbers never change."""
    hashes, _ = _planted(400, seed=11)
    index = MultiIndex(hashes[:200], radius=10, buffer_limit=8, recent_fraction=0.25, flat_max=0)
    rng = np.random.default_rng(5)
    seen_recent = seen_rebuild = False
    for i in range(200, len(hashes)):
        n_main = index.n_indexed
        assert index.add(hashes[i:i + 1]).tolist() == [i]
        seen_recent |= index.n_recent > 0
        seen_rebuild |= index.n_indexed > n_main
        probe = np.array([_flip(int(hashes[rng.integers(0, i + 1)]), rng.choice(64, 6, replace=False))])
        _, e, d = index.query(probe)
        close = np.flatnonzero(np.bitwise_count((hashes[:i + 1] ^ probe[0]).view(np.uint64)) <= 10)
        assert e.tolist() == close.tolist()
        assert d.tolist() == np.bitwise_count((hashes[close] ^ probe[0]).view(np.uint64)).tolist()
    assert seen_recent and seen_rebuild
    assert index.all_hashes().tolist() == hashes.tolist()


def test_flat_index_grows_into_tables_and_round_trips_state():
    """A flat index (no numba tables) adding one entry at a time builds its tables once
    past ``flat_max``; every query equals brute force before and after, entry numbers
    never change, and a saved flat index loads flat."""
    hashes, _ = _planted(300, seed=5)
    index = MultiIndex(hashes[:100], radius=10, flat_max=150, buffer_limit=8)
    assert index.flat and index.tables == []
    again = MultiIndex.from_state(index.state())
    assert again.flat and again.self_pairs()[0].tolist() == index.self_pairs()[0].tolist()
    rng = np.random.default_rng(9)
    for i in range(100, len(hashes)):
        assert index.add(hashes[i:i + 1]).tolist() == [i]
        assert index.flat == (i + 1 <= 150)
        probe = np.array([_flip(int(hashes[rng.integers(0, i + 1)]), rng.choice(64, 5, replace=False))])
        _, e, d = index.query(probe)
        close = np.flatnonzero(np.bitwise_count((hashes[:i + 1] ^ probe[0]).view(np.uint64)) <= 10)
        assert e.tolist() == close.tolist()
    a, b, _ = index.self_pairs()
    assert set(zip(a.tolist(), b.tolist())) == brute_pairs(hashes, 10)
