"""MiniSom codebooks in and out.

MiniSom keeps a map of x by y units as weights of shape (x, y, D), unit
(i, j) at index i * y + j of ``weights.reshape(-1, D)``.

- Rectangular: unit (i, j) sits at (i, j), exactly our ``Grid((x, y))``
  code i * y + j; the codebook is the weights reshaped.
- Hexagonal: MiniSom's rows of hexagons run along its *second* index j
  (positions ``(i - 0.5 [y - 1 - j even], j sqrt(3)/2)``, see its
  ``get_euclidean_coordinates``), ours along the first, with the odd rows
  shifted.  MiniSom's unit (i, j) is our code (y - 1 - j, i) of
  ``Grid((y, x), hexagonal=True)``: a transpose and a flip of the rows.
  The flip puts the shifted rows where ours are whatever the parity of y;
  every grid distance is then the same as in MiniSom.

MiniSom has no toroidal or 3-D maps, so those do not go out; a 1-D grid
goes out as an x by 1 map.  Only the codebook and the grid travel: MiniSom's
learning rate and its width schedule have no counterpart here, and its
'bubble' and 'triangle' kernels differ from ours (docs/toolkit.md).
"""

from __future__ import annotations

import numpy as np

from ._array_api import to_numpy
from .topology import Grid


def _minisom_units(grid: Grid) -> tuple[tuple[int, int], np.ndarray]:
    """MiniSom's (x, y) for ``grid``, and the MiniSom flat index of each of our codes."""
    if grid.toroidal:
        raise ValueError("MiniSom has no toroidal maps: a toroidal grid cannot go to MiniSom.")
    if grid.ndim == 1:
        return (grid.shape[0], 1), np.arange(grid.n_codes)
    if grid.ndim != 2:
        raise ValueError(f"MiniSom maps are 2-D; this grid has shape {grid.shape}.")
    if not grid.hexagonal:
        return grid.shape, np.arange(grid.n_codes)
    rows, columns = grid.shape
    row, column = grid.indices.T
    # Our code (r, c) is MiniSom's unit (i, j) = (c, rows - 1 - r) of a columns x rows map.
    return (columns, rows), column * rows + (rows - 1 - row)


def codebook_from_minisom(som) -> tuple[np.ndarray, Grid]:
    """The codebook of a MiniSom map in our code order, and its :class:`Grid`.

    Parameters
    ----------
    som : minisom.MiniSom
        A MiniSom map, trained or not.

    Returns
    -------
    codebook : ndarray of shape (x * y, D)
        Code k is MiniSom's unit at our grid index ``grid.indices[k]``
        (see the module notes for the hexagonal layout).
    grid : Grid
        ``Grid((x, y))`` or ``Grid((y, x), hexagonal=True)``.
    """
    weights = np.asarray(som.get_weights())
    x, y, n_features = weights.shape
    topology = getattr(som, "topology", "rectangular")
    if topology not in ("rectangular", "hexagonal"):
        raise ValueError(f"Unknown MiniSom topology {topology!r}; expected 'rectangular' or 'hexagonal'.")
    grid = Grid((y, x), hexagonal=True) if topology == "hexagonal" else Grid((x, y))
    _, units = _minisom_units(grid)
    return weights.reshape(-1, n_features)[units].copy(), grid


def codebook_to_minisom_weights(codebook, grid: Grid) -> tuple[np.ndarray, str]:
    """Our codebook as MiniSom weights: an (x, y, D) array and its topology name.

    The inverse of :func:`codebook_from_minisom`.
    """
    codebook = np.asarray(to_numpy(codebook))
    if codebook.ndim != 2 or codebook.shape[0] != grid.n_codes:
        raise ValueError(f"codebook has shape {codebook.shape}; expected ({grid.n_codes}, n_features) for this grid.")
    (x, y), units = _minisom_units(grid)
    weights = np.empty_like(codebook)
    weights[units] = codebook
    return weights.reshape(x, y, codebook.shape[1]), "hexagonal" if grid.hexagonal else "rectangular"


def to_minisom(codebook, grid: Grid, **minisom_parameters):
    """A MiniSom map holding ``codebook`` on ``grid``.

    Parameters
    ----------
    codebook : array of shape (K, D)
        The codes in the grid's order (e.g. ``som.cluster_centers_``).
    grid : Grid
        A rectangular or hexagonal 2-D grid, or a 1-D one, not toroidal.
    **minisom_parameters
        Passed to ``minisom.MiniSom`` (``sigma``, ``learning_rate``,
        ``neighborhood_function``, ...), for training it further there.

    Returns
    -------
    minisom.MiniSom
    """
    try:
        from minisom import MiniSom
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("to_minisom needs MiniSom: pip install minisom") from error
    if "topology" in minisom_parameters:
        raise ValueError("to_minisom takes the topology from the grid; leave the 'topology' parameter out.")
    weights, topology = codebook_to_minisom_weights(codebook, grid)
    x, y, n_features = weights.shape
    som = MiniSom(x, y, n_features, topology=topology, **minisom_parameters)
    # MiniSom has no setter for its weights; _weights is what all its methods read.
    som._weights = weights.astype(np.float64)
    return som


def from_minisom(som, X, **parameters):
    """A fitted :class:`~sklearn_ksom.KohonenQuantizer` holding a MiniSom map's codebook.

    The estimator is fitted with ``init=codebook, max_iter=0``: it takes the
    codebook as it is, with EMA statistics consistent with it, and
    ``labels_`` and ``inertia_`` from one assignment of ``X``.  Its
    ``partial_fit`` then goes on training from MiniSom's map.

    Parameters
    ----------
    som : minisom.MiniSom
        A trained MiniSom map.
    X : array of shape (n_samples, D)
        Data to fit on (the features' count and names, the statistics).
    **parameters
        Further ``KohonenQuantizer`` parameters (``neighbourhood``,
        ``sigma``, ``random_state``, ...); the grid and ``init`` come from
        ``som``.
    """
    from .estimators import KohonenQuantizer

    codebook, grid = codebook_from_minisom(som)
    for taken in ("grid_shape", "hexagonal", "toroidal", "init", "max_iter"):
        if taken in parameters:
            raise ValueError(f"from_minisom sets {taken!r} from the MiniSom map; leave it out.")
    estimator = KohonenQuantizer(grid.shape, hexagonal=grid.hexagonal, init=codebook, max_iter=0, **parameters)
    return estimator.fit(X)
