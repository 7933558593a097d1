"""Quality figures of a codebook, for any array-API namespace.

- :func:`quantization_error`: mean distance of samples to their best code.
- :func:`topographic_error`: share of samples whose best and second-best
  codes are not grid neighbours (MiniSom's definition, any grid).
- :func:`distance_map`: the U-matrix, each code's mean distance to its grid
  neighbours; :func:`grid_smoothness`: how alike the per-code things of
  grid neighbours are, against all pairs.
- :func:`perplexity`, :func:`codebook_utilisation`, :func:`dead_codes`:
  how much of the codebook a set of assignments uses (and
  :func:`usage_perplexity`, :func:`usage_utilisation` of per-code counts,
  as arrays, for training loops).
- :func:`topographic_product`, :func:`trustworthiness`, :func:`continuity`,
  :func:`som_distortion`: how well the map keeps the data's neighbourhoods,
  and the neighbourhood-weighted error that the batch SOM minimises.

The definitions are in docs/design.md section 8.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
from scipy.spatial.distance import cdist

from . import topology
from ._array_api import count_labels, device_of, move_to, namespace, to_numpy
from .core import assign, check_metric, distances, normalised, squared_distances, unit_codes
from .topology import Grid


def quantization_error(
    X, codebook, *, squared: bool = False, metric: str = "euclidean", missing: bool = False
) -> float:
    """Mean distance from each row of ``X`` to its nearest code.

    ``squared=False`` gives the mean Euclidean distance (MiniSom's
    ``quantization_error``); ``squared=True`` the mean squared distance
    (the negative of the estimators' ``score``).  ``metric='cosine'``
    gives the mean cosine distance 1 - cos (the negative of ``score`` of a
    cosine estimator), and takes no ``squared``: 1 - cos is already half a
    squared distance of unit vectors (docs/design.md section 13).
    ``missing=True``: NaN entries are missing values (the core's masked
    distances; section 14).
    """
    xp = namespace(X, codebook)
    _check_squared(squared, metric)
    squared_distance = assign(X, codebook, metric=metric, missing=missing).squared_distance
    values = squared_distance if squared or metric == "cosine" else xp.sqrt(squared_distance)
    return float(xp.mean(values))


def _check_squared(squared, metric):
    check_metric(metric)
    if squared and metric == "cosine":
        raise ValueError(
            "squared=True measures squared Euclidean distances; with metric='cosine' the distance is "
            "1 - cos (half the squared distance of the unit vectors): pass squared=False."
        )


def topographic_error(X, codebook, grid: Grid, *, metric: str = "euclidean", missing: bool = False) -> float:
    """Share of samples whose two nearest codes are not adjacent on ``grid``.

    Adjacent means within :attr:`Grid.neighbour_radius`: the 8-neighbourhood
    of a rectangular 2-D grid, the six neighbours of a hexagonal one, across
    the edges of a torus.  0 is a perfect map; a codebook with no topology
    (EMA-VQ, k-means) scores close to 1 - (neighbours per code) / K.
    ``metric='cosine'`` ranks the codes by cosine distance.
    ``missing=True``: NaN entries are missing values (masked distances).
    """
    xp = namespace(X, codebook)
    if codebook.shape[0] < 2:
        return 0.0
    assignment = assign(X, codebook, second=True, metric=metric, missing=missing)
    adjacent = grid.adjacent(assignment.first, assignment.second)
    return float(1.0 - xp.mean(xp.astype(adjacent, _float(xp))))


def _code_differences(vectors, grid: Grid):
    """Squared distances between all pairs of per-code vectors (K, K), in
    float64 where the namespace has it, and the mask of grid-adjacent pairs."""
    xp = namespace(vectors)
    flat = xp.astype(xp.reshape(vectors, (vectors.shape[0], -1)), _float(xp))
    differences = squared_distances(flat, flat)
    distances = grid.distances()
    adjacent = (distances <= grid.neighbour_radius) & ~np.eye(grid.n_codes, dtype=bool)
    return differences, move_to(xp, adjacent, device=device_of(flat))


def distance_map(codebook, grid: Grid, *, metric: str = "euclidean") -> np.ndarray:
    """Mean distance of each code to its adjacent codes (the U-matrix),
    shape ``grid.shape``, NumPy.

    Adjacent as in the topographic error (:attr:`Grid.neighbour_radius`).
    Light cells (small values) are a cluster's inside, dark ones a border.
    ``metric='cosine'``: the mean cosine distance 1 - cos.
    """
    differences, adjacent = _code_differences(unit_codes(codebook, metric), grid)
    xp = namespace(differences)
    weights = xp.astype(adjacent, differences.dtype)
    n_neighbours = xp.clip(xp.sum(weights, axis=1), min=1)
    # Between unit codes 1 - cos is half the squared distance (section 13).
    code_distances = xp.sqrt(differences) if metric == "euclidean" else differences / 2
    mean = xp.sum(code_distances * weights, axis=1) / n_neighbours
    return to_numpy(mean).reshape(grid.shape)


def grid_smoothness(vectors, grid: Grid) -> float:
    """Mean squared difference of grid neighbours over that of all pairs.

    ``vectors`` (K, ...) are per-code things (code vectors, decoded tiles),
    any namespace.  About 1 when the layout carries no topology (EMA-VQ);
    well below 1 when neighbours look alike (the smooth islands of a KSOM).
    """
    differences, adjacent = _code_differences(vectors, grid)
    xp = namespace(differences)
    off_diagonal = move_to(xp, ~np.eye(grid.n_codes, dtype=bool), device=device_of(differences))
    zero = xp.zeros_like(differences)
    neighbours = xp.sum(xp.where(adjacent, differences, zero)) / xp.sum(xp.astype(adjacent, differences.dtype))
    pairs = xp.sum(xp.where(off_diagonal, differences, zero)) / xp.sum(xp.astype(off_diagonal, differences.dtype))
    return float(neighbours / pairs)


def _float(xp):
    """float64 where the namespace's default device has it, else float32."""
    info = getattr(xp, "__array_namespace_info__", None)
    return xp.float64 if info is None or "float64" in info().dtypes() else xp.float32


def usage(labels, n_codes: int, *, dtype=None):
    """How often each code is used by ``labels``, shape (K,), float (of
    ``dtype``, by default float64 where the namespace has it)."""
    xp = namespace(labels)
    return count_labels(labels, n_codes, dtype=_float(xp) if dtype is None else dtype, xp=xp)


def usage_perplexity(counts):
    """exp(-sum p log p) of the usage frequencies p = counts / sum(counts).

    ``counts`` (K,) in any namespace; returns a 0-d array there, so a
    training step can log it without waiting for the device.
    """
    xp = namespace(counts)
    p = counts / xp.sum(counts)
    entropy = -xp.sum(xp.where(p > 0, p * xp.log(xp.where(p > 0, p, xp.ones_like(p))), 0.0))
    return xp.exp(entropy)


def usage_utilisation(counts):
    """Share of the codes with a positive count, a 0-d array like ``counts``."""
    xp = namespace(counts)
    return xp.mean(xp.astype(counts > 0, counts.dtype))


def perplexity(labels, n_codes: int) -> float:
    """exp(-sum p log p) of the code-usage frequencies p (docs/design.md section 8).

    Ranges from 1 (one code used) to K (all used equally).
    """
    return float(usage_perplexity(usage(labels, n_codes)))


def codebook_utilisation(labels, n_codes: int) -> float:
    """Share of the K codes that ``labels`` uses at least once."""
    return float(usage_utilisation(usage(labels, n_codes)))


def dead_codes(labels, n_codes: int) -> int:
    """Number of codes that ``labels`` never uses."""
    xp = namespace(labels)
    return int(xp.sum(xp.astype(usage(labels, n_codes) == 0, xp.int64)))


# --------------------------------------------- map quality beyond QE and TE
#
# The topographic product, trustworthiness and continuity compare orderings
# of K codes or N samples, O(K^2) or O(N^2) work: they run in float64 on the
# host, whatever the inputs' namespace.  The distortion is N x K work, like
# a prediction, and runs where the data live.

# Rows of a K x K or N x N block computed at once (a few MiB of float64).
_ROW_BLOCK_ENTRIES = 2**20


def _host(array, name):
    values = np.asarray(to_numpy(array), dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {values.shape}.")
    return values


def _grid_distances(grid: Grid, rows, columns) -> np.ndarray:
    """Grid distances between codes ``rows`` and codes ``columns``, rounded so
    that equal distances compare equal (the hexagonal sqrt(3)/2 rows leave
    rounding noise in the last bits).  Never the whole K x K matrix."""
    coordinates = grid.coordinates
    delta = grid.displacement(coordinates[rows][:, None, :], coordinates[columns][None, :, :])
    return np.round(np.linalg.norm(delta, axis=-1), 9)


def _check_codebook_on(codebook, grid: Grid) -> np.ndarray:
    codebook = _host(codebook, "codebook")
    if codebook.shape[0] != grid.n_codes:
        raise ValueError(
            f"codebook has {codebook.shape[0]} codes but the grid {grid.shape} has {grid.n_codes}; "
            "give the codes in the grid's order."
        )
    if not np.all(np.isfinite(codebook)):
        raise ValueError("codebook contains NaN or infinity; measure a finite codebook.")
    return codebook


def topographic_product(codebook, grid: Grid) -> float:
    """Topographic product P of a codebook on its grid (Bauer & Pawelzik 1992).

    For each code j, let n_l^A(j) be its l-th nearest code on the grid (A)
    and n_l^V(j) its l-th nearest code in the data space (V), with d^A the
    grid distance and d^V the Euclidean distance between codes.  With

        Q1(j, l) = d^V(w_j, w_{n_l^A(j)}) / d^V(w_j, w_{n_l^V(j)})
        Q2(j, l) = d^A(j, n_l^A(j)) / d^A(j, n_l^V(j))
        P3(j, k) = [prod_{l=1..k} Q1(j, l) Q2(j, l)]^(1 / 2k)

    the topographic product is

        P = 1 / (K (K - 1)) sum_j sum_{k=1..K-1} log P3(j, k).

    P = 0 when the grid and the codebook order every code's neighbours
    alike; P < 0 suggests a grid of too few dimensions for the data (the
    map folds), P > 0 too many.  Its values are small by nature: a 20-code
    line fitted to uniform 1-D data gives 7e-4 to 1e-3, the same codes
    shuffled over the line values about 0.005 to 0.01 away from 0, of
    either sign.

    Codes at equal grid distance are ordered by their index (the measure
    depends on that order; the reference leaves it open).

    Parameters
    ----------
    codebook : array of shape (K, n_features)
        The codes in the grid's order; any namespace (computed on the host).
    grid : Grid
        Where the codes sit.

    Returns
    -------
    float

    References
    ----------
    H.-U. Bauer and K. R. Pawelzik, "Quantifying the neighborhood
    preservation of self-organizing feature maps", IEEE Transactions on
    Neural Networks 3(4), 570-579, 1992.
    """
    codebook = _check_codebook_on(codebook, grid)
    n_codes = codebook.shape[0]
    if n_codes < 2:
        raise ValueError("The topographic product needs at least 2 codes.")
    block = max(1, _ROW_BLOCK_ENTRIES // n_codes)
    total = 0.0
    for start in range(0, n_codes, block):
        rows = np.arange(start, min(start + block, n_codes))
        code_distances = cdist(codebook[rows], codebook)
        on_grid = _grid_distances(grid, rows, np.arange(n_codes))
        # Each code's own column sorts last and is dropped.
        mask = np.zeros_like(on_grid, dtype=bool)
        mask[np.arange(rows.shape[0]), rows] = True
        by_grid = np.argsort(np.where(mask, np.inf, on_grid), axis=1, kind="stable")[:, :-1]
        by_data = np.argsort(np.where(mask, np.inf, code_distances), axis=1, kind="stable")[:, :-1]
        nearest_in_data = np.take_along_axis(code_distances, by_data, axis=1)
        if np.any(nearest_in_data[:, 0] == 0):
            raise ValueError(
                "Two codes of the codebook are equal; the topographic product needs distinct codes "
                "(drop duplicates or perturb them)."
            )
        log_q1 = np.log(np.take_along_axis(code_distances, by_grid, axis=1) / nearest_in_data)
        log_q2 = np.log(np.take_along_axis(on_grid, by_grid, axis=1) / np.take_along_axis(on_grid, by_data, axis=1))
        k = np.arange(1, n_codes)
        total += float(np.sum(np.cumsum(log_q1 + log_q2, axis=1) / (2 * k)))
    return total / (n_codes * (n_codes - 1))


def _tie_groups(distances):
    """For each entry of each row: a, how many entries of its row are
    strictly smaller, and b, how many are equal to it (itself included)."""
    order = np.argsort(distances, axis=1, kind="stable")
    ordered = np.take_along_axis(distances, order, axis=1)
    n = ordered.shape[1]
    positions = np.broadcast_to(np.arange(n), ordered.shape)
    starts = np.ones(ordered.shape, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones(ordered.shape, dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, positions, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, positions, n)[:, ::-1], axis=1)[:, ::-1]
    smaller, equal = np.empty_like(order), np.empty_like(order)
    np.put_along_axis(smaller, order, first, axis=1)
    np.put_along_axis(equal, order, last - first + 1, axis=1)
    return smaller, equal


def _rank_intrusions(X, positions, n_neighbors, *, grid: Grid | None, trust: bool) -> float:
    """sum_i sum_j E[1{j among the k nearest of i in one space}
    * max(0, rank of j from i in the other space - k)], ranks from 1.

    ``trust=True``: "one space" is the map (``positions`` on ``grid``) and
    ranks are in the data ``X``; ``trust=False`` the reverse.  Ties are
    broken uniformly at random and the expectation is taken in closed form:
    for an entry with a smaller and b equal entries in its row, it is among
    the k nearest with probability clip((k - a) / b, 0, 1), and its rank is
    uniform on a + 1 .. a + b.
    """
    n_samples = X.shape[0]
    k = n_neighbors
    block = max(1, _ROW_BLOCK_ENTRIES // n_samples)
    total = 0.0
    for start in range(0, n_samples, block):
        rows = np.arange(start, min(start + block, n_samples))
        in_data = cdist(X[rows], X)
        on_map = _grid_distances(grid, positions[rows], positions)
        # Each sample's distance to itself becomes -1: alone in the first tie
        # group, so subtracting 1 from "smaller" leaves the others' counts.
        own = (np.arange(rows.shape[0]), rows)
        in_data[own] = on_map[own] = -1.0
        near_space, rank_space = (on_map, in_data) if trust else (in_data, on_map)
        near_smaller, near_equal = _tie_groups(near_space)
        rank_smaller, rank_equal = _tie_groups(rank_space)
        near_smaller, rank_smaller = near_smaller - 1, rank_smaller - 1
        among_nearest = np.clip((k - near_smaller) / near_equal, 0.0, 1.0)
        # E[max(0, r - k)] for r uniform on a + 1 .. a + b: the sum over
        # r = max(a + 1, k + 1) .. a + b of (r - k), divided by b.
        low = np.maximum(rank_smaller + 1, k + 1)
        high = rank_smaller + rank_equal
        count = np.maximum(high - low + 1, 0)
        excess = count * ((low - k) + (high - k)) / 2.0 / rank_equal
        among_nearest[own] = 0.0
        total += float(np.sum(among_nearest * excess))
    return total


def _projection_measure(X, codebook, grid: Grid, n_neighbors, *, trust: bool, metric: str) -> float:
    X = _host(X, "X")
    codebook = _check_codebook_on(codebook, grid)
    # Cosine: on unit rows, Euclidean ranks are the cosine ranks
    # (||u - v||^2 = 2 (1 - cos), docs/design.md section 13).
    X, codebook = normalised(X, metric), unit_codes(codebook, metric)
    n_samples = X.shape[0]
    if X.shape[1] != codebook.shape[1]:
        raise ValueError(f"X has {X.shape[1]} features, the codebook {codebook.shape[1]}.")
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, Integral) or not 1 <= n_neighbors < n_samples / 2:
        raise ValueError(
            f"n_neighbors must be an int from 1 to below half the number of samples ({n_samples} / 2), "
            f"got {n_neighbors!r}: the measure's normalisation needs k < N / 2."
        )
    positions = assign(X, codebook).first
    k = n_neighbors
    intrusions = _rank_intrusions(X, positions, k, grid=grid, trust=trust)
    return 1.0 - 2.0 / (n_samples * k * (2 * n_samples - 3 * k - 1)) * intrusions


_PROJECTION_DOC = """
    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        The samples; any namespace (computed on the host in float64).
        O(n_samples^2) work: pass a sample of a few thousand rows.
    codebook : array of shape (K, n_features)
        The codes in the grid's order.
    grid : Grid
        Where the codes sit; distances on a torus wrap around.
    n_neighbors : int, default=5
        The neighbourhood size k, 1 <= k < n_samples / 2.
    metric : {'euclidean', 'cosine'}, default='euclidean'
        How samples (and codes) are compared in the data space.

    Returns
    -------
    float
        1 for a perfect projection; about 0.5 for a random one.

    Notes
    -----
    Many samples share a map unit, so distances on the map tie; ties are
    broken uniformly at random and the measure is its expectation over
    them, computed exactly (not sampled).  Without ties this is the
    definition above.

    References
    ----------
    J. Venna and S. Kaski, "Neighborhood preservation in nonlinear
    projection methods: an experimental study", ICANN 2001, LNCS 2130,
    485-491.
"""


def trustworthiness(X, codebook, grid: Grid, n_neighbors: int = 5, *, metric: str = "euclidean") -> float:
    return _projection_measure(X, codebook, grid, n_neighbors, trust=True, metric=metric)


trustworthiness.__doc__ = (
    """Trustworthiness of the map projection (Venna & Kaski 2001).

    The projection puts each sample at its nearest code's grid position.
    With r(i, j) the rank of sample j among the neighbours of sample i in
    the data space (1 = nearest) and U_k(i) the samples among the k
    nearest of i on the map but not in the data,

        T(k) = 1 - 2 / (N k (2N - 3k - 1)) sum_i sum_{j in U_k(i)} (r(i, j) - k).

    Low trustworthiness: samples that look close on the map are far apart
    in the data.
"""
    + _PROJECTION_DOC
)


def continuity(X, codebook, grid: Grid, n_neighbors: int = 5, *, metric: str = "euclidean") -> float:
    return _projection_measure(X, codebook, grid, n_neighbors, trust=False, metric=metric)


continuity.__doc__ = (
    """Continuity of the map projection (Venna & Kaski 2001).

    The counterpart of :func:`trustworthiness`: with r^(i, j) the rank of
    sample j among the neighbours of sample i on the map and V_k(i) the
    samples among the k nearest of i in the data but not on the map,

        C(k) = 1 - 2 / (N k (2N - 3k - 1)) sum_i sum_{j in V_k(i)} (r^(i, j) - k).

    Low continuity: samples close in the data are torn apart on the map.
"""
    + _PROJECTION_DOC
)


def som_distortion(
    X, codebook, grid: Grid, *, neighbourhood="gaussian", sigma=1.0, squared=True, labels=None, metric="euclidean"
) -> float:
    """The SOM distortion: the neighbourhood-weighted quantisation error.

        E = sum_i sum_k h(d(c_i, k); s) ||x_i - w_k||^2

    with c_i the nearest code of sample i, d the grid distance and h the
    neighbourhood kernel of width s (P(t) of the training, diagonal 1).
    For fixed assignments c, Kohonen's batch-SOM step (all codes with
    positive neighbourhood-weighted counts) minimises E over the codebook:
    each code becomes the h-weighted mean of the data.  With
    ``neighbourhood='none'`` it is the inertia, sum_i ||x_i - w_{c_i}||^2.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        The samples; any namespace, computed there.
    codebook : array of shape (K, n_features)
        The codes in the grid's order, in the namespace of ``X``.
    grid : Grid
        Where the codes sit.
    neighbourhood : str or callable, default='gaussian'
        A kernel name of :data:`sklearn_ksom.topology.KERNELS` ('gaussian',
        'mexican_hat', 'triangle', ...), 'none', or ``f(d, s)``.
    sigma : float, default=1.0
        The width s.
    squared : bool, default=True
        False weights ||x_i - w_k|| instead: MiniSom's
        ``distortion_measure``.
    metric : {'euclidean', 'cosine'}, default='euclidean'
        'cosine' weights the cosine distances 1 - cos(x_i, w_k) (pass
        ``squared=False``; docs/design.md section 13).
    labels : array of shape (n_samples,), optional
        The assignment c to use instead of the nearest codes.

    Returns
    -------
    float
        The sum over samples (not the mean).  It needs the dense K x K
        neighbourhood matrix: maps of up to 16 384 codes.

    References
    ----------
    T. Kohonen, "Essentials of the self-organizing map", Neural Networks
    37, 52-65, 2013 (the batch map); T. Heskes, "Energy functions for
    self-organizing maps", in Kohonen Maps, Elsevier 1999, 303-315.
    """
    xp = namespace(X, codebook)
    if codebook.shape[0] != grid.n_codes:
        raise ValueError(f"codebook has {codebook.shape[0]} codes but the grid {grid.shape} has {grid.n_codes}.")
    if not (isinstance(sigma, Real) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite width > 0, got {sigma!r}.")
    if not bool(xp.all(xp.isfinite(codebook))):
        raise ValueError("codebook contains NaN or infinity; measure a finite codebook.")
    _check_squared(squared, metric)
    if labels is None:
        labels = assign(X, codebook, metric=metric).first
    elif labels.shape != (X.shape[0],):
        raise ValueError(f"labels must give one code per sample of X, shape ({X.shape[0]},); got {tuple(labels.shape)}.")
    if grid.n_codes**2 > topology.MAX_DENSE_ENTRIES:
        raise ValueError(
            f"som_distortion weighs every code by a K x K neighbourhood matrix; {grid.n_codes} codes "
            f"are too many (at most {math.isqrt(topology.MAX_DENSE_ENTRIES)})."
        )
    device = device_of(X)
    P = _neighbourhood_matrix(grid, neighbourhood, float(sigma), xp, X.dtype, device)
    block = max(1, _ROW_BLOCK_ENTRIES // grid.n_codes)
    total = 0.0
    for start in range(0, X.shape[0], block):
        stop = min(start + block, X.shape[0])
        rows = X[start:stop, ...]
        costs = squared_distances(rows, codebook) if squared else distances(rows, codebook, metric=metric)
        weights = xp.take(P, labels[start:stop], axis=0)
        total += float(xp.sum(weights * costs))
    return total


def _neighbourhood_matrix(grid, kernel, width, xp, dtype, device):
    """P as a dense K x K array of ``xp`` (the identity for 'none')."""
    P = topology.neighbourhood_operator(grid, kernel, width, xp=xp, dtype=dtype, device=device, dense=True, signed=True)
    if P.dense is None:
        return xp.eye(grid.n_codes, dtype=dtype, device=device)
    return P.dense
