"""The matcher's bookkeeping tables (indexer.match.tables): answers, and memory that stays
compact when images are added one at a time (an archive indexed from empty, a daemon)."""
from __future__ import annotations

import random

import numpy as np

from indexer.match.tables import FOLD_MIN, Held, HeldTable, KeyIndex


def test_key_index_folds_its_later_adds_and_answers_as_a_dict_would():
    rng = random.Random(5)
    base_keys = np.array([rng.randrange(-2**63, 2**63) for _ in range(500)], dtype=np.int64)
    index = KeyIndex(base_keys, np.arange(500, dtype=np.int64))
    truth: dict[int, set[int]] = {}
    for i, k in enumerate(base_keys.tolist()):
        truth.setdefault(k, set()).add(i)
    keys = base_keys.tolist()
    most = 0
    for image_id in range(500, 30_000):  # one at a time, some sharing a key, some removed again
        key = rng.choice(keys) if rng.random() < 0.05 else rng.randrange(-2**63, 2**63)
        keys.append(key)
        index.add(key, image_id)
        truth.setdefault(key, set()).add(image_id)
        if rng.random() < 0.02:
            gone_key = rng.choice(keys)
            if truth.get(gone_key):
                gone = min(truth[gone_key])
                index.remove(gone_key, gone)
                truth[gone_key].discard(gone)
        most = max(most, len(index.added) + len(index.dropped))
    # the Python objects are bounded (they were one per image added: 29,500 here)
    assert most <= max(FOLD_MIN, 30_000 // 8) + 1
    for key in rng.sample(keys, 2000):
        assert index.get(key) == sorted(truth[key])
    groups = sorted(tuple(g) for g in index.groups())
    assert groups == sorted(tuple(sorted(v)) for v in truth.values() if len(v) > 1)


def test_held_table_folds_its_changes_and_answers_as_a_dict_would():
    rng = random.Random(7)
    table = HeldTable.empty()
    truth: dict[int, Held] = {}
    most = 0
    for image_id in range(1, 25_000):
        held = Held(rng.randrange(2**40), rng.randrange(2**40), image_id * 11, 11, image_id * 3)
        table.set(image_id, held)
        truth[image_id] = held
        if rng.random() < 0.03:  # a forgotten image, or one held again with new entries
            other = rng.randrange(1, image_id + 1)
            again = None if rng.random() < 0.5 else held._replace(estart=-1, ecount=0, pstart=-1)
            table.set(other, again)
            if again is None:
                truth.pop(other, None)
            else:
                truth[other] = again
        most = max(most, len(table.changed))
    assert most <= max(FOLD_MIN, 25_000 // 8) + 1
    assert len(table) == len(truth)
    probe = rng.sample(range(1, 26_000), 3000)
    assert [table.get(i) for i in probe] == [truth.get(i) for i in probe]
    found, cols = table.lookup(np.array(probe, dtype=np.int64))
    assert found.tolist() == [i in truth for i in probe]
    assert cols["estart"].tolist() == [truth[i].estart if i in truth else 0 for i in probe]
    ids, _ = table.arrays()
    assert ids.tolist() == sorted(truth)


def test_a_matcher_fed_one_image_at_a_time_keeps_compact_state_per_image(monkeypatch):
    """What the writer keeps per image it matches (``index``, ``watch``): the hash index's
    arrays, measured ~1.5-1.8 kB an image here (docs/RELIABILITY.md). Python objects per
    image were 2 (a ``Held`` tuple and a list in each later-changes dict, with int keys:
    ~2.2 kB an image in all) before the tables folded them; a record cache that forgot
    its bound would add each record's 12 KB thumbnail. Folds from 256 changes here (4,096
    by default) so that a few thousand images show them."""
    import gc
    import tracemalloc

    from indexer.match.engine import Matcher
    from indexer.match.records import MatchRecord

    monkeypatch.setattr("indexer.match.tables.FOLD_MIN", 256)
    hist = np.zeros((4, 256), np.uint32)

    def synthetic(i: int) -> MatchRecord:  # random hashes: hardly any candidate pair
        h = np.random.default_rng(i).integers(-2**63, 2**63 - 1, 19, dtype=np.int64)
        return MatchRecord(id=i, sha256=f"{i:064x}", phash=int(h[0]), phash_d4=h[1:9], phash_crops=h[9:19],
                           thumb=np.zeros((96, 128), np.uint8), hist=hist, width=640, height=480,
                           entropy=7.0, luma_std=0.25, dhash=int(h[0]))

    matcher = Matcher(loader=lambda ids: [synthetic(i) for i in ids], cache_size=64)
    marks = {}
    tracemalloc.start()
    try:
        for i in range(1, 3001):
            matcher.propose_and_add(synthetic(i))
            if i in (1000, 3000):
                gc.collect()
                marks[i] = tracemalloc.get_traced_memory()[0], len(gc.get_objects())
    finally:
        tracemalloc.stop()
    assert len(matcher.index) == 3000
    per_image = (marks[3000][0] - marks[1000][0]) / 2000
    objects_per_image = (marks[3000][1] - marks[1000][1]) / 2000
    assert objects_per_image < 0.5, objects_per_image
    assert per_image < 2500, per_image
