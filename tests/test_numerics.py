"""Distances far from the origin: translation-safe, or a clear error.

||x||^2 - 2 x.w + ||w||^2 cancels catastrophically on data far from the
origin; every user of distances (estimators, metrics, the Dask path, the
torch layers) must give the float64 brute-force answer there, and refuse
distances whose squares overflow.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_ksom import EMAQuantizer, KohonenQuantizer, core, metrics
from torch_adapter import EMAVQ, KohonenVQ

from .conftest import to_xp

# (dtype, offset) pairs where the plain expansion loses (nearly) every digit.
FAR_FROM_ORIGIN = [(np.float32, 1e3), (np.float32, 1e4), (np.float64, 1e8)]


def brute_force(X, codebook):
    """Squared distances in float64 from differences (no cancellation), (N, K)."""
    X, codebook = np.asarray(X, np.float64), np.asarray(codebook, np.float64)
    return ((X[:, None, :] - codebook[None, :, :]) ** 2).sum(-1)


@pytest.mark.parametrize(("dtype", "offset"), FAR_FROM_ORIGIN)
def test_a_map_fitted_far_from_the_origin_predicts_as_brute_force(dtype, offset):
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(3000, 3)) + offset).astype(dtype)
    som = KohonenQuantizer((3, 3)).fit(X)
    distances = brute_force(X, som.cluster_centers_)
    assert np.mean(som.predict(X) == distances.argmin(1)) >= 0.999
    true_qe = np.sqrt(distances.min(1)).mean()
    assert som.quantization_error(X) == pytest.approx(true_qe, rel=0.01)
    assert -som.score(X) == pytest.approx(distances.min(1).mean(), rel=0.01)
    np.testing.assert_allclose(som.transform(X), np.sqrt(distances), rtol=1e-3, atol=1e-3)
    # The same map as on centred data: QE within 2 % (float32 data at 1e4
    # keep only 1e-3 of resolution, and the batch sums accumulate in float32).
    centred = KohonenQuantizer((3, 3)).fit(X.astype(np.float64) - offset)
    assert true_qe == pytest.approx(centred.quantization_error(X.astype(np.float64) - offset), rel=0.02)


@given(
    st.sampled_from([np.float32, np.float64]),
    st.integers(0, 8),
    st.floats(1e-3, 1e3),
    st.integers(0, 2**32 - 1),
)
def test_the_chosen_code_is_nearest_whatever_the_offset_and_scale(dtype, exponent, scale, seed):
    rng = np.random.default_rng(seed)
    offset = 10.0 ** (exponent if dtype == np.float64 else min(exponent, 4))
    offset *= rng.choice([-1, 1], size=4)
    X = (scale * rng.normal(size=(200, 4)) + offset).astype(dtype)
    W = (scale * rng.normal(size=(12, 4)) + offset).astype(dtype)
    assignment = core.assign(X, W, second=True)
    distances = brute_force(X, W)
    # The error of the shifted expansion scales with the squared distances
    # from the codes' mean, not with the squared offset.
    centre = W.astype(np.float64).mean(0)
    spread = brute_force(X, centre[None]).max() + brute_force(W, centre[None]).max()
    tolerance = 64 * np.finfo(dtype).eps * spread
    rows = np.arange(len(X))
    assert np.all(distances[rows, assignment.first] <= distances.min(1) + tolerance)
    np.testing.assert_allclose(assignment.squared_distance, distances.min(1), atol=tolerance)
    masked = distances.copy()
    masked[rows, assignment.first] = np.inf
    assert np.all(distances[rows, assignment.second] <= masked.min(1) + tolerance)
    np.testing.assert_allclose(core.squared_distances(X, W), distances, atol=tolerance)


def test_every_namespace_is_translation_safe(xp):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(500, 3)) + 1e4
    W = rng.normal(size=(9, 3)) + 1e4
    distances = brute_force(X.astype(np.float32), W.astype(np.float32))
    assignment = core.assign(to_xp(xp, X, xp.float32), to_xp(xp, W, xp.float32), second=True)
    assert np.mean(np.asarray(assignment.first) == distances.argmin(1)) >= 0.999
    np.testing.assert_allclose(np.asarray(assignment.squared_distance), distances.min(1), rtol=1e-3, atol=1e-3)
    transform = core.squared_distances(to_xp(xp, X, xp.float32), to_xp(xp, W, xp.float32))
    np.testing.assert_allclose(np.asarray(transform), distances, rtol=1e-3, atol=1e-3)


def test_data_on_a_grid_break_ties_as_brute_force_after_the_shift():
    # Codes -1, 1 and 0.25 have a mean (1/12) that is not a grid point; the
    # shift keeps 0 exactly between -1 and 1, so the lower index wins.
    X = np.zeros((1, 1))
    W = np.array([[-1.0], [1.0], [5.25]])
    assert core.assign(X, W).first[0] == 0
    assert core.assign(X, W[::-1].copy()).first[0] == 1


def test_metrics_are_translation_invariant():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 2))
    som = KohonenQuantizer((4, 4), random_state=0).fit(X)
    W = som.cluster_centers_
    offset = 1e8
    assert metrics.quantization_error(X + offset, W + offset) == pytest.approx(metrics.quantization_error(X, W), rel=1e-4)
    shifted = metrics.topographic_error(X + offset, W + offset, som.grid_)
    assert shifted == pytest.approx(metrics.topographic_error(X, W, som.grid_), abs=2 / len(X))


def test_dask_path_predicts_far_from_the_origin_as_brute_force():
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(2)
    X = (rng.normal(size=(1200, 3)) + 1e4).astype(np.float32)
    som = KohonenQuantizer((3, 3)).fit(da.from_array(X, chunks=300))
    distances = brute_force(X, som.cluster_centers_)
    labels = som.predict(da.from_array(X, chunks=300)).compute()
    assert np.mean(labels == distances.argmin(1)) >= 0.999
    assert som.inertia_ == pytest.approx(distances.min(1).sum(), rel=0.01)


@pytest.mark.parametrize("layer_class", [KohonenVQ, EMAVQ])
def test_layers_quantise_far_from_the_origin_as_brute_force(layer_class):
    generator = torch.Generator().manual_seed(0)
    codebook = torch.randn(16, 3, generator=generator) + 1e4
    options = {"grid_shape": (4, 4)} if layer_class is KohonenVQ else {"n_clusters": 16}
    layer = layer_class(3, **options, init=codebook.numpy())
    z = torch.randn(500, 3, generator=generator) + 1e4
    expected = brute_force(z.numpy(), layer.codebook.numpy()).argmin(1)
    layer.eval()
    assert np.mean(layer(z).codes.numpy() == expected) >= 0.999
    layer.train()
    assert np.mean(layer(z).codes.numpy() == expected) >= 0.999


# ---------------------------------------------------------------- overflow

HUGE = 1e20  # its square overflows float32


@pytest.fixture
def fitted():
    X = np.random.default_rng(3).normal(size=(300, 3)).astype(np.float32)
    return KohonenQuantizer((3, 3), random_state=0).fit(X), X


@pytest.mark.parametrize(
    "method", ["predict", "transform", "score", "quantize", "quantization_error", "topographic_error"]
)
def test_inference_refuses_distances_that_overflow(fitted, method):
    som, X = fitted
    X = X.copy()
    X[5, 1] = HUGE
    with pytest.raises(ValueError, match="overflow float32"):
        getattr(som, method)(X)


def test_partial_fit_refuses_distances_that_overflow_and_keeps_its_state(fitted):
    som, X = fitted
    before = {name: np.copy(getattr(som, name)) for name in ("cluster_centers_", "counts_", "sums_")}
    X = X.copy()
    X[0, 0] = HUGE
    with pytest.raises(ValueError, match="overflow float32"):
        som.partial_fit(X)
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(som, name), value)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # in the initialisation
@pytest.mark.parametrize("estimator", [KohonenQuantizer((3, 3)), EMAQuantizer(4, random_state=0)])
@pytest.mark.parametrize("algorithm", ["batch", "ema"])
def test_fit_refuses_distances_that_overflow(estimator, algorithm):
    X = np.random.default_rng(4).normal(size=(300, 3)).astype(np.float32)
    X[7, 2] = HUGE
    with pytest.raises(ValueError, match="overflow float32"):
        estimator.set_params(algorithm=algorithm).fit(X)
    assert not hasattr(estimator, "cluster_centers_")


def test_a_nan_codebook_is_refused_not_assigned(xp):
    W = to_xp(xp, [[0.0, 0.0], [np.nan, 1.0], [2.0, 2.0]])
    X = to_xp(xp, [[0.1, 0.0], [2.0, 2.1]])
    with pytest.raises(ValueError, match="NaN"):
        core.assign(X, W)


@pytest.mark.parametrize("training", [False, True])
def test_layers_refuse_distances_that_overflow_with_buffers_unchanged(training):
    torch.manual_seed(0)
    layer = KohonenVQ(3, grid_shape=(3, 3)).train(training)
    before = {name: buffer.clone() for name, buffer in layer.named_buffers()}
    z = torch.randn(20, 3)
    z[4, 0] = HUGE
    with pytest.raises(ValueError, match="overflow|NaN or inf"):
        layer(z)
    for name, buffer in layer.named_buffers():
        assert torch.equal(buffer, before[name]), name


@pytest.mark.parametrize("n_codes", [16, 256])
@pytest.mark.parametrize("far", [1e5, 1e9, -1e7])
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_codes_far_from_the_rest_do_not_spoil_the_distances_of_offset_data(offset, far, n_codes):
    # A dead code of an EMA run without a count floor sits at M / eps: it
    # dragged the codebook's mean (the former reference point) off the data,
    # and offset data cancelled again (8.5 % agreement at offset 1e4).
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(3000, 3)) + offset).astype(np.float32)
    W = (rng.normal(size=(n_codes, 3)) + offset).astype(np.float32)
    W[0] += far
    W[n_codes // 2, 1] -= far / 3
    labels = core.assign(X, W).first
    assert np.mean(labels == brute_force(X, W).argmin(1)) >= 0.999
    nearest = brute_force(X, W).min(1)
    np.testing.assert_allclose(core.assign(X, W).squared_distance, nearest, rtol=1e-2, atol=1e-2)


def test_the_reference_point_is_zero_around_the_origin_and_a_code_elsewhere():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(64, 5))
    assert not np.any(core.reference_point(W))  # data around the origin are not shifted
    moved = W + [3e3, 0, -7e5, 1, 0]
    moved[9] += 1e12
    point = core.reference_point(moved)
    assert any(np.array_equal(point, code) for code in moved[np.arange(64) != 9])


@pytest.mark.parametrize("missing", [False, True])
@pytest.mark.parametrize("separation", [1e3, 1e4])
def test_clusters_far_apart_next_to_their_spread_get_their_nearest_codes(separation, missing):
    # One reference point cannot serve both clusters: the far one's rows keep
    # eps * separation^2 of rounding error (90 % agreement at 1e3, 56 % at
    # 1e4 when the GEMM's result was kept); they are computed by differences.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 3))
    X[2000:] += separation
    W = rng.normal(size=(32, 3))
    W[16:] += separation
    X, W = X.astype(np.float32), W.astype(np.float32)
    exact = brute_force(X, W)
    if missing:
        X[::7, 1] = np.nan
        observed = ~np.isnan(X)
        exact = np.stack([(((np.nan_to_num(X) - w) ** 2) * observed).sum(1) for w in W.astype(np.float64)], 1)
        exact *= 3 / observed.sum(1, keepdims=True)
    assignment = core.assign(X, W, second=True, missing=missing)
    assert np.mean(assignment.first == exact.argmin(1)) >= 0.999
    assert np.mean(assignment.second == np.argsort(exact, 1)[:, 1]) >= 0.999
    np.testing.assert_allclose(assignment.squared_distance, exact.min(1), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(core.squared_distances(X, W, missing=missing), exact, rtol=1e-3, atol=1e-3)


@settings(max_examples=60, deadline=None)
@given(
    n_codes=st.integers(2, 40),
    n_features=st.integers(1, 6),
    offset=st.sampled_from([0.0, 1e2, 1e4]),
    separation=st.sampled_from([0.0, 3e1, 1e3, 1e5]),
    spread=st.sampled_from([1e-2, 1.0, 30.0]),
    seed=st.integers(0, 2**16),
)
def test_any_float32_clusters_get_the_nearest_codes_of_a_brute_force_search(
    n_codes, n_features, offset, separation, spread, seed
):
    # Two clusters of rows and codes, each `spread` wide, `separation` apart,
    # `offset` from the origin: one reference point serves at most one of
    # them; the rows it cannot resolve are computed by differences.
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=spread, size=(600, n_features))
    X[300:, 0] += separation
    W = rng.normal(scale=spread, size=(n_codes, n_features))
    W[n_codes // 2:, 0] += separation
    X, W = (X + offset).astype(np.float32), (W + offset).astype(np.float32)
    exact = brute_force(X, W)
    assignment = core.assign(X, W)
    # A row may take another code only in a near tie (its rounding error,
    # below 1/16 of its distance, above the gap to the runner-up).
    nearest = exact.min(1)
    chosen = exact[np.arange(len(X)), assignment.first]
    np.testing.assert_array_less(chosen - nearest, nearest / core.WINNER_SHARE + 1e-6 * spread**2)
    assert np.mean(assignment.first == exact.argmin(1)) >= 0.995
    # Each distance within 1/DISTANCE_SHARE of the larger of itself and the
    # mean (far from the reference point, rows take differences); their sum
    # within 2/DISTANCE_SHARE.
    bound = np.maximum(nearest, 1.01 * nearest.mean()) / core.DISTANCE_SHARE
    for computed in (assignment.squared_distance, core.squared_distances(X, W).min(1)):
        np.testing.assert_array_less(np.abs(computed - nearest), bound)
        assert abs(computed.sum() - nearest.sum()) <= 2 * nearest.sum() / core.DISTANCE_SHARE


# ------------------------------------------------------ statistics far from the origin


@pytest.mark.parametrize(
    "make, tolerance",
    [
        (lambda: KohonenQuantizer((4, 4), random_state=0), 0.01),  # QE 1.296 (1.66x) before
        (lambda: KohonenQuantizer((4, 4), algorithm="ema", random_state=0), 0.05),  # 0.878 (1.13x) before
    ],
)
def test_training_far_from_the_origin_reaches_the_quality_it_has_at_the_origin(make, tolerance):
    # Sums of float32 rows at 1e6 lost a rounding per row added (the mean
    # of the PCA start was 18 off, the batch codes ~1 off): they are now
    # added up relative to a point near the data.
    X = np.random.default_rng(0).normal(size=(3000, 3))
    offset = 1e6
    near = make().fit(X.astype(np.float32))
    far = make().fit((X + offset).astype(np.float32))
    exact = X + offset
    quality = metrics.quantization_error(exact, far.cluster_centers_.astype(np.float64))
    assert quality <= (1 + tolerance) * metrics.quantization_error(X, near.cluster_centers_.astype(np.float64))


def test_the_mean_of_the_starting_codebook_keeps_its_digits_far_from_the_origin():
    from sklearn_ksom.initialisation import observed_mean, weighted_mean

    X = np.random.default_rng(1).normal(size=(3000, 3)) + 1e6
    X32 = X.astype(np.float32)
    exact = X32.astype(np.float64).mean(0)
    np.testing.assert_allclose(weighted_mean(X32), exact, atol=0.1)  # 18 off before
    gappy = X32.copy()
    gappy[::5, 1] = np.nan
    np.testing.assert_allclose(observed_mean(gappy), np.nanmean(gappy.astype(np.float64), 0), atol=0.1)
    weights = np.random.default_rng(2).random(3000)
    np.testing.assert_allclose(
        weighted_mean(X32, weights), np.average(X32.astype(np.float64), axis=0, weights=weights), atol=0.1
    )


# ---------------------------------------------------------------- underflow


@pytest.mark.parametrize("algorithm", ["batch", "ema"])
def test_data_whose_squares_underflow_are_refused_not_assigned(algorithm):
    # float32 data around 1e-30: every squared distance rounded to 0, and
    # QE came back 0.0 (true 0.89e-30), the fit assigning every row to code 0.
    X = (np.random.default_rng(0).normal(size=(300, 3)) * 1e-30).astype(np.float32)
    som = KohonenQuantizer((3, 3), algorithm=algorithm, random_state=0)
    with pytest.raises(ValueError, match="underflow float32"):
        som.fit(X)
    assert not hasattr(som, "cluster_centers_")
    W = X[:9] * np.float32(1.5)
    for compute in (core.assign, core.squared_distances):
        with pytest.raises(ValueError, match="underflow float32"):
            compute(X, W)


def test_tiny_rows_near_ordinary_codes_or_on_them_are_not_underflow():
    X = (np.random.default_rng(0).normal(size=(300, 3)) * 1e-30).astype(np.float32)
    W = np.random.default_rng(1).normal(size=(9, 3)).astype(np.float32)
    assert np.array_equal(core.assign(X, W).first, brute_force(X, W).argmin(1))
    ones = np.ones((50, 3), dtype=np.float32)
    assert KohonenQuantizer((2, 2), random_state=0).fit(ones).quantization_error(ones) == 0.0
    tiny64 = np.random.default_rng(1).normal(size=(200, 2)) * 1e-100  # float64 holds these squares
    assert KohonenQuantizer((2, 2), random_state=0).fit(tiny64).quantization_error(tiny64) > 0
