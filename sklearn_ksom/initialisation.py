"""Starting codebooks: random, data samples, PCA plane, k-means++.

Each function returns a (K, D) codebook in the namespace and on the device
of ``X``.  Random numbers come from a NumPy ``RandomState`` on the host (the
array API has no RNG); only the drawn numbers travel to the device, never
the data back to the host.  The starts are described in docs/design.md
section 7.

With ``missing=True`` NaN entries of ``X`` are missing values: moments come
from the observed entries (available-case mean and covariance), distances
are the core's masked ones, and a drawn row's gaps are filled with the
feature means (docs/design.md section 14).
"""

from __future__ import annotations

import numpy as np

from ._array_api import device_of, is_dask_array, move_to, namespace, to_numpy
from .core import masked_parts, squared_distances, unit_codes
from .topology import Grid


def random_codes(X, n_codes, rng, sample_weight=None, grid=None, *, missing=False):
    """Gaussian codes with the per-feature mean and spread of ``X``.

    For standardised data this is the reference code's W ~ N(0, 1).
    """
    mean = observed_mean(X, sample_weight) if missing else weighted_mean(X, sample_weight)
    variance = weighted_covariance(X, mean, sample_weight, diagonal=True, missing=missing)
    return codes_around(mean, namespace(X).sqrt(variance), n_codes, rng)


def codes_around(mean, std, n_codes, rng):
    """The 'random' start from the data's per-feature moments (D,) alone."""
    xp = namespace(mean)
    noise = move_to(xp, rng.standard_normal((n_codes, mean.shape[0])), dtype=mean.dtype, device=device_of(mean))
    return mean + std * noise


def sample_codes(X, n_codes, rng, sample_weight=None, grid=None, *, missing=False):
    """K distinct rows of ``X`` drawn without replacement (weighted); with
    ``missing``, their gaps filled with the feature means."""
    xp = namespace(X)
    chosen = sample_rows(X.shape[0], n_codes, rng, sample_weight)
    codes = xp.take(X, move_to(xp, chosen, device=device_of(X)), axis=0)
    return fill_missing(codes, observed_mean(X, sample_weight)) if missing else codes


def sample_rows(n_samples, n_rows, rng, sample_weight=None, init="sample"):
    """Indices (host) of ``n_rows`` distinct rows, drawn with probability
    proportional to ``sample_weight``."""
    p = None
    available = n_samples
    if sample_weight is not None:
        # The weights are needed on the host to draw: one vector of N
        # numbers, read once at initialisation.
        weights = np.asarray(to_numpy(sample_weight), dtype=np.float64)
        available = int(np.count_nonzero(weights))
        p = weights / weights.sum()
    if available < n_rows:
        raise ValueError(
            f"init={init!r} draws {n_rows} distinct samples but n_samples={available} "
            f"(with non-zero weight); use init='random' or 'pca', or pass more data."
        )
    return rng.choice(n_samples, size=n_rows, replace=False, p=p)


def weighted_rows(n_samples, sample_weight=None) -> np.ndarray:
    """Indices (host) of the rows of non-zero weight: the rows a subsample
    draws from (all rows without weights)."""
    if sample_weight is None or bool(namespace(sample_weight).all(sample_weight != 0)):
        return np.arange(n_samples)
    return np.flatnonzero(to_numpy(sample_weight))


def subsample(candidates: np.ndarray, n_rows: int, rng) -> np.ndarray | None:
    """Sorted indices (host) of ``n_rows`` distinct rows drawn uniformly from
    ``candidates``, or None when there are no more candidates than that
    (take every row).  Sorted, so the rows are read in memory order."""
    if candidates.shape[0] <= n_rows:
        return None
    return np.sort(rng.choice(candidates, size=n_rows, replace=False))


def pca_codes(X, n_codes, rng, sample_weight=None, grid=None, *, missing=False):
    """Codes spread evenly over the plane of the top principal components.

    Axis i of the grid runs along principal component i, from -2 to +2
    standard deviations around the mean (the usual linear SOM start:
    deterministic, already ordered).  Axes of length 1 are skipped, so a
    (1, 16) grid starts as a (16,) one; a grid with more long axes than X
    has features leaves the extra axes at the mean.  With ``missing``, from
    the available-case mean and covariance (:func:`weighted_covariance`).
    """
    mean = observed_mean(X, sample_weight) if missing else weighted_mean(X, sample_weight)
    covariance = weighted_covariance(X, mean, sample_weight, missing=missing)
    return codes_on_principal_plane(mean, covariance, grid if grid is not None else Grid((n_codes,)))


def codes_on_principal_plane(mean, covariance, grid):
    """The 'pca' start from the data's mean (D,) and covariance (D, D) alone."""
    xp = namespace(mean, covariance)
    n_codes, n_features = grid.n_codes, mean.shape[0]
    eigenvalues, eigenvectors = xp.linalg.eigh(covariance)  # ascending order
    # Grid position of every code, each axis scaled to [-1, 1].
    position = grid.coordinates.copy()
    span = position.max(axis=0) - position.min(axis=0)
    position = 2 * (position - position.min(axis=0)) / np.where(span > 0, span, 1) - 1
    position = move_to(xp, position, dtype=mean.dtype, device=device_of(mean))
    codebook = xp.zeros((n_codes, n_features), dtype=mean.dtype, device=device_of(mean)) + mean
    # A length-1 axis is no axis: (1, 16) is laid out as (16,), the first
    # principal component along its long axis, centred on the mean.
    long_axes = [axis for axis in range(grid.ndim) if grid.shape[axis] > 1]
    for rank, axis in enumerate(long_axes[:n_features]):
        component = eigenvectors[:, n_features - 1 - rank]
        # Eigenvectors have no sign; fix it (largest entry positive) so that
        # equal data give the same map orientation whatever the rounding.
        largest = xp.argmax(xp.abs(component), keepdims=True)
        component = component * xp.sign(xp.take(component, largest))
        spread = 2 * xp.sqrt(xp.clip(eigenvalues[n_features - 1 - rank], min=0))
        codebook = codebook + xp.reshape(position[:, axis], (-1, 1)) * spread * xp.reshape(component, (1, -1))
    return codebook


def kmeans_plusplus_codes(X, n_codes, rng, sample_weight=None, grid=None, *, missing=False, means=None):
    """k-means++ seeding (Arthur & Vassilvitskii): each new code is a sample
    drawn with probability proportional to weight x squared distance to the
    nearest code chosen so far.  The draw happens on the device
    (cumulative sum and searchsorted), so nothing returns to the host.

    With ``missing``, a drawn row's gaps are filled with the feature means
    (``means``, or those of ``X``'s observed entries) and the distances to
    it are the core's masked ones.
    """
    xp = namespace(X)
    n_samples = X.shape[0]
    if n_samples < n_codes:
        raise ValueError(
            f"init='k-means++' needs n_samples >= n_clusters, got n_samples={n_samples} "
            f"for {n_codes} codes; use init='random' or 'pca', or pass more data."
        )
    device = device_of(X)
    weights = (
        sample_weight
        if sample_weight is not None
        else xp.ones((n_samples,), dtype=X.dtype, device=device)
    )
    uniforms = move_to(xp, rng.uniform(size=n_codes), dtype=X.dtype, device=device)

    def draw(probability_mass, u):
        cumulative = xp.cumulative_sum(probability_mass)
        target = xp.reshape(u * cumulative[-1], (1,))
        index = xp.searchsorted(cumulative, target, side="right")
        return xp.clip(index, max=n_samples - 1)

    if missing:
        mean = observed_mean(X, sample_weight) if means is None else means

        def squared_distance_to(index):
            code = fill_missing(xp.take(X, index, axis=0), mean)
            return xp.reshape(squared_distances(X, code, missing=True), (-1,))
    else:

        def squared_distance_to(index):
            return xp.sum((X - xp.take(X, index, axis=0)) ** 2, axis=1)

    chosen = [draw(weights, uniforms[0])]
    closest = squared_distance_to(chosen[0])
    for k in range(1, n_codes):
        chosen.append(draw(weights * closest, uniforms[k]))
        closest = xp.minimum(closest, squared_distance_to(chosen[-1]))
    codes = xp.take(X, xp.concat(chosen), axis=0)
    return fill_missing(codes, mean) if missing else codes


INITIALISERS = {
    "random": random_codes,
    "sample": sample_codes,
    "pca": pca_codes,
    "k-means++": kmeans_plusplus_codes,
}


def weighted_mean(X, sample_weight=None):
    """sum_i w_i x_i / sum_i w_i, shape (D,); lazy for a Dask array.

    Added up relative to the first row: data far from the origin would
    otherwise lose a rounding per row added (float32 data at 1e6: a mean
    18 off, 3000 rows, unit spread; docs/design.md section 11).
    """
    xp = namespace(X, sample_weight)
    origin = X[0, ...]
    if sample_weight is None:
        return origin + xp.mean(X - origin, axis=0)
    return origin + xp.sum((X - origin) * xp.reshape(sample_weight, (-1, 1)), axis=0) / xp.sum(sample_weight)


def observed_mean(X, sample_weight=None):
    """The available-case mean: per feature, over the rows where it is
    observed (not NaN), weighted; (D,), lazy for a Dask array.

    A feature observed in no row of positive weight has no mean: in memory
    that raises a ``ValueError`` naming the features.
    """
    xp = namespace(X, sample_weight)
    # Twice: the second time relative to the first result, whose error (a
    # rounding per row added, for data far from the origin) it removes
    # (see weighted_mean; a row's gap can miss any one origin row).
    mean = _observed_mean_about(X, sample_weight, xp.zeros_like(X[0, ...]), xp)
    mean = _observed_mean_about(X, sample_weight, xp.where(xp.isnan(mean), 0.0, mean), xp)
    if not is_dask_array(mean):
        check_features_observed(mean)
    return mean


def _observed_mean_about(X, sample_weight, origin, xp):
    """:func:`observed_mean` added up relative to ``origin`` (D,)."""
    filled, mask = masked_parts(X - origin)
    if sample_weight is not None:
        weights = xp.reshape(sample_weight, (-1, 1))
        filled, mask = filled * weights, mask * weights
    total, observed = xp.sum(filled, axis=0), xp.sum(mask, axis=0)
    return xp.where(observed > 0, origin + total / xp.where(observed > 0, observed, 1.0), xp.nan)


def check_features_observed(mean):
    """Refuse an available-case mean with NaN: features never observed."""
    xp = namespace(mean)
    unobserved = xp.isnan(mean)
    if bool(xp.any(unobserved)):
        features = xp.nonzero(unobserved)[0]
        shown = [int(features[i]) for i in range(min(features.shape[0], 5))]
        raise ValueError(
            f"X has {features.shape[0]} feature(s) missing (NaN) in every sample of positive weight: "
            f"features {shown}{' and more' if features.shape[0] > len(shown) else ''}. A starting codebook "
            f"from the data needs each feature observed at least once: drop those features, or "
            f"pass init as an array."
        )


def fill_missing(X, values):
    """``X`` with each missing (NaN) entry replaced by ``values`` of its
    feature (D,) or of its row's place (same shape as ``X``)."""
    xp = namespace(X, values)
    return xp.where(xp.isnan(X), values, X)


def weighted_covariance(X, mean, sample_weight=None, *, diagonal: bool = False, missing: bool = False):
    """sum_i w_i (x_i - m)(x_i - m)^T / sum_i w_i around ``mean`` m, (D, D).

    ``diagonal=True`` gives only its diagonal, the per-feature variances
    (D,), without the D x D product.  Lazy for a Dask array: the 'pca' and
    'random' starts in memory and on a cluster are this one function.

    ``missing=True``: the available-case covariance, each entry (d, e) over
    the rows observing both features: (W C)^T C / (W M)^T M elementwise,
    with C the centred data zero-filled and M the mask (0 where no row
    observes both).  It may be slightly indefinite; the 'pca' start clips
    negative eigenvalues.
    """
    xp = namespace(X, sample_weight)
    if missing:
        return _available_case_covariance(X - mean, sample_weight, diagonal, xp)
    centred = X - mean
    if sample_weight is None:
        scaled = centred / X.shape[0]
    else:
        scaled = centred * xp.reshape(sample_weight / xp.sum(sample_weight), (-1, 1))
    if diagonal:
        return xp.sum(scaled * centred, axis=0)
    return xp.matmul(xp.matrix_transpose(scaled), centred)


def codes_from_array(init, n_codes, n_features, *, xp, dtype, device=None):
    """A copy of a given starting codebook ``init``, checked and moved to ``xp``."""
    codebook = move_to(xp, np.asarray(init) if isinstance(init, list) else init, dtype=dtype, device=device)
    if tuple(codebook.shape) != (n_codes, n_features):
        raise ValueError(
            f"init array has shape {tuple(codebook.shape)}; expected (n_codes, n_features) = "
            f"({n_codes}, {n_features})."
        )
    if not bool(xp.all(xp.isfinite(codebook))):
        raise ValueError("init array contains NaN or infinity; pass a finite starting codebook.")
    return xp.asarray(codebook, copy=True)


def codes_for_metric(codebook, init, metric: str):
    """A starting codebook as ``metric`` compares it: on the unit sphere
    under 'cosine' (drawn from the unit rows of X, then scaled), where a
    zero code is a ``ValueError`` (docs/design.md section 13)."""
    return unit_codes(
        codebook, metric, f"The starting codebook (init={init!r})" if isinstance(init, str) else "init",
        advice="Pass an init array without zero rows, or init='k-means++' or 'sample' (codes drawn from X).",
    )  # fmt: skip


def _available_case_covariance(centred, sample_weight, diagonal, xp):
    """:func:`weighted_covariance` over the pairs of observed entries."""
    centred, mask = masked_parts(centred)
    weights = 1.0 if sample_weight is None else xp.reshape(sample_weight, (-1, 1))
    if diagonal:
        products, pairs = xp.sum(weights * centred * centred, axis=0), xp.sum(weights * mask, axis=0)
    else:
        products = xp.matmul(xp.matrix_transpose(weights * centred), centred)
        pairs = xp.matmul(xp.matrix_transpose(weights * mask), mask)
    return xp.where(pairs > 0, products / xp.where(pairs > 0, pairs, 1.0), 0.0)
