"""Behaviour of KohonenQuantizer and EMAQuantizer as a user sees it."""

import math
import pickle
import re

import joblib
import numpy as np
import pytest
import scipy.sparse
from hypothesis import assume, given
from sklearn import clone, config_context
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_ksom import EMAQuantizer, KohonenQuantizer, core
from sklearn_ksom._array_api import to_numpy
from sklearn_ksom.initialisation import pca_codes
from sklearn_ksom.topology import Grid, dense_matrix, neighbourhood_operator

from .conftest import assert_same_state, fitted_state, to_xp
from .formula_reference import grid_distances, ksom_settings, reference_run, topographic_error


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(n_samples=600, centers=6, n_features=4, random_state=0)
    return X


# ------------------------------------------------------------ fitting


@pytest.mark.parametrize("algorithm", ["batch", "ema"])
def test_same_random_state_gives_identical_runs(blobs, algorithm):
    a = KohonenQuantizer((4, 4), algorithm=algorithm, init="sample", batch_size=100, random_state=7).fit(blobs)
    b = KohonenQuantizer((4, 4), algorithm=algorithm, init="sample", batch_size=100, random_state=7).fit(blobs)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    c = KohonenQuantizer((4, 4), algorithm=algorithm, init="sample", batch_size=100, random_state=8).fit(blobs)
    assert not np.array_equal(a.cluster_centers_, c.cluster_centers_)


@pytest.mark.parametrize("Estimator", [KohonenQuantizer, EMAQuantizer])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_precision_is_kept(blobs, Estimator, dtype):
    model = Estimator(random_state=0).fit(blobs.astype(dtype))
    for name in ("cluster_centers_", "counts_", "sums_"):
        assert getattr(model, name).dtype == dtype
    assert model.transform(blobs.astype(dtype)).dtype == dtype
    model.partial_fit(blobs.astype(np.float64))  # later batches follow the fitted precision
    assert model.cluster_centers_.dtype == dtype


def test_integer_input_is_fitted_as_float64():
    X = np.random.default_rng(0).integers(0, 10, size=(50, 3))
    assert KohonenQuantizer((2, 2), random_state=0).fit(X).cluster_centers_.dtype == np.float64


def test_fitted_attributes_describe_the_training_data(blobs):
    som = KohonenQuantizer((3, 4), random_state=0).fit(blobs)
    assert som.cluster_centers_.shape == (12, 4)
    assert som.grid_ == Grid((3, 4))
    np.testing.assert_array_equal(som.labels_, som.predict(blobs))
    assert som.inertia_ == pytest.approx(-som.score(blobs) * len(blobs))
    assert som.n_iter_ == som.max_iter and som.n_steps_ == som.max_iter
    ema = EMAQuantizer(5, batch_size=64, max_iter=3, random_state=0).fit(blobs)
    assert ema.n_steps_ == 3 * int(np.ceil(600 / 64))


def test_batch_algorithm_without_neighbourhood_matches_kmeans(blobs):
    init = blobs[:6]
    ours = EMAQuantizer(6, init=init, algorithm="batch", max_iter=100).fit(blobs)
    theirs = KMeans(6, init=init, n_init=1, max_iter=100, tol=0, algorithm="lloyd").fit(blobs)
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-10)


def test_kohonen_without_neighbourhood_is_ema_quantizer_step_for_step(blobs):
    settings = dict(init="sample", decay=0.9, random_state=3)
    som = KohonenQuantizer((6,), neighbourhood="none", **settings)
    ema = EMAQuantizer(6, **settings)
    for batch in np.array_split(blobs, 10):
        som.partial_fit(batch)
        ema.partial_fit(batch)
        np.testing.assert_array_equal(som.cluster_centers_, ema.cluster_centers_)
        np.testing.assert_array_equal(som.counts_, ema.counts_)


def test_partial_fit_continues_the_schedule_and_the_state(blobs):
    som = KohonenQuantizer((3, 3), init="sample", neighbourhood="hard", schedule="inverse", decay=0.8, random_state=0)
    batches = np.array_split(blobs, 6)
    som.partial_fit(batches[0])
    state = core.EMAState(som.cluster_centers_.copy(), som.counts_.copy(), som.sums_.copy())
    for step, batch in enumerate(batches[1:], start=1):
        som.partial_fit(batch)
        P = neighbourhood_operator(Grid((3, 3)), "hard", 1.0 / (1 + 0.1 * step))
        state = core.ema_step(state, batch, P, decay=0.8, epsilon=1e-5).state
        np.testing.assert_allclose(som.cluster_centers_, state.codebook, rtol=1e-12)
    assert som.n_steps_ == 6


def test_partial_fit_can_continue_a_batch_fit(blobs):
    som = KohonenQuantizer((3, 3), random_state=0).fit(blobs)
    before = som.quantization_error(blobs)
    som.partial_fit(blobs[:200])
    assert som.n_steps_ == som.max_iter + 1
    assert som.quantization_error(blobs) < 1.02 * before  # stays close: no reset


@pytest.mark.parametrize("algorithm", ["batch", "ema"])
def test_streaming_after_fit_continues_the_width_schedule_where_fit_ended(algorithm):
    X = StandardScaler().fit_transform(load_digits().data)
    som = KohonenQuantizer((8, 8), algorithm=algorithm, batch_size=200, random_state=0).fit(X)
    schedule = som.neighbourhood_schedule_
    assert schedule.width(som.n_steps_ - 1) == schedule.end  # fit ended at the end width ...
    before = som.quantization_error(X)
    for start in range(0, X.shape[0], 200):
        som.partial_fit(X[start : start + 200])
    assert som.neighbourhood_schedule_ == schedule  # ... and streaming stays there
    # One pass over the data the map was fitted on keeps it where it was
    # (restarting the schedule widened the neighbourhood: QE 4.6 -> 5.8).
    assert som.quantization_error(X) < 1.01 * before


def test_fit_with_no_iteration_takes_the_codebook_as_given(blobs):
    codebook = KMeans(6, n_init=1, random_state=0).fit(blobs).cluster_centers_ + 0.1
    model = EMAQuantizer(6, init=codebook, max_iter=0, batch_size=100).fit(blobs)
    np.testing.assert_array_equal(model.cluster_centers_, codebook)
    distances = ((blobs[:, None] - codebook[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(model.labels_, distances.argmin(1))
    assert model.inertia_ == pytest.approx(distances.min(1).sum())
    assert model.n_iter_ == model.n_steps_ == 0
    # EMA statistics of one batch's size, consistent with the codebook: W = M / N.
    assert model.counts_.sum() == pytest.approx(100)
    np.testing.assert_allclose(model.sums_ / model.counts_[:, None], codebook)
    before = model.quantization_error(blobs)
    for batch in np.array_split(blobs, 6):
        model.partial_fit(batch)
        assert model.quantization_error(blobs) < 1.02 * before


def test_fit_with_no_iteration_starts_from_any_initialiser(blobs):
    som = KohonenQuantizer((3, 3), init="pca", max_iter=0).fit(blobs)
    np.testing.assert_allclose(som.cluster_centers_, pca_codes(blobs, 9, None, None, Grid((3, 3))))
    assert som.labels_.shape == (600,) and som.n_steps_ == 0
    # No run to continue: a later partial_fit streams from sigma over 1000 steps.
    assert som.neighbourhood_schedule_.length == 1000
    start = core.EMAState(som.cluster_centers_.copy(), som.counts_.copy(), som.sums_.copy())
    som.partial_fit(blobs[:100])
    assert som.n_steps_ == 1
    # The stream's first step: P at the start width sigma, the stream's decay.
    P = neighbourhood_operator(Grid((3, 3)), "gaussian", som.neighbourhood_schedule_.start)
    expected = core.ema_step(start, blobs[:100], P, decay=som.decay_, epsilon=1e-5).state
    np.testing.assert_allclose(som.cluster_centers_, expected.codebook, rtol=1e-12)


def test_a_state_from_elsewhere_continues_at_its_step(blobs):
    trained = KohonenQuantizer((3, 3), neighbourhood="hard", schedule="inverse", random_state=0).partial_fit(blobs[:300])
    state = core.EMAState(trained.cluster_centers_, trained.counts_, trained.sums_)
    params = dict(grid_shape=(3, 3), neighbourhood="hard", schedule="inverse")
    model = KohonenQuantizer.from_state(*state, n_steps=7, **params)
    assert not np.shares_memory(model.cluster_centers_, trained.cluster_centers_)
    model.partial_fit(blobs[300:400])
    P = neighbourhood_operator(Grid((3, 3)), "hard", 1.0 / (1 + 0.1 * 7))
    assert model.decay_ == core.auto_decay(1000) == 0.985  # 'auto' over a stream of unknown length
    expected = core.ema_step(state, blobs[300:400], P, decay=0.985, epsilon=1e-5).state
    np.testing.assert_allclose(model.cluster_centers_, expected.codebook, rtol=1e-12)
    assert model.n_steps_ == 8


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(codebook=np.zeros((8, 4))), "n_codes=9"),
        (dict(counts=np.ones(8)), r"counts and sums must have shapes \(9,\)"),
        (dict(counts=np.full(9, np.nan)), "must be finite"),
        (dict(counts=-np.ones(9)), "counts must be >= 0"),
        (dict(n_steps=-1), "n_steps must be an int >= 0"),
        (dict(decay=2.0), "'decay' parameter"),
    ],
)
def test_a_bad_state_from_elsewhere_is_refused(change, message):
    arguments = dict(codebook=np.zeros((9, 4)), counts=np.ones(9), sums=np.zeros((9, 4)), n_steps=0, grid_shape=(3, 3))
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        KohonenQuantizer.from_state(**arguments)


def test_fit_restarts_from_scratch(blobs):
    som = KohonenQuantizer((3, 3), random_state=0)
    first = som.fit(blobs).cluster_centers_.copy()
    som.partial_fit(blobs[:100])
    np.testing.assert_array_equal(som.fit(blobs).cluster_centers_, first)


@pytest.mark.parametrize("init", ["random", "sample", "pca", "k-means++"])
def test_every_initialisation_trains_a_useful_codebook(blobs, init):
    som = KohonenQuantizer((3, 3), init=init, random_state=0).fit(blobs)
    worst = KohonenQuantizer((3, 3), init=init, max_iter=1, neighbourhood="bubble", sigma=10, random_state=0)
    # More training than one all-averaging iteration always helps.
    assert som.score(blobs) > worst.fit(blobs).score(blobs)


@pytest.mark.parametrize(
    "padded, plain", [((1, 16), (16,)), ((16, 1), (16,)), ((1, 16, 1), (16,)), ((4, 1, 4), (4, 4))]
)
def test_a_length_one_axis_behaves_as_the_lower_dimensional_grid(blobs, padded, plain):
    rng = np.random.default_rng(0)
    start = {shape: pca_codes(blobs, 16, rng, None, Grid(shape)) for shape in (padded, plain)}
    # Same codes in the same order (C order ignores a length-1 axis).
    np.testing.assert_allclose(start[padded], start[plain], rtol=1e-12, atol=1e-12)
    one_iteration = {shape: KohonenQuantizer(shape, max_iter=1).fit(blobs) for shape in (padded, plain)}
    np.testing.assert_allclose(
        one_iteration[padded].cluster_centers_, one_iteration[plain].cluster_centers_, rtol=1e-9, atol=1e-9
    )
    assert one_iteration[padded].quantization_error(blobs) == pytest.approx(
        one_iteration[plain].quantization_error(blobs), rel=1e-9
    )


def test_init_array_is_used_as_given(blobs):
    init = blobs[:9] + 0.5
    som = KohonenQuantizer((3, 3), init=init, max_iter=1, neighbourhood="none").fit(blobs)
    labels = ((blobs[:, None] - init[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_allclose(som.cluster_centers_[labels[0]], blobs[labels == labels[0]].mean(0))


def test_ksom_forms_a_map_and_ema_vq_does_not():
    X = StandardScaler().fit_transform(load_digits().data)
    som = KohonenQuantizer((6, 6), random_state=0).fit(X)
    ema = EMAQuantizer(36, random_state=0).fit(X)
    som_error = som.topographic_error(X)
    from sklearn_ksom.metrics import topographic_error

    ema_error = topographic_error(X, ema.cluster_centers_, Grid((6, 6)))
    assert som_error < 0.2 < 0.6 < ema_error


@pytest.mark.parametrize("hexagonal, toroidal", [(True, False), (False, True), (True, True)])
def test_hexagonal_and_toroidal_maps_train_into_ordered_maps(blobs, hexagonal, toroidal):
    som = KohonenQuantizer((4, 4), hexagonal=hexagonal, toroidal=toroidal, random_state=0).fit(blobs)
    error = som.topographic_error(blobs)
    # The metric as defined, on the grid written out in the test.
    distances = grid_distances((4, 4), hexagonal, toroidal)
    radius = 1.0 if hexagonal else math.sqrt(2)
    assert error == pytest.approx(topographic_error(blobs, som.cluster_centers_, distances, radius))
    # Ordered: the same codes shuffled over the grid lose their order.
    shuffled = som.cluster_centers_[np.random.default_rng(0).permutation(16)]
    assert error < 0.1 < 0.3 < topographic_error(blobs, shuffled, distances, radius)


def test_three_dimensional_grid(blobs):
    som = KohonenQuantizer((2, 3, 2), random_state=0).fit(blobs)
    assert som.project(blobs[:5]).shape == (5, 3)
    assert som.codebook_grid().shape == (2, 3, 2, 4)


# ----------------------------------------------------------- inference


def test_predict_transform_quantize_and_project_agree(blobs):
    som = KohonenQuantizer((3, 4), random_state=0).fit(blobs)
    distances = som.transform(blobs)
    expected = np.sqrt(((blobs[:, None] - som.cluster_centers_[None]) ** 2).sum(-1))
    np.testing.assert_allclose(distances, expected, atol=1e-8)
    labels = som.predict(blobs)
    np.testing.assert_array_equal(labels, distances.argmin(1))
    np.testing.assert_array_equal(som.quantize(blobs), som.cluster_centers_[labels])
    np.testing.assert_array_equal(som.project(blobs), np.stack(np.unravel_index(labels, (3, 4)), 1))
    np.testing.assert_array_equal(som.codebook_grid()[1, 2], som.cluster_centers_[6])
    assert som.score(blobs) == pytest.approx(-np.mean(distances.min(1) ** 2))
    assert som.quantization_error(blobs) == pytest.approx(np.mean(distances.min(1)))


def test_pipeline_with_a_scaler(blobs):
    pipe = make_pipeline(StandardScaler(), KohonenQuantizer((3, 3), random_state=0))
    labels = pipe.fit_predict(blobs)
    assert labels.shape == (600,) and labels.max() < 9
    assert pipe.transform(blobs).shape == (600, 9)


def test_feature_names_and_pandas_output(blobs):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(blobs, columns=["a", "b", "c", "d"])
    som = KohonenQuantizer((2, 3), random_state=0).set_output(transform="pandas").fit(frame)
    out = som.transform(frame)
    assert list(out.columns) == [f"kohonenquantizer{i}" for i in range(6)]
    assert list(som.feature_names_in_) == ["a", "b", "c", "d"]
    assert list(EMAQuantizer(3).fit(frame).get_feature_names_out()) == ["emaquantizer0", "emaquantizer1", "emaquantizer2"]


@pytest.mark.parametrize("Estimator", [KohonenQuantizer, EMAQuantizer])
def test_pickle_and_joblib_round_trip(blobs, Estimator, tmp_path):
    model = Estimator(random_state=0).fit(blobs)
    expected = model.predict(blobs)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(blobs), expected)
    joblib.dump(model, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(loaded.predict(blobs), expected)
    np.testing.assert_array_equal(loaded.transform(blobs), model.transform(blobs))
    loaded.partial_fit(blobs[:50])  # and it goes on learning


# --------------------------------------------------------- array API


@pytest.mark.parametrize("algorithm", ["batch", "ema"])
def test_fit_on_any_namespace_matches_numpy(xp, blobs, algorithm):
    settings = dict(grid_shape=(3, 3), algorithm=algorithm, batch_size=128, max_iter=5, random_state=0)
    expected = KohonenQuantizer(**settings).fit(blobs)
    with config_context(array_api_dispatch=True):
        model = KohonenQuantizer(**settings).fit(to_xp(xp, blobs))
        labels = model.predict(to_xp(xp, blobs))
        projection = model.project(to_xp(xp, blobs))
        error = model.topographic_error(to_xp(xp, blobs))
    assert type(model.cluster_centers_) is type(to_xp(xp, blobs))
    np.testing.assert_allclose(to_numpy(model.cluster_centers_), expected.cluster_centers_, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(to_numpy(labels), expected.labels_)
    np.testing.assert_array_equal(to_numpy(projection), expected.project(blobs))
    assert error == pytest.approx(expected.topographic_error(blobs))


def test_partial_fit_on_any_namespace_matches_numpy(xp, blobs):
    expected = KohonenQuantizer((3, 3), init="k-means++", random_state=0)
    with config_context(array_api_dispatch=True):
        model = KohonenQuantizer((3, 3), init="k-means++", random_state=0)
        for batch in np.array_split(blobs, 4):
            expected.partial_fit(batch)
            model.partial_fit(to_xp(xp, batch))
    np.testing.assert_allclose(to_numpy(model.cluster_centers_), expected.cluster_centers_, rtol=1e-8)


# ------------------------------------------------------------ bad input

BAD_INPUTS = {
    "nan": (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X), "NaN"),
    "inf": (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X), "infinity"),
    "empty": (lambda X: X[:0], "0 sample"),
    "strings": (lambda X: X.astype(str).astype(object) + "x", "convert|string"),
    "complex": (lambda X: X + 1j, "Complex data not supported"),
    "sparse": (lambda X: scipy.sparse.csr_matrix(X), "Sparse data was passed"),
    "one dimension": (lambda X: X[:, 0], "Expected 2D array"),
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
@pytest.mark.parametrize("method", ["fit", "partial_fit", "predict", "transform", "score"])
def test_bad_input_is_refused_and_loses_nothing(blobs, kind, method):
    corrupt, message = BAD_INPUTS[kind]
    som = KohonenQuantizer((3, 3), init="sample", random_state=0).fit(blobs)
    som.partial_fit(blobs[:100])
    before = fitted_state(som)
    with pytest.raises((ValueError, TypeError), match=message):
        getattr(som, method)(corrupt(blobs[:50].copy()))
    assert_same_state(before, fitted_state(som))


def test_partial_fit_with_a_changed_feature_count_is_refused(blobs):
    model = EMAQuantizer(4, random_state=0).partial_fit(blobs)
    before = fitted_state(model)
    with pytest.raises(ValueError, match="X has 3 features, but EMAQuantizer is expecting 4 features"):
        model.partial_fit(blobs[:, :3])
    assert_same_state(before, fitted_state(model))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(sigma=float("nan")), "'sigma' parameter"),
        (dict(sigma=0), "'sigma' parameter"),
        (dict(decay=1.5), "'decay' parameter"),
        (dict(update="bogus"), "'update' parameter"),
        (dict(neighbourhood="bogus"), "'neighbourhood' parameter"),
        (dict(grid_shape=(5, 5)), "grid_shape changed after fitting"),
        (dict(hexagonal=True), "hexagonal changed after fitting"),
        (dict(max_iter=-1), "'max_iter' parameter"),
    ],
)
def test_a_bad_parameter_change_between_partial_fit_calls_is_refused_and_loses_nothing(blobs, change, message):
    som = KohonenQuantizer((4, 4), init="sample", random_state=0).partial_fit(blobs[:100])
    original = {name: som.get_params()[name] for name in change}
    som.set_params(**change)
    before = fitted_state(som)
    with pytest.raises(ValueError, match=message):
        som.partial_fit(blobs[100:200])
    assert_same_state(before, fitted_state(som))
    som.set_params(**original).partial_fit(blobs[100:200])
    assert som.n_steps_ == 2 and not np.array_equal(som.cluster_centers_, before["cluster_centers_"])


def test_a_changed_number_of_codes_is_refused_between_partial_fit_calls(blobs):
    model = EMAQuantizer(4, random_state=0).partial_fit(blobs[:100]).set_params(n_clusters=5)
    before = fitted_state(model)
    with pytest.raises(ValueError, match="n_clusters changed after fitting"):
        model.partial_fit(blobs[100:200])
    assert_same_state(before, fitted_state(model))


def test_a_valid_parameter_change_between_partial_fit_calls_is_applied(blobs):
    som = KohonenQuantizer((3, 3), init="sample", random_state=0).partial_fit(blobs[:100])
    state = core.EMAState(som.cluster_centers_.copy(), som.counts_.copy(), som.sums_.copy())
    som.set_params(neighbourhood="hard", schedule="inverse", sigma=1.0, decay=0.5, update="active")
    som.partial_fit(blobs[100:200])
    P = neighbourhood_operator(Grid((3, 3)), "hard", 1.0 / (1 + 0.1 * 1))
    expected = core.ema_step(state, blobs[100:200], P, decay=0.5, epsilon=1e-5, update_all=False).state
    np.testing.assert_allclose(som.cluster_centers_, expected.codebook, rtol=1e-12)
    np.testing.assert_allclose(som.counts_, expected.counts, rtol=1e-12)


def test_a_valid_schedule_change_after_fit_keeps_the_fits_length(blobs):
    som = KohonenQuantizer((3, 3), max_iter=10, random_state=0).fit(blobs)
    som.set_params(sigma_end=0.25).partial_fit(blobs[:100])
    assert som.neighbourhood_schedule_.length == 10 and som.neighbourhood_schedule_.end == 0.25


@pytest.mark.parametrize("init", ["sample", "k-means++"])
def test_fewer_samples_than_codes_is_refused_where_it_cannot_work(blobs, init):
    model = KohonenQuantizer((3, 3), init=init, random_state=0)
    with pytest.raises(ValueError, match=r"n_samples=5 .*9 codes|9 distinct samples but n_samples=5"):
        model.fit(blobs[:5])
    assert not hasattr(model, "cluster_centers_") and not hasattr(model, "n_features_in_")
    # The first partial_fit call fails the same way and leaves nothing behind.
    with pytest.raises(ValueError):
        model.partial_fit(blobs[:5])
    assert vars(model) == vars(KohonenQuantizer((3, 3), init=init, random_state=0))


@pytest.mark.parametrize("init", ["pca", "random"])
def test_fewer_samples_than_codes_works_where_it_can(blobs, init):
    som = KohonenQuantizer((3, 3), init=init, random_state=0).fit(blobs[:1])
    np.testing.assert_allclose(som.predict(blobs[:1]).shape, (1,))


@pytest.mark.parametrize(
    "params,message",
    [
        (dict(grid_shape=(3, 0)), "positive"),
        (dict(neighbourhood="mexican"), "neighbourhood"),
        (dict(schedule="cosine"), "schedule"),
        (dict(decay=1.0), "decay"),
        (dict(epsilon=0.0), "epsilon"),
        (dict(initial_count=-1.0), "initial_count"),
        (dict(update="some"), "update"),
        (dict(algorithm="online"), "algorithm"),
        (dict(max_iter=-1), "max_iter"),
        (dict(tol=-1e-3), "'tol' parameter"),
        (dict(init_size=0), "'init_size' parameter"),
        (dict(subsample=0), "'subsample' parameter"),
        (dict(subsample=0.5), "'subsample' parameter"),
        (dict(sigma=-1.0), "sigma"),
        (dict(init="zeros"), "init"),
        (dict(init=np.zeros((4, 4))), r"init array has shape \(4, 4\); expected .*\(9, 4\)"),
        (dict(hexagonal=True, grid_shape=(3, 3, 3)), "hexagonal grid must be 2-D"),
    ],
)
def test_bad_parameters_are_named_in_the_error(blobs, params, message):
    settings = dict(grid_shape=(3, 3), random_state=0)
    settings.update(params)
    model = KohonenQuantizer(**settings)
    with pytest.raises(ValueError, match=message):
        model.fit(blobs)
    assert not hasattr(model, "cluster_centers_")


def test_unfitted_model_says_so(blobs):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        KohonenQuantizer().predict(blobs)


# ------------------------------------- values that would corrupt the state


@pytest.mark.parametrize("method", ["fit", "partial_fit", "first partial_fit", "score"])
def test_negative_sample_weight_is_refused_and_loses_nothing(blobs, method):
    som = KohonenQuantizer((3, 3), init="sample", random_state=0)
    if method != "first partial_fit":
        som.fit(blobs)
    before = fitted_state(som)
    weights = np.ones(50)
    weights[7] = -0.5
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        getattr(som, method.split()[-1])(blobs[:50], sample_weight=weights)
    assert_same_state(before, fitted_state(som))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("Estimator", [KohonenQuantizer, EMAQuantizer])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_an_init_array_with_nan_or_inf_is_refused(blobs, bad, Estimator, method):
    init = blobs[:9].copy()
    init[4, 2] = bad
    model = Estimator(**({"grid_shape": (3, 3)} if Estimator is KohonenQuantizer else {"n_clusters": 9}), init=init)
    with pytest.raises(ValueError, match="init array contains NaN or infinity"):
        getattr(model, method)(blobs)
    assert not hasattr(model, "cluster_centers_")


def _fails_from_step(first_bad_step, bad_value):
    """A schedule that gives ``bad_value`` from ``first_bad_step`` on."""

    def schedule(step, n_steps, start, end, shrink):
        return bad_value if step >= first_bad_step else start / (1 + step)

    return schedule


CORRUPTING_CALLABLES = {
    "schedule NaN": (dict(schedule=_fails_from_step(2, float("nan"))), "gave the width nan at step 2"),
    "schedule inf": (dict(schedule=_fails_from_step(2, float("inf"))), "gave the width inf at step 2"),
    "neighbourhood NaN": (
        dict(neighbourhood=lambda d, s: np.where(d > 0, np.nan if s < 0.4 else np.exp(-d / s), 1.0)),
        "returned NaN or infinite weights",
    ),
    "neighbourhood shape": (
        dict(neighbourhood=lambda d, s: np.exp(-d / s) if s >= 0.4 else np.exp(-d[0] / s)),
        r"returned shape \(9,\) for grid distances of shape \(9, 9\)",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTING_CALLABLES))
def test_a_callable_that_turns_bad_midway_is_refused_and_loses_nothing(blobs, case):
    # The width falls 1, 1/2, 1/3: the callables turn bad at the third step.
    params, message = CORRUPTING_CALLABLES[case]
    settings = dict(grid_shape=(3, 3), sigma=1.0, schedule=_fails_from_step(99, 0.0), random_state=0)
    model = KohonenQuantizer(**{**settings, **params})
    model.partial_fit(blobs[:100]).partial_fit(blobs[100:200])
    before = fitted_state(model)
    with pytest.raises(ValueError, match=message):
        model.partial_fit(blobs[200:300])
    assert_same_state(before, fitted_state(model))
    # And fit refuses before it stores anything.
    fresh = KohonenQuantizer(**{**settings, **params, "algorithm": "ema", "batch_size": 100})
    with pytest.raises(ValueError, match=message):
        fresh.fit(blobs)
    assert not hasattr(fresh, "cluster_centers_")


@pytest.mark.parametrize("shared", ["instance", "global (None)"])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_a_failed_first_call_leaves_a_shared_rng_as_it_was(blobs, shared, method):
    rng = np.random.RandomState(7) if shared == "instance" else None
    drawn_from = rng if rng is not None else np.random.mtrand._rand
    # init='sample' draws rows, then the schedule fails at the first step.
    model = KohonenQuantizer((3, 3), init="sample", schedule=lambda *_: float("nan"), random_state=rng)
    before = drawn_from.get_state()
    with pytest.raises(ValueError, match="gave the width nan"):
        getattr(model, method)(blobs)
    after = drawn_from.get_state()
    np.testing.assert_array_equal(after[1], before[1])
    assert after[2:] == before[2:]


def test_later_partial_fit_steps_draw_nothing_from_a_shared_rng(blobs):
    # Only the first call draws (the initial codebook), so later steps need
    # not save the shared RNG's state to restore it on failure.
    rng = np.random.RandomState(3)
    model = KohonenQuantizer((3, 3), init="sample", random_state=rng).partial_fit(blobs)
    before = rng.get_state()
    for _ in range(3):
        model.partial_fit(blobs)
    with pytest.raises(ValueError):
        model.partial_fit(np.full_like(blobs, np.nan))
    after = rng.get_state()
    np.testing.assert_array_equal(after[1], before[1])
    assert after[2:] == before[2:]


# ------------------------------------------------------- what the docs say


def _parameter_doc(estimator_class, name):
    """The numpydoc entry of parameter ``name``."""
    entry = estimator_class.__doc__.split(f"\n    {name} :")[1]
    return re.split(r"\n    \S", entry)[0]


EMA_ONLY = {"decay": (0.5, 0.9), "epsilon": (1e-5, 0.1), "initial_count": (0.0, 5.0), "update": ("all", "active")}


@pytest.mark.parametrize("name", list(EMA_ONLY))
def test_the_docs_say_the_ema_parameters_do_nothing_in_a_batch_fit_and_it_is_so(blobs, name):
    assert "no effect on a batch fit" in _parameter_doc(KohonenQuantizer, name)
    a, b = (KohonenQuantizer((3, 3), max_iter=3, **{name: value}).fit(blobs) for value in EMA_ONLY[name])
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    # N0 is the count of a code no sample chose (docs: the resting state);
    # every chosen code's statistics come from the data alone.
    chosen = np.bincount(a.labels_, minlength=9) > 0
    for attribute in ("counts_", "sums_"):
        np.testing.assert_array_equal(getattr(a, attribute)[chosen], getattr(b, attribute)[chosen])
    # A partial_fit after the batch fit: the EMA step parameters act there
    # (on a batch that leaves codes unassigned, for 'update').
    if name != "initial_count":
        a.partial_fit(blobs[:5])
        b.partial_fit(blobs[:5])
        # After the fit the neighbourhood is narrow and the step small, but it differs.
        assert np.abs(a.cluster_centers_ - b.cluster_centers_).max() > 1e-6


def test_the_hard_kernel_weight_is_capped_at_one_as_documented():
    assert "weight min(s, 1)" in _parameter_doc(KohonenQuantizer, "neighbourhood")
    for width, weight in [(0.25, 0.25), (1.0, 1.0), (3.0, 1.0)]:
        P = dense_matrix(Grid((3,)), "hard", width)
        np.testing.assert_allclose(P, [[1, weight, 0], [weight, 1, weight], [0, weight, 1]])


# ------------------------------------------ the KSOM step, formula by formula


@given(ksom_settings())
def test_each_partial_fit_step_is_the_ksom_formula_with_p_written_out(case):
    settings, n_prior_steps, seed = case
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(math.prod(settings["grid_shape"]), 3))
    batches = [rng.normal(size=(12, 3)) for _ in range(n_prior_steps + 1)]
    expected, smallest_gap = reference_run(settings, W, batches)
    assume(smallest_gap > 1e-9)  # no tie at float64 precision
    model = KohonenQuantizer(**settings, init=W)
    for Z, (W_ref, counts_ref, sums_ref, codes_ref) in zip(batches, expected):
        model.partial_fit(Z)
        np.testing.assert_array_equal(model.labels_, codes_ref)
        np.testing.assert_allclose(model.counts_, counts_ref, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(model.sums_, sums_ref, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(model.cluster_centers_, W_ref, rtol=1e-9, atol=1e-9)


# ------------------------------------------------- streaming: decay='auto'


def test_auto_decay_remembers_a_fifteenth_of_the_run():
    assert core.auto_decay(59) == pytest.approx(1 - 15 / 59)
    assert core.auto_decay(1000) == pytest.approx(0.985)
    assert core.auto_decay(10) == 0.5 and core.auto_decay(10**6) == 0.99
    assert KohonenQuantizer((3, 3), schedule_steps=59).partial_fit(np.eye(9)).decay_ == core.auto_decay(59)
    assert KohonenQuantizer((3, 3), decay=0.9, schedule_steps=59).partial_fit(np.eye(9)).decay_ == 0.9


def test_one_pass_told_its_length_ends_at_the_end_width_and_beats_a_long_memory():
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(24000, 8, centers=40, cluster_std=2.0, random_state=0)
    X_test, _ = make_blobs(4000, 8, centers=40, cluster_std=2.0, random_state=0)
    n_batches = 48  # one pass in batches of 500
    errors = {}
    for decay in ("auto", 0.99):
        som = KohonenQuantizer((6, 6), schedule_steps=n_batches, decay=decay, random_state=0)
        for batch in np.array_split(X, n_batches):
            som.partial_fit(batch)
        schedule = som.neighbourhood_schedule_
        assert som.n_steps_ == n_batches and schedule.width(som.n_steps_ - 1) == pytest.approx(schedule.end)
        errors[decay] = som.quantization_error(X_test)
    # 0.99 still holds about 60 % of the PCA start after 48 steps; 'auto' (0.69) forgets it.
    assert errors["auto"] < 0.9 * errors[0.99]


# ------------------------------------- fit: stopping, coarse to fine, init_size


def assert_consistent_fit(model, X, n_iter):
    """After fit: n_iter_ updates or epochs, and labels_, inertia_ of the final codebook."""
    assert model.n_iter_ == n_iter
    np.testing.assert_array_equal(model.labels_, model.predict(X))
    assert model.inertia_ == pytest.approx(-model.score(X) * len(X))
    np.testing.assert_allclose(model.sums_ / model.counts_[:, None], model.cluster_centers_)


@pytest.mark.parametrize("algorithm", ["batch", "ema"])
def test_a_fit_that_converges_stops_early_and_says_so(blobs, algorithm):
    settings = dict(algorithm=algorithm, batch_size=100, max_iter=200, random_state=0)
    som = KohonenQuantizer((3, 3), schedule_steps=4, tol=1e-3, **settings).fit(blobs)
    vq = EMAQuantizer(6, init="pca", tol=1e-3, **settings).fit(blobs)
    for model in (som, vq):
        assert model.n_iter_ < model.max_iter
        assert_consistent_fit(model, blobs, model.n_iter_)
        per_iteration = 1 if algorithm == "batch" else 6  # 600 rows in batches of 100
        assert model.n_steps_ == per_iteration * model.n_iter_
    # The same batch run told to stop there ends on the same codebook (the
    # schedule's length is given, so it does not follow max_iter).
    if algorithm == "batch":
        again = clone(som).set_params(max_iter=som.n_iter_, tol=0).fit(blobs)
        np.testing.assert_array_equal(again.cluster_centers_, som.cluster_centers_)


@pytest.mark.parametrize("algorithm", ["batch", "ema"])
def test_tol_zero_runs_max_iter(blobs, algorithm):
    for model in (
        KohonenQuantizer((3, 3), algorithm=algorithm, schedule_steps=2, max_iter=30, tol=0, batch_size=100),
        EMAQuantizer(6, init="pca", algorithm=algorithm, max_iter=30, tol=0, batch_size=100),
    ):
        assert_consistent_fit(model.fit(blobs), blobs, 30)


def test_the_som_stops_only_once_its_width_has_reached_the_end(blobs):
    # tol = 10 lets any change pass: the run stops at the first check allowed.
    som = KohonenQuantizer((3, 3), schedule_steps=7, max_iter=50, tol=10.0).fit(blobs)
    assert som.n_iter_ == 7  # the 7 updates of the schedule, the last at the end width
    # EMA epochs of 6 steps: the schedule's 20 steps reach the end width at
    # step 19, in the 4th epoch (steps 18-23); the 5th and 6th run wholly at
    # the end width, and their errors compare after the 6th.
    som = KohonenQuantizer((3, 3), algorithm="ema", schedule_steps=20, max_iter=50, tol=10.0, batch_size=100)
    assert som.fit(blobs).n_iter_ == 6 and som.n_steps_ == 36
    # Without a neighbourhood, the second epoch may stop.
    assert EMAQuantizer(6, max_iter=50, tol=10.0, batch_size=100).fit(blobs).n_iter_ == 2


def test_partial_fit_after_an_early_stop_goes_on_from_where_it_stopped(blobs):
    som = KohonenQuantizer((3, 3), schedule_steps=4, max_iter=200, tol=1e-3, random_state=0).fit(blobs)
    before = som.quantization_error(blobs)
    som.partial_fit(blobs[:200])
    assert som.n_steps_ == som.n_iter_ + 1
    assert som.neighbourhood_schedule_.length == 4  # at the end width: no widening
    assert som.quantization_error(blobs) < 1.02 * before


def test_coarse_to_fine_fits_are_reproducible_and_small_data_see_every_row():
    X, _ = make_blobs(n_samples=3000, centers=8, n_features=3, random_state=0)
    settings = dict(grid_shape=(4, 4), subsample=256, max_iter=8, init="pca", init_size=10**6)
    a, b, c = (KohonenQuantizer(random_state=seed, **settings).fit(X) for seed in (0, 0, 1))
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert not np.array_equal(a.cluster_centers_, c.cluster_centers_)  # other subsamples
    assert_consistent_fit(a, X, 8)
    # A subsample at least as large as the data: every iteration on all rows.
    whole = KohonenQuantizer(random_state=0, **{**settings, "subsample": None}).fit(X)
    np.testing.assert_array_equal(KohonenQuantizer(random_state=5, **{**settings, "subsample": 3000}).fit(X).cluster_centers_,
                                  whole.cluster_centers_)  # fmt: skip
    assert a.quantization_error(X) < 1.1 * whole.quantization_error(X)


def test_batch_fit_iterations_see_the_coarse_to_fine_rows(monkeypatch):
    X, _ = make_blobs(n_samples=1000, centers=5, n_features=2, random_state=0)
    seen = []
    real_assign = core.assign

    def recording_assign(rows, codebook, **kwargs):
        seen.append(rows.shape[0])
        return real_assign(rows, codebook, **kwargs)

    monkeypatch.setattr("sklearn_ksom.estimators.assign", recording_assign)
    KohonenQuantizer((3, 3), max_iter=6, subsample=100, init_size=10**6, random_state=0).fit(X)
    # 1000 / 2^5 ... 1000 / 2, at least 100, then all rows; then the final pass.
    assert seen == [100, 100, 125, 250, 500, 1000, 1000]


def test_the_initialiser_sees_init_size_random_rows(blobs):
    som = KohonenQuantizer((3, 3), init="pca", init_size=100, max_iter=0, random_state=0).fit(blobs)
    chosen = np.sort(np.random.RandomState(0).choice(600, size=100, replace=False))
    np.testing.assert_allclose(som.cluster_centers_, pca_codes(blobs[chosen], 9, None, None, Grid((3, 3))))
    # By default 3 x batch_size rows (at least 3 per code): here all 600.
    default = KohonenQuantizer((3, 3), init="pca", max_iter=0).fit(blobs)
    np.testing.assert_allclose(default.cluster_centers_, pca_codes(blobs, 9, None, None, Grid((3, 3))))
    # Rows of zero weight are never drawn.
    weights = np.r_[np.zeros(300), np.ones(300)]
    vq = EMAQuantizer(6, init="sample", init_size=50, max_iter=0, random_state=0).fit(blobs, sample_weight=weights)
    rows = [np.flatnonzero((blobs == code).all(axis=1))[0] for code in vq.cluster_centers_]
    assert min(rows) >= 300
