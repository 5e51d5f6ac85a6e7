"""A saved index, loaded and brought up to date, proposes what a fresh build would.

Synthetic hash rows (random 64-bit hashes with planted near neighbours): candidates are
a matter of hashes, so no pixels are needed. Every check compares the proposals of the
same probes against a matcher built from scratch over the final rows.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from indexer.match import snapshot
from indexer.match.engine import Matcher, MatchParams, MatchRecord
from indexer.match.records import IndexRows


def rand_rows(ids, rng, *, near: dict[int, IndexRows] | None = None, bits: int = 3) -> IndexRows:
    """Rows of random hashes for ``ids``; ``near[id] = (rows, k)`` plants row ``id`` within
    ``bits`` of row ``k`` of ``rows`` on every hash."""
    n = len(ids)
    h = rng.integers(-(2**63), 2**63 - 1, size=(n, 19), dtype=np.int64)
    for i, image_id in enumerate(ids):
        if near and image_id in near:
            src, k = near[image_id]
            base = np.concatenate([[src.phash[k]], src.d4[k], src.crops[k]])
            flips = np.zeros(19, dtype=np.uint64)
            for j in range(19):
                for b in rng.choice(64, bits, replace=False):
                    flips[j] |= np.uint64(1) << np.uint64(int(b))
            h[i] = (base.view(np.uint64) ^ flips).view(np.int64)
    d4 = h[:, 1:9].copy()
    d4[:, 0] = h[:, 0]
    return IndexRows(ids=np.asarray(ids, dtype=np.int64), sha=rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64),
                     phash=h[:, 0].copy(), d4=d4, crops=h[:, 9:].copy(), n_crops=np.full(n, 10),
                     informative=np.ones(n, dtype=bool))


def concat(*parts: IndexRows) -> IndexRows:
    rows = IndexRows(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                       ("ids", "sha", "phash", "d4", "crops", "n_crops", "informative")))
    return rows.take(np.argsort(rows.ids, kind="stable"))


def probe_record(rows: IndexRows, k: int, new_id: int) -> MatchRecord:
    """A new image with row ``k``'s hashes (so it proposes that row and its neighbours)."""
    return MatchRecord(id=new_id, sha256=hashlib.sha256(str(new_id).encode()).hexdigest(), phash=int(rows.phash[k]), phash_d4=rows.d4[k].copy(),
                       phash_crops=rows.crops[k].copy(), thumb=np.zeros((96, 128), np.uint8),
                       hist=np.zeros((4, 256), np.uint32), width=128, height=96, entropy=7.0, luma_std=0.2)


def proposals(m: Matcher, probes: list[MatchRecord]) -> dict:
    """(pair -> best distance) proposed by each probe, each against the same state."""
    out = {}
    for rec in probes:
        props = m.propose_and_add(rec)
        out[rec.id] = {key: min(p.hamming for p in slot.values()) for key, slot in props.items()}
        m.forget([rec.id])
    return out


@pytest.fixture
def base():
    rng = np.random.default_rng(3)
    first = rand_rows(range(1, 301), rng)
    near = {i: (first, i - 301) for i in range(301, 341)}  # 40 rows near rows 1..40
    return concat(first, rand_rows(range(301, 341), rng, near=near)), rng


def test_saved_index_loads_equal(tmp_path, base):
    rows, _ = base
    m = Matcher.from_rows(rows)
    path = snapshot.save(tmp_path / "x.idx", snapshot.state_of(m), {"config": snapshot.config_key(m.params)})
    loaded, info = snapshot.load(path, snapshot.config_key(MatchParams()))
    probes = [probe_record(rows, k, 10_000 + k) for k in range(0, 60, 3)]
    expected = proposals(m, probes)
    assert any(len(v) > 1 for v in expected.values())  # the planted neighbours are proposed
    assert proposals(loaded, probes) == expected


def test_unusable_files_are_refused(tmp_path, base):
    rows, _ = base
    m = Matcher.from_rows(rows)
    key = snapshot.config_key(m.params)
    with pytest.raises(snapshot.Unusable, match="no saved index"):
        snapshot.load(tmp_path / "none.idx", key)
    path = snapshot.save(tmp_path / "x.idx", snapshot.state_of(m), {"config": key})
    with pytest.raises(snapshot.Unusable, match="other settings"):
        snapshot.load(path, snapshot.config_key(MatchParams(radius=8)))
    whole = path.read_bytes()
    path.write_bytes(whole[:5000])  # truncated
    with pytest.raises(snapshot.Unusable, match="truncated"):
        snapshot.load(path, key)
    path.write_bytes(whole[:40])  # cut in its header
    with pytest.raises(snapshot.Unusable, match="unreadable"):
        snapshot.load(path, key)
    path.write_bytes(b"PK\x03\x04" + whole[4:])  # not ours
    with pytest.raises(snapshot.Unusable, match="not a photoqa matching index"):
        snapshot.load(path, key)


def test_sync_equals_a_fresh_build(tmp_path, base):
    """Rows gone, re-indexed with other hashes, re-indexed with the same hashes, and new
    (some near old rows): after sync, and after compacting and a save/load round trip,
    the proposals are those of a matcher built from the final rows."""
    rows, rng = base
    m = Matcher.from_rows(rows)
    gone = list(range(5, 35, 3))
    rehashed = rand_rows([2, 4, 40, 302, 320], rng, near={2: (rows, 100)})
    same = rows.take(np.isin(rows.ids, [7, 8, 9]))
    new = rand_rows(range(341, 381), rng, near={i: (rows, i - 341 + 100) for i in range(341, 361)})
    keep = ~np.isin(rows.ids, [*gone, *rehashed.ids.tolist()])
    final = concat(rows.take(keep), rehashed, new)
    assert m.sync(concat(rehashed, same, new), gone) == len(gone) + len(rehashed) + len(new)
    assert m.index.dead_entries == 11 * (len(gone) + len(rehashed))
    fresh = Matcher.from_rows(final)
    probes = [probe_record(final, k, 10_000 + k) for k in range(0, len(final), 7)]
    expected = proposals(fresh, probes)
    assert proposals(m, probes) == expected
    m.compact()
    assert m.index.dead_entries == 0 and m.index.entry_count == fresh.index.entry_count - fresh.index.dead_entries
    assert proposals(m, probes) == expected
    path = snapshot.save(tmp_path / "x.idx", snapshot.state_of(m), {"config": snapshot.config_key(m.params)})
    loaded, _ = snapshot.load(path, snapshot.config_key(m.params))
    assert proposals(loaded, probes) == expected
    assert m.sync(final) == 0  # nothing changed since
    flat = final.take(np.array([3]))
    flat.informative[:] = False  # re-indexed as a flat picture with the same hashes: not indexed now
    assert m.sync(flat) == 1
    assert proposals(m, [probe_record(final, 3, 20_000)])[20_000] == {}


def test_twin_takes_over_when_its_representative_goes(base):
    """Three byte-different copies with equal hashes and content: one is indexed, the
    others are its twins; when it goes, the next takes its entries over."""
    rows, rng = base
    twins = rand_rows([500, 501, 502], rng)
    for f in ("phash", "d4", "crops"):
        getattr(twins, f)[1:] = getattr(twins, f)[0]
    all_rows = concat(rows, twins)
    recs = [probe_record(all_rows, int(np.flatnonzero(all_rows.ids == i)[0]), i) for i in (500, 501, 502)]
    m = Matcher.from_rows(all_rows, records=recs)
    assert m.index.twin_links() == {501: 500, 502: 500}
    probe = probe_record(twins, 0, 9_999)  # near them, but another picture: searches the index
    probe.phash ^= 1
    probe.phash_d4 = probe.phash_d4 ^ 1
    probe.thumb = np.ones((96, 128), np.uint8)
    assert set(proposals(m, [probe])[9_999]) == {(500, 9_999)}
    m.forget([500])
    assert m.index.twin_links() == {502: 501}
    assert set(proposals(m, [probe])[9_999]) == {(501, 9_999)}
    for rec in recs[:1]:
        m.records.put(rec)
    m.insert(twins.take(np.array([0])))  # the lowest id comes back: it represents them again
    assert m.index.twin_links() == {501: 500, 502: 500}
    assert set(proposals(m, [probe])[9_999]) == {(500, 9_999)}
    m.forget([500, 501, 502])
    assert proposals(m, [probe])[9_999] == {} and m.index.twin_links() == {}
    for rec in recs[1:]:  # back, as catch-up would bring them (their records from the loader)
        m.records.put(rec)
    m.insert(twins.take(np.array([1, 2])))
    assert m.index.twin_links() == {502: 501}
    assert set(proposals(m, [probe])[9_999]) == {(501, 9_999)}


def test_reindexed_image_leaves_no_stale_entries(base):
    """An image added again (its file changed) is matched with its new hashes only."""
    rows, rng = base
    m = Matcher.from_rows(rows)
    assert {(1, 9_000), (301, 9_000)} <= set(proposals(m, [probe_record(rows, 0, 9_000)])[9_000])
    old = probe_record(rows, 0, int(rows.ids[0]))
    other = rand_rows([int(rows.ids[0])], rng)
    changed = probe_record(other, 0, int(rows.ids[0]))
    assert m.propose_and_add(changed) == {}  # its old self is not a candidate
    probe = probe_record(rows, 0, 9_000)  # the old hashes: only row 301, planted near them
    assert set(proposals(m, [probe])[9_000]) == {(301, 9_000)}
    assert old.id in m.index
