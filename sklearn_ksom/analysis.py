"""What a fitted map says about the data: labels, members and regions of its codes.

- :func:`label_counts`: how many samples of each class land on each code
  (R kohonen's class maps, MiniSom's ``labels_map``), an array.
- :func:`code_members` and :class:`CodeMembers`: the rows of the data that
  land on each code (MiniSom's ``win_map``), as one ordering of the row
  indices and offsets into it, so the data are never copied.
- :func:`grid_adjacency`: which codes are grid neighbours, a sparse matrix.
- :func:`cluster_codes`: regions of the map, by agglomerative clustering of
  the codebook constrained to the grid's adjacency, so that every region is
  a connected patch of the map.

The estimators' ``label_counts``, ``win_map`` and ``cluster_codes`` methods
call these functions; they take the codes of the samples (``predict``'s
output) or the codebook and its :class:`~sklearn_ksom.topology.Grid`, so
they serve any codebook, MiniSom's too (see :mod:`sklearn_ksom.interop`).
"""

from __future__ import annotations

import itertools
from numbers import Integral
from typing import NamedTuple

import numpy as np
from scipy import sparse

from ._array_api import count_labels, device_of, move_to, namespace, to_numpy
from .topology import Grid


def _class_indices(y, n_samples: int, xp, device):
    """Classes of ``y`` in ``np.unique`` order and each sample's class index in ``xp``."""
    if y is None:
        raise ValueError("y is required: one class label per sample of X.")
    if not isinstance(y, (list, tuple, np.ndarray)) and hasattr(y, "__array_namespace__"):
        y_xp = namespace(y)
        classes, inverse = y_xp.unique_inverse(y)
        classes, inverse = to_numpy(classes), move_to(xp, to_numpy(inverse), device=device)
    else:
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be one label per sample, a 1-D array; got shape {y.shape}.")
        classes, inverse = np.unique(y, return_inverse=True)
        inverse = move_to(xp, inverse.reshape(-1), device=device)
    if inverse.shape[0] != n_samples:
        raise ValueError(f"y has {inverse.shape[0]} labels for {n_samples} samples of X; give one label per sample.")
    return classes, inverse


def label_counts(codes, y, n_codes: int):
    """How many samples of each class land on each code, shape (n_codes, n_classes).

    Parameters
    ----------
    codes : array of shape (n_samples,)
        Each sample's code, e.g. ``som.predict(X)``; any array-API namespace.
    y : array-like of shape (n_samples,)
        Class label of each sample, of any type ``np.unique`` sorts.
    n_codes : int
        Number of codes K.

    Returns
    -------
    counts : array of shape (n_codes, n_classes), int64
        ``counts[k, c]`` samples of class ``np.unique(y)[c]`` on code ``k``,
        in the namespace and on the device of ``codes``.

    Examples
    --------
    >>> import numpy as np
    >>> label_counts(np.array([0, 0, 2]), np.array(["b", "a", "b"]), 3)
    array([[1, 1],
           [0, 0],
           [0, 1]])
    """
    xp = namespace(codes)
    device = device_of(codes)
    classes, inverse = _class_indices(y, codes.shape[0], xp, device)
    n_classes = classes.shape[0]
    flat = xp.astype(codes, xp.int64) * n_classes + xp.astype(inverse, xp.int64)
    counts = count_labels(flat, n_codes * n_classes, dtype=xp.int64, xp=xp)
    return xp.reshape(counts, (n_codes, n_classes))


class CodeMembers(NamedTuple):
    """The rows that land on each code, without copying the data.

    ``order`` holds the row indices grouped by code (code 0's rows first,
    each group in increasing row order) and ``offsets`` (K + 1,) where each
    group starts: the rows of code ``k`` are
    ``order[offsets[k]:offsets[k + 1]]``, the layout of a CSR matrix.
    ``members[k]`` gives them, ``members[i, j]`` for the code at grid index
    (i, j) when built with a grid (``win_map(X)[(i, j)]`` as in MiniSom).
    """

    order: object
    offsets: object
    grid_shape: tuple | None = None

    @property
    def counts(self):
        """Number of rows on each code, shape (K,)."""
        return self.offsets[1:] - self.offsets[:-1]

    def __getitem__(self, code):
        if isinstance(code, tuple):
            if self.grid_shape is None or len(code) != len(self.grid_shape):
                raise KeyError(f"{code!r} is no grid index of this map (grid shape {self.grid_shape}).")
            code = int(np.ravel_multi_index(code, self.grid_shape))
        n_codes = self.offsets.shape[0] - 1
        if not isinstance(code, Integral) or not -n_codes <= code < n_codes:
            raise KeyError(f"{code!r} is no code of this map: give an int in [0, {n_codes}) or a grid index tuple.")
        code = int(code) % n_codes
        return self.order[int(self.offsets[code]) : int(self.offsets[code + 1])]

    def __len__(self):
        return self.offsets.shape[0] - 1


def code_members(codes, n_codes: int, grid_shape=None) -> CodeMembers:
    """Group the rows by their code: a :class:`CodeMembers`, O(n_samples) memory.

    Parameters
    ----------
    codes : array of shape (n_samples,)
        Each sample's code, e.g. ``som.predict(X)``; any array-API namespace
        (the result is in it).
    n_codes : int
        Number of codes K.
    grid_shape : tuple of int, optional
        The map's grid shape, so that grid index tuples can look up codes.

    Examples
    --------
    >>> import numpy as np
    >>> members = code_members(np.array([2, 0, 2, 1]), 3)
    >>> members[2], members.counts
    (array([0, 2]), array([1, 1, 2]))
    """
    xp = namespace(codes)
    order = xp.argsort(codes, stable=True)
    counts = count_labels(codes, n_codes, dtype=xp.int64, xp=xp)
    zero = xp.zeros((1,), dtype=xp.int64, device=device_of(codes))
    offsets = xp.concat([zero, xp.cumulative_sum(counts)])
    return CodeMembers(order, offsets, None if grid_shape is None else tuple(grid_shape))


def grid_adjacency(grid: Grid) -> sparse.csr_matrix:
    """Which codes are grid neighbours: a symmetric (K, K) sparse 0/1 matrix.

    Neighbours as in the topographic error (:meth:`Grid.adjacent`): the
    8 surrounding cells of a rectangular 2-D grid (3^n - 1 in n-D), the six
    of a hexagonal one, across the edges of a torus.  Built from each code's
    index offsets in {-1, 0, 1}^n, so it costs O(K 3^n), never K x K.
    """
    indices = grid.indices
    shape = np.asarray(grid.shape)
    rows, columns = [], []
    for offset in itertools.product((-1, 0, 1), repeat=grid.ndim):
        if not any(offset):
            continue
        target = indices + np.asarray(offset)
        if grid.toroidal:
            target %= shape
        inside = np.all((target >= 0) & (target < shape), axis=1)
        first = np.flatnonzero(inside)
        second = np.ravel_multi_index(tuple(target[inside].T), grid.shape)
        keep = (first != second) & grid.adjacent(first, second)
        rows.append(first[keep])
        columns.append(second[keep])
    rows, columns = np.concatenate(rows), np.concatenate(columns)
    adjacency = sparse.csr_matrix((np.ones(rows.shape[0]), (rows, columns)), shape=(grid.n_codes, grid.n_codes))
    adjacency.data[:] = 1.0  # a wrapped axis of length 2 reaches one cell twice
    return adjacency


LINKAGES = ("ward", "complete", "average", "single")


def cluster_codes(codebook, grid: Grid, n_clusters: int, *, linkage: str = "ward"):
    """Regions of the map: a connected region label for each code, shape (K,).

    Agglomerative clustering of the codes (scikit-learn's
    :class:`~sklearn.cluster.AgglomerativeClustering`) allowed to merge
    only clusters that touch on the grid (:func:`grid_adjacency` as its
    connectivity), so every region is a connected patch of the map.

    Parameters
    ----------
    codebook : array of shape (K, n_features)
        The codes, in the grid's order; any array-API namespace (the labels
        come back in it).
    grid : Grid
        Where the codes sit.
    n_clusters : int
        Number of regions, from 1 to K.
    linkage : {'ward', 'complete', 'average', 'single'}, default='ward'
        How the distance between two clusters is measured ('ward': the rise
        in within-cluster squared error a merger causes).

    Returns
    -------
    regions : array of shape (K,), int64
        Region of each code, 0 to n_clusters - 1, numbered in the order of
        each region's first code.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ksom.topology import Grid
    >>> codebook = np.array([[0.0], [0.1], [5.0], [5.1], [0.2]])
    >>> cluster_codes(codebook, Grid((5,)), 3).tolist()  # the two ends stay apart
    [0, 0, 1, 1, 2]
    """
    from sklearn.cluster import AgglomerativeClustering

    if linkage not in LINKAGES:
        raise ValueError(f"linkage must be one of {LINKAGES}, got {linkage!r}.")
    n_codes = grid.n_codes
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, Integral) or not 1 <= n_clusters <= n_codes:
        raise ValueError(f"n_clusters must be an int from 1 to the number of codes ({n_codes}), got {n_clusters!r}.")
    host = np.asarray(to_numpy(codebook), dtype=np.float64)
    if host.ndim != 2 or host.shape[0] != n_codes:
        raise ValueError(f"codebook has shape {host.shape}; expected ({n_codes}, n_features) for this grid.")
    if n_clusters == n_codes or n_codes == 1:
        regions = np.arange(n_codes)
    else:
        model = AgglomerativeClustering(n_clusters=n_clusters, linkage=linkage, connectivity=grid_adjacency(grid))
        # Numbered in the order of their first code, so equal maps give equal labels.
        _, first_code, regions = np.unique(model.fit_predict(host), return_index=True, return_inverse=True)
        regions = np.argsort(np.argsort(first_code))[regions]
    xp = namespace(codebook)
    return move_to(xp, regions.astype(np.int64), device=device_of(codebook))
