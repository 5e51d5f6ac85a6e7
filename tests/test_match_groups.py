"""Groups are connected components of chosen verdicts; the keeper rule is applied in order."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from indexer.match.groups import (GroupContext, KeeperInfo, UnionFind, build_groups, components, copy_like_name,
                                  keeper_key)
from indexer.match.verdict import describe
from indexer.match.verify import Evidence


@dataclass
class P:
    a: int
    b: int
    verdict: str
    correlation: float | None = None
    transform: str = "identity"


def test_components_chain_and_isolate():
    assert components([(1, 2), (2, 3), (7, 8), (3, 1)]) == [(1, 2, 3), (7, 8)]
    uf = UnionFind()
    for a, b in [(i, i + 1) for i in range(1000)]:
        uf.union(a, b)
    assert uf.find(0) == uf.find(1000)


def test_related_shots_do_not_join_groups_by_default():
    pairs = [P(1, 2, "derived"), P(2, 3, "similar"), P(3, 4, "exposure_variant"), P(5, 6, "same_file"),
             P(7, 8, "raw_jpeg")]
    groups = build_groups(pairs)
    assert [g.members for g in groups] == [(1, 2), (5, 6)]
    everything = build_groups(pairs, verdicts=("derived", "similar", "exposure_variant", "same_file"))
    assert [g.members for g in everything] == [(1, 2, 3, 4), (5, 6)]
    assert len(everything[0].pairs) == 3


def test_keeper_rule_order():
    t0, t1 = datetime(2020, 1, 1), datetime(2021, 1, 1)
    big_jpeg = KeeperInfo(1, 4000, 3000, "JPEG", 3_000_000, 10.0, t1)
    small_png = KeeperInfo(2, 2000, 1500, "PNG", 9_000_000, 50.0, t0)
    raw = KeeperInfo(3, 4000, 3000, "DNG", 20_000_000, 5.0, t1)
    tiff = KeeperInfo(4, 4000, 3000, "TIFF", 30_000_000, 5.0, t1)
    sharp = KeeperInfo(5, 4000, 3000, "JPEG", 3_000_000, 99.0, t1)
    early = KeeperInfo(6, 4000, 3000, "JPEG", 3_000_000, 10.0, t0)
    pick = lambda *infos: min(infos, key=keeper_key).id  # noqa: E731
    assert pick(big_jpeg, small_png) == 1  # pixels first (neither carries a camera)
    assert pick(big_jpeg, raw, tiff) == 3  # RAW before lossless before lossy
    assert pick(big_jpeg, tiff) == 4
    assert pick(big_jpeg, early) == 6  # an earlier capture before a sharper file
    assert pick(big_jpeg, sharp) == 5
    undated = [dataclasses.replace(i, captured_at=None) for i in (big_jpeg, small_png, raw)]
    groups = build_groups([P(1, 2, "derived"), P(2, 3, "derived")], {i.id: i for i in undated})
    assert groups[0].keeper == 3
    assert groups[0].id == 3  # a group's id is its keeper's id


def test_group_ids_are_keeper_ids_largest_group_first():
    pairs = [P(7, 9, "derived"), P(2, 5, "same_file"), P(5, 8, "derived"), P(1, 4, "similar")]
    infos = {i: KeeperInfo(i, 100, 100) for i in (2, 5, 7, 8, 9)}
    infos[8] = KeeperInfo(8, 200, 100)  # most pixels
    groups = build_groups(pairs, infos)
    assert [(g.id, g.members, g.keeper) for g in groups] == [(8, (2, 5, 8), 8), (7, (7, 9), 7)]
    assert [g.id for g in build_groups(pairs)] == [2, 7]  # no infos: the smallest id keeps


def test_raw_format_names_as_stored_count_as_raw():
    jpeg = KeeperInfo(1, 2312, 1720, "JPEG", 9_000_000)
    crw = KeeperInfo(2, 2312, 1720, "RAW-CRW", 2_600_000)
    assert min((jpeg, crw), key=keeper_key).id == 2


def test_groups_never_join_two_shots_a_copy_without_exif_joins_its_best_match():
    """The Sony Mavica case: an e-mail copy without EXIF (4) matches three frames of one
    body taken seconds apart (1, 2, 3) about equally; it joins the best, the frames stay apart."""
    t = datetime(2022, 1, 25, 10, 12, 53)
    sony = ("sony", "fdmavica", "")
    frames = [KeeperInfo(i, 640, 480, "JPEG", 60_000, 1.0, t + timedelta(seconds=14 * i), sony) for i in (1, 2, 3)]
    copy = KeeperInfo(4, 320, 240, "JPEG", 9_000, 1.0)
    infos = {i.id: i for i in (*frames, copy)}
    pairs = [P(1, 4, "derived", correlation=0.995), P(2, 4, "derived", correlation=0.9956),
             P(3, 4, "derived", correlation=0.9953), P(1, 2, "derived", correlation=0.999)]
    groups = build_groups(pairs, infos)
    assert [g.members for g in groups] == [(2, 4)]
    assert [(p.a, p.b) for p in groups[0].pairs] == [(2, 4)]


def test_groups_never_join_two_camera_bodies():
    t = datetime(2021, 4, 8, 14, 51, 12)
    infos = {1: KeeperInfo(1, 2312, 1720, "RAW-CRW", 2_600_000, 1.0, t, ("canon", "canon powershot s40", "")),
             2: KeeperInfo(2, 640, 480, "JPEG", 60_000, 1.0, None, ("sony", "fdmavica", "")),
             3: KeeperInfo(3, 640, 480, "JPEG", 60_000, 1.0, None, None)}
    assert build_groups([P(1, 2, "derived")], infos) == []
    assert [g.members for g in build_groups([P(1, 3, "derived"), P(2, 3, "derived", correlation=0.9)], infos)] \
        == [(1, 3)]


def test_description_in_words():
    ev = Evidence(transform="rot90", x=0, y=0, scale=0.5, overlap_a=1, overlap_b=1, peak=0.8,
                  corr_rank=0.99, corr_grey=0.99, corr_tile=0.95, hist_sim=0.9, delta_ev=0.0)
    text = describe(ev, "derived")
    # ev.transform maps b onto a, so b is a rotated 90° clockwise (rot270) copy of a
    assert text.startswith("rotated 90° clockwise") and "resized 50%" in text and "re-encoded" in text
    dark = Evidence(transform="identity", x=0, y=0, scale=1, overlap_a=1, overlap_b=1, peak=0.8,
                    corr_rank=0.99, corr_grey=0.95, corr_tile=0.95, hist_sim=0.4, delta_ev=-1.04)
    assert describe(dark, "exposure_variant") == "darker by 1.0 EV"
    assert describe(None, "same_file") == "identical file"


def _group(infos, pairs):
    (g,) = build_groups(pairs, {i.id: i for i in infos})
    return g.keeper


def test_the_original_is_kept_over_larger_or_lossless_copies():
    """Issue 14's cases: the camera file (EXIF) over an upscaled export without it; a JPEG
    over the PNG conversion of it (same pixel size) and its mirrored copy; colour over a
    greyscale conversion; "Copy of" and "(1)" names lose ties."""
    t, canon = datetime(2021, 4, 8, 14, 51, 12), ("canon", "canon powershot s40", "")
    camera_jpeg = KeeperInfo(1, 2272, 1704, "JPEG", 2_000_000, 5.0, t, canon, "/p/IMG_0108.JPG", 10, 40.0)
    upscale = KeeperInfo(2, 3408, 2556, "JPEG", 3_000_000, 5.0, None, None, "/p/export.jpg", 20, 40.0)
    raw = KeeperInfo(3, 2312, 1720, "RAW-CRW", 2_600_000, 5.0, t, canon, "/p/CRW_0108.CRW", 10, 35.0)
    pairs = [P(1, 2, "derived"), P(1, 3, "derived")]
    assert _group([camera_jpeg, upscale], pairs[:1]) == 1
    assert _group([camera_jpeg, upscale, raw], pairs) == 3
    jpeg = KeeperInfo(4, 640, 480, "JPEG", 60_000, 5.0, path="/d/scene1.jpg", mtime_ns=5, colourfulness=40.0)
    png = KeeperInfo(5, 640, 480, "PNG", 500_000, 5.0, path="/d/scene1 (1).png", mtime_ns=5, colourfulness=40.0)
    mirror = KeeperInfo(6, 640, 480, "PNG", 520_000, 5.0, path="/d/flipped.png", mtime_ns=5, colourfulness=40.0)
    grey = KeeperInfo(7, 640, 480, "PNG", 300_000, 5.0, path="/d/scene1g.png", mtime_ns=5, colourfulness=0.0)
    rows = [P(4, 5, "same_pixels"), P(4, 6, "derived", transform="flip_h"), P(4, 7, "derived"),
            P(5, 6, "derived", transform="flip_h")]
    g = build_groups(rows, {i.id: i for i in (jpeg, png, mirror, grey)})[0]
    assert g.keeper == 4
    ctx = GroupContext.of(g.members, {i.id: i for i in (jpeg, png, mirror, grey)}, g.pairs)
    assert ctx.outliers == {6} and ctx.colour
    copy_named = KeeperInfo(8, 640, 480, "JPEG", 60_000, 5.0, path="/d/Copy of scene1.jpg", mtime_ns=1)
    assert _group([dataclasses.replace(jpeg, mtime_ns=9), copy_named], [P(4, 8, "same_file")]) == 4
    assert copy_like_name("/x/IMG_1 (2).jpg") and copy_like_name("/x/a_copy.png") and not copy_like_name("/x/a.jpg")


def test_a_preferred_folder_wins():
    a = KeeperInfo(1, 4000, 3000, "JPEG", 3_000_000, path="/photos/a.jpg")
    b = KeeperInfo(2, 2000, 1500, "JPEG", 900_000, path="/keep/a.jpg")
    (g,) = build_groups([P(1, 2, "derived")], {1: a, 2: b}, prefer_in=["/keep"])
    assert g.keeper == 2


def test_images_without_metadata_are_kept_apart_by_a_decision_on_either_side():
    """A not-duplicates decision names an image without EXIF only in the other's
    ``apart_from``: the two still never share a group (the look at pairs skips only
    images no metadata and no decision can keep apart)."""
    infos = {1: KeeperInfo(1, 64, 64, "PNG"), 2: KeeperInfo(2, 64, 64, "PNG", apart_from=frozenset({1})),
             3: KeeperInfo(3, 64, 64, "PNG")}
    pairs = [P(1, 3, "derived", correlation=0.99), P(2, 3, "derived", correlation=0.98)]
    assert [g.members for g in build_groups(pairs, infos)] == [(1, 3)]


def test_shot_components_skipping_images_without_metadata_changes_nothing():
    """Random graphs over images with and without bodies, times and decisions: the same
    components and kept pairs as when every pair of members is compared."""
    import random

    from indexer.match.groups import different_shots, shot_components

    rng = random.Random(13)
    t = datetime(2024, 5, 1, 12, 0, 0)
    bodies = [None, ("canon", "eos", ""), ("sony", "a7", "")]
    for _ in range(200):
        n = rng.randint(2, 12)
        infos = {}
        for i in range(1, n + 1):
            apart = frozenset(j for j in range(1, n + 1) if j != i and rng.random() < 0.05)
            infos[i] = KeeperInfo(i, 64, 64, "JPEG", captured_at=rng.choice([None, t, t + timedelta(seconds=30)]),
                                  camera=rng.choice(bodies), apart_from=apart)
        pairs = [P(a, b, "derived", correlation=round(rng.random(), 3))
                 for a in range(1, n + 1) for b in range(a + 1, n + 1) if rng.random() < 0.4]
        assert shot_components(pairs, infos) == shot_components(pairs, infos, apart=lambda x, y: different_shots(x, y))
