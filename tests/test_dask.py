"""Fitting on Dask arrays, on a real two-process cluster on loopback.

The cluster's statistics must add up to the in-memory ones: the Dask fit
equals the in-memory fit from the same start, to float tolerance.
"""

import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")

from dask.utils import key_split  # noqa: E402

from sklearn_ksom import EMAQuantizer, KohonenQuantizer  # noqa: E402

N_SAMPLES, N_FEATURES, CHUNK_ROWS = 3000, 6, 400


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4, size=(5, N_FEATURES))
    X = centres[rng.integers(0, 5, N_SAMPLES)] + rng.normal(size=(N_SAMPLES, N_FEATURES))
    return X, rng.uniform(0.2, 3.0, N_SAMPLES)


def on_cluster(array, client):
    """``array`` split in row chunks and held in the workers' memory."""
    chunks = (CHUNK_ROWS,) + array.shape[1:]
    return client.persist(da.from_array(array, chunks=chunks))


def assert_same_fit(on_cluster_fit, in_memory_fit, rtol):
    for name in ("cluster_centers_", "counts_", "sums_"):
        np.testing.assert_allclose(getattr(on_cluster_fit, name), getattr(in_memory_fit, name), rtol=rtol, atol=rtol)
    assert on_cluster_fit.inertia_ == pytest.approx(in_memory_fit.inertia_, rel=rtol)
    assert on_cluster_fit.n_steps_ == in_memory_fit.n_steps_
    np.testing.assert_array_equal(on_cluster_fit.labels_.compute(), in_memory_fit.labels_)


@pytest.mark.parametrize(
    "estimator, weighted, dtype",
    [
        (KohonenQuantizer(grid_shape=(4, 4), init="pca", max_iter=6), False, np.float64),
        (KohonenQuantizer(grid_shape=(3, 4), init="random", neighbourhood="hard", schedule="inverse", max_iter=6), True, np.float64),
        (KohonenQuantizer(grid_shape=(8,), init="sample", max_iter=6), False, np.float32),
        (EMAQuantizer(n_clusters=7, algorithm="batch", init="pca", max_iter=6), True, np.float64),
        (KohonenQuantizer(grid_shape=(3, 3), init="pca", algorithm="ema", max_iter=0), True, np.float64),
        (KohonenQuantizer(grid_shape=(4, 4), init="pca", max_iter=6, metric="cosine"), True, np.float64),
    ],
    ids=["som-pca", "som-random-weighted", "som-sample-float32", "kmeans-pca-weighted", "no-iteration-weighted",
         "som-pca-cosine-weighted"],
)
def test_batch_fit_on_cluster_equals_in_memory_fit(client, data, estimator, weighted, dtype):
    X, weights = data
    X = X.astype(dtype)
    weights = weights.astype(dtype) if weighted else None
    estimator = clone(estimator).set_params(random_state=0)
    in_memory = clone(estimator).fit(X, sample_weight=weights)
    with distributed.get_task_stream(client) as tasks:
        fitted = clone(estimator).fit(
            on_cluster(X, client), sample_weight=None if weights is None else on_cluster(weights, client)
        )
    assert fitted.cluster_centers_.dtype == dtype
    assert_same_fit(fitted, in_memory, rtol=1e-4 if dtype == np.float32 else 1e-9)
    # The chunk statistics were computed by both worker processes.
    workers = {task["worker"] for task in tasks.data if key_split(task["key"]) == "batch_statistics"}
    assert len(workers) == 2


def test_tol_stops_a_batch_fit_on_cluster_where_it_stops_in_memory(client, data):
    X, _ = data
    # The schedule ends after 3 iterations; tol then decides, on both sides
    # from the whole data's error (subsample: every row, as on Dask).
    estimator = KohonenQuantizer(grid_shape=(3, 3), schedule_steps=3, max_iter=100, tol=1e-3, subsample=None, random_state=0)
    in_memory = clone(estimator).fit(X)
    fitted = clone(estimator).fit(on_cluster(X, client))
    assert 3 < in_memory.n_iter_ < 100 and fitted.n_iter_ == in_memory.n_iter_
    assert_same_fit(fitted, in_memory, rtol=1e-9)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_ema_fit_on_a_single_chunk_equals_in_memory_fit(client, data, metric):
    X, _ = data
    # init_size: the initialiser sees every row, as on Dask (which ignores it).
    estimator = EMAQuantizer(n_clusters=8, init="sample", max_iter=2, batch_size=256, init_size=N_SAMPLES, metric=metric,
                             random_state=0)
    in_memory = clone(estimator).fit(X)
    fitted = clone(estimator).fit(client.persist(da.from_array(X, chunks=-1)))
    assert_same_fit(fitted, in_memory, rtol=1e-9)


def test_ema_fit_steps_through_every_chunk_and_learns(client, data):
    X, _ = data
    estimator = KohonenQuantizer(grid_shape=(3, 3), algorithm="ema", init="k-means++", max_iter=2, batch_size=256, random_state=0)
    fitted = clone(estimator).fit(on_cluster(X, client))
    # Mini-batches never span chunks: ceil(400 / 256) = 2 steps per full chunk.
    chunk_sizes = [CHUNK_ROWS] * (N_SAMPLES // CHUNK_ROWS) + [N_SAMPLES % CHUNK_ROWS]
    assert fitted.n_steps_ == 2 * sum(-(-size // 256) for size in chunk_sizes)
    in_memory = clone(estimator).fit(X)
    assert fitted.inertia_ < 1.1 * in_memory.inertia_
    assert fitted.inertia_ == pytest.approx(-fitted.score(X) * N_SAMPLES)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_predict_and_transform_of_a_dask_array_are_lazy_and_match_numpy(client, data, metric):
    X, _ = data
    fitted = KohonenQuantizer(grid_shape=(4, 4), max_iter=3, metric=metric, random_state=0).fit(X)
    X_on_cluster = on_cluster(X, client)
    labels, distances = fitted.predict(X_on_cluster), fitted.transform(X_on_cluster)
    assert isinstance(labels, da.Array) and isinstance(distances, da.Array)
    assert labels.chunks[0] == X_on_cluster.chunks[0]
    np.testing.assert_array_equal(labels.compute(), fitted.predict(X))
    np.testing.assert_allclose(distances.compute(), fitted.transform(X), rtol=1e-12)


def test_bad_dask_input_gets_a_clear_error_and_leaves_the_model_as_it_was(client, data):
    X, _ = data
    fitted = KohonenQuantizer(grid_shape=(3, 3), max_iter=2, random_state=0).fit(on_cluster(X, client))
    before = {name: np.copy(getattr(fitted, name)) for name in ("cluster_centers_", "counts_", "sums_")}
    broken = X.copy()
    broken[1234, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fitted.fit(on_cluster(broken, client))
    with pytest.raises(ValueError, match="2-D"):
        fitted.fit(da.from_array(X[:, 0], chunks=CHUNK_ROWS))
    with pytest.raises(ValueError, match=r"sample_weight.shape"):
        fitted.fit(on_cluster(X, client), sample_weight=np.ones(10))
    negative = np.ones(len(X))
    negative[5] = -1.0
    with pytest.raises(ValueError, match="sample_weight has negative values"):
        fitted.fit(on_cluster(X, client), sample_weight=negative)
    with pytest.raises(ValueError, match="expecting 6 features"):
        fitted.predict(da.from_array(X[:, :4], chunks=CHUNK_ROWS))
    with pytest.raises(TypeError, match="lazy Dask arrays"):
        fitted.score(on_cluster(X, client))
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(fitted, name), value)


def test_library_imports_and_fits_without_dask():
    # A Python in which importing dask fails, as where the extra is not installed.
    without_dask = """
import sys

class NoDask:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("dask", "distributed"):
            raise ModuleNotFoundError(f"No module named {name!r}")

sys.meta_path.insert(0, NoDask())
import numpy as np
import sklearn_ksom
som = sklearn_ksom.KohonenQuantizer((2, 2), max_iter=2).fit(np.random.rand(50, 3))
som.predict(np.random.rand(5, 3))
assert "dask" not in sys.modules
"""
    subprocess.run([sys.executable, "-c", without_dask], check=True)
