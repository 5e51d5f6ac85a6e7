"""The near-duplicate engine finds planted copies, names the transform, and rejects the rest."""
from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from indexer.measure import orient
from indexer.measure.features import measure
from indexer.match.engine import Matcher, MatchParams, MatchRecord, run_job
from indexer.match.verdict import MatchThresholds


def scene(seed: int, shape=(256, 384)) -> np.ndarray:
    """uint8 RGB texture with structure at several scales (no symmetry)."""
    rng = np.random.default_rng(seed)
    chans = []
    for _ in range(3):
        img = sum(ndimage.gaussian_filter(rng.normal(size=shape), s) * s for s in (2, 6, 18, 40))
        chans.append((img - img.min()) / np.ptp(img))
    return np.clip(np.stack(chans, -1) * 255, 0, 255).astype(np.uint8)


def record(rid: int, rgb8: np.ndarray, sha: str | None = None) -> MatchRecord:
    """What the indexer would store, computed from an in-memory image."""
    img = Image.fromarray(rgb8)
    if max(img.size) > 256:
        s = 256 / max(img.size)
        img = img.resize((round(img.width * s), round(img.height * s)), Image.Resampling.LANCZOS)
    f = measure(np.asarray(img, dtype=np.float32) / 255.0)
    return MatchRecord(
        id=rid, sha256=sha or hashlib.sha256(rgb8.tobytes()).hexdigest(), phash=f.phash, dhash=f.dhash,
        phash_d4=f.phash_d4, phash_crops=f.phash_crops, thumb=f.thumb, hist=f.hist,
        width=rgb8.shape[1], height=rgb8.shape[0], entropy=f.entropy, luma_std=f.luma_std)


def jpeg(rgb8: np.ndarray, q: int = 85) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb8).save(buf, "JPEG", quality=q)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def exposed(rgb8: np.ndarray, ev: float) -> np.ndarray:
    v = rgb8 / 255.0
    lin = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4) * 2.0**ev
    lin = np.clip(lin, 0, 1)
    out = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def moved_object(rgb8: np.ndarray, seed: int = 0) -> np.ndarray:
    """A burst neighbour: a 28% x 28% region moves sideways, the camera shakes 2 px."""
    h, w = rgb8.shape[:2]
    out = rgb8.copy()
    bh, bw = int(h * 0.28), int(w * 0.28)
    sy, sx = h // 3, w // 8
    out[sy:sy + bh, sx + w // 3:sx + w // 3 + bw] = rgb8[sy:sy + bh, sx:sx + bw]
    return np.roll(out, (2, -2), axis=(0, 1))


def by_pair(pairs):
    return {(p.a, p.b): p for p in pairs}


def test_all_eight_orientations_found_with_their_transform():
    base = scene(1)
    recs = [record(0, base)] + [record(i + 1, np.ascontiguousarray(orient.apply(base, t)))
                                for i, t in enumerate(orient.D4[1:])]
    pairs = by_pair(Matcher.from_records(recs).batch_pairs())
    for i, t in enumerate(orient.D4[1:], start=1):
        p = pairs[(0, i)]
        assert p.verdict == "derived", (t, p)
        assert p.transform == t  # b = apply(a, transform)
        assert p.correlation > 0.97 and p.scale == pytest.approx(1.0, abs=0.03)


def test_resized_and_recompressed_copy_reports_scale():
    base = scene(2, (400, 600))
    small = np.asarray(Image.fromarray(base).resize((300, 200), Image.Resampling.LANCZOS))
    pairs = by_pair(Matcher.from_records([record(0, base), record(1, jpeg(small, 60))]).batch_pairs())
    p = pairs[(0, 1)]
    assert p.verdict == "derived"
    assert p.scale == pytest.approx(0.5, abs=0.02)
    assert abs(p.shift[0]) < 3 and abs(p.shift[1]) < 3
    assert "resized 50%" in p.description


def test_burst_neighbour_is_similar_not_derived():
    base = scene(3)
    pairs = by_pair(Matcher.from_records([record(0, base), record(1, moved_object(base))]).batch_pairs())
    assert pairs[(0, 1)].verdict == "similar"


@pytest.mark.parametrize("ev", [-1.0, 0.7])
def test_exposure_change_is_exposure_variant(ev):
    base = scene(4)
    pairs = by_pair(Matcher.from_records([record(0, base), record(1, exposed(base, ev))]).batch_pairs())
    p = pairs[(0, 1)]
    assert p.verdict == "exposure_variant"
    assert p.delta_ev == pytest.approx(ev, abs=0.25)


def test_flat_images_are_gated():
    rng = np.random.default_rng(0)
    flats = [np.full((200, 300, 3), v, np.uint8) + rng.integers(0, 2, (200, 300, 3), dtype=np.uint8)
             for v in (90, 120, 160)]
    recs = [record(i, f) for i, f in enumerate(flats)]
    assert all(not Matcher().is_informative(r) for r in recs)
    recs.append(record(3, flats[0], sha=recs[0].sha256))  # the same file twice still pairs
    pairs = Matcher.from_records(recs).batch_pairs()
    assert [(p.a, p.b, p.verdict) for p in pairs] == [(0, 3, "same_file")]
    loose = MatchThresholds(min_entropy=0, min_luma_std=0)
    assert Matcher(MatchParams(thresholds=loose)).is_informative(recs[0])


def test_same_pixels_uses_the_callable_only_for_untouched_looking_pairs():
    base, other = scene(5), scene(6)
    calls = []

    def pixels_equal(a, b):
        calls.append((a, b))
        return (a, b) == (0, 1)

    recs = [record(0, base, sha="x"), record(1, base, sha="y"), record(2, jpeg(base, 50)), record(3, other)]
    pairs = by_pair(Matcher.from_records(recs, pixels_equal=pixels_equal).batch_pairs())
    assert pairs[(0, 1)].verdict == "same_pixels"
    assert pairs[(0, 2)].verdict == "derived"
    assert (1, 2) not in pairs  # 1 measures exactly as 0: represented by it, linked to it only
    assert (0, 3) not in pairs
    assert (0, 1) in calls and len(calls) <= 3


@pytest.mark.parametrize("fold_min", [None, 0])
def test_incremental_equals_batch(monkeypatch, fold_min):
    """``fold_min`` 0: the index's tables fold their later changes into arrays at nearly
    every add (indexer.match.tables), which must change no answer."""
    if fold_min is not None:
        monkeypatch.setattr("indexer.match.tables.FOLD_MIN", fold_min)
    base = scene(7)
    imgs = [base, jpeg(base, 70), np.ascontiguousarray(orient.apply(base, "rot90")), scene(8),
            exposed(base, -0.8), np.ascontiguousarray(base[20:230, 30:350])]
    recs = [record(i, im) for i, im in enumerate(imgs)]
    batch = {(p.a, p.b, p.verdict, p.transform) for p in Matcher.from_records(recs).batch_pairs()}
    inc, m = set(), Matcher()
    for r in recs:
        inc |= {(p.a, p.b, p.verdict, p.transform) for p in m.add_and_match(r)}
    assert inc == batch
    assert {(a, b) for a, b, *_ in batch} >= {(0, 1), (0, 2), (0, 4), (0, 5)}
    assert not any(3 in (a, b) for a, b, *_ in batch)
    m.forget([0])  # the original leaves: its copies still pair with each other, not with it
    again = {(p.a, p.b, p.verdict) for p in m.add_and_match(record(9, base))}
    assert {(a, b) for a, b, _ in again} >= {(1, 9), (2, 9), (4, 9), (5, 9)} and not any(0 in k[:2] for k in again)


def test_distinct_kodak_photos_never_pair(shared_data):
    paths = sorted((shared_data / "photos" / "kodak").glob("kodim*.png"))
    assert len(paths) == 24
    recs = [record(i, np.asarray(Image.open(p).convert("RGB"))) for i, p in enumerate(paths)]
    assert Matcher.from_records(recs).batch_pairs() == []


@pytest.mark.parametrize("keep, oy, ox", [(0.8, 40, 60), (0.9, 25, 38), (0.95, 0, 30)])
def test_kodak_crops_verified(shared_data, keep, oy, ox):
    full = np.asarray(Image.open(shared_data / "photos" / "kodak" / "kodim05.png").convert("RGB"))
    h, w = round(full.shape[0] * keep), round(full.shape[1] * keep)
    crop = jpeg(np.ascontiguousarray(full[oy:oy + h, ox:ox + w]), 90)
    m = Matcher.from_records([record(0, full), record(1, crop)], MatchParams(radius=20))
    p = by_pair(m.batch_pairs())[(0, 1)]
    assert p.verdict == "derived"
    assert p.scale == pytest.approx(1.0, abs=0.03)
    assert p.shift == pytest.approx((ox, oy), abs=3.0)


def test_separate_exposures_are_similar_not_derived():
    from datetime import datetime, timedelta

    base = scene(9)
    t0 = datetime(2024, 5, 1, 12, 0, 0, 350000)
    recs = [record(0, base), record(1, jpeg(base, 80)), record(2, jpeg(base, 75))]
    recs[0].captured_at, recs[1].captured_at = t0, t0 + timedelta(seconds=0.118)  # a burst
    recs[2].captured_at = t0.replace(microsecond=0)  # a copy that lost its sub-seconds
    pairs = by_pair(Matcher.from_records(recs).batch_pairs())
    assert pairs[(0, 1)].verdict == "similar" and pairs[(0, 1)].time_gap_s == pytest.approx(0.118)
    assert pairs[(0, 2)].verdict == "derived"
    loose = Matcher.from_records(recs, MatchParams(thresholds=MatchThresholds(shots_are_not_copies=False)))
    assert by_pair(loose.batch_pairs())[(0, 1)].verdict == "derived"


def _centred_only(rec: MatchRecord) -> MatchRecord:
    """The record as FEATURES_VERSION 1 stored it: only the two centred crop hashes."""
    from dataclasses import replace
    return replace(rec, phash_crops=rec.phash_crops[:2].copy())


@pytest.mark.parametrize("keep, corner", [(0.82, (0, 0)), (0.85, (1, 1)), (0.8, (0, 1))])
def test_kodak_off_centre_crops_found_at_default_radius(shared_data, keep, corner):
    full = np.asarray(Image.open(shared_data / "photos" / "kodak" / "kodim05.png").convert("RGB"))
    h, w = round(full.shape[0] * keep), round(full.shape[1] * keep)
    oy, ox = corner[1] * (full.shape[0] - h), corner[0] * (full.shape[1] - w)
    crop = jpeg(np.ascontiguousarray(full[oy:oy + h, ox:ox + w]), 90)
    recs = [record(0, full), record(1, crop)]
    p = by_pair(Matcher.from_records(recs).batch_pairs())[(0, 1)]
    assert p.verdict == "derived"
    assert p.shift == pytest.approx((ox, oy), abs=4.0)
    # the centred crop hashes alone (the old layout) do not propose this pair
    assert Matcher.from_records([_centred_only(r) for r in recs]).batch_pairs() == []


def test_old_layout_records_mix_with_new_ones():
    base = scene(11)
    imgs = [base, jpeg(base, 70), np.ascontiguousarray(base[0:215, 0:326]), scene(12)]
    recs = [record(i, im) for i, im in enumerate(imgs)]
    recs[1] = _centred_only(recs[1])
    recs.append(MatchRecord(id=9, sha256="x", phash=recs[0].phash, phash_d4=recs[0].phash_d4,
                            phash_crops=np.zeros(0, np.int64), thumb=recs[0].thumb, hist=recs[0].hist,
                            width=384, height=256, entropy=recs[0].entropy, luma_std=recs[0].luma_std))
    batch = {(p.a, p.b, p.verdict) for p in Matcher.from_records(recs).batch_pairs()}
    inc, m = set(), Matcher()
    for r in recs:
        inc |= {(p.a, p.b, p.verdict) for p in m.add_and_match(r)}
    assert inc == batch
    assert {(a, b) for a, b, _ in batch} >= {(0, 1), (0, 2), (0, 9), (1, 9)}
    assert not any(3 in (a, b) for a, b, _ in batch)


def test_identical_copies_are_verified_once(monkeypatch):
    from indexer.match import jobs as engine

    calls = []
    real = engine.compare

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "compare", counting)
    base = scene(3)
    copies = [record(i, base, sha="same-bytes") for i in range(1, 6)]  # five byte-identical files
    m = Matcher.from_records(copies)
    found = m.add_and_match(record(9, jpeg(base, q=60)))
    # the five measure alike: one of them stands for all in the index, one pair links 9 to them
    assert [(p.a, p.b, p.verdict) for p in found] == [(1, 9, "derived")]
    assert len(calls) <= 2  # one verification (at most one per transform tried), not five
    assert [(p.a, p.b, p.verdict) for p in Matcher.from_records(copies).batch_pairs()] == \
        [(1, i, "same_file") for i in range(2, 6)]  # a star, not 10 pairs


def _count_compares(monkeypatch) -> list:
    from indexer.match import jobs as engine

    calls, real = [], engine.compare

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "compare", counting)
    return calls


def test_byte_different_copies_of_one_picture_are_verified_once_across_adds(monkeypatch):
    """Copies whose bytes differ (rewritten metadata) but whose pixels measure the same
    are aligned against a new image once, and again never for later arrivals."""
    calls = _count_compares(monkeypatch)
    base = scene(3)
    m = Matcher.from_records([record(i, base, sha=f"copy-{i}") for i in range(1, 4)])
    first = m.add_and_match(record(9, jpeg(base, q=60), sha="recompressed-1"))
    after_first = len(calls)
    second = m.add_and_match(record(10, jpeg(base, q=60), sha="recompressed-2"))
    assert [(p.a, p.b, p.verdict) for p in first] == [(1, 9, "derived")]  # 1 stands for 2 and 3
    assert after_first <= 2
    # 10 measures exactly as 9: linked to 9 by one verification, never probed against the rest
    assert [(p.a, p.b) for p in second] == [(9, 10)]


def test_jobs_of_content_identical_copies_share_one_verification(monkeypatch):
    """The memo is keyed by what verification reads (thumbnail, histogram, size): a new
    image against three byte-different copies of one picture costs one alignment."""
    calls = _count_compares(monkeypatch)
    base = scene(3)
    copies = [record(i, base, sha=f"copy-{i}") for i in range(1, 4)]
    m = Matcher.from_records(copies[:1])
    new = record(9, jpeg(base, q=60), sha="recompressed")
    jobs = [j for c in copies for j in Matcher.from_records([c]).add(new)]
    for job in jobs:
        m.conclude(job, m.memo.get(job.key(m.max_transforms))
                   or m.memo.put(job.key(m.max_transforms), run_job(job, m.th, m.max_transforms)))
    assert len(jobs) == 3 and len(calls) <= 2


def test_split_incremental_api_equals_add_and_match():
    """``add`` + ``run_job`` + ``conclude`` (how a caller verifies in worker processes)
    finds what ``add_and_match`` finds."""
    from indexer.match.engine import run_job

    base, other = scene(5), scene(6)
    recs = [record(1, base), record(2, jpeg(base, q=50)), record(3, other), record(4, np.rot90(base).copy())]
    whole, split = Matcher.from_records(recs[:1]), Matcher.from_records(recs[:1])
    expected = {(p.a, p.b, p.verdict, p.transform) for r in recs[1:] for p in whole.add_and_match(r)}
    got = set()
    for r in recs[1:]:
        for job in split.add(r):
            pe = split.conclude(job, run_job(job, split.th, split.max_transforms))
            if pe is not None:
                got.add((pe.a, pe.b, pe.verdict, pe.transform))
    assert got == expected
    assert {(1, 2), (1, 4), (2, 4)} <= {(a, b) for a, b, _, _ in got}


def test_index_from_rows_fetches_records_of_candidates_only():
    """Start-up from index columns: the thumbnails of candidate pairs are fetched on
    demand (a bounded cache), and the pairs equal those of a matcher holding every record."""
    from indexer.match.engine import rows_of

    base, other = scene(21), scene(22)
    recs = [record(i, scene(30 + i)) for i in range(1, 7)] + [record(7, base), record(8, other)]
    fetched: list[int] = []

    new = [record(9, jpeg(base, q=50)), record(10, np.rot90(other).copy()), record(11, base, sha=recs[6].sha256)]

    def loader(ids):  # the database: new images are stored before they are matched
        fetched.extend(ids)
        return [r for r in recs + new if r.id in ids]

    lazy = Matcher.from_rows(rows_of(recs, MatchThresholds()), loader=loader, cache_size=2)
    full = Matcher.from_records(recs)
    got = [{(p.a, p.b, p.verdict, p.transform) for p in lazy.add_and_match(r)} for r in new]
    want = [{(p.a, p.b, p.verdict, p.transform) for p in full.add_and_match(r)} for r in new]
    assert got == want
    assert (7, 9, "derived", "identity") in got[0] and (7, 11, "same_file", "identity") in got[2]
    assert set(fetched) <= {7, 8, 9, 10}  # never the unrelated images
    assert len(lazy.records.items) <= 2


def test_a_lone_far_crop_hit_needs_corroboration_unless_asked(shared_data):
    """kodim05 cropped to 80% at its top-right corner meets the original through one
    crop-channel hit at 14 bits: by default (archive scale) that is not enough, with
    ``crop_hits = 1`` it is proposed and verified."""
    full = np.asarray(Image.open(shared_data / "photos" / "kodak" / "kodim05.png").convert("RGB"))
    h, w = round(full.shape[0] * 0.8), round(full.shape[1] * 0.8)
    crop = jpeg(np.ascontiguousarray(full[:h, full.shape[1] - w:]), 90)
    recs = [record(0, full), record(1, crop)]
    assert Matcher.from_records(recs).batch_pairs() == []
    (p,) = Matcher.from_records(recs, MatchParams(crop_hits=1)).batch_pairs()
    assert p.verdict == "derived" and p.hamming == 14


def _hash_record(rid: int, phash: int, crops: np.ndarray, rng) -> MatchRecord:
    d4 = rng.integers(-(2**63), 2**63 - 1, 8, dtype=np.int64)
    d4[0] = phash
    return MatchRecord(id=rid, sha256=f"{rid:064x}"[::-1], phash=phash, phash_d4=d4, phash_crops=crops,
                       thumb=np.zeros((96, 128), np.uint8), hist=np.zeros((4, 256), np.uint32),
                       width=1024, height=768, entropy=7.0, luma_std=0.2)


def _flip(h: int, bits: int, rng) -> int:
    """``h`` with ``bits`` distinct random bits flipped (signed int64)."""
    mask = np.uint64(sum(1 << int(b) for b in rng.choice(64, bits, replace=False)))
    return int((np.array([h], dtype=np.int64).view(np.uint64) ^ mask).view(np.int64)[0])


def test_far_crop_channel_hits_are_proposed_only_when_corroborated():
    """Planted hashes: one hit at 13 bits (beyond lone_radius 12) is chance, two are a
    crop; one at 12 bits is enough."""
    rng = np.random.default_rng(5)
    a = _hash_record(1, int(rng.integers(-(2**63), 2**63 - 1)), rng.integers(-(2**63), 2**63 - 1, 10), rng)
    lone = _hash_record(2, _flip(int(a.phash_crops[0]), 13, rng), rng.integers(-(2**63), 2**63 - 1, 10), rng)
    crops = rng.integers(-(2**63), 2**63 - 1, 10)
    crops[0] = _flip(int(a.phash_crops[1]), 13, rng)  # its 90% crop meets a's 80% crop too
    twice = _hash_record(3, _flip(int(a.phash_crops[0]), 13, rng), crops, rng)
    near = _hash_record(4, _flip(int(a.phash_crops[0]), 12, rng), rng.integers(-(2**63), 2**63 - 1, 10), rng)
    for rec, proposed in ((lone, False), (twice, True), (near, True)):
        m = Matcher.from_records([a])
        assert bool([j for j in m.add(rec) if j.a.id == 1]) is proposed, rec.id
        assert bool(Matcher.from_records([a], MatchParams(crop_hits=1)).add(rec)) is True


def test_a_twin_is_linked_to_its_representative_and_reached_through_it():
    """X' measures exactly as X (a re-wrapped copy): it is linked to X and not indexed;
    a later resized copy of X' pairs with X, so all three end in one group."""
    from indexer.match.groups import UnionFind

    base = scene(8)
    m = Matcher.from_records([record(1, base, sha="original")])
    twin = m.add_and_match(record(2, base, sha="rewrapped"))
    entries = m.index.entry_count
    small = np.asarray(Image.fromarray(base).resize((192, 128), Image.Resampling.LANCZOS))
    later = m.add_and_match(record(3, jpeg(small, q=80)))
    assert [(p.a, p.b) for p in twin] == [(1, 2)] and entries == 11  # only X's entries
    assert [(p.a, p.b, p.verdict) for p in later] == [(1, 3, "derived")]
    uf = UnionFind()
    for p in twin + later:
        uf.union(p.a, p.b)
    assert uf.find(2) == uf.find(3)


def test_shot_identity_settles_the_pixel_verdict():
    """Planted metadata on one picture's copies: two bodies are never copies; one
    body and one capture time make an exposure change an edit and RAW + JPEG a pair."""
    from datetime import datetime

    base = scene(10)
    t = datetime(2021, 4, 8, 14, 51, 12)
    s40, sony = ("canon", "canon powershot s40", ""), ("sony", "fdmavica", "")
    recs = [record(0, base), record(1, jpeg(base, 80)), record(2, exposed(base, 1.0)), record(3, jpeg(base, 90))]
    for r, cam in zip(recs, (s40, sony, s40, s40)):
        r.captured_at, r.camera = t, cam
    recs[0].format, recs[3].format = "JPEG", "RAW-CRW"
    pairs = by_pair(Matcher.from_records(recs).batch_pairs())
    assert pairs[(0, 1)].verdict == "similar" and pairs[(0, 1)].same_camera is False
    assert "different cameras" in pairs[(0, 1)].description
    assert pairs[(0, 2)].verdict == "derived" and pairs[(0, 2)].same_shot is True
    assert "brighter by 1.0 EV" in pairs[(0, 2)].description
    assert pairs[(0, 3)].verdict == "raw_jpeg" and pairs[(0, 3)].description.startswith("RAW+JPEG pair")
    for r in recs:  # the same files without metadata: pixels alone decide
        r.captured_at = r.camera = None
    pairs = by_pair(Matcher.from_records(recs).batch_pairs())
    assert pairs[(0, 1)].verdict == "derived" and pairs[(0, 1)].same_camera is None
    assert pairs[(0, 2)].verdict == "exposure_variant"  # an edit or another exposure: unknown, not grouped
    assert pairs[(0, 3)].verdict == "derived"
