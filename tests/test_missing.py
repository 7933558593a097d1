"""Missing values (docs/design.md section 14): NaN entries as gaps, with ``max_missing`` > 0.

The masked distance is the sum over a row's observed features rescaled to
the full dimension; statistics count observed entries only; without NaN
every result is the one of ``max_missing=0``.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import config_context
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sklearn_ksom import EMAQuantizer, KohonenQuantizer, MapImputer, core
from sklearn_ksom._array_api import to_numpy
from sklearn_ksom.initialisation import INITIALISERS
from sklearn_ksom.topology import Grid, neighbourhood_operator

from .conftest import assert_same_state, fitted_state, to_xp

# Quarter-integers: sums of their squares are exact, so ties break alike
# (lowest index) in the core and in the loops here.
quarters = st.integers(-200, 200).map(lambda i: i / 4)


@st.composite
def gappy_data_and_codebook(draw, max_samples=20, max_codes=8, max_features=6):
    """(X with NaN gaps, every row observing at least one feature, codebook)."""
    n, k, d = draw(st.integers(1, max_samples)), draw(st.integers(1, max_codes)), draw(st.integers(1, max_features))
    offset = draw(st.sampled_from([0.0, 1000.0]))  # far from the origin: the reference point at work
    X = draw(arrays(np.float64, (n, d), elements=quarters)) + offset
    codebook = draw(arrays(np.float64, (k, d), elements=quarters)) + offset
    missing = draw(arrays(np.bool_, (n, d)))
    missing[np.arange(n), draw(arrays(np.int64, n, elements=st.integers(0, d - 1)))] = False
    return np.where(missing, np.nan, X), codebook


def masked_distances_by_loop(X, codebook):
    """Sum over each row's observed features of (x - w)^2, times D / observed."""
    n, d = X.shape
    out = np.zeros((n, codebook.shape[0]))
    for i in range(n):
        observed = [j for j in range(d) if not np.isnan(X[i, j])]
        for k in range(codebook.shape[0]):
            out[i, k] = sum((X[i, j] - codebook[k, j]) ** 2 for j in observed) * d / len(observed)
    return out


def gappy(X, share, seed=0):
    """``X`` with ``share`` of its entries NaN at random, no row left empty."""
    rng = np.random.default_rng(seed)
    missing = rng.random(X.shape) < share
    missing[np.arange(len(X)), rng.integers(0, X.shape[1], len(X))] = False
    return np.where(missing, np.nan, X)


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4, size=(6, 8))
    return centres[rng.integers(0, 6, 600)] + rng.normal(size=(600, 8))


# ------------------------------------------------------------ the core


@given(gappy_data_and_codebook())
def test_masked_distances_equal_a_brute_force_loop_over_observed_features(pair):
    X, codebook = pair
    expected = masked_distances_by_loop(X, codebook)
    np.testing.assert_allclose(core.squared_distances(X, codebook, missing=True), expected, rtol=1e-12, atol=1e-9)
    assignment = core.assign(X, codebook, missing=True, second=codebook.shape[0] > 1, block_rows=7)
    # Exact sums: the winner is the loop's first minimum.
    np.testing.assert_array_equal(assignment.first, expected.argmin(axis=1))
    np.testing.assert_allclose(assignment.squared_distance, expected.min(axis=1), rtol=1e-12, atol=1e-9)


@given(gappy_data_and_codebook())
def test_a_row_filled_from_its_nearest_code_keeps_that_code(pair):
    # The filled entries add (w_kj - w_kj)^2 = 0 to the winner's distance and
    # something >= 0 to every other code's: the winner stays.
    X, codebook = pair
    winners = core.assign(X, codebook, missing=True).first
    filled = np.where(np.isnan(X), codebook[winners], X)
    np.testing.assert_array_equal(core.assign(filled, codebook).first, winners)


@given(gappy_data_and_codebook(), st.booleans())
def test_statistics_count_only_observed_entries(pair, weighted):
    X, codebook = pair
    n_codes = codebook.shape[0]
    units = core.assign(X, codebook, missing=True).first
    weights = np.linspace(0.5, 2.0, len(X)) if weighted else np.ones(len(X))
    counts, sums = core.code_statistics(X, units, n_codes, weights if weighted else None, missing=True)
    observed = ~np.isnan(X)
    for k in range(n_codes):
        rows = units == k
        np.testing.assert_allclose(counts[k], (weights[rows, None] * observed[rows]).sum(axis=0))
        np.testing.assert_allclose(sums[k], (weights[rows, None] * np.nan_to_num(X[rows])).sum(axis=0))


def test_masked_core_agrees_on_every_namespace(xp):
    rng = np.random.default_rng(4)
    X, W = gappy(rng.normal(size=(50, 5)), 0.3), rng.normal(size=(6, 5))
    grid = Grid((2, 3))
    P = neighbourhood_operator(grid, "gaussian", 1.0)
    expected = core.ema_step(core.initial_state(W, 1.0), X, P, decay=0.9, epsilon=1e-5, missing=True)
    got = core.ema_step(
        core.initial_state(to_xp(xp, W), 1.0), to_xp(xp, X),
        neighbourhood_operator(grid, "gaussian", 1.0, xp=xp, dtype=xp.float64),
        decay=0.9, epsilon=1e-5, missing=True,
    )  # fmt: skip
    for e, g in zip(expected.state, got.state):
        np.testing.assert_allclose(to_numpy(g), e, rtol=1e-10)
    np.testing.assert_array_equal(to_numpy(got.assignment.first), expected.assignment.first)
    np.testing.assert_allclose(
        to_numpy(core.squared_distances(to_xp(xp, X), to_xp(xp, W), missing=True)),
        core.squared_distances(X, W, missing=True),
        rtol=1e-12,
    )
    assert core.check_missing(to_xp(xp, X), 0.9)


def test_batch_step_takes_each_feature_from_the_rows_observing_it():
    # P = I: each code's feature is the mean of the observed entries of its
    # rows; a feature none of them observes stays where it was.
    X = np.array([[0.0, np.nan], [2.0, 4.0], [10.0, np.nan], [12.0, np.nan]])
    W = np.array([[1.0, -1.0], [11.0, -7.0]])
    counts, sums, _ = core.batch_statistics(X, W, missing=True)
    np.testing.assert_array_equal(counts, [[2, 1], [2, 0]])
    identity = neighbourhood_operator(Grid((2,)), "none", 1.0)
    np.testing.assert_array_equal(core.batch_som_update(W, counts, sums, identity), [[1.0, 4.0], [11.0, -7.0]])


def test_ema_update_per_feature_leaves_an_unobserved_feature_of_active_codes_alone():
    W = np.array([[0.0, 0.0], [5.0, 5.0]])
    state = core.initial_state(W, 1.0)
    X = np.array([[1.0, np.nan], [4.0, 6.0]])
    step = core.ema_step(state, X, neighbourhood_operator(Grid((2,)), "none", 1.0), decay=0.5, epsilon=1e-5,
                         update_all=False, missing=True)  # fmt: skip
    assert step.state.counts.shape == (2, 2)
    np.testing.assert_allclose(step.state.codebook, [[0.5, 0.0], [4.5, 5.5]])


# ------------------------------------------------------------ estimators

CONFIGURATIONS = [
    KohonenQuantizer((3, 3), max_iter=4, random_state=0),
    KohonenQuantizer((3, 3), init="k-means++", algorithm="ema", max_iter=2, batch_size=64, random_state=0),
    EMAQuantizer(5, init="sample", max_iter=2, batch_size=64, random_state=0),
    EMAQuantizer(5, init="random", algorithm="batch", max_iter=3, random_state=0),
]


@settings(max_examples=8, deadline=None)
@given(st.sampled_from(range(len(CONFIGURATIONS))), st.floats(0.01, 0.99), st.integers(0, 2**16))
def test_without_missing_values_every_result_equals_max_missing_zero(index, max_missing, seed):
    X = np.random.default_rng(seed).normal(size=(200, 4))
    plain = clone(CONFIGURATIONS[index]).fit(X)
    gappy_one = clone(CONFIGURATIONS[index]).set_params(max_missing=max_missing).fit(X)
    for name in ("cluster_centers_", "counts_", "sums_", "labels_"):
        np.testing.assert_array_equal(getattr(gappy_one, name), getattr(plain, name))
    assert gappy_one.inertia_ == plain.inertia_
    for model in (plain, gappy_one):
        model.partial_fit(X[:50])
    np.testing.assert_array_equal(gappy_one.cluster_centers_, plain.cluster_centers_)
    np.testing.assert_array_equal(gappy_one.transform(X), plain.transform(X))
    np.testing.assert_array_equal(gappy_one.predict(X), plain.predict(X))
    assert gappy_one.score(X) == plain.score(X)
    assert gappy_one.quantization_error(X) == plain.quantization_error(X)
    np.testing.assert_array_equal(gappy_one.impute(X), X)


@pytest.mark.parametrize("configuration", CONFIGURATIONS, ids=repr)
def test_every_method_takes_rows_with_gaps(configuration, blobs):
    X = gappy(blobs, 0.25)
    model = clone(configuration).set_params(max_missing=0.9).fit(X)
    assert np.all(np.isfinite(model.cluster_centers_))
    assert model.counts_.shape == model.cluster_centers_.shape  # per code and feature
    labels = model.predict(X)
    np.testing.assert_array_equal(labels, model.labels_)
    squared = core.assign(X, model.cluster_centers_, missing=True).squared_distance
    np.testing.assert_allclose(model.transform(X).min(axis=1) ** 2, squared, rtol=1e-10)
    assert model.inertia_ == pytest.approx(-model.score(X) * len(X))
    assert np.isfinite(model.quantization_error(X))
    if isinstance(model, KohonenQuantizer):
        assert 0 <= model.topographic_error(X) <= 1
    model.partial_fit(X[:100])
    assert np.all(np.isfinite(model.cluster_centers_))


def test_impute_fills_gaps_from_the_nearest_code_and_keeps_observed_entries(blobs):
    X = gappy(blobs, 0.3)
    model = KohonenQuantizer((4, 4), max_missing=0.9, random_state=0).fit(X)
    filled = model.impute(X)
    gaps = np.isnan(X)
    assert not np.isnan(filled).any()
    np.testing.assert_array_equal(filled[~gaps], X[~gaps])
    np.testing.assert_array_equal(filled[gaps], model.cluster_centers_[model.predict(X)][gaps])
    # A filled row keeps its code (the filled entries add 0 to its distance).
    np.testing.assert_array_equal(model.predict(filled), model.predict(X))
    # The map's fill beats the mean's on these blobs.
    mean_fill = np.where(gaps, np.nanmean(X, axis=0), X)
    assert np.abs(filled - blobs)[gaps].mean() < 0.5 * np.abs(mean_fill - blobs)[gaps].mean()


def test_impute_needs_max_missing():
    model = EMAQuantizer(2, max_iter=1, random_state=0).fit(np.eye(4))
    with pytest.raises(ValueError, match="max_missing > 0"):
        model.impute(np.eye(4))


@pytest.mark.parametrize("init", sorted(INITIALISERS))
def test_initialisers_with_the_missing_flag_start_alike_on_complete_data(init, blobs):
    grid = Grid((3, 4))
    plain = INITIALISERS[init](blobs, 12, np.random.RandomState(0), None, grid)
    masked = INITIALISERS[init](blobs, 12, np.random.RandomState(0), None, grid, missing=True)
    np.testing.assert_allclose(masked, plain, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("init", sorted(INITIALISERS))
def test_initialisers_start_from_the_observed_entries(init, blobs):
    X = gappy(blobs, 0.3)
    codes = INITIALISERS[init](X, 12, np.random.RandomState(0), np.linspace(1, 2, len(X)), Grid((3, 4)), missing=True)
    assert codes.shape == (12, 8) and np.all(np.isfinite(codes))
    never = X.copy()
    never[:, 3] = np.nan
    with pytest.raises(ValueError, match=r"features \[3\]"):
        INITIALISERS[init](never, 12, np.random.RandomState(0), None, Grid((3, 4)), missing=True)


def test_pca_start_uses_the_available_case_covariance(blobs):
    # Entries missing completely at random leave the available-case
    # covariance near the complete one; filling them with the mean would
    # shrink the spread by about the missing share.
    X = gappy(blobs, 0.2)
    grid = Grid((3, 4))

    def spread(codes):
        return np.linalg.norm(codes[0] - codes[-1])

    complete = spread(INITIALISERS["pca"](blobs, 12, None, None, grid))
    available_case = spread(INITIALISERS["pca"](X, 12, None, None, grid, missing=True))
    mean_filled = spread(INITIALISERS["pca"](np.where(np.isnan(X), np.nanmean(X, axis=0), X), 12, None, None, grid))
    assert abs(available_case - complete) < 0.03 * complete < abs(mean_filled - complete)


@pytest.mark.parametrize("algorithm", ["batch", "ema"])
def test_gaps_on_any_namespace_match_numpy(xp, blobs, algorithm):
    X = gappy(blobs, 0.2)
    settings = dict(grid_shape=(3, 3), algorithm=algorithm, batch_size=128, max_iter=3, max_missing=0.9, random_state=0)
    expected = KohonenQuantizer(**settings).fit(X)
    expected.partial_fit(X[:100])
    with config_context(array_api_dispatch=True):
        model = KohonenQuantizer(**settings).fit(to_xp(xp, X))
        model.partial_fit(to_xp(xp, X[:100]))
        filled = model.impute(to_xp(xp, X))
        error = model.topographic_error(to_xp(xp, X))
    assert type(model.cluster_centers_) is type(to_xp(xp, X))
    np.testing.assert_allclose(to_numpy(model.cluster_centers_), expected.cluster_centers_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(to_numpy(model.counts_), expected.counts_, rtol=1e-8)
    np.testing.assert_allclose(to_numpy(filled), expected.impute(X), rtol=1e-8, atol=1e-10)
    assert error == pytest.approx(expected.topographic_error(X))


# ------------------------------------------------------------ refusals


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_rows_with_too_many_gaps_are_refused_by_name_and_nothing_changes(method, blobs):
    one_gap = blobs.copy()
    one_gap[::5, 1] = np.nan
    model = KohonenQuantizer((3, 3), max_missing=0.25, max_iter=2, random_state=0).fit(one_gap)
    before = fitted_state(model)
    X = blobs.copy()
    X[7, :3] = np.nan  # 3 of 8 > 0.25
    X[40, :] = np.nan  # none observed
    with pytest.raises(ValueError, match=r"2 row\(s\).*max_missing=0.25.*1 of them with none observed.*\[7, 40\]"):
        getattr(model, method)(X)
    assert_same_state(before, fitted_state(model))
    for name in ("predict", "transform", "score", "impute", "quantization_error", "topographic_error"):
        with pytest.raises(ValueError, match=r"rows \[7, 40\]"):
            getattr(model, name)(X)
    X[7, 2] = 0.0  # 2 of 8 = 0.25: allowed
    X[40, 0] = 0.0
    with pytest.raises(ValueError, match=r"1 row\(s\).*rows \[40\]"):
        model.predict(X)


def test_nan_is_refused_as_before_with_max_missing_zero(blobs):
    X = gappy(blobs, 0.1)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        KohonenQuantizer((3, 3)).fit(X)
    model = KohonenQuantizer((3, 3), max_iter=1).fit(blobs)
    before = fitted_state(model)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.partial_fit(X)
    assert_same_state(before, fitted_state(model))


def test_infinity_is_refused_even_with_max_missing(blobs):
    X = blobs.copy()
    X[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        KohonenQuantizer((3, 3), max_missing=0.5).fit(X)


def test_allow_nan_tag_follows_max_missing():
    assert not KohonenQuantizer().__sklearn_tags__().input_tags.allow_nan
    assert KohonenQuantizer(max_missing=0.1).__sklearn_tags__().input_tags.allow_nan
    assert MapImputer().__sklearn_tags__().input_tags.allow_nan


def test_a_state_with_per_feature_counts_comes_back_through_from_state(blobs):
    model = EMAQuantizer(4, max_missing=0.9, random_state=0).fit(gappy(blobs, 0.2))
    again = EMAQuantizer.from_state(
        model.cluster_centers_, model.counts_, model.sums_, n_steps=model.n_steps_, n_clusters=4, max_missing=0.9
    )
    batch = gappy(blobs[:64], 0.2, seed=1)
    np.testing.assert_array_equal(again.partial_fit(batch).cluster_centers_, model.partial_fit(batch).cluster_centers_)


# ------------------------------------------------------------ pipeline


def test_map_imputer_fills_gaps_before_an_estimator_that_refuses_nan(blobs):
    labels = np.random.default_rng(0).integers(0, 2, len(blobs))
    X = gappy(blobs, 0.2)
    pipeline = make_pipeline(MapImputer(KohonenQuantizer((4, 4), max_missing=0.9, random_state=0)), LogisticRegression())
    pipeline.fit(X, labels)
    assert pipeline.predict(X).shape == labels.shape
    imputer = pipeline[0]
    np.testing.assert_array_equal(imputer.transform(X), imputer.quantizer_.impute(X))


def test_map_imputer_refuses_a_quantizer_that_refuses_gaps():
    with pytest.raises(ValueError, match="max_missing"):
        MapImputer(KohonenQuantizer((2, 2))).fit(np.eye(3))


# ------------------------------------------------------------ Dask


def test_dask_fit_with_gaps_equals_the_in_memory_fit(blobs):
    da = pytest.importorskip("dask.array")
    import dask

    X = gappy(blobs, 0.2)
    model = KohonenQuantizer((3, 3), max_missing=0.9, max_iter=4, random_state=0)
    with dask.config.set(scheduler="synchronous"):
        on_dask = clone(model).fit(da.from_array(X, chunks=150))
        labels = on_dask.predict(da.from_array(X, chunks=150)).compute()
        distances = on_dask.transform(da.from_array(X, chunks=150)).compute()
        in_memory = clone(model).fit(X)
        np.testing.assert_allclose(on_dask.cluster_centers_, in_memory.cluster_centers_, rtol=1e-10)
        np.testing.assert_allclose(on_dask.counts_, in_memory.counts_, rtol=1e-10)
        np.testing.assert_array_equal(labels, in_memory.labels_)
        np.testing.assert_allclose(distances, in_memory.transform(X), rtol=1e-10)
        assert on_dask.inertia_ == pytest.approx(in_memory.inertia_, rel=1e-10)
        weights = np.linspace(0.5, 2.0, len(X))
        weighted = clone(model).fit(da.from_array(X, chunks=150), sample_weight=weights)
        np.testing.assert_allclose(
            weighted.cluster_centers_, clone(model).fit(X, sample_weight=weights).cluster_centers_, rtol=1e-10
        )
        for init in ("sample", "k-means++", "random"):
            started = clone(model).set_params(init=init, max_iter=0).fit(da.from_array(X, chunks=150))
            assert np.all(np.isfinite(started.cluster_centers_))
        ema = clone(model).set_params(algorithm="ema", batch_size=50, max_iter=1).fit(da.from_array(X, chunks=150))
        assert ema.counts_.shape == (9, 8)
        broken = X.copy()
        broken[[5, 299], :] = np.nan
        before = fitted_state(on_dask)
        with pytest.raises(ValueError, match=r"2 row\(s\).*rows \[5, 299\]"):
            on_dask.fit(da.from_array(broken, chunks=150))
        assert_same_state(before, fitted_state(on_dask))
        with pytest.raises(ValueError, match=r"rows \[(5|299)\]"):  # the chunk computed first
            on_dask.predict(da.from_array(broken, chunks=150)).compute()


def test_a_layer_refuses_per_feature_counts_by_name(blobs):
    torch_adapter = pytest.importorskip("torch_adapter")
    model = KohonenQuantizer((3, 3), max_missing=0.9, max_iter=1, random_state=0).fit(gappy(blobs, 0.2))
    with pytest.raises(ValueError, match=r"per code and feature \(9, 8\).*init=estimator.cluster_centers_"):
        torch_adapter.KohonenVQ.from_estimator(model)


def test_missing_values_with_the_cosine_metric_are_refused_with_nothing_changed():
    # A row with unknown features has no known direction: a clear error, not a guess.
    X = np.random.default_rng(0).normal(size=(50, 4))
    X[0, 1] = np.nan
    model = KohonenQuantizer((3, 3), metric="cosine", max_missing=0.5)
    with pytest.raises(ValueError, match="max_missing=0.5 needs metric='euclidean'"):
        model.fit(X)
    assert not hasattr(model, "cluster_centers_")
    fitted = KohonenQuantizer((3, 3), max_missing=0.5, random_state=0).fit(X)
    before = fitted.cluster_centers_.copy()
    fitted.set_params(metric="cosine")
    with pytest.raises(ValueError):
        fitted.partial_fit(X)
    np.testing.assert_array_equal(fitted.cluster_centers_, before)
    with pytest.raises(ValueError, match="missing values .* need metric='euclidean'"):
        core.assign(X, before, metric="cosine", missing=True)


def test_nan_without_max_missing_is_refused_with_the_way_to_accept_it():
    X = np.random.default_rng(0).normal(size=(20, 3))
    X[2, 1] = np.nan
    for model in (KohonenQuantizer((2, 2)), EMAQuantizer(2)):
        with pytest.raises(ValueError, match=r"(?s)Input X contains NaN.*max_missing > 0"):
            model.fit(X)
    fitted = KohonenQuantizer((2, 2), random_state=0).fit(np.nan_to_num(X))
    with pytest.raises(ValueError, match="max_missing > 0"):
        fitted.predict(X)
