"""Starting codebooks: the PCA plane, the data's moments, a given array."""

import numpy as np
import pytest

from sklearn_ksom.initialisation import (
    codes_from_array,
    pca_codes,
    weighted_covariance,
    weighted_mean,
)
from sklearn_ksom.topology import Grid


def test_pca_initialisation_lays_the_grid_on_the_principal_plane():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 3)) * [5.0, 2.0, 0.1]
    codebook = pca_codes(X, 15, rng, None, Grid((5, 3)))
    grid = codebook.reshape(5, 3, 3)
    axis0 = grid[-1, 1] - grid[0, 1]
    axis1 = grid[2, -1] - grid[2, 0]
    assert abs(axis0[0]) > 10 * max(abs(axis0[1]), abs(axis0[2]))  # first axis: first PC
    assert abs(axis1[1]) > 10 * max(abs(axis1[0]), abs(axis1[2]))


@pytest.mark.parametrize("weighted", [False, True])
def test_weighted_moments_are_numpys_weighted_mean_and_biased_covariance(weighted):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 4)) @ rng.normal(size=(4, 4)) + 3.0
    w = rng.uniform(0.1, 2.0, size=50) if weighted else None
    mean = weighted_mean(X, w)
    np.testing.assert_allclose(mean, np.average(X, axis=0, weights=w))
    expected = np.cov(X, rowvar=False, aweights=w, bias=True)
    np.testing.assert_allclose(weighted_covariance(X, mean, w), expected, atol=1e-12)
    np.testing.assert_allclose(weighted_covariance(X, mean, w, diagonal=True), np.diag(expected), atol=1e-12)


def test_weights_of_whole_numbers_act_as_repeated_rows():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(20, 3))
    w = rng.integers(1, 4, size=20).astype(float)
    repeated = np.repeat(X, w.astype(int), axis=0)
    np.testing.assert_allclose(weighted_mean(X, w), weighted_mean(repeated))
    np.testing.assert_allclose(
        weighted_covariance(X, weighted_mean(X, w), w), weighted_covariance(repeated, weighted_mean(repeated))
    )


def test_a_given_codebook_is_copied_and_its_shape_checked():
    init = np.arange(6.0).reshape(3, 2)
    codes = codes_from_array(init, 3, 2, xp=np, dtype=np.float32)
    assert codes.dtype == np.float32 and not np.shares_memory(codes, init)
    np.testing.assert_array_equal(codes, init)
    with pytest.raises(ValueError, match=r"expected \(n_codes, n_features\) = \(4, 2\)"):
        codes_from_array(init, 4, 2, xp=np, dtype=np.float64)
