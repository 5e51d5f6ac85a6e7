"""The compiled verification kernels give the NumPy/SciPy references' numbers."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from indexer.match import verify_kernels as k


def reference_ranks(x: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return ((np.cumsum(counts) - 0.5 * counts) / x.size)[inverse]


def samples(rng, n: int, kind: str) -> np.ndarray:
    if kind == "continuous":
        return rng.random(n) * 255
    if kind == "ties":
        return np.round(rng.random(n) * 255, 1)
    if kind == "clustered":  # most values in one bucket: the argsort branch
        return np.concatenate([100 + 1e-6 * rng.random(n // 2), 255 * rng.random(n - n // 2)])
    if kind == "levels":  # integer levels 0..255: the counting path
        return np.floor(rng.random(n) * 256)
    if kind == "levels_one_off":  # one non-integer value among levels: the sort, with buckets of ties
        x = np.floor(rng.random(n) * 256)
        x[n // 2] += 0.5
        return x
    if kind == "wide_levels":  # integers past 255, a few distinct: buckets of ties, sorted
        return np.floor(rng.random(n) * 5) * 1000.0 - 7.0
    return np.full(n, 3.0)


@pytest.mark.parametrize("kind", ["continuous", "ties", "clustered", "constant", "levels", "levels_one_off",
                                  "wide_levels"])
@pytest.mark.parametrize("n", [1, 2, 33, 700, 12_000])
def test_mid_ranks_equal_numpy(kind, n):
    x = samples(np.random.default_rng(n), n, kind)
    assert np.array_equal(k.mid_ranks(x), reference_ranks(x))


def test_spearman_and_pearson_match_reference():
    rng = np.random.default_rng(1)
    x = rng.random(5000) * 255
    y = np.sqrt(x) + rng.normal(0, 0.5, x.size)
    rx, ry = reference_ranks(x), reference_ranks(y)
    expected = np.corrcoef(rx, ry)[0, 1]
    assert k.spearman(x, y) == pytest.approx(expected, abs=1e-12)
    assert 0.9 < expected < 1.0  # a monotone relation with noise: high, not perfect
    assert k.pearson(x, np.full(x.size, 2.0)) == 0.0


def test_tile_spearman_skips_sparse_and_flat_tiles():
    rng = np.random.default_rng(3)
    a = rng.random((40, 40)) * 255
    b = a.copy()
    b[:20, 20:] = 255 - b[:20, 20:]  # top-right tile anti-correlated
    mask = np.ones_like(a, dtype=bool)
    mask[20:, :20] = False  # bottom-left tile empty
    b[20:, 20:] = 7.0  # bottom-right tile flat in b
    out = k.tile_spearman(a, b, mask, np.array([0, 20, 40]), np.array([0, 20, 40]), 24, 2.0)
    assert out == pytest.approx([1.0, -1.0])


@pytest.mark.parametrize("level", [0.1, 0.25, 0.5])
def test_median3_above_equals_thresholded_median(level):
    img = np.random.default_rng(4).random((41, 29))
    img[10:14, :] = level  # values exactly at the level do not count as above
    assert np.array_equal(k.median3_above(img, level), ndimage.median_filter(img, size=3) > level)


@pytest.mark.parametrize("kind", ["continuous", "ties", "clustered", "constant", "levels", "levels_one_off",
                                  "wide_levels"])
@pytest.mark.parametrize("n", [1, 2, 33, 700, 12_000])
def test_ranks_from_one_sort_equal_mid_ranks_of_each_subset(kind, n):
    """order_of + ranks_sorted / subset_ranks: the ranks of mid_ranks, to the bit, for the
    whole set and for a random subset (the outside of an edit)."""
    rng = np.random.default_rng(n + 7)
    x = samples(rng, n, kind)
    order = k.order_of(x)
    assert np.all(np.diff(x[order]) >= 0)
    assert np.array_equal(k.ranks_sorted(x, order), k.mid_ranks(x))
    keep = rng.random(n) < 0.6
    assert np.array_equal(k.subset_ranks(x, order, keep), k.mid_ranks(x[keep]))


@pytest.mark.parametrize("kind", ["continuous", "ties", "levels"])
@pytest.mark.parametrize("shape,tiles", [((86, 128), 4), ((40, 33), 4), ((30, 30), 3), ((9, 50), 4)])
def test_tiles_from_one_sort_equal_tile_spearman(kind, shape, tiles):
    """tile_spearman_sorted: the same tiles kept and the same correlations to the bit as
    tile_spearman, with a ragged mask (boundaries from linspace as verify does, some
    tiles sparse, one flat)."""
    rng = np.random.default_rng(shape[0] * 31 + tiles)
    a = samples(rng, shape[0] * shape[1], kind).reshape(shape)
    b = np.sqrt(np.abs(a)) + rng.normal(0, 0.3, shape)
    b[: shape[0] // 3, : shape[1] // 3] = 5.0
    mask = rng.random(shape) < 0.85
    mask[:, : shape[1] // 5] = False
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    ys = np.linspace(rows[0], rows[-1] + 1, tiles + 1).astype(np.int64)
    xs = np.linspace(cols[0], cols[-1] + 1, tiles + 1).astype(np.int64)
    av, bv = a[mask], b[mask]
    got = k.tile_spearman_sorted(av, bv, k.order_of(av), k.order_of(bv), mask, ys, xs, 24, 2.0)
    assert np.array_equal(got, k.tile_spearman(a, b, mask, ys, xs, 24, 2.0))
    assert got.size >= 1


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 2000, 9001])
def test_level_pair_median_equals_numpy_median(n):
    """The median of a 256 x 256 table over the unclipped level pairs, by counting: the
    value np.median gives (odd and even counts), and the count."""
    from indexer.match import verify

    rng = np.random.default_rng(n)
    a = rng.integers(0, 256, n).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 60, n), 0, 255).astype(np.uint8)
    ok = (a > 8) & (a < 247) & (b > 8) & (b < 247)
    lin = verify.srgb_linear(np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        table = np.log2(lin[None, :] / lin[:, None])  # row a, column b, as verify's table
    levels = np.arange(9, 247)
    keys = (levels[:, None] * 256 + levels[None, :]).ravel()
    keys = keys[np.argsort(table.ravel()[keys])].astype(np.int64)
    count, median = k.level_pair_median(a, b, 8, 247, table.ravel(), keys)
    assert count == ok.sum()
    if count:
        assert median == np.median(table[a[ok], b[ok]])
    reference = 0.0 if ok.sum() < 16 else float(np.median(np.log2(verify.srgb_linear(b[ok]) / verify.srgb_linear(a[ok]))))
    assert verify.exposure_offset(a, b) == pytest.approx(reference, abs=1e-12)
