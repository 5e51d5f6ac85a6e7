"""indexer.measure.smallfilters: the same arrays as scipy.ndimage, to the bit."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from indexer.measure.smallfilters import dilate_cross, erode_cross, gaussian


@pytest.mark.parametrize("shape", [(96, 128), (1, 7), (3, 3), (17, 2), (128, 85)])
@pytest.mark.parametrize("sigma", [1.0, 0.4 * 1.07, 0.4 * 1.35, 0.3])
def test_gaussian_equals_ndimage(shape, sigma):
    rng = np.random.default_rng(sum(shape))
    img = rng.uniform(0, 255, shape)
    img[rng.uniform(size=shape) < 0.3] = 0.0  # masked-out pixels, as the normalised blur has
    assert np.array_equal(gaussian(img, sigma), ndimage.gaussian_filter(img, sigma))


@pytest.mark.parametrize("shape", [(96, 128), (1, 7), (2, 2), (3, 3), (17, 2), (40, 33)])
@pytest.mark.parametrize("iterations", [1, 2, 3])
@pytest.mark.parametrize("density", [0.5, 0.95, 1.0])
def test_cross_morphology_equals_ndimage(shape, iterations, density):
    rng = np.random.default_rng(iterations * 100 + shape[0])
    mask = rng.uniform(size=shape) < density
    assert np.array_equal(erode_cross(mask, iterations), ndimage.binary_erosion(mask, iterations=iterations))
    assert np.array_equal(dilate_cross(mask, iterations), ndimage.binary_dilation(mask, iterations=iterations))
    sparse = rng.uniform(size=shape) > 0.97
    assert np.array_equal(dilate_cross(sparse, iterations), ndimage.binary_dilation(sparse, iterations=iterations))
