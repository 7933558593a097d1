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

The definitions are in docs/design.md section 8.
"""

from __future__ import annotations

import numpy as np

from ._array_api import count_labels, device_of, move_to, namespace, to_numpy
from .core import assign, squared_distances
from .topology import Grid


def quantization_error(X, codebook, *, squared: bool = False) -> float:
    """Mean distance from each row of ``X`` to its nearest code.

    ``squared=False`` gives the mean Euclidean distance (MiniSom's
    ``quantization_error``); ``squared=True`` the mean squared distance
    (the negative of the estimators' ``score``).
    """
    xp = namespace(X, codebook)
    squared_distance = assign(X, codebook).squared_distance
    values = squared_distance if squared else xp.sqrt(squared_distance)
    return float(xp.mean(values))


def topographic_error(X, codebook, grid: Grid) -> float:
    """Share of samples whose two nearest codes are not adjacent on ``grid``.

    Adjacent means within :attr:`Grid.neighbour_radius`: the 8-neighbourhood
    of a rectangular 2-D grid, the six neighbours of a hexagonal one, across
    the edges of a torus.  0 is a perfect map; a codebook with no topology
    (EMA-VQ, k-means) scores close to 1 - (neighbours per code) / K.
    """
    xp = namespace(X, codebook)
    if codebook.shape[0] < 2:
        return 0.0
    assignment = assign(X, codebook, second=True)
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


def distance_map(codebook, grid: Grid) -> np.ndarray:
    """Mean distance of each code to its adjacent codes (the U-matrix),
    shape ``grid.shape``, NumPy.

    Adjacent as in the topographic error (:attr:`Grid.neighbour_radius`).
    Light cells (small values) are a cluster's inside, dark ones a border.
    """
    differences, adjacent = _code_differences(codebook, grid)
    xp = namespace(differences)
    weights = xp.astype(adjacent, differences.dtype)
    n_neighbours = xp.clip(xp.sum(weights, axis=1), min=1)
    mean = xp.sum(xp.sqrt(differences) * weights, axis=1) / n_neighbours
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
