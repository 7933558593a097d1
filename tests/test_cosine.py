"""Cosine codebooks (docs/design.md section 13): the metric in the core, the
estimators, the quality figures and the torch layers."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_ksom import EMAQuantizer, KohonenQuantizer, core, metrics
from sklearn_ksom.topology import Grid, NeighbourhoodSchedule
from torch_adapter import EMAVQ, KohonenVQ

from .conftest import assert_same_state, fitted_state, to_xp


def brute_force_cosine_distances(X, W):
    """1 - x.w / (|x| |w|), pair by pair; a zero x has cosine 0 with every code."""
    out = np.empty((len(X), len(W)))
    for i, x in enumerate(X):
        for k, w in enumerate(W):
            if not np.any(x):
                out[i, k] = 1.0
                continue
            x, w = x / np.max(np.abs(x)), w / np.max(np.abs(w))  # no underflow in the squares
            out[i, k] = 1.0 - float(np.sum(x * w)) / (np.sqrt(np.sum(x * x)) * np.sqrt(np.sum(w * w)))
    return out


def unit_norms_error(codebook):
    return float(np.max(np.abs(np.linalg.norm(np.asarray(codebook), axis=1) - 1)))


finite = st.floats(-1e3, 1e3, allow_subnormal=False)
rows = st.integers(1, 12).flatmap(lambda n: st.integers(1, 5).map(lambda d: (n, d)))


@st.composite
def samples_and_codes(draw):
    n, d = draw(rows)
    X = draw(arrays(np.float64, (n, d), elements=finite))
    W = draw(arrays(np.float64, (draw(st.integers(1, 6)), d), elements=finite))
    # Codes need a direction; samples may be zero (they tie at distance 1).
    W[~np.any(np.abs(W) > 1e-3, axis=1), 0] = 1.0
    return X, W


BLOBS = np.random.default_rng(0).normal(size=(300, 6)) + np.repeat(np.eye(6)[:3] * 4, 100, axis=0)


# ------------------------------------------------------------ the core


@given(samples_and_codes())
def test_cosine_distances_equal_a_brute_force_loop(data):
    X, W = data
    expected = brute_force_cosine_distances(X, W)
    np.testing.assert_allclose(core.distances(X, W, metric="cosine"), expected, atol=1e-9)
    assignment = core.assign(X, W, metric="cosine", second=True)
    best = expected[np.arange(len(X)), assignment.first]
    np.testing.assert_allclose(best, expected.min(axis=1), atol=1e-9)
    np.testing.assert_allclose(assignment.squared_distance, expected.min(axis=1), atol=1e-9)


@given(samples_and_codes(), st.floats(1e-3, 1e3))
def test_cosine_distances_ignore_the_length_of_samples_and_codes(data, scale):
    X, W = data
    np.testing.assert_allclose(
        core.distances(scale * X, W / scale, metric="cosine"), core.distances(X, W, metric="cosine"), atol=1e-9
    )


def test_rows_of_huge_or_subnormal_values_keep_their_direction():
    X = np.array([[3e300, 4e300], [3e-320, 4e-320], [0.0, 0.0]])
    np.testing.assert_allclose(core.unit_rows(X), [[0.6, 0.8], [0.6, 0.8], [0.0, 0.0]], rtol=1e-3)
    assert np.isfinite(core.unit_rows(X)).all()


def test_a_zero_row_is_at_distance_1_from_every_code_and_takes_code_0():
    W = core.unit_rows(np.random.default_rng(1).normal(size=(5, 3)))
    X = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(core.distances(X, W, metric="cosine")[0], np.ones(5))
    assignment = core.assign(X, W, metric="cosine", second=True)
    assert assignment.first[0] == 0 and assignment.second[0] == 1 and assignment.squared_distance[0] == 1.0


def test_a_zero_code_is_refused_naming_it():
    W = np.eye(3)
    W[1] = 0
    with pytest.raises(ValueError, match=r"the codebook has 1 code\(s\) of zeros \(rows 1\)"):
        core.distances(np.ones((2, 3)), W, metric="cosine")


def test_an_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="metric must be one of 'euclidean', 'cosine'; got 'manhattan'"):
        core.assign(np.ones((2, 3)), np.eye(3), metric="manhattan")


def test_the_cosine_ema_update_is_the_normalised_m_over_n():
    rng = np.random.default_rng(2)
    W = core.unit_rows(rng.normal(size=(4, 3)))
    state = core.EMAState(W, np.ones(4), W.copy())
    counts, sums = np.array([2.0, 0.0, 1.0, 3.0]), rng.normal(size=(4, 3))
    new = core.ema_update(state, counts, sums, decay=0.9, epsilon=1e-5, metric="cosine")
    euclidean = core.ema_update(state, counts, sums, decay=0.9, epsilon=1e-5)
    np.testing.assert_array_equal(new.counts, euclidean.counts)
    np.testing.assert_array_equal(new.sums, euclidean.sums)
    M_over_N = euclidean.sums / euclidean.counts[:, None]
    np.testing.assert_allclose(new.codebook, M_over_N / np.linalg.norm(M_over_N, axis=1, keepdims=True), rtol=1e-14)


def test_a_code_whose_mean_vanishes_keeps_its_direction():
    W = core.unit_rows(np.array([[1.0, 1.0], [1.0, -1.0]]))
    # Code 0's two vectors cancel: its batch-SOM mean is the zero vector.
    counts, sums = np.array([2.0, 1.0]), np.array([[0.0, 0.0], [3.0, 0.0]])
    identity = NeighbourhoodSchedule(Grid((2,)), "none").at(0)
    updated = core.batch_som_update(W, counts, sums, identity, metric="cosine")
    np.testing.assert_array_equal(updated[0], W[0])
    np.testing.assert_allclose(updated[1], [1.0, 0.0])


def test_the_cosine_batch_step_is_spherical_k_means():
    X = core.unit_rows(BLOBS)
    W = X[[0, 100, 200]]
    labels = np.argmax(X @ W.T, axis=1)
    expected = np.stack([X[labels == k].sum(axis=0) for k in range(3)])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    counts, sums, _ = core.batch_statistics(BLOBS, W, metric="cosine")
    identity = NeighbourhoodSchedule(Grid((3,)), "none").at(0)
    np.testing.assert_allclose(core.batch_som_update(W, counts, sums, identity, metric="cosine"), expected, rtol=1e-12)


def test_cosine_distances_on_every_namespace(xp):
    rng = np.random.default_rng(3)
    X, W = rng.normal(size=(20, 4)), rng.normal(size=(6, 4))
    X[5] = 0
    result = core.distances(to_xp(xp, X), to_xp(xp, W), metric="cosine")
    np.testing.assert_allclose(np.asarray(result), brute_force_cosine_distances(X, W), atol=1e-12)
    assignment = core.assign(to_xp(xp, X), to_xp(xp, W), metric="cosine")
    np.testing.assert_array_equal(np.asarray(assignment.first), core.assign(X, W, metric="cosine").first)


# ------------------------------------------------------------ the estimators

ESTIMATORS = {
    "som-batch": KohonenQuantizer(grid_shape=(3, 3), max_iter=5, metric="cosine", random_state=0),
    "som-ema": KohonenQuantizer(grid_shape=(3, 3), algorithm="ema", max_iter=3, batch_size=64, metric="cosine",
                                random_state=0),
    "ema-vq": EMAQuantizer(n_clusters=6, max_iter=3, batch_size=64, metric="cosine", random_state=0),
    "k-means": EMAQuantizer(n_clusters=6, algorithm="batch", max_iter=5, metric="cosine", random_state=0),
}  # fmt: skip


def fresh(name, **params):
    from sklearn.base import clone

    return clone(ESTIMATORS[name]).set_params(**params)


@pytest.mark.parametrize("init", ["pca", "sample", "k-means++", "random"])
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_the_codebook_is_unit_length_after_fit_and_partial_fit(name, init):
    estimator = fresh(name, init=init)
    assert unit_norms_error(fresh(name, init=init, max_iter=0).fit(BLOBS).cluster_centers_) < 1e-12
    estimator.fit(BLOBS)
    assert unit_norms_error(estimator.cluster_centers_) < 1e-12
    for start in range(0, 300, 50):
        estimator.partial_fit(BLOBS[start : start + 50])
        assert unit_norms_error(estimator.cluster_centers_) < 1e-12
    streamed = fresh(name, init=init)
    streamed.partial_fit(BLOBS[:50])
    assert unit_norms_error(streamed.cluster_centers_) < 1e-12


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_predictions_do_not_depend_on_the_length_of_the_samples(name):
    estimator = fresh(name).fit(BLOBS)
    lengths = np.random.default_rng(4).uniform(0.01, 100, size=(300, 1))
    np.testing.assert_array_equal(estimator.predict(BLOBS), estimator.predict(3 * BLOBS))
    np.testing.assert_array_equal(estimator.predict(BLOBS), estimator.predict(lengths * BLOBS))
    np.testing.assert_allclose(estimator.transform(BLOBS), estimator.transform(lengths * BLOBS), atol=1e-12)
    # And the fit itself: the same codebook from rescaled rows.
    np.testing.assert_allclose(fresh(name).fit(lengths * BLOBS).cluster_centers_, estimator.cluster_centers_, atol=1e-9)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_transform_score_and_quality_figures_use_the_cosine_distance(name):
    estimator = fresh(name).fit(BLOBS)
    expected = brute_force_cosine_distances(BLOBS, estimator.cluster_centers_)
    np.testing.assert_allclose(estimator.transform(BLOBS), expected, atol=1e-12)
    np.testing.assert_array_equal(estimator.predict(BLOBS), expected.argmin(axis=1))
    np.testing.assert_array_equal(estimator.labels_, expected.argmin(axis=1))
    assert estimator.score(BLOBS) == pytest.approx(-expected.min(axis=1).mean(), abs=1e-12)
    assert estimator.quantization_error(BLOBS) == pytest.approx(expected.min(axis=1).mean(), abs=1e-12)
    assert estimator.inertia_ == pytest.approx(expected.min(axis=1).sum(), abs=1e-9)
    np.testing.assert_allclose(estimator.quantize(BLOBS), estimator.cluster_centers_[expected.argmin(axis=1)])


def test_the_topographic_error_ranks_codes_by_cosine():
    som = fresh("som-batch").fit(BLOBS)
    order = np.argsort(brute_force_cosine_distances(BLOBS, som.cluster_centers_), axis=1)
    adjacent = som.grid_.adjacent(order[:, 0], order[:, 1])
    assert som.topographic_error(BLOBS) == pytest.approx(1 - np.mean(adjacent))


def test_cosine_differs_from_euclidean_on_rows_of_different_lengths():
    # Two directions, each at two lengths: Euclidean k-means splits by length, cosine by direction.
    X = np.concatenate([np.array([[1.0, 0.1]]) * [[1], [10]], np.array([[0.1, 1.0]]) * [[1], [10]]])
    X = np.repeat(X, 25, axis=0) + np.random.default_rng(5).normal(scale=0.01, size=(100, 2))
    init = np.array([[1.0, 1.0], [10.0, 10.0]])
    cosine = EMAQuantizer(2, init=init, algorithm="batch", metric="cosine").fit(X)
    euclidean = EMAQuantizer(2, init=init, algorithm="batch").fit(X)
    direction = np.repeat([0, 1], 50)
    assert abs(np.corrcoef(cosine.labels_, direction)[0, 1]) == pytest.approx(1)
    assert abs(np.corrcoef(euclidean.labels_, direction)[0, 1]) < 0.5


def test_rows_of_zeros_are_placed_by_the_convention_and_leave_the_codes_directions_alone():
    X = np.concatenate([BLOBS, np.zeros((30, 6))])
    init = core.unit_rows(BLOBS[[0, 1, 100, 101, 200, 201]])
    with_zeros = EMAQuantizer(6, init=init, algorithm="batch", metric="cosine").fit(X)
    without = EMAQuantizer(6, init=init, algorithm="batch", metric="cosine").fit(BLOBS)
    np.testing.assert_allclose(with_zeros.cluster_centers_, without.cluster_centers_, atol=1e-12)
    assert (with_zeros.predict(np.zeros((2, 6))) == 0).all()
    np.testing.assert_array_equal(with_zeros.transform(np.zeros((1, 6))), np.ones((1, 6)))
    assert np.isfinite(with_zeros.score(X))
    # EMA steps too: zero rows add to the counts, never to a code's direction.
    streamed = EMAQuantizer(6, init=init, max_iter=0, metric="cosine").fit(BLOBS)
    reference = EMAQuantizer(6, init=init, max_iter=0, metric="cosine").fit(BLOBS)
    streamed.partial_fit(np.concatenate([BLOBS[:40], np.zeros((10, 6))]))
    reference.partial_fit(BLOBS[:40])
    np.testing.assert_allclose(streamed.cluster_centers_, reference.cluster_centers_, atol=1e-12)


def test_an_init_array_with_a_zero_code_is_refused_and_changes_nothing():
    estimator = fresh("ema-vq").fit(BLOBS)
    init = np.ones((6, 6))
    init[2] = 0
    estimator.set_params(init=init)
    before = fitted_state(estimator)
    with pytest.raises(ValueError, match=r"init has 1 code\(s\) of zeros \(rows 2\).*init='k-means\+\+'"):
        estimator.fit(BLOBS)
    assert_same_state(before, fitted_state(estimator))


def test_a_pca_start_with_a_code_at_the_origin_is_refused_with_advice():
    # Symmetric data: the unit rows' mean is 0, where the middle code of a 3 x 3 PCA grid sits.
    X = np.repeat(np.concatenate([np.diag([1.0, 2.0, 3.0]), -np.diag([1.0, 2.0, 3.0])]), 5, axis=0)
    with pytest.raises(ValueError, match=r"The starting codebook \(init='pca'\) has 1 code\(s\) of zeros \(rows 4\)"):
        KohonenQuantizer(grid_shape=(3, 3), metric="cosine").fit(X)


def test_changing_the_metric_of_a_fitted_codebook_is_refused_and_changes_nothing():
    estimator = fresh("som-ema").fit(BLOBS)
    before = fitted_state(estimator)
    estimator.set_params(metric="euclidean")
    with pytest.raises(ValueError, match="metric changed after fitting.*metric='cosine'"):
        estimator.partial_fit(BLOBS[:10])
    estimator.set_params(metric="cosine")
    assert_same_state(before, fitted_state(estimator))
    estimator.partial_fit(BLOBS[:10])  # set back: it goes on


def test_a_bad_metric_names_the_parameter():
    with pytest.raises(InvalidParameterError, match="The 'metric' parameter of EMAQuantizer"):
        EMAQuantizer(metric="angular").fit(BLOBS)


def test_from_state_puts_the_codebook_on_the_unit_sphere_and_refuses_zero_codes():
    codebook = np.arange(1.0, 13.0).reshape(4, 3)
    estimator = EMAQuantizer.from_state(codebook, np.ones(4), codebook, n_clusters=4, metric="cosine")
    assert unit_norms_error(estimator.cluster_centers_) < 1e-15
    codebook[3] = 0
    with pytest.raises(ValueError, match=r"codebook has 1 code\(s\) of zeros \(rows 3\)"):
        EMAQuantizer.from_state(codebook, np.ones(4), codebook, n_clusters=4, metric="cosine")


@pytest.mark.parametrize("name", ["som-batch", "ema-vq"])
def test_cosine_estimators_on_every_namespace(xp, name):
    reference = fresh(name).fit(BLOBS)
    estimator = fresh(name).fit(to_xp(xp, BLOBS))
    codebook = np.asarray(estimator.cluster_centers_)
    assert unit_norms_error(codebook) < 1e-12
    np.testing.assert_allclose(codebook, reference.cluster_centers_, atol=1e-9)
    np.testing.assert_array_equal(np.asarray(estimator.predict(to_xp(xp, 3 * BLOBS))), reference.predict(BLOBS))
    estimator.partial_fit(to_xp(xp, BLOBS[:50]))
    assert unit_norms_error(np.asarray(estimator.cluster_centers_)) < 1e-12


# ------------------------------------------------------------ quality figures


def test_quality_figures_take_the_metric():
    som = fresh("som-batch").fit(BLOBS)
    codebook, grid = som.cluster_centers_, som.grid_
    # A codebook that is not unit-length is measured by its directions.
    assert metrics.quantization_error(BLOBS, 5 * codebook, metric="cosine") == pytest.approx(som.quantization_error(BLOBS))
    with pytest.raises(ValueError, match="with metric='cosine' the distance is 1 - cos.*squared=False"):
        metrics.quantization_error(BLOBS, codebook, squared=True, metric="cosine")
    distances = brute_force_cosine_distances(BLOBS, codebook)
    expected = distances[np.arange(300), distances.argmin(axis=1)].sum()  # neighbourhood 'none': the inertia
    assert metrics.som_distortion(BLOBS, codebook, grid, neighbourhood="none", squared=False, metric="cosine") == (
        pytest.approx(expected)
    )
    code_distances = brute_force_cosine_distances(codebook, codebook)
    adjacent = (grid.distances() <= grid.neighbour_radius) & ~np.eye(9, dtype=bool)
    expected_map = (code_distances * adjacent).sum(axis=1) / adjacent.sum(axis=1)
    np.testing.assert_allclose(metrics.distance_map(codebook, grid, metric="cosine").ravel(), expected_map, atol=1e-12)
    # Trustworthiness and continuity rank samples by cosine: row lengths do not matter.
    lengths = np.random.default_rng(6).uniform(0.1, 10, size=(300, 1))
    for measure in (metrics.trustworthiness, metrics.continuity):
        assert measure(lengths * BLOBS, codebook, grid, metric="cosine") == pytest.approx(
            measure(BLOBS, codebook, grid, metric="cosine"), abs=1e-12
        )
    with pytest.raises(ValueError, match="metric must be one of"):
        metrics.topographic_error(BLOBS, codebook, grid, metric="cos")


# ------------------------------------------------------------ the layers


def make_layer(kind, **kwargs):
    if kind == "ksom":
        return KohonenVQ(4, (3, 3), metric="cosine", **kwargs)
    return EMAVQ(4, 9, metric="cosine", **kwargs)


@pytest.mark.parametrize("kind", ["ksom", "ema"])
def test_layer_steps_keep_the_codebook_on_the_unit_sphere_and_output_unit_codes(kind):
    torch.manual_seed(0)
    layer = make_layer(kind).train()
    assert unit_norms_error(layer.codebook) < 1e-6
    for _ in range(5):
        z = (5 * torch.randn(2, 7, 4)).requires_grad_()
        codebook_before = layer.codebook.clone()
        out = layer(z)
        assert unit_norms_error(layer.codebook) < 1e-6
        expected = brute_force_cosine_distances(z.detach().reshape(-1, 4).double().numpy(), codebook_before.double().numpy())
        np.testing.assert_array_equal(out.codes.reshape(-1).numpy(), expected.argmin(axis=1))
        torch.testing.assert_close(out.quantized.detach().reshape(-1, 4), codebook_before[out.codes.reshape(-1)])
        # The gradient reaches z through its normalisation: orthogonal to z.
        (out.quantized * torch.randn(2, 7, 4)).sum().add(out.loss).backward()
        assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
        torch.testing.assert_close((z.grad * z).sum(-1), torch.zeros(2, 7), atol=1e-5, rtol=0)
    layer.eval()
    steps, codebook = int(layer.step), layer.codebook.clone()
    layer(torch.randn(3, 4))
    assert int(layer.step) == steps and torch.equal(layer.codebook, codebook)


def test_the_cosine_layer_step_is_the_estimators_step():
    torch.manual_seed(1)
    layer = KohonenVQ(4, (3, 3), metric="cosine", decay=0.9).double().train()
    estimator = layer.to_estimator()
    assert estimator.metric == "cosine"
    z = np.random.default_rng(7).normal(size=(30, 4))
    layer(torch.as_tensor(z))
    estimator.partial_fit(z)
    np.testing.assert_allclose(layer.codebook.numpy(), estimator.cluster_centers_, atol=1e-12)
    back = KohonenVQ.from_estimator(estimator)
    assert back.metric == "cosine"
    torch.testing.assert_close(back.codebook.double(), torch.as_tensor(estimator.cluster_centers_), atol=1e-6, rtol=0)


def test_a_zero_vector_takes_code_0_in_training_and_in_eval():
    torch.manual_seed(2)
    layer = EMAVQ(3, 5, metric="cosine").train()
    z = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], requires_grad=True)
    out = layer(z)
    assert out.codes[0] == 0 and torch.isfinite(layer.codebook).all()
    out.quantized.sum().backward()
    assert torch.isfinite(z.grad).all()
    assert layer.eval()(torch.zeros(1, 3)).codes[0] == 0


@pytest.mark.parametrize("kind", ["ksom", "ema"])
def test_the_state_dict_round_trip_restores_a_cosine_layer(kind):
    torch.manual_seed(3)
    layer = make_layer(kind).train()
    for _ in range(3):
        layer(torch.randn(16, 4))
    copy = make_layer(kind)
    copy.load_state_dict(layer.state_dict())
    for name, buffer in layer.named_buffers():
        assert torch.equal(getattr(copy, name), buffer), name
    z = torch.randn(16, 4)
    torch.testing.assert_close(copy.train()(z).quantized, layer(z).quantized)
    torch.testing.assert_close(copy.codebook, layer.codebook)


def test_loading_a_euclidean_state_into_a_cosine_layer_is_refused_and_changes_nothing():
    torch.manual_seed(4)
    euclidean = EMAVQ(4, 9).train()
    euclidean(3 * torch.randn(16, 4))
    layer = EMAVQ(4, 9, metric="cosine")
    before = {name: buffer.clone() for name, buffer in layer.named_buffers()}
    with pytest.raises(RuntimeError, match="codes that are not of unit length.*metric='cosine'"):
        layer.load_state_dict(euclidean.state_dict())
    for name, buffer in layer.named_buffers():
        assert torch.equal(buffer, before[name]), name


def test_a_layer_refuses_a_bad_metric_or_a_zero_starting_code():
    with pytest.raises(InvalidParameterError, match="The 'metric' parameter of KohonenVQ"):
        KohonenVQ(4, (2, 2), metric="dot")
    init = np.ones((4, 4))
    init[1] = 0
    with pytest.raises(ValueError, match=r"init has 1 code\(s\) of zeros \(rows 1\)"):
        EMAVQ(4, 4, init=init, metric="cosine")
    layer = EMAVQ(4, 4, init=np.arange(1.0, 17.0).reshape(4, 4), metric="cosine")
    assert unit_norms_error(layer.codebook) < 1e-6


def test_a_cosine_training_step_with_nan_changes_no_buffer():
    layer = make_layer("ksom").train()
    before = {name: buffer.clone() for name, buffer in layer.named_buffers()}
    z = torch.randn(8, 4)
    z[3, 1] = float("nan")
    with pytest.raises(ValueError, match="the codebook was not updated"):
        layer(z)
    for name, buffer in layer.named_buffers():
        assert torch.equal(buffer, before[name]), name
