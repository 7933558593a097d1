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


# ----------------------------------------------- map quality beyond QE and TE


def test_topographic_product_by_hand():
    # Codes 0, 3, 1 on a line of 3.  Code 0: grid order (1, 2), data order
    # (2, 1): k=1 gives Q1 = 3/1, Q2 = 1/2; code 1: grid order (0, 2) (tie,
    # by index), data order (2, 0): Q1 = 3/2, Q2 = 1; code 2: grid order
    # (1, 0), data order (0, 1): Q1 = 2/1, Q2 = 1/2.  At k = K - 1 = 2 both
    # orders hold every code, so the product is 1.
    codebook = np.array([[0.0], [3.0], [1.0]])
    expected = (math.log(3 / 2) / 2 + math.log(3 / 2) / 2 + math.log(1.0) / 2) / (3 * 2)
    assert metrics.topographic_product(codebook, Grid((3,))) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "grid", [Grid((6,)), Grid((3, 4)), Grid((4, 4), hexagonal=True), Grid((2, 3, 2))], ids=["line", "rect", "hex", "3d"]
)
def test_topographic_product_of_codes_at_their_grid_positions_is_zero(grid):
    assert metrics.topographic_product(grid.coordinates * 2.5, grid) == pytest.approx(0.0, abs=1e-12)


def test_topographic_product_of_a_fitted_line_and_of_its_shuffled_codes():
    from sklearn_ksom import KohonenQuantizer

    X = np.random.default_rng(0).uniform(size=(2000, 1))
    # The former defaults' smooth map (end width 0.5, 20 iterations).
    som = KohonenQuantizer((20,), sigma_end=0.5, max_iter=20, random_state=0).fit(X)
    fitted = metrics.topographic_product(som.cluster_centers_, som.grid_)
    assert 3e-4 < fitted < 2e-3  # about 7e-4 to 1e-3: small by nature
    # Shuffled, the codes no longer follow the line: P is off zero by about
    # 0.005 to 0.01 either way (over 300 shuffles: mean -0.001, deviation 0.007).
    rng = np.random.default_rng(1)
    shuffled = [metrics.topographic_product(som.cluster_centers_[rng.permutation(20)], som.grid_) for _ in range(20)]
    assert np.median(np.abs(shuffled)) > 3 * fitted
    assert max(np.abs(shuffled)) < 0.05


def test_topographic_product_is_the_same_in_every_namespace(xp):
    codebook = np.random.default_rng(0).normal(size=(12, 3))
    grid = Grid((3, 4), hexagonal=True)
    assert metrics.topographic_product(to_xp(xp, codebook), grid) == pytest.approx(
        metrics.topographic_product(codebook, grid), rel=1e-12
    )


def test_topographic_product_refuses_equal_codes_and_a_wrong_grid():
    with pytest.raises(ValueError, match="Two codes of the codebook are equal"):
        metrics.topographic_product(np.array([[0.0], [1.0], [1.0]]), Grid((3,)))
    with pytest.raises(ValueError, match="codebook has 3 codes but the grid"):
        metrics.topographic_product(np.zeros((3, 1)), Grid((2, 2)))


def test_trustworthiness_and_continuity_by_hand():
    # Five samples, each on its own code of a line, k = 1; N k (2N - 3k - 1) = 30.
    X = np.array([[0.0], [1.0], [3.0], [7.0], [15.0]])
    grid = Grid((5,))
    # Trustworthiness: samples 1, 2, 3 have two map neighbours at distance 1,
    # each the nearest with probability 1/2.  Their data ranks: from 1, the
    # sample 3 is 2nd (penalty 1); from 3, 7 is 3rd (2); from 7, 15 is 4th (3).
    # Penalty 0.5 * (1 + 2 + 3) = 3: T = 1 - 2 * 3 / 30.
    assert metrics.trustworthiness(X, X, grid, n_neighbors=1) == pytest.approx(0.8)
    # Continuity: the nearest in the data of 1, 3, 7 (0, 1, 3) ties with
    # another sample on the map: rank 1 or 2, penalty 0.5 each.  C = 1 - 2 * 1.5 / 30.
    assert metrics.continuity(X, X, grid, n_neighbors=1) == pytest.approx(0.9)
    # The codes in the order 0, 3, 1, 7, 15 on the line: data ranks from 0:
    # 1, 3, 7, 15; from 3: 1, 0, 7, 15; from 1: 0, 3, 7, 15; from 7: 3, 1, 0, 15.
    # Map neighbours of 0: {3} (penalty 2 - 1); of 3: {0, 1} (0.5 * (2 - 1));
    # of 1: {3, 7} (0.5 * (2 - 1) + 0.5 * (3 - 1)); of 7: {1, 15}
    # (0.5 * (2 - 1) + 0.5 * (4 - 1)); of 15: {7} (0).  Sum 5: T = 1 - 10 / 30.
    shuffled = np.array([[0.0], [3.0], [1.0], [7.0], [15.0]])
    assert metrics.trustworthiness(X, shuffled, grid, n_neighbors=1) == pytest.approx(2 / 3)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_without_ties_trustworthiness_and_continuity_are_scikit_learns(k):
    from sklearn.manifold import trustworthiness as sklearn_trustworthiness

    # Eight samples, each alone on a code at the marks of a Golomb ruler
    # (all pairwise differences distinct): no two map distances tie.
    marks = np.array([0, 1, 4, 9, 15, 22, 32, 34])
    rng = np.random.default_rng(k)
    X = rng.normal(size=(8, 3))
    codebook = 100.0 + rng.normal(size=(35, 3))  # unused codes, far away
    codebook[marks] = X
    grid = Grid((35,))
    on_map = marks[:, None].astype(float)
    assert metrics.trustworthiness(X, codebook, grid, k) == pytest.approx(sklearn_trustworthiness(X, on_map, n_neighbors=k))
    assert metrics.continuity(X, codebook, grid, k) == pytest.approx(sklearn_trustworthiness(on_map, X, n_neighbors=k))


def reference_topographic_product(codebook, grid):
    """Bauer & Pawelzik's P written out with loops; grid ties by code index."""
    n = codebook.shape[0]
    in_data = np.linalg.norm(codebook[:, None] - codebook[None], axis=-1)
    on_grid = np.round(grid.distances(), 9)
    total = 0.0
    for j in range(n):
        others = [l for l in range(n) if l != j]
        by_grid = sorted(others, key=lambda l: (on_grid[j, l], l))
        by_data = sorted(others, key=lambda l: (in_data[j, l], l))
        log_product = 0.0
        for k in range(1, n):
            a, v = by_grid[k - 1], by_data[k - 1]
            log_product += math.log(in_data[j, a] / in_data[j, v]) + math.log(on_grid[j, a] / on_grid[j, v])
            total += log_product / (2 * k)
    return total / (n * (n - 1))


@pytest.mark.parametrize(
    "grid",
    [Grid((7,)), Grid((3, 4)), Grid((4, 3), hexagonal=True), Grid((4, 4), toroidal=True), Grid((2, 2, 3))],
    ids=["line", "rect", "hex", "torus", "3d"],
)
def test_topographic_product_is_its_definition(grid):
    codebook = np.random.default_rng(grid.n_codes).normal(size=(grid.n_codes, 3))
    assert metrics.topographic_product(codebook, grid) == pytest.approx(reference_topographic_product(codebook, grid), rel=1e-10)


def reference_projection_measure(X, positions, grid, k, trust):
    """Venna & Kaski's definition, averaged over every order of the map's ties.

    The data have no ties; each sample's ties on the map are broken by each
    permutation of the other samples in turn (uniform random tie-breaking,
    enumerated, for a few samples).
    """
    import itertools

    n = X.shape[0]
    in_data = np.linalg.norm(X[:, None] - X[None], axis=-1)
    on_map = np.round(grid.distances()[np.ix_(positions, positions)], 9)
    total = 0.0
    for i in range(n):
        others = [j for j in range(n) if j != i]
        data_order = sorted(others, key=lambda j: in_data[i, j])
        data_rank = {j: r + 1 for r, j in enumerate(data_order)}
        outcomes = []
        for priority in itertools.permutations(range(len(others))):
            map_order = sorted(others, key=lambda j: (on_map[i, j], priority[others.index(j)]))
            map_rank = {j: r + 1 for r, j in enumerate(map_order)}
            if trust:
                outcomes.append(sum(data_rank[j] - k for j in map_order[:k] if data_rank[j] > k))
            else:
                outcomes.append(sum(map_rank[j] - k for j in data_order[:k] if map_rank[j] > k))
        total += np.mean(outcomes)
    return 1 - 2 / (n * k * (2 * n - 3 * k - 1)) * total


@pytest.mark.parametrize("trust", [True, False], ids=["trustworthiness", "continuity"])
@pytest.mark.parametrize("k", [1, 2])
def test_ties_on_the_map_are_averaged_over_all_their_orders(trust, k):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(7, 2))
    grid = Grid((2, 2), hexagonal=True)
    codebook = rng.normal(size=(4, 2))
    positions = metrics.assign(X, codebook).first
    assert len(np.unique(positions)) < 7  # samples share codes: ties on the map
    measure = metrics.trustworthiness if trust else metrics.continuity
    expected = reference_projection_measure(X, positions, grid, k, trust)
    assert measure(X, codebook, grid, n_neighbors=k) == pytest.approx(expected, rel=1e-12)


def test_a_fitted_map_is_more_trustworthy_and_continuous_than_its_shuffled_codes():
    from sklearn_ksom import KohonenQuantizer

    # k above the samples per code (4 here): within one code every sample is
    # a map neighbour of every other, and shuffling would not show.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    som = KohonenQuantizer((10, 10), hexagonal=True, random_state=0).fit(X)
    shuffled = som.cluster_centers_[rng.permutation(100)]
    for measure in (metrics.trustworthiness, metrics.continuity):
        good = measure(X, som.cluster_centers_, som.grid_, n_neighbors=10)
        bad = measure(X, shuffled, som.grid_, n_neighbors=10)
        assert good > 0.95 and bad < 0.8


def test_projection_measures_are_the_same_in_every_namespace(xp):
    rng = np.random.default_rng(0)
    X, codebook = rng.normal(size=(40, 2)), rng.normal(size=(9, 2))
    grid = Grid((3, 3), toroidal=True)
    for measure in (metrics.trustworthiness, metrics.continuity):
        assert measure(to_xp(xp, X), to_xp(xp, codebook), grid, 4) == pytest.approx(measure(X, codebook, grid, 4))


def test_projection_measures_need_k_below_half_the_samples():
    X = np.zeros((10, 1)) + np.arange(10)[:, None]
    with pytest.raises(ValueError, match="n_neighbors must be an int from 1 to below half"):
        metrics.trustworthiness(X, X, Grid((10,)), n_neighbors=5)
    with pytest.raises(ValueError, match="n_neighbors"):
        metrics.continuity(X, X, Grid((10,)), n_neighbors=0)
    with pytest.raises(ValueError, match="X has 1 features, the codebook 2"):
        metrics.continuity(X, np.zeros((10, 2)), Grid((10,)), n_neighbors=2)


def test_som_distortion_by_hand():
    # One sample at 0.2 on codes 0, 1, 3 of a line: nearest code 0, at grid
    # distances 0, 1, 2 from the codes, Gaussian weights exp(-d^2 / 2).
    codebook = np.array([[0.0], [1.0], [3.0]])
    X = np.array([[0.2]])
    expected = 0.2**2 + math.exp(-0.5) * 0.8**2 + math.exp(-2.0) * 2.8**2
    assert metrics.som_distortion(X, codebook, Grid((3,)), sigma=1.0) == pytest.approx(expected)
    unsquared = 0.2 + math.exp(-0.5) * 0.8 + math.exp(-2.0) * 2.8
    assert metrics.som_distortion(X, codebook, Grid((3,)), sigma=1.0, squared=False) == pytest.approx(unsquared)
    hat = 0.2**2 + 0.0 * 0.8**2 + (1 - 4) * math.exp(-2.0) * 2.8**2  # (1 - d^2/s^2) exp(-d^2/2s^2)
    assert metrics.som_distortion(X, codebook, Grid((3,)), neighbourhood="mexican_hat", sigma=1.0) == pytest.approx(hat)


def test_som_distortion_without_neighbourhood_is_the_inertia():
    from sklearn_ksom import KohonenQuantizer

    X = np.random.default_rng(0).normal(size=(300, 3))
    som = KohonenQuantizer((4, 4), random_state=0).fit(X)
    distortion = metrics.som_distortion(X, som.cluster_centers_, som.grid_, neighbourhood="none")
    assert distortion == pytest.approx(som.inertia_, rel=1e-10)


@pytest.mark.parametrize(
    "grid",
    [Grid((8,)), Grid((4, 5)), Grid((4, 4), hexagonal=True), Grid((4, 4), toroidal=True), Grid((2, 3, 3))],
    ids=["line", "rect", "hex", "torus", "3d"],
)
def test_the_batch_som_step_minimises_the_distortion_of_its_assignment(grid):
    from sklearn_ksom.core import batch_som_update, code_statistics
    from sklearn_ksom.topology import neighbourhood_operator as neighbourhood

    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    codebook = rng.normal(size=(grid.n_codes, 3))
    labels = metrics.assign(X, codebook).first
    counts, sums = code_statistics(X, labels, grid.n_codes)
    for sigma in (0.7, 1.5):
        new = batch_som_update(codebook, counts, sums, neighbourhood(grid, "gaussian", sigma))
        def distortion(W):
            return metrics.som_distortion(X, W, grid, sigma=sigma, labels=labels)
        assert distortion(new) < distortion(codebook)
        for _ in range(5):  # the weighted means are the minimum: any move raises E
            assert distortion(new) < distortion(new + rng.normal(scale=1e-3, size=new.shape))


def test_som_distortion_is_the_same_in_every_namespace(xp):
    rng = np.random.default_rng(0)
    X, codebook = rng.normal(size=(50, 2)), rng.normal(size=(12, 2))
    grid = Grid((4, 3), hexagonal=True)
    expected = metrics.som_distortion(X, codebook, grid, sigma=0.8)
    assert metrics.som_distortion(to_xp(xp, X), to_xp(xp, codebook), grid, sigma=0.8) == pytest.approx(expected)


def test_som_distortion_refuses_a_map_too_large_for_its_neighbourhood_matrix():
    grid = Grid((129, 128))  # 16 512 codes, a K x K matrix above 2**28 entries
    with pytest.raises(ValueError, match="16512 codes are too many"):
        metrics.som_distortion(np.zeros((3, 2)), np.zeros((grid.n_codes, 2)), grid)


def test_som_distortion_refuses_a_wrong_grid_or_assignment():
    X, codebook = np.zeros((5, 2)), np.zeros((4, 2))
    with pytest.raises(ValueError, match="codebook has 4 codes but the grid"):
        metrics.som_distortion(X, codebook, Grid((5,)))
    with pytest.raises(ValueError, match="labels must give one code per sample"):
        metrics.som_distortion(X, codebook, Grid((4,)), labels=np.zeros(4, dtype=int))


@pytest.mark.parametrize("sigma", [float("nan"), -1.0, 0.0, float("inf")])
def test_som_distortion_refuses_a_width_that_is_not_a_finite_positive_number(sigma):
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="sigma must be a finite width"):
        metrics.som_distortion(X, X[:9], Grid((3, 3)), sigma=sigma)


def test_map_measures_refuse_a_codebook_holding_nan():
    X = np.random.default_rng(0).normal(size=(20, 2))
    codebook = X[:9].copy()
    codebook[4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        metrics.topographic_product(codebook, Grid((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.som_distortion(X, codebook, Grid((3, 3)), labels=np.zeros(20, dtype=int))
