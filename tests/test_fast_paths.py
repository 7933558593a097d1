"""The fast paths give the plain formulas' results and still refuse bad input."""

import tracemalloc

import numpy as np
import pytest

from sklearn_ksom import EMAQuantizer, KohonenQuantizer
from sklearn_ksom._array_api import on_accelerator, to_numpy
from sklearn_ksom.core import assign, spread_statistics, squared_distances
from sklearn_ksom.topology import Grid, NeighbourhoodSchedule, dense_matrix, neighbourhood_operator


def to_xp(xp, array):
    return xp.asarray(np.asarray(array))


def _data(n=200, k=12, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(k, d))


def _brute_force(X, codebook):
    return ((X[:, None, :] - codebook[None, :, :]) ** 2).sum(axis=-1)


@pytest.mark.parametrize("block_rows", [None, 7])
def test_assign_finds_the_nearest_and_second_nearest_code(xp, block_rows):
    X, codebook = _data()
    distances = _brute_force(X, codebook)
    result = assign(to_xp(xp, X), to_xp(xp, codebook), second=True, block_rows=block_rows)
    order = np.argsort(distances, axis=1)
    np.testing.assert_array_equal(to_numpy(result.first), order[:, 0])
    np.testing.assert_array_equal(to_numpy(result.second), order[:, 1])
    np.testing.assert_allclose(to_numpy(result.squared_distance), distances.min(axis=1), rtol=1e-10, atol=1e-10)


def test_default_blocks_on_the_host_give_the_whole_assignment(xp):
    # 4096 codes: host blocks of MIN_BLOCK_ROWS rows, so 700 rows take three.
    X, codebook = _data(n=700, k=4096, d=2, seed=1)
    assert on_accelerator(to_xp(xp, X)) is False
    result = assign(to_xp(xp, X), to_xp(xp, codebook))
    np.testing.assert_array_equal(to_numpy(result.first), _brute_force(X, codebook).argmin(axis=1))


def test_squared_distances_match_the_definition(xp):
    X, codebook = _data()
    result = squared_distances(to_xp(xp, X), to_xp(xp, codebook))
    np.testing.assert_allclose(to_numpy(result), _brute_force(X, codebook), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "grid, kernel, width",
    [((4, 5), "gaussian", 1.3), ((4, 5), "hard", 0.4), ((3, 2, 2), "gaussian", 0.8), ((6,), "bubble", 1.0)],
)
def test_spread_statistics_is_the_dense_product(xp, grid, kernel, width):
    grid = Grid(grid)
    rng = np.random.default_rng(1)
    counts, sums = rng.random(grid.n_codes), rng.normal(size=(grid.n_codes, 3))
    P = dense_matrix(grid, kernel, width)
    spread_counts, spread_sums = spread_statistics(
        neighbourhood_operator(grid, kernel, width, xp=xp, dtype=xp.float64), to_xp(xp, counts), to_xp(xp, sums), xp=xp
    )
    np.testing.assert_allclose(to_numpy(spread_counts), P.T @ counts, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(spread_sums), P.T @ sums, rtol=1e-12)


def _snapshot(model):
    return {
        "codebook": np.array(model.cluster_centers_),
        "counts": np.array(model.counts_),
        "n_steps": model.n_steps_,
        "rng": model._random_state.get_state()[1].copy(),
    }


BAD_BATCHES = {
    "nan": (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X), "NaN"),
    "inf": (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X), "infinity"),
    "too many features": (lambda X: np.hstack([X, X[:, :1]]), "features"),
    "one-dimensional": (lambda X: X[0], "2D array"),
    "empty": (lambda X: X[:0], "0 sample"),
}


@pytest.mark.parametrize("name", list(BAD_BATCHES))
@pytest.mark.parametrize("Estimator", [KohonenQuantizer, EMAQuantizer])
def test_later_partial_fit_calls_still_reject_bad_batches(Estimator, name):
    make_bad, message = BAD_BATCHES[name]
    X = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    model = Estimator(random_state=0).partial_fit(X)
    model.partial_fit(X)
    before = _snapshot(model)
    with pytest.raises(ValueError, match=message):
        model.partial_fit(make_bad(X))
    after = _snapshot(model)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


def test_later_batches_of_other_dtypes_and_lists_are_converted_as_before():
    X = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    results = []
    for batch in (X, X.astype(np.float64), X.tolist()):
        model = KohonenQuantizer((3, 3), random_state=0).partial_fit(X)
        model.partial_fit(batch)
        assert model.cluster_centers_.dtype == np.float32
        results.append(model.cluster_centers_)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_a_256_by_256_map_trains_without_a_k_by_k_matrix():
    """K = 65 536: P as two 256 x 256 factors; a K x K float32 matrix would be 16 GiB."""
    X = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    for kernel in ("gaussian", "hard"):
        model = KohonenQuantizer((256, 256), neighbourhood=kernel, init="random", random_state=0)
        model.partial_fit(X)
        tracemalloc.start()
        model.partial_fit(X)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert neighbourhood_operator(model.grid_, kernel, 1.0).dense is None
        # Codebook, statistics and a 64 x K block of distances: a few MiB.
        assert peak < 64 * 2**20, peak


def test_the_neighbourhood_is_rebuilt_only_when_its_width_changes():
    import pickle

    schedule = NeighbourhoodSchedule(Grid((4, 4)), "gaussian", n_steps=3)
    built = [schedule.at(step) for step in range(6)]
    # Steps 0, 1, 2 shrink the width; from step 2 on it stays at sigma_end.
    assert built[0] is not built[1] and built[1] is not built[2]
    assert all(P is built[2] for P in built[3:])
    restored = pickle.loads(pickle.dumps(schedule))
    assert restored == schedule and restored.at(5) is not built[5]
    for restored_factor, factor in zip(restored.at(5).factors, built[5].factors):
        np.testing.assert_array_equal(restored_factor, factor)
    X = np.random.default_rng(0).normal(size=(32, 3))
    model = KohonenQuantizer((4, 4), schedule_steps=3, random_state=0)
    for _ in range(6):
        model.partial_fit(X)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.partial_fit(X).cluster_centers_, model.partial_fit(X).cluster_centers_)


@pytest.mark.parametrize("shared", [np.random.RandomState(0), None])
def test_a_failed_fit_puts_a_shared_random_state_back(shared):
    """A RandomState passed as random_state (or NumPy's global one) is drawn
    by fit itself: a fit that fails after drawing leaves it where it was."""
    X = np.random.default_rng(0).normal(size=(40, 3))
    model = KohonenQuantizer((3, 3), init="random", random_state=shared).fit(X)
    rng = model._random_state
    before = rng.get_state()

    def broken_kernel(distances, width):
        raise RuntimeError("kernel failed")

    model.set_params(neighbourhood=broken_kernel)
    with pytest.raises(RuntimeError, match="kernel failed"):
        model.fit(X)  # draws the random codebook, then fails
    after = rng.get_state()
    np.testing.assert_array_equal(after[1], before[1])
    assert after[2:] == before[2:]
    assert model._random_state is rng
