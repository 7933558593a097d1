"""MiniSom codebooks in and out: the same map, checked against MiniSom's own geometry."""

import warnings

import numpy as np
import pytest

from sklearn_ksom import KohonenQuantizer, metrics
from sklearn_ksom.analysis import grid_adjacency
from sklearn_ksom.interop import codebook_from_minisom, codebook_to_minisom_weights, from_minisom, to_minisom
from sklearn_ksom.plotting import distance_map
from sklearn_ksom.topology import Grid, dense_matrix

minisom = pytest.importorskip("minisom")

# Odd and even sides both ways, and the degenerate single row / column.
SIZES = [(3, 4), (4, 3), (3, 3), (4, 4), (5, 6), (6, 5), (1, 4), (4, 1)]
TOPOLOGIES = ["rectangular", "hexagonal"]


def minisom_map(x, y, topology, n_features=3, **parameters):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MiniSom warns about wide sigmas on small maps
        return minisom.MiniSom(x, y, n_features, topology=topology, random_seed=0, **parameters)


def trained(x, y, topology):
    rng = np.random.default_rng(x * 10 + y)
    X = rng.normal(size=(300, 3))
    som = minisom_map(x, y, topology)
    som.train_random(X, 300)
    return som, X


def minisom_positions(som):
    """MiniSom's own plane position of every unit, in its flat order i * y + j."""
    xx, yy = som.get_euclidean_coordinates()
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def our_order(som):
    """For each of our codes, MiniSom's flat unit index: found from the weights alone."""
    codebook, _ = codebook_from_minisom(som)
    flat = som.get_weights().reshape(-1, codebook.shape[1])
    return np.array([np.flatnonzero((flat == code).all(axis=1))[0] for code in codebook])


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("x, y", SIZES)
def test_every_unit_has_minisoms_neighbours(x, y, topology):
    som, _ = trained(x, y, topology)
    _, grid = codebook_from_minisom(som)
    units = our_order(som)
    positions = minisom_positions(som)[units]
    their_distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    # All pairwise grid distances agree, so every neighbour set does.
    np.testing.assert_allclose(grid.distances(), their_distances, atol=1e-12)
    radius = 1.0 + 1e-6 if topology == "hexagonal" else np.sqrt(2) + 1e-6
    theirs = (their_distances <= radius) & ~np.eye(grid.n_codes, dtype=bool)
    np.testing.assert_array_equal(grid_adjacency(grid).toarray(), theirs)


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("x, y", SIZES)
@pytest.mark.parametrize("kernel", ["gaussian", "mexican_hat"])
def test_minisoms_neighbourhood_function_is_ours_on_the_converted_grid(x, y, topology, kernel):
    som = minisom_map(x, y, topology, neighborhood_function=kernel)
    _, grid = codebook_from_minisom(som)
    units = our_order(som)
    sigma = 1.3
    theirs = np.stack([som.neighborhood(np.unravel_index(u, (x, y)), sigma).ravel()[units] for u in units])
    np.testing.assert_allclose(dense_matrix(grid, kernel, sigma), theirs, atol=1e-12)


def test_minisoms_triangle_on_a_line_is_ours_times_sigma_squared():
    som = minisom_map(7, 1, "rectangular", neighborhood_function="triangle")
    sigma = 3.0
    theirs = np.stack([som.neighborhood((u, 0), sigma).ravel() for u in range(7)])
    np.testing.assert_allclose(sigma**2 * dense_matrix(Grid((7,)), "triangle", sigma), theirs)


def test_minisoms_bubble_is_a_square_and_ours_a_disc():
    som = minisom_map(5, 5, "rectangular", neighborhood_function="bubble")
    theirs = som.neighborhood((2, 2), 2).ravel()
    ours = dense_matrix(Grid((5, 5)), "bubble", 2.0)[12]
    index = Grid((5, 5)).indices - 2
    np.testing.assert_array_equal(theirs, np.all(np.abs(index) < 2, axis=1))  # |di|, |dj| < s: 3 x 3
    np.testing.assert_array_equal(ours, np.hypot(*index.T) <= 2)  # d <= s: 13 cells
    assert theirs.sum() == 9 and ours.sum() == 13


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("x, y", SIZES)
def test_quantisation_and_topographic_errors_agree_on_the_same_codebook(x, y, topology):
    som, X = trained(x, y, topology)
    codebook, grid = codebook_from_minisom(som)
    assert metrics.quantization_error(X, codebook) == pytest.approx(som.quantization_error(X), rel=1e-12)
    assert metrics.topographic_error(X, codebook, grid) == pytest.approx(som.topographic_error(X), abs=1e-12)


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("kernel", ["gaussian", "mexican_hat"])
def test_minisoms_distortion_measure_is_the_unsquared_distortion(topology, kernel):
    som, X = trained(4, 5, topology)
    som.neighborhood = minisom_map(4, 5, topology, neighborhood_function=kernel).neighborhood
    som._sigma = 1.2  # distortion_measure uses the map's initial sigma
    # The replaced method reads the other map's grid positions: the same for the same shape.
    codebook, grid = codebook_from_minisom(som)
    ours = metrics.som_distortion(X[:60], codebook, grid, neighbourhood=kernel, sigma=1.2, squared=False)
    assert ours == pytest.approx(som.distortion_measure(X[:60]), rel=1e-10)


@pytest.mark.parametrize("x, y", [(3, 3), (4, 3), (6, 5), (5, 5)])
@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_u_matrix_agrees_with_minisoms_where_its_hexagonal_rows_are_consistent(x, y, topology):
    # MiniSom's hexagonal distance_map assumes its shifted rows are the even
    # j; its positions shift the rows with y - 1 - j even, the same only for
    # odd y (for even y it averages over units that are not neighbours).
    som, _ = trained(x, y, topology)
    codebook, grid = codebook_from_minisom(som)
    ours = distance_map(codebook, grid).ravel()
    theirs = som.distance_map(scaling="mean").ravel()[our_order(som)]
    np.testing.assert_allclose(ours / ours.max(), theirs, rtol=1e-12)


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("x, y", SIZES)
def test_codebooks_go_to_minisom_and_back_unchanged(x, y, topology):
    som, X = trained(x, y, topology)
    codebook, grid = codebook_from_minisom(som)
    weights, name = codebook_to_minisom_weights(codebook, grid)
    assert name == topology
    np.testing.assert_array_equal(weights, som.get_weights())
    back = to_minisom(codebook, grid, sigma=1.0)
    np.testing.assert_array_equal(back.get_weights(), som.get_weights())
    assert back.topology == topology
    np.testing.assert_array_equal(back.win_map(X[:1], return_indices=True).popitem()[0], som.winner(X[0]))


@pytest.mark.parametrize("hexagonal", [False, True])
def test_our_fitted_map_keeps_its_errors_in_minisom(hexagonal):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    ours = KohonenQuantizer((5, 6), hexagonal=hexagonal, random_state=0).fit(X)
    theirs = to_minisom(ours.cluster_centers_, ours.grid_)
    assert theirs.topographic_error(X) == pytest.approx(ours.topographic_error(X), abs=1e-12)
    assert theirs.quantization_error(X) == pytest.approx(ours.quantization_error(X), rel=1e-12)


def test_a_line_goes_out_as_a_single_column():
    codebook = np.arange(12.0).reshape(6, 2)
    weights, topology = codebook_to_minisom_weights(codebook, Grid((6,)))
    assert weights.shape == (6, 1, 2) and topology == "rectangular"
    np.testing.assert_array_equal(weights[:, 0], codebook)


@pytest.mark.parametrize(
    "grid, message",
    [(Grid((4, 4), toroidal=True), "toroidal"), (Grid((2, 2, 2)), "2-D"), (Grid((4, 4)), "expected \\(16")],
)
def test_what_minisom_cannot_hold_is_refused(grid, message):
    codebook = np.zeros((grid.n_codes if message != "expected \\(16" else 15, 2))
    with pytest.raises(ValueError, match=message):
        codebook_to_minisom_weights(codebook, grid)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_from_minisom_gives_a_fitted_estimator_on_minisoms_codebook(topology):
    som, X = trained(5, 4, topology)
    estimator = from_minisom(som, X, random_state=0)
    codebook, grid = codebook_from_minisom(som)
    np.testing.assert_array_equal(estimator.cluster_centers_, codebook)
    assert estimator.grid_ == grid
    assert estimator.topographic_error(X) == pytest.approx(som.topographic_error(X), abs=1e-12)
    assert estimator.quantization_error(X) == pytest.approx(som.quantization_error(X), rel=1e-12)
    np.testing.assert_array_equal(estimator.predict(X), estimator.labels_)


def test_to_minisom_refuses_a_topology_that_the_grid_sets():
    with pytest.raises(ValueError, match="takes the topology from the grid"):
        to_minisom(np.zeros((4, 2)), Grid((2, 2)), topology="hexagonal")


def test_from_minisom_refuses_parameters_it_sets():
    som, X = trained(3, 3, "rectangular")
    with pytest.raises(ValueError, match="sets 'grid_shape' from the MiniSom map"):
        from_minisom(som, X, grid_shape=(3, 3))


def test_codebooks_of_any_namespace_go_to_minisom(xp):
    codebook = np.random.default_rng(0).normal(size=(12, 2))
    grid = Grid((3, 4), hexagonal=True)
    weights, _ = codebook_to_minisom_weights(xp.asarray(codebook), grid)
    np.testing.assert_array_equal(weights, codebook_to_minisom_weights(codebook, grid)[0])
