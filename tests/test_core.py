"""The core engine against docs/design.md section 2, written out independently here."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sklearn_ksom import core
from sklearn_ksom._array_api import to_numpy
from sklearn_ksom.topology import Grid, NeighbourhoodSchedule, dense_matrix, neighbourhood_operator

from .conftest import to_xp

# Quarter-integers: every distance is exact in floating point, so ties
# break the same way (lowest index) in the core and in the reference.
finite = st.integers(-400, 400).map(lambda i: i / 4)


def data_and_codebook(max_samples=30, max_codes=12, max_features=5):
    return st.tuples(
        st.integers(1, max_samples), st.integers(1, max_codes), st.integers(1, max_features)
    ).flatmap(
        lambda s: st.tuples(
            arrays(np.float64, (s[0], s[2]), elements=finite),
            arrays(np.float64, (s[1], s[2]), elements=finite, unique=False),
        )
    )


# ------------------------------------------------------------- reference
# docs/design.md section 2 spelled out with explicit one-hot and neighbourhood
# matrices, the forms the core avoids building.


def reference_ema_step(W, Nk, M, Z, P, gamma, eps, update_all=True):
    d = ((Z[:, None, :] - W[None, :, :]) ** 2).sum(-1)
    E = np.eye(W.shape[0])[d.argmin(1)]
    E_spread = E @ P  # E~ = E P, the N x K spread assignments
    n = E_spread.sum(0)
    sums = E_spread.T @ Z
    if update_all:
        Nk = gamma * Nk + (1 - gamma) * n
        total = Nk.sum()
        Nk = (Nk + eps) / (total + W.shape[0] * eps) * total
        M = gamma * M + (1 - gamma) * sums
        return M / Nk[:, None], Nk, M
    active = n > 0
    Nk, M, W = Nk.copy(), M.copy(), W.copy()
    Nk[active] = gamma * Nk[active] + (1 - gamma) * n[active]
    M[active] = gamma * M[active] + (1 - gamma) * sums[active]
    W[active] = M[active] / Nk[active, None]
    return W, Nk, M


# ------------------------------------------------------------ distances


@given(data_and_codebook())
def test_best_unit_is_the_argmin_of_the_distances(pair):
    X, W = pair
    assignment = core.assign(X, W, second=True)
    brute = ((X[:, None, :] - W[None, :, :]) ** 2).sum(-1)
    best = brute[np.arange(len(X)), assignment.first]
    np.testing.assert_allclose(best, brute.min(1), rtol=1e-9, atol=1e-6 * (1 + brute.max()))
    np.testing.assert_allclose(assignment.squared_distance, brute.min(1), rtol=1e-7, atol=1e-6 * (1 + brute.max()))
    if W.shape[0] > 1:
        assert np.all(assignment.second != assignment.first)
        runner_up = brute[np.arange(len(X)), assignment.second]
        masked = brute.copy()
        masked[np.arange(len(X)), assignment.first] = np.inf
        np.testing.assert_allclose(runner_up, masked.min(1), rtol=1e-9, atol=1e-6 * (1 + brute.max()))


def test_squared_distances_are_never_negative():
    X = np.full((4, 3), 1e8)
    assert np.all(core.squared_distances(X, X[:2]) >= 0)


def test_assign_in_blocks_equals_one_block():
    rng = np.random.default_rng(0)
    X, W = rng.normal(size=(103, 4)), rng.normal(size=(7, 4))
    whole = core.assign(X, W, second=True)
    blocks = core.assign(X, W, second=True, block_rows=10)
    for a, b in zip(whole, blocks):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------ statistics


@given(data_and_codebook(), st.booleans())
def test_code_statistics_are_the_one_hot_sums(pair, weighted):
    X, W = pair
    units = core.assign(X, W).first
    w = np.linspace(0.5, 2.0, len(X)) if weighted else None
    counts, sums = core.code_statistics(X, units, W.shape[0], w)
    E = np.eye(W.shape[0])[units] * (1.0 if w is None else w[:, None])
    np.testing.assert_allclose(counts, E.sum(0))
    np.testing.assert_allclose(sums, E.T @ X, atol=1e-9)


def test_code_statistics_agree_on_every_namespace(xp):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    units = rng.integers(0, 6, size=50)
    weights = rng.uniform(0.1, 2, size=50)
    expected = core.code_statistics(X, units, 6, weights)
    got = core.code_statistics(to_xp(xp, X), to_xp(xp, units), 6, to_xp(xp, weights))
    for e, g in zip(expected, got):
        np.testing.assert_allclose(to_numpy(g), e, rtol=1e-12)


# --------------------------------------------------------------- EMA step


@given(
    data_and_codebook(max_codes=8),
    st.floats(0.0, 0.999),
    st.sampled_from([0.0, 1.0, 3.0]),
    st.booleans(),
)
def test_ema_step_with_identity_neighbourhood_is_spec_ema_vq(pair, gamma, n0, update_all):
    X, W = pair
    state = core.initial_state(W, n0)
    new, _, _ = core.ema_step(
        state, X, neighbourhood_operator(Grid((W.shape[0],)), "none", 1.0),
        decay=gamma, epsilon=1e-5, update_all=update_all,
    )
    W_ref, Nk_ref, M_ref = reference_ema_step(
        W, np.full(W.shape[0], n0), W.copy(), X, np.eye(W.shape[0]), gamma, 1e-5, update_all
    )
    np.testing.assert_allclose(new.counts, Nk_ref, rtol=1e-9)
    np.testing.assert_allclose(new.sums, M_ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(new.codebook, W_ref, rtol=1e-7, atol=1e-7 * (1 + np.abs(W_ref).max()))


@pytest.mark.parametrize("kernel,width", [("hard", 1 / 1.3), ("exponential", 10 / 1.3), ("gaussian", 1.5), ("bubble", 1.2)])
@pytest.mark.parametrize("shape", [(6,), (3, 4), (2, 2, 2)])
@pytest.mark.parametrize("update_all", [True, False])
def test_ksom_step_is_spec_with_the_explicit_spread_assignment(kernel, width, shape, update_all):
    """E~ = E P, never built by the core, gives the same update."""
    rng = np.random.default_rng(0)
    grid = Grid(shape)
    W = rng.normal(size=(grid.n_codes, 3))
    X = rng.normal(size=(40, 3))
    state = core.EMAState(W, np.full(grid.n_codes, 1.0), W.copy())
    new, _, _ = core.ema_step(
        state, X, neighbourhood_operator(grid, kernel, width), decay=0.9, epsilon=1e-5, update_all=update_all
    )
    reference = reference_ema_step(W, state.counts, state.sums, X, dense_matrix(grid, kernel, width), 0.9, 1e-5, update_all)
    for got, expected in zip(new, reference):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@given(arrays(np.float64, st.integers(1, 20), elements=st.floats(0, 1e4)), st.floats(1e-8, 1e-2))
def test_laplace_smoothing_keeps_the_total_count(batch_counts, eps):
    K = batch_counts.shape[0]
    state = core.EMAState(np.zeros((K, 2)), np.ones(K), np.zeros((K, 2)))
    new = core.ema_update(state, batch_counts, np.zeros((K, 2)), decay=0.5, epsilon=eps)
    expected_total = 0.5 * K + 0.5 * batch_counts.sum()
    np.testing.assert_allclose(new.counts.sum(), expected_total, rtol=1e-10)
    assert np.all(new.counts > 0)


def test_active_only_update_leaves_unassigned_codes_untouched():
    W = np.array([[0.0, 0.0], [10.0, 10.0], [-10.0, 5.0]])
    state = core.initial_state(W, 0.0)
    X = np.array([[0.1, 0.2], [-0.1, 0.0]])  # all nearest to code 0
    new, _, _ = core.ema_step(state, X, neighbourhood_operator(Grid((3,)), "none", 1.0), decay=0.5, epsilon=1e-5, update_all=False)
    np.testing.assert_array_equal(new.codebook[1:], W[1:])
    np.testing.assert_array_equal(new.counts[1:], [0.0, 0.0])
    np.testing.assert_allclose(new.codebook[0], X.mean(0))


def test_zero_initial_count_kills_unassigned_codes_under_update_all():
    """docs/design.md section 2: with N0 = 0 an unused code ends with N_k ~ eps and blows up."""
    W = np.array([[0.0, 0.0], [3.0, 3.0]])
    X = np.zeros((4, 2)) + 0.1
    new, _, _ = core.ema_step(core.initial_state(W, 0.0), X, neighbourhood_operator(Grid((2,)), "none", 1.0), decay=0.99, epsilon=1e-5)
    assert np.abs(new.codebook[1]).max() > 1e3 * np.abs(W[1]).max()


def test_reduce_hook_sees_raw_statistics_and_its_result_is_used():
    rng = np.random.default_rng(2)
    W, X = rng.normal(size=(4, 2)), rng.normal(size=(10, 2))
    seen = {}

    def double(counts, sums):
        seen["total"] = counts.sum()
        return 2 * counts, 2 * sums

    doubled, _, _ = core.ema_step(core.initial_state(W, 1.0), X, neighbourhood_operator(Grid((4,)), "none", 1), decay=0.5, epsilon=1e-5, reduce=double)
    twice, _, _ = core.ema_step(core.initial_state(W, 1.0), np.concatenate([X, X]), neighbourhood_operator(Grid((4,)), "none", 1), decay=0.5, epsilon=1e-5)
    assert seen["total"] == 10
    for a, b in zip(doubled, twice):
        np.testing.assert_allclose(a, b)


def test_ema_step_agrees_on_every_namespace(xp):
    rng = np.random.default_rng(3)
    grid = Grid((3, 4))
    W, X = rng.normal(size=(12, 5)), rng.normal(size=(64, 5))
    expected, _, _ = core.ema_step(core.initial_state(W, 1.0), X, neighbourhood_operator(grid, "gaussian", 1.2), decay=0.9, epsilon=1e-5)
    P = neighbourhood_operator(grid, "gaussian", 1.2, xp=xp, dtype=xp.float64)
    got, assignment, _ = core.ema_step(core.initial_state(to_xp(xp, W), 1.0), to_xp(xp, X), P, decay=0.9, epsilon=1e-5)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(to_numpy(g), e, rtol=1e-10)
    assert type(got.codebook) is type(to_xp(xp, W))


# --------------------------------------------------------------- batch SOM


def test_batch_step_without_neighbourhood_is_lloyd():
    rng = np.random.default_rng(4)
    X, W = rng.normal(size=(200, 3)), rng.normal(size=(5, 3))
    counts, sums, error = core.batch_statistics(X, W)
    new = core.batch_som_update(W, counts, sums, neighbourhood_operator(Grid((5,)), "none", 1.0))
    labels = ((X[:, None] - W[None]) ** 2).sum(-1).argmin(1)
    for k in range(5):
        expected = X[labels == k].mean(0) if np.any(labels == k) else W[k]
        np.testing.assert_allclose(new[k], expected)
    np.testing.assert_allclose(error, ((X[:, None] - W[None]) ** 2).sum(-1).min(1).sum())


def test_batch_statistics_add_up_over_chunks():
    rng = np.random.default_rng(5)
    X, W = rng.normal(size=(90, 3)), rng.normal(size=(6, 3))
    whole = core.batch_statistics(X, W)
    parts = [core.batch_statistics(X[i : i + 30], W) for i in range(0, 90, 30)]
    for k in range(3):
        np.testing.assert_allclose(sum(p[k] for p in parts), whole[k])


def test_batch_step_is_the_neighbourhood_weighted_mean():
    rng = np.random.default_rng(6)
    grid = Grid((2, 3))
    X, W = rng.normal(size=(60, 2)), rng.normal(size=(6, 2))
    counts, sums, _ = core.batch_statistics(X, W)
    new = core.batch_som_update(W, counts, sums, neighbourhood_operator(grid, "gaussian", 1.0))
    E = np.eye(6)[((X[:, None] - W[None]) ** 2).sum(-1).argmin(1)] @ dense_matrix(grid, "gaussian", 1.0)
    np.testing.assert_allclose(new, (E.T @ X) / E.sum(0)[:, None])


def test_ema_step_returns_the_batch_counts_it_used():
    rng = np.random.default_rng(4)
    W, X = rng.normal(size=(5, 3)), rng.normal(size=(40, 3))
    grid = Grid((5,))
    step = core.ema_step(core.initial_state(W, 1.0), X, neighbourhood_operator(grid, "gaussian", 1.0), decay=0.9, epsilon=1e-5)
    np.testing.assert_array_equal(step.counts, np.bincount(step.assignment.first, minlength=5))
    doubled = core.ema_step(
        core.initial_state(W, 1.0), X, neighbourhood_operator(grid, "gaussian", 1.0), decay=0.9, epsilon=1e-5,
        reduce=lambda counts, sums: (2 * counts, 2 * sums),
    )  # fmt: skip
    np.testing.assert_array_equal(doubled.counts, 2 * step.counts)  # after reduce, before the spread


def test_resting_state_is_consistent_with_its_codebook():
    W = np.arange(12.0).reshape(4, 3)
    counts = np.array([300.0, 0.0, 100.0, 600.0])  # code 1 chosen by no sample
    state = core.resting_state(W, counts, batch_size=100, total_weight=1000.0, initial_count=0.5)
    np.testing.assert_allclose(state.counts, [30.0, 0.5, 10.0, 60.0])  # one batch's units; N0 where unchosen
    np.testing.assert_allclose(state.sums[[0, 2, 3]] / state.counts[[0, 2, 3], None], W[[0, 2, 3]])
    np.testing.assert_array_equal(state.sums[1], W[1])  # the reference start M = W
    assert state.codebook is W


# ------------------------------------------------ coarse to fine, stopping


@given(st.integers(1, 10**6), st.integers(1, 40), st.integers(1, 10**5))
def test_coarse_to_fine_rows_double_up_to_all_rows(n_samples, n_iterations, min_rows):
    rows = core.coarse_to_fine_rows(n_samples, n_iterations, min_rows)
    assert len(rows) == n_iterations and rows[-1] is None  # the last iteration sees every row
    sizes = [n_samples if size is None else size for size in rows]
    assert all(min(min_rows, n_samples) <= size <= n_samples for size in sizes)
    assert all(a <= b <= max(2 * a, min_rows) for a, b in zip(sizes, sizes[1:]))  # at most doubling
    assert all(size == n_samples or size >= n_samples / 2 ** (n_iterations - 1 - i) for i, size in enumerate(sizes))
    assert core.coarse_to_fine_rows(n_samples, n_iterations, None) is None


def test_coarse_to_fine_rows_of_the_reference_fit():
    # 60 000 rows, 12 iterations, at least 4096: 8 subsamples, then 7500, 15 000, 30 000, all.
    assert core.coarse_to_fine_rows(60_000, 12, 4096) == [4096] * 8 + [7500, 15_000, 30_000, None]


def _recording_statistics(X, seen):
    def statistics(codebook, n_rows):
        seen.append(n_rows)
        rows = X if n_rows is None else X[:n_rows]
        return core.batch_statistics(rows, codebook)

    return statistics


def test_batch_som_asks_each_iteration_for_its_rows_and_ends_on_all_rows():
    X = np.random.default_rng(0).normal(size=(100, 2))
    seen = []
    rows = core.coarse_to_fine_rows(100, 5, 10)
    schedule = NeighbourhoodSchedule(Grid((3,)), "gaussian", n_steps=5)
    run = core.batch_som(_recording_statistics(X, seen), X[:3], schedule, 5, rows=rows)
    assert seen == [*rows, None] and run.n_iterations == 5  # the final statistics: all rows


@pytest.mark.parametrize("kernel", ["gaussian", "none"])
def test_batch_som_stops_only_past_the_end_of_the_schedule(kernel):
    X = np.random.default_rng(0).normal(size=(100, 2))
    schedule = NeighbourhoodSchedule(Grid((3,)), kernel, n_steps=6)
    # Any change passes tol = 10: the run stops at the first iteration
    # allowed to, past the schedule's 6 (with no neighbourhood: the second).
    run = core.batch_som(_recording_statistics(X, []), X[:3], schedule, 50, tol=10.0)
    assert run.n_iterations == (6 if kernel == "gaussian" else 1)
    assert core.batch_som(_recording_statistics(X, []), X[:3], schedule, 50, tol=0.0).n_iterations == 50
