"""Fitting and inference on Dask arrays, the data staying where it is.

Imported only when a Dask array reaches an estimator (the ``dask`` extra:
``pip install "sklearn-ksom[dask]"``).  Every pass over the data is one Dask
computation whose tasks run on the workers that hold the chunks; only
K-sized results (counts, sums, a codebook) come back to the client.  Under
a ``dask.distributed.Client`` the work runs on its cluster, otherwise on
Dask's local scheduler.  The training loops are the core's own
(:func:`sklearn_ksom.core.batch_som`, :func:`sklearn_ksom.core.ema_steps`;
docs/design.md section 6); this module returns what they produce and the
estimator keeps it.

What ``fit`` does with each setting on a Dask array:

- ``algorithm='batch'``: every iteration computes each chunk's counts, sums
  and squared error (:func:`sklearn_ksom.core.batch_statistics`) on the
  workers and adds them up in a tree; the update itself
  (:func:`sklearn_ksom.core.batch_som_update`) runs on the K-sized sums.
  The result is the in-memory fit's, up to the order of floating-point
  sums.
- ``algorithm='ema'``: EMA steps depend on each other, so they cannot run
  side by side; instead the small state travels to the data.  Each epoch
  visits the chunks in random order, and the worker holding a chunk takes
  the mini-batch steps over its rows in random order; a mini-batch never
  spans two chunks.  With a single chunk this is the in-memory fit exactly.
- ``init='pca'`` and ``'random'``: from the mean and covariance (variance)
  reduced over the chunks, as in memory.  ``'sample'``: the same rows as in
  memory, and only those rows are fetched.  ``'k-means++'``: k-means++
  seeding on a random sample of ``KMEANS_PLUSPLUS_ROWS_PER_CODE`` rows per
  code (the in-memory one reads all rows once per code), so it differs
  from the in-memory start.  An array: used as given.

With ``max_missing`` > 0, NaN entries are missing values (docs/design.md
section 14): the first pass also counts them per row and refuses rows with
too many; when there are any, every pass uses the core's masked distances
and statistics, the 'pca' and 'random' starts take the available-case
moments, and the rows drawn by 'sample' and 'k-means++' have their gaps
filled with the feature means.

``fit`` reads the data 1 + ``max_iter`` + 1 times (checks and mean, the
iterations, the final error), once more for 'pca' and 'random'.  Every
batch iteration sees all rows (``subsample`` is ignored: no coarse-to-fine
subsamples), the initialiser too (``init_size`` is ignored; k-means++ has
its own sample, above); ``tol`` stops the batch algorithm as in memory
(its error comes with each iteration's statistics), while the EMA epochs,
built as one task graph, always run ``max_iter`` epochs.  Call
``X = X.persist()`` first when the data fit in the workers' memory, or each
pass loads the chunks again.  ``sample_weight`` with ``init='sample'`` or
``'k-means++'`` is fetched to the client (N numbers, not N x D).
"""

from __future__ import annotations

import functools
import math

import dask
import dask.array as da
import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._array_api import is_dask_array, to_numpy
from .core import (
    EMAConstants,
    FitResult,
    assign,
    batch_som,
    batch_statistics,
    distances,
    ema_steps,
    initial_state,
    normalised,
    resting_state,
    allowed_missing,
    check_missing,
    squared_distances,
    too_many_missing,
)
from .initialisation import (
    check_features_observed,
    codes_around,
    codes_for_metric,
    codes_from_array,
    codes_on_principal_plane,
    fill_missing,
    kmeans_plusplus_codes,
    observed_mean,
    sample_rows,
    weighted_covariance,
    weighted_mean,
)
from .topology import NeighbourhoodSchedule

# k-means++ on a Dask array seeds from a sample of this many rows per code:
# enough for the D^2 draw to find the data's modes, small enough to fetch.
KMEANS_PLUSPLUS_ROWS_PER_CODE = 20

# Partial statistics summed per task when reducing over chunks (as Dask's
# own reductions' split_every).
SPLIT_EVERY = 8


# ---------------------------------------------------------------- input


def _checked_rows(X, *, dtype=None, n_features=None, name="the estimator"):
    """A 2-D floating Dask array with one chunk across the features."""
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-D Dask array (n_samples, n_features), got {X.ndim}-D with shape {X.shape}; "
            f"reshape it, e.g. X.reshape(-1, 1) for a single feature."
        )
    if any(math.isnan(size) for size in X.shape):
        raise ValueError(
            "The Dask array has unknown chunk sizes (after boolean indexing or from a data frame); "
            "call X.compute_chunk_sizes() first."
        )
    if X.dtype.kind not in "biuf":
        raise ValueError(f"The Dask array has dtype {X.dtype}; expected real numbers.")
    if X.shape[0] < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features, but {name} is expecting {n_features} features as input.")
    if dtype is None:
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    X = X.astype(dtype)
    if len(X.chunks[1]) > 1:
        # Distances need whole rows; chunks split along rows only.
        X = X.rechunk({1: -1})
    return X


def _checked_weights(sample_weight, X):
    """``sample_weight`` as a Dask array chunked like the rows of ``X``."""
    if sample_weight is None:
        return None
    if is_dask_array(sample_weight):
        weights = sample_weight.astype(X.dtype)
    else:
        weights = np.asarray(sample_weight, dtype=X.dtype)
        if weights.ndim == 0:
            weights = np.full(X.shape[0], weights, dtype=X.dtype)
        weights = da.from_array(weights, chunks=(X.chunks[0],) if weights.shape == (X.shape[0],) else "auto")
    if weights.shape != (X.shape[0],):
        raise ValueError(f"sample_weight.shape == {weights.shape}, expected ({X.shape[0]},)!")
    return weights.rechunk((X.chunks[0],))


def _blocks(X, weights):
    """The row chunks of ``X`` and of ``weights`` (None each when unweighted)."""
    rows = list(X.to_delayed().ravel())
    return rows, list(weights.to_delayed()) if weights is not None else [None] * len(rows)


# ------------------------------------------------------- passes over data


def _add_statistics(*parts):
    return tuple(sum(values) for values in zip(*parts))


def _tree_sum(parts):
    while len(parts) > 1:
        parts = [
            dask.delayed(_add_statistics)(*parts[start : start + SPLIT_EVERY])
            for start in range(0, len(parts), SPLIT_EVERY)
        ]
    return parts[0]


def whole_data_statistics(rows, weights, codebook, metric="euclidean", missing=False):
    """(counts, sums, squared error) of all chunks on ``codebook``, NumPy.

    Each chunk's statistics are computed where the chunk lives and summed
    in a tree; the codebook travels once to each worker.  ``missing``: NaN
    entries are missing values, in every chunk alike (the counts are then
    (K, D) in all of them).
    """
    shared_codebook = dask.delayed(codebook)
    statistics = functools.partial(batch_statistics, metric=metric, missing=missing)
    parts = [dask.delayed(statistics)(block, shared_codebook, w) for block, w in zip(rows, weights)]
    (total,) = dask.compute(_tree_sum(parts))
    return total


def _summary(X, weights, max_missing=0.0):
    """One pass: finiteness, total weight and mean of ``X``, and whether it
    has missing values (NaN, with ``max_missing`` > 0; rows with too many
    are refused, naming them).

    The mean is the available-case one where there are missing values.
    """
    if max_missing:
        return _summary_with_gaps(X, weights, max_missing)
    mean = weighted_mean(X, weights)
    if weights is None:
        finite, total, mean = dask.compute(da.isfinite(X).all(), X.shape[0], mean)
    else:
        finite, total, mean = _weighted_summary(da.isfinite(X).all(), weights, mean)
    if not finite:
        raise ValueError("Input X contains NaN or infinity; remove or impute those values before fit.")
    return float(total), np.asarray(mean, dtype=X.dtype), False


def _weighted_summary(check, weights, *lazy):
    """``check``, the total weight and ``lazy`` in one pass, the weights refused
    where they are not finite, negative or all zero."""
    check, weights_finite, smallest, total, *values = dask.compute(
        check, da.isfinite(weights).all(), weights.min(), weights.sum(), *lazy
    )
    if not weights_finite:
        raise ValueError("sample_weight contains NaN or infinity.")
    if smallest < 0:
        raise ValueError(f"sample_weight has negative values (down to {smallest}); weights must be >= 0.")
    if not total > 0:
        raise ValueError(f"sample_weight sums to {total}; give some samples a positive weight.")
    return (check, total, *values)


def _summary_with_gaps(X, weights, max_missing):
    """:func:`_summary` where NaN entries may be missing values."""
    n_missing = da.isnan(X).sum(axis=1)
    too_many = n_missing > allowed_missing(X.shape[1], max_missing)
    checks = (da.isinf(X).any(), n_missing.sum(), too_many.any())
    mean, plain_mean = observed_mean(X, weights), weighted_mean(X, weights)
    if weights is None:
        (infinite, total_missing, refused), total, mean, plain_mean = dask.compute(checks, X.shape[0], mean, plain_mean)
    else:
        (infinite, total_missing, refused), total, mean, plain_mean = _weighted_summary(checks, weights, mean, plain_mean)
    if infinite:
        raise ValueError("Input X contains infinity; remove or impute those values before fit.")
    if refused:
        # The error names the rows: only then are N numbers fetched.
        counts = n_missing.compute()
        rows = np.flatnonzero(counts > allowed_missing(X.shape[1], max_missing))
        empty = int(np.count_nonzero(counts == X.shape[1]))
        raise too_many_missing(rows[:5].tolist(), rows.size, empty, X.shape[1], max_missing)
    if not total_missing:
        return float(total), np.asarray(plain_mean, dtype=X.dtype), False
    check_features_observed(np.asarray(mean))
    return float(total), np.asarray(mean, dtype=X.dtype), True


def _fetch_rows(X, indices):
    """Rows ``X[indices]`` as NumPy, in the order given; only they are read."""
    order = np.argsort(indices)
    picked = X[indices[order]].compute()
    rows = np.empty_like(picked)
    rows[order] = picked
    return rows


def _initial_codebook(init, grid, X, weights, rng, mean, missing):
    n_codes = grid.n_codes
    if not isinstance(init, str):
        return codes_from_array(init, n_codes, X.shape[1], xp=np, dtype=X.dtype)
    if init in ("pca", "random"):
        (covariance,) = dask.compute(
            weighted_covariance(X, mean, weights, diagonal=init == "random", missing=missing)
        )
        covariance = np.asarray(covariance, dtype=X.dtype)
        if init == "random":
            return codes_around(mean, np.sqrt(covariance), n_codes, rng)
        return codes_on_principal_plane(mean, covariance, grid)
    # Unit weights, as the in-memory fit passes them: the same draw.
    host_weights = np.ones(X.shape[0], dtype=X.dtype) if weights is None else weights.compute()
    if init == "sample":
        rows = _fetch_rows(X, sample_rows(X.shape[0], n_codes, rng, host_weights))
        return fill_missing(rows, mean) if missing else rows
    n_rows = min(KMEANS_PLUSPLUS_ROWS_PER_CODE * n_codes, int(np.count_nonzero(host_weights)))
    chosen = sample_rows(X.shape[0], n_rows, rng, host_weights, init="k-means++")
    # The sample was drawn in proportion to the weights: seed it unweighted.
    # The gaps are filled with the whole data's means (the sample may not
    # observe every feature).
    return kmeans_plusplus_codes(_fetch_rows(X, chosen), n_codes, rng, missing=missing, means=mean)


def _ema_epochs(X, rows, weights, state, schedule, ema, *, batch_size, max_iter, rng, metric, missing):
    """``max_iter`` epochs of EMA steps, each run by the worker holding its chunk."""
    chunk_sizes = X.chunks[0]
    batches = [math.ceil(size / batch_size) for size in chunk_sizes]
    schedule = schedule.over(max_iter * sum(batches))
    # The settings travel to each worker once; the state goes from task
    # to task.
    shared_schedule, shared_ema = dask.delayed(schedule), dask.delayed(ema)
    step = 0
    for _ in range(max_iter):
        for chunk in rng.permutation(len(rows)):
            order = rng.permutation(chunk_sizes[chunk])
            state, _ = dask.delayed(ema_steps, nout=2)(
                state, rows[chunk], order, shared_schedule, shared_ema,
                batch_size=batch_size, first_step=step, sample_weight=weights[chunk], metric=metric, missing=missing,
            )  # fmt: skip
            step += batches[chunk]
    (state,) = dask.compute(state)
    return state, step, schedule


# ---------------------------------------------------------- front doors


def fit(
    X, sample_weight, schedule: NeighbourhoodSchedule, ema: EMAConstants, *, init, algorithm, max_iter, tol, batch_size,
    rng,
    metric="euclidean",
    max_missing=0.0,
) -> FitResult:  # fmt: skip
    """A training run on a Dask array (see the module's description).

    Returns what ``fit`` keeps, the labels as a lazy Dask array; the
    estimator stores it.  ``metric='cosine'`` trains on the unit rows,
    normalised chunk by chunk (docs/design.md section 13).
    """
    X = _checked_rows(X)
    weights = _checked_weights(sample_weight, X)
    if metric != "euclidean":
        X = X.map_blocks(normalised, metric, dtype=X.dtype)
    total, mean, missing = _summary(X, weights, max_missing)
    start = _initial_codebook(init, schedule.grid, X, weights, rng, mean, missing)
    codebook = codes_for_metric(start, init, metric)
    rows, weight_blocks = _blocks(X, weights)

    def statistics(codebook, n_rows=None):
        # Every iteration on all rows: no coarse-to-fine subsamples here.
        return whole_data_statistics(rows, weight_blocks, codebook, metric, missing)

    if algorithm == "ema" and max_iter > 0:
        state = initial_state(codebook, ema.initial_count)
        state, n_steps, schedule = _ema_epochs(
            X, rows, weight_blocks, state, schedule, ema,
            batch_size=batch_size, max_iter=max_iter, rng=rng, metric=metric, missing=missing,
        )  # fmt: skip
        _, _, error = statistics(state.codebook)
        n_iter = max_iter
    else:
        # No iteration: a later partial_fit runs the schedule of a stream.
        schedule = schedule.over(max_iter) if max_iter else schedule
        codebook, (counts, _, error), n_iter = batch_som(statistics, codebook, schedule, max_iter, tol=tol, metric=metric)
        state = resting_state(codebook, counts, batch_size=batch_size, total_weight=total, initial_count=ema.initial_count)
        n_steps = n_iter
    labels = _blockwise(X, state.codebook, functools.partial(_nearest_codes, metric=metric), "i", np.intp, max_missing)
    return FitResult(state, labels, float(error), n_steps, schedule, n_iter)


def _nearest_codes(block, codebook, metric="euclidean", missing=False):
    return assign(block, codebook, metric=metric, missing=missing).first


def _code_distances(block, codebook, metric="euclidean", missing=False):
    return distances(block, codebook, metric=metric, missing=missing)


def _on_gappy_block(function, block, rows, codebook, *, max_missing):
    """``function`` of a chunk whose NaN entries are missing values, rows with
    too many refused by their index in the whole array (``rows`` holds the
    chunk's)."""
    if not check_missing(block, max_missing, first_row=int(rows[0])):
        return function(block, codebook)
    return function(block, codebook, missing=True)


def _blockwise_on_codebook(estimator, X, function, out_index, dtype):
    check_is_fitted(estimator)
    codebook = to_numpy(estimator.cluster_centers_)
    X = _checked_rows(X, dtype=codebook.dtype, n_features=codebook.shape[1], name=type(estimator).__name__)
    return _blockwise(X, codebook, function, out_index, dtype, estimator.max_missing)


def _blockwise(X, codebook, function, out_index, dtype, max_missing=0.0):
    # One chunk holding the codebook, read by every row chunk's task.
    shared = da.from_array(codebook, chunks=codebook.shape)
    if not max_missing:
        return da.blockwise(function, out_index, X, "ij", shared, "kj", dtype=dtype, concatenate=True)
    gappy = functools.partial(_on_gappy_block, function, max_missing=max_missing)
    rows = da.arange(X.shape[0], chunks=(X.chunks[0],))
    return da.blockwise(gappy, out_index, X, "ij", rows, "i", shared, "kj", dtype=dtype, concatenate=True)


def predict(estimator, X):
    """Lazy nearest-code indices of a Dask array, shape (n_samples,)."""
    return _blockwise_on_codebook(estimator, X, functools.partial(_nearest_codes, metric=estimator._metric), "i", np.intp)


def transform(estimator, X):
    """Lazy distances of a Dask array to every code, (n_samples, n_codes)."""
    function = functools.partial(_code_distances, metric=estimator._metric)
    return _blockwise_on_codebook(estimator, X, function, "ik", to_numpy(estimator.cluster_centers_).dtype)
