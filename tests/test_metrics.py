"""Quality figures: definitions, edge cases, agreement with MiniSom."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sklearn_ksom import metrics
from sklearn_ksom.topology import Grid

from .conftest import to_xp


@given(st.integers(1, 50))
def test_perplexity_of_uniform_usage_is_the_number_of_codes_used(k):
    labels = np.repeat(np.arange(k), 3)
    assert metrics.perplexity(labels, 64) == pytest.approx(k)


def test_perplexity_is_exp_entropy():
    labels = np.array([0, 0, 0, 1])
    p = np.array([0.75, 0.25])
    assert metrics.perplexity(labels, 4) == pytest.approx(math.exp(-(p * np.log(p)).sum()))


def test_utilisation_and_dead_codes(xp):
    labels = to_xp(xp, np.array([0, 2, 2, 5]))
    assert metrics.codebook_utilisation(labels, 8) == pytest.approx(3 / 8)
    assert metrics.dead_codes(labels, 8) == 5
    assert metrics.perplexity(labels, 8) == pytest.approx(math.exp(-(2 * 0.25 * math.log(0.25) + 0.5 * math.log(0.5))))


def test_topographic_error_of_an_ordered_chain_is_zero():
    codebook = np.arange(10, dtype=float)[:, None]
    X = np.linspace(0, 9, 200)[:, None]
    assert metrics.topographic_error(X, codebook, Grid((10,))) == 0.0
    shuffled = codebook[np.random.default_rng(0).permutation(10)]
    assert metrics.topographic_error(X, shuffled, Grid((10,))) > 0.5


def test_topographic_error_across_the_edge_of_a_torus():
    codebook = np.arange(6, dtype=float)[:, None]
    X = np.array([[0.0], [0.2]])  # best 0, second 1; and with code 5 moved next to 0:
    ring = codebook.copy()
    ring[1] = 100.0  # now the runner-up of samples near 0 is code 5... or 2
    ring[5] = -0.5
    assert metrics.topographic_error(X, ring, Grid((6,))) == 1.0
    assert metrics.topographic_error(X, ring, Grid((6,), toroidal=True)) == 0.0


def test_hexagonal_topographic_error_uses_six_neighbours():
    grid = Grid((4, 4), hexagonal=True)
    codebook = grid.coordinates.copy()
    rng = np.random.default_rng(0)
    X = codebook[rng.integers(0, 16, 300)] + rng.normal(scale=0.05, size=(300, 2))
    assert metrics.topographic_error(X, codebook, grid) == 0.0


def test_metrics_agree_with_minisom():
    minisom = pytest.importorskip("minisom")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    som = minisom.MiniSom(5, 4, 3, random_seed=0)
    som.train_random(X, 200)
    codebook = som.get_weights().reshape(-1, 3)
    assert metrics.quantization_error(X, codebook) == pytest.approx(som.quantization_error(X))
    assert metrics.topographic_error(X, codebook, Grid((5, 4))) == pytest.approx(som.topographic_error(X))


def test_quantization_error_squared_and_not():
    X = np.array([[0.0, 3.0], [4.0, 0.0]])
    codebook = np.zeros((1, 2))
    assert metrics.quantization_error(X, codebook) == pytest.approx(3.5)
    assert metrics.quantization_error(X, codebook, squared=True) == pytest.approx(12.5)


def test_one_code_has_no_topographic_error():
    assert metrics.topographic_error(np.ones((3, 2)), np.zeros((1, 2)), Grid((1,))) == 0.0


def test_distance_map_is_the_mean_distance_to_adjacent_codes():
    codebook = np.array([[0.0], [1.0], [3.0]])
    np.testing.assert_allclose(metrics.distance_map(codebook, Grid((3,))), [1.0, 1.5, 2.0])
    square = np.array([[0.0], [1.0], [2.0], [4.0]])  # 2 x 2: every code adjacent to the other three
    np.testing.assert_allclose(metrics.distance_map(square, Grid((2, 2))), [[7 / 3, 5 / 3], [5 / 3, 3.0]])


def test_grid_smoothness_tells_an_ordered_map_from_a_shuffled_one(xp):
    grid = Grid((8, 8))
    ordered = grid.indices.astype(np.float64)  # each code at its own position
    shuffled = ordered[np.random.default_rng(0).permutation(64)]
    assert metrics.grid_smoothness(to_xp(xp, ordered), grid) < 0.2
    assert 0.7 < metrics.grid_smoothness(to_xp(xp, shuffled), grid) < 1.3
