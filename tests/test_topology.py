"""Grids, kernels, schedules and the neighbourhood operator P(t)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sklearn_ksom._array_api import to_numpy
from sklearn_ksom.topology import (
    KERNELS,
    Grid,
    NeighbourhoodSchedule,
    dense_matrix,
    neighbourhood_operator,
    width_at,
)

from .conftest import to_xp

grids = st.one_of(
    st.tuples(st.integers(1, 9)).map(lambda s: Grid(s)),
    st.tuples(st.integers(1, 6), st.integers(1, 6)).map(lambda s: Grid(s)),
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)).map(lambda s: Grid(s)),
    st.tuples(st.integers(1, 3).map(lambda r: 2 * r), st.integers(2, 6)).map(lambda s: Grid(s, hexagonal=True)),
    st.tuples(st.integers(2, 6), st.integers(2, 6)).map(lambda s: Grid(s, toroidal=True)),
    st.tuples(st.integers(1, 3).map(lambda r: 2 * r), st.integers(2, 6)).map(
        lambda s: Grid(s, hexagonal=True, toroidal=True)
    ),
)
kernels = st.sampled_from(sorted(name for name, kernel in KERNELS.items() if not kernel.signed))
widths = st.floats(0.05, 20.0)


@given(grids, kernels, widths)
def test_neighbourhood_is_symmetric_with_unit_diagonal(grid, kernel, width):
    P = dense_matrix(grid, kernel, width)
    np.testing.assert_allclose(P, P.T, atol=1e-12)
    np.testing.assert_array_equal(np.diag(P), 1.0)
    assert np.all((P >= 0) & (P <= 1))


@given(grids, kernels, widths)
def test_neighbourhood_does_not_grow_with_grid_distance(grid, kernel, width):
    P = dense_matrix(grid, kernel, width)
    d = grid.distances()
    for row in range(grid.n_codes):
        order = np.argsort(d[row], kind="stable")
        weights = P[row, order]
        assert np.all(np.diff(weights) <= 1e-12)


@given(grids, st.sampled_from(["gaussian", "hard"]), widths)
def test_separable_spread_equals_the_dense_matrix(grid, kernel, width):
    rng = np.random.default_rng(0)
    stats = rng.normal(size=(grid.n_codes, 3))
    fast = neighbourhood_operator(grid, kernel, width)
    P = dense_matrix(grid, kernel, width)
    np.testing.assert_allclose(fast.spread(stats), P.T @ stats, atol=1e-10)
    np.testing.assert_allclose(fast.spread(stats[:, 0]), P.T @ stats[:, 0], atol=1e-10)


def test_gaussian_and_hard_factorise_on_rectangular_grids_of_at_most_two_axes():
    assert neighbourhood_operator(Grid((4, 5)), "gaussian", 1.0).factors is not None
    assert neighbourhood_operator(Grid((4, 5), toroidal=True), "hard", 0.5).factors is not None
    assert neighbourhood_operator(Grid((2, 2, 2)), "gaussian", 1.0).factors is not None
    assert neighbourhood_operator(Grid((2, 2, 2)), "hard", 0.5).dense is not None  # 1[d<1.5] is no box in 3-D
    assert neighbourhood_operator(Grid((4, 4), hexagonal=True), "gaussian", 1.0).dense is not None


def test_paper_hard_neighbourhood():
    """docs/design.md section 4: P = 1[d < 1.5] / (1 + tau t) off the diagonal, diagonal 1."""
    grid, tau, t = Grid((5, 5)), 0.1, 7
    width = width_at("inverse", t, None, 1.0, None, tau)
    P = dense_matrix(grid, "hard", width)
    d = grid.distances()
    expected = np.where(d < 1.5, 1 / (1 + tau * t), 0.0)
    np.fill_diagonal(expected, 1.0)
    np.testing.assert_allclose(P, expected)
    assert (P[12] > 0).sum() == 9  # 8 neighbours and itself in 2-D
    assert (dense_matrix(Grid((5,)), "hard", width)[2] > 0).sum() == 3


def test_paper_gaussian_neighbourhood():
    """docs/design.md section 4: P = exp(-d (1 + tau t) / b), d not squared, b = 10."""
    grid, tau, t, b = Grid((4, 8)), 0.1, 25, 10.0
    width = width_at("inverse", t, None, b, None, tau)
    np.testing.assert_allclose(dense_matrix(grid, "exponential", width), np.exp(-grid.distances() * (1 + tau * t) / b))


def test_classic_gaussian_and_bubble():
    grid = Grid((3, 3))
    d = grid.distances()
    np.testing.assert_allclose(dense_matrix(grid, "gaussian", 2.0), np.exp(-(d**2) / 8))
    np.testing.assert_array_equal(dense_matrix(grid, "bubble", 1.0), (d <= 1.0).astype(float))


def test_callable_kernel():
    def triangle(d, width):
        return np.clip(1 - d / width, 0, None)

    P = dense_matrix(Grid((4,)), triangle, 2.0)
    np.testing.assert_allclose(P[0], [1, 0.5, 0, 0])


@pytest.mark.parametrize("schedule", ["exponential", "linear", "inverse"])
def test_schedules_shrink_from_start_to_end(schedule):
    values = [width_at(schedule, t, 50, 8.0, 0.5, 0.1) for t in range(60)]
    assert values[0] == 8.0
    assert np.all(np.diff(values) <= 1e-12)
    if schedule != "inverse":
        assert math.isclose(values[49], 0.5) and values[-1] == values[49]


def test_rectangular_grid_geometry():
    grid = Grid((3, 4))
    assert grid.n_codes == 12
    np.testing.assert_array_equal(grid.indices[5], [1, 1])  # C order
    assert grid.distances()[0, 5] == pytest.approx(math.sqrt(2))


def test_hexagonal_inner_code_has_six_neighbours_at_distance_one():
    grid = Grid((4, 4), hexagonal=True)
    d = grid.distances()
    inner = np.ravel_multi_index((1, 1), grid.shape)
    assert np.sum(np.isclose(d[inner], 1.0)) == 6


def test_torus_wraps_every_axis():
    grid = Grid((5, 6), toroidal=True)
    d = grid.distances()
    corner, opposite = 0, np.ravel_multi_index((4, 5), grid.shape)
    assert d[corner, opposite] == pytest.approx(math.sqrt(2))
    hexagonal = Grid((4, 6), hexagonal=True, toroidal=True)
    assert np.all(np.sum(np.isclose(hexagonal.distances(), 1.0), axis=1) == 6)


def test_adjacency_matches_the_grid_distances(xp):
    grid = Grid((4, 4), toroidal=True)
    first = np.repeat(np.arange(16), 16)
    second = np.tile(np.arange(16), 16)
    adjacent = to_numpy(grid.adjacent(to_xp(xp, first), to_xp(xp, second)))
    expected = grid.distances().ravel() <= math.sqrt(2) + 1e-9
    np.testing.assert_array_equal(adjacent, expected)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(shape=()), "non-empty"),
        (dict(shape=(3, 0)), "positive"),
        (dict(shape=(3, 3, 3), hexagonal=True), "hexagonal grid must be 2-D"),
        (dict(shape=(3, 4), hexagonal=True, toroidal=True), "even number of rows"),
    ],
)
def test_bad_grids_are_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Grid(**kwargs)


def test_huge_non_separable_map_is_refused_before_allocating():
    with pytest.raises(ValueError, match="factorises over the axes"):
        neighbourhood_operator(Grid((256, 256)), "exponential", 1.0)


def test_huge_separable_map_needs_no_k_by_k_matrix():
    P = neighbourhood_operator(Grid((256, 256)), "gaussian", 3.0)
    assert all(f.shape == (256, 256) for f in P.factors)
    stats = np.ones((256 * 256, 2), dtype=np.float32)
    out = P.spread(stats)
    assert out.shape == stats.shape


def test_weights_are_built_on_the_statistics_device(xp):
    P = neighbourhood_operator(Grid((3, 3), hexagonal=True), "gaussian", 1.0, xp=xp, dtype=xp.float64)
    stats = to_xp(xp, np.ones((9, 2)))
    spread = P.spread(stats, xp=xp)
    assert type(spread) is type(stats)
    np.testing.assert_allclose(to_numpy(spread), dense_matrix(Grid((3, 3), hexagonal=True), "gaussian", 1.0).T @ np.ones((9, 2)))


# ------------------------------------------------ a codebook from MiniSom


def minisom_codes_in_our_order(weights, hexagonal):
    """MiniSom's (x, y, D) weights as our (K, D) codebook: the recipe of
    docs/design.md section 6 (hexagonal maps: transpose, then flip the rows)."""
    if hexagonal:
        weights = weights.transpose(1, 0, 2)[::-1]
    return weights.reshape(-1, weights.shape[-1])


@pytest.mark.parametrize("hexagonal", [False, True])
@pytest.mark.parametrize("shape", [(4, 6), (5, 3), (6, 6), (3, 4)])
def test_a_minisom_map_lands_on_our_grid_with_the_same_geometry(shape, hexagonal):
    minisom = pytest.importorskip("minisom")
    x, y = shape
    som = minisom.MiniSom(x, y, 3, topology="hexagonal" if hexagonal else "rectangular", random_seed=0)
    xx, yy = som.get_euclidean_coordinates()
    positions = np.stack([xx, yy], axis=-1)  # MiniSom's code (i, j) at [i, j]
    grid = Grid((y, x), hexagonal=True) if hexagonal else Grid((x, y))
    ours = minisom_codes_in_our_order(positions, hexagonal)  # their positions in our code order
    their_distances = np.linalg.norm(ours[:, None] - ours[None], axis=-1)
    np.testing.assert_allclose(grid.distances(), their_distances, atol=1e-12)
    # And the same winners: MiniSom's winner (i, j) is our code of that position.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    from sklearn_ksom import KohonenQuantizer

    codebook = minisom_codes_in_our_order(som.get_weights(), hexagonal)
    model = KohonenQuantizer(grid.shape, hexagonal=hexagonal, init=codebook, max_iter=0).fit(X)
    index = np.arange(x * y).reshape(x, y, 1)
    ours_of_theirs = minisom_codes_in_our_order(index, hexagonal)[:, 0]
    position_of = np.argsort(ours_of_theirs)  # MiniSom's flat index i * y + j -> our code
    theirs = np.array([position_of[i * y + j] for i, j in (som.winner(row) for row in X)])
    np.testing.assert_array_equal(model.labels_, theirs)


# ------------------------------------------------- the neighbourhood schedule


@pytest.mark.parametrize(
    ("kernel", "start", "end"),
    [("gaussian", 4.0, 1 / 3), ("bubble", 4.0, 0.5), ("exponential", 10.0, 0.5), ("hard", 1.0, 0.01)],
)
def test_a_schedule_takes_each_kernels_default_widths(kernel, start, end):
    schedule = NeighbourhoodSchedule(Grid((8, 5)), kernel)
    assert (schedule.start, schedule.end, schedule.length) == (start, end, 1000)
    assert NeighbourhoodSchedule(Grid((8, 5)), kernel, sigma=0.005).end == 0.005  # never above the start


def test_a_schedule_of_no_given_length_spans_the_run_it_is_given():
    schedule = NeighbourhoodSchedule(Grid((4,)), "gaussian")
    assert schedule.over(20).length == 20 and schedule.over(20).width(19) == schedule.end
    fixed = NeighbourhoodSchedule(Grid((4,)), "gaussian", n_steps=5)
    assert fixed.over(20) is fixed


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(kernel="bogus"), "'kernel' parameter"),
        (dict(sigma=0.0), "'sigma' parameter"),
        (dict(sigma=float("nan")), "'sigma' parameter"),
        (dict(sigma_end=-1.0), "'sigma_end' parameter"),
        (dict(schedule="sometimes"), "'schedule' parameter"),
        (dict(shrink=-0.1), "'shrink' parameter"),
        (dict(n_steps=0), "'n_steps' parameter"),
    ],
)
def test_a_bad_schedule_setting_is_named(settings, message):
    with pytest.raises(ValueError, match=message):
        NeighbourhoodSchedule(Grid((4,)), **settings)


def test_the_estimators_parameter_names_are_named_in_their_errors():
    with pytest.raises(ValueError, match="'neighbourhood' parameter of KohonenVQ"):
        NeighbourhoodSchedule.from_parameters(Grid((4,)), caller="KohonenVQ", neighbourhood="bogus")
    schedule = NeighbourhoodSchedule.from_parameters(Grid((4,)), neighbourhood="hard", schedule_steps=7)
    assert schedule == NeighbourhoodSchedule(Grid((4,)), "hard", n_steps=7)


def test_a_schedule_callable_that_gives_no_width_is_refused():
    schedule = NeighbourhoodSchedule(Grid((4,)), "gaussian", schedule=lambda *args: float("nan"))
    with pytest.raises(ValueError, match="gave the width nan at step 3"):
        schedule.at(3)


def test_no_neighbourhood_is_the_identity_at_every_step():
    schedule = NeighbourhoodSchedule(Grid((4,)), "none")
    assert schedule.is_identity and schedule.at(0).is_identity and schedule.at(10**6).is_identity


def test_triangle_falls_linearly_to_zero_at_its_width():
    grid = Grid((7,))
    P = dense_matrix(grid, "triangle", 2.5)
    np.testing.assert_allclose(P[0], [1.0, 0.6, 0.2, 0.0, 0.0, 0.0, 0.0])
    hexagonal = dense_matrix(Grid((4, 4), hexagonal=True), "triangle", 2.0)
    np.testing.assert_allclose(hexagonal, np.clip(1 - Grid((4, 4), hexagonal=True).distances() / 2.0, 0, None))


def test_mexican_hat_is_negative_beyond_its_width():
    d = Grid((6,)).distances()[0]
    P = dense_matrix(Grid((6,)), "mexican_hat", 2.0)
    np.testing.assert_allclose(P[0], (1 - d**2 / 4) * np.exp(-(d**2) / 8))
    assert P[0, 1] > 0 and P[0, 2] == 0 and P[0, 3] < 0


def test_training_refuses_a_kernel_with_negative_weights():
    from sklearn_ksom import KohonenQuantizer

    with pytest.raises(ValueError, match="negative weights"):
        neighbourhood_operator(Grid((4, 4)), "mexican_hat", 1.0)
    X = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="neighbourhood"):
        KohonenQuantizer((4, 4), neighbourhood="mexican_hat").fit(X)
    # A later partial_fit validates a changed parameter: refused, the map left as it was.
    som = KohonenQuantizer((4, 4), random_state=0).partial_fit(X)
    before = som.cluster_centers_.copy()
    som.set_params(neighbourhood="mexican_hat")
    with pytest.raises(ValueError, match="neighbourhood"):
        som.partial_fit(X)
    np.testing.assert_array_equal(som.cluster_centers_, before)


@pytest.mark.parametrize("hexagonal", [False, True])
def test_a_map_trained_with_the_triangle_is_ordered(hexagonal):
    from sklearn_ksom import KohonenQuantizer, metrics

    X = np.random.default_rng(0).uniform(size=(1000, 2))
    som = KohonenQuantizer((6, 6), hexagonal=hexagonal, neighbourhood="triangle", random_state=0).fit(X)
    assert metrics.topographic_error(X, som.cluster_centers_, som.grid_) < 0.1
