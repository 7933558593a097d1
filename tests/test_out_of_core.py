"""Out-of-core training: data on disk, read one chunk at a time.

The recipe of the README's "Out of core on one machine": open the file as a
NumPy memmap and feed its row slices to ``partial_fit``; only one chunk is
ever in memory.
"""

import math
import tracemalloc

import numpy as np
import pytest

from sklearn_ksom import Grid, KohonenQuantizer
from sklearn_ksom.initialisation import pca_codes
from sklearn_ksom.metrics import quantization_error

N_SAMPLES, N_FEATURES, CHUNK_ROWS = 100_000, 16, 1_000


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3, size=(12, N_FEATURES))
    X = centres[rng.integers(0, 12, N_SAMPLES)] + 0.5 * rng.normal(size=(N_SAMPLES, N_FEATURES))
    X = X.astype(np.float32)
    path = tmp_path_factory.mktemp("out_of_core") / "features.npy"
    np.save(path, X)
    return path


def stream(som, X):
    """One pass of ``partial_fit`` over ``X`` in chunks of CHUNK_ROWS rows."""
    for start in range(0, X.shape[0], CHUNK_ROWS):
        som.partial_fit(X[start : start + CHUNK_ROWS])
    return som


def test_partial_fit_over_a_memmap_equals_the_same_batches_in_memory(data_file):
    on_disk = np.load(data_file, mmap_mode="r")
    assert isinstance(on_disk, np.memmap) and on_disk.shape[0] > CHUNK_ROWS
    n_chunks = math.ceil(N_SAMPLES / CHUNK_ROWS)
    # The neighbourhood shrinks over the one pass (schedule_steps = chunks),
    # and the EMA remembers about 1 / (1 - decay) = 10 chunks of the 100.
    settings = dict(grid_shape=(6, 6), schedule_steps=n_chunks, decay=0.9, random_state=0)
    som = KohonenQuantizer(**settings)

    tracemalloc.start()
    try:
        stream(som, on_disk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    in_memory = stream(KohonenQuantizer(**settings), np.load(data_file))
    assert som.n_steps_ == in_memory.n_steps_ == n_chunks  # one pass, one step a chunk
    for name in ("cluster_centers_", "counts_", "sums_"):
        np.testing.assert_array_equal(getattr(som, name), getattr(in_memory, name))
    # Memory in proportion to a chunk (N x K distances and the like), not the file.
    assert peak < on_disk.nbytes / 4
    # And the one pass trained the map: far closer to the data than its start.
    start = pca_codes(np.asarray(on_disk[:CHUNK_ROWS]), 36, None, grid=Grid((6, 6)))
    sample = on_disk[-10_000:]
    assert som.quantization_error(sample) < 0.6 * quantization_error(sample, start)


def test_batch_fit_of_a_dask_array_over_a_memmap_equals_the_in_memory_fit(data_file):
    """Several passes over data on disk: a Dask array over the memmap, on
    Dask's local scheduler, reads the chunks from the file on each pass."""
    da = pytest.importorskip("dask.array")
    on_disk = da.from_array(np.load(data_file, mmap_mode="r"), chunks=(10 * CHUNK_ROWS, N_FEATURES))
    # Every iteration and the start on all rows in memory too, as on Dask.
    # The end width 0.5: at the Gaussian's default 1/3 a near-tie of these
    # float32 rows flips with the order of the chunk sums and moves one
    # code by 4e-4 within 4 iterations (rounding, not a different fit).
    estimator = KohonenQuantizer(grid_shape=(5, 5), max_iter=4, sigma_end=0.5, subsample=None, init_size=10**9, random_state=0)
    from_disk = estimator.__sklearn_clone__().fit(on_disk)
    in_memory = estimator.__sklearn_clone__().fit(np.load(data_file))
    np.testing.assert_allclose(from_disk.cluster_centers_, in_memory.cluster_centers_, rtol=1e-4, atol=1e-4)
