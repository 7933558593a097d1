"""Pictures of a fitted map (matplotlib, an optional dependency).

- :func:`plot_distance_map`, :func:`plot_hits`, :func:`plot_component_planes`:
  the usual SOM views of a fitted :class:`~sklearn_ksom.KohonenQuantizer`
  with a 2-D grid (rectangular or hexagonal).  The U-matrix itself is
  :func:`sklearn_ksom.metrics.distance_map`.
"""

from __future__ import annotations

import numpy as np

from ._array_api import to_numpy
from .metrics import distance_map
from .topology import Grid


def _plt():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "sklearn_ksom.plotting needs matplotlib: pip install 'sklearn-ksom[plot]'"
        ) from error
    return plt


def _fitted_2d_grid(som) -> Grid:
    grid = getattr(som, "grid_", None)
    if grid is None:
        raise ValueError("Plot a fitted KohonenQuantizer (it has no grid_ yet: call fit first).")
    if grid.ndim != 2:
        raise ValueError(f"These plots need a 2-D grid, got grid_shape={grid.shape}.")
    return grid


def _draw_cells(ax, grid: Grid, values, cmap, label):
    """Colour each code's cell: squares on a rectangular grid, hexagons otherwise."""
    plt = _plt()
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if grid.hexagonal:
        from matplotlib.collections import RegularPolyCollection

        xy = grid.coordinates[:, ::-1]  # x = column, y = row
        cells = RegularPolyCollection(
            6, sizes=(1,), offsets=xy, offset_transform=ax.transData, array=values, cmap=cmap
        )
        # Size in points^2 so neighbouring hexagons touch at any figure size.
        ax.add_collection(cells)
        ax.set_xlim(-1, grid.shape[1] + 0.5)
        ax.set_ylim(-1, grid.shape[0] * np.sqrt(3) / 2 + 0.5)
        ax.set_aspect("equal")
        ax.figure.canvas.draw()
        scale = ax.transData.transform([(0, 0), (1, 1)])
        side = abs(scale[1, 0] - scale[0, 0]) / np.sqrt(3)
        cells.set_sizes([(side * 72 / ax.figure.dpi) ** 2 * 3 * np.sqrt(3) / 2 * 1.15])
        mappable = cells
    else:
        mappable = ax.imshow(values.reshape(grid.shape), cmap=cmap, origin="lower")
    ax.set_xticks([])
    ax.set_yticks([])
    plt.colorbar(mappable, ax=ax, label=label, shrink=0.8)
    return mappable


def plot_distance_map(som, ax=None, cmap="bone_r"):
    """Draw the U-matrix of a fitted 2-D map; returns the axes."""
    plt = _plt()
    grid = _fitted_2d_grid(som)
    ax = ax or plt.subplots(figsize=(5, 5))[1]
    _draw_cells(ax, grid, distance_map(som.cluster_centers_, grid), cmap, "mean distance to neighbours")
    ax.set_title("distance map (U-matrix)")
    return ax


def plot_hits(som, X, ax=None, cmap="viridis"):
    """Draw how many samples of ``X`` land on each code; returns the axes."""
    plt = _plt()
    grid = _fitted_2d_grid(som)
    labels = np.asarray(to_numpy(som.predict(X)))
    hits = np.bincount(labels, minlength=grid.n_codes)
    ax = ax or plt.subplots(figsize=(5, 5))[1]
    _draw_cells(ax, grid, hits, cmap, "samples")
    ax.set_title("hits")
    return ax


def plot_component_planes(som, feature_names=None, max_features=16, cmap="coolwarm"):
    """One small map per feature: the codes' value of that feature; returns the figure."""
    plt = _plt()
    grid = _fitted_2d_grid(som)
    codebook = np.asarray(to_numpy(som.cluster_centers_))
    n = min(codebook.shape[1], max_features)
    if feature_names is None:
        feature_names = getattr(som, "feature_names_in_", None)
    if feature_names is None:
        feature_names = [f"feature {i}" for i in range(codebook.shape[1])]
    columns = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.axis("off")
            continue
        _draw_cells(ax, grid, codebook[:, i], cmap, "")
        ax.set_title(str(feature_names[i]), fontsize=9)
    figure.tight_layout()
    return figure
