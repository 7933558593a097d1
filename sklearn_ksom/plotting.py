"""Pictures of a fitted map (matplotlib, an optional dependency).

- :func:`plot_distance_map`, :func:`plot_hits`, :func:`plot_component_planes`:
  the usual SOM views of a fitted :class:`~sklearn_ksom.KohonenQuantizer`
  with a 2-D grid (rectangular or hexagonal).  The U-matrix itself is
  :func:`sklearn_ksom.metrics.distance_map`.
- :func:`plot_label_map`: each code's majority class and its purity;
  :func:`plot_regions`: connected regions of the map over its U-matrix
  (2-D and 1-D grids).
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


def _fitted_2d_grid(som, *, lines: bool = False) -> Grid:
    """The grid of a fitted map, 2-D (or 1-D too, drawn as one row, if ``lines``)."""
    grid = getattr(som, "grid_", None)
    if grid is None:
        raise ValueError("Plot a fitted KohonenQuantizer (it has no grid_ yet: call fit first).")
    if grid.ndim != 2 and not (lines and grid.ndim == 1):
        raise ValueError(f"These plots need a {'1-D or ' if lines else ''}2-D grid, got grid_shape={grid.shape}.")
    return grid


def _draw_cells(ax, grid: Grid, values, cmap, label):
    """Colour each code's cell: squares on a rectangular grid, hexagons otherwise."""
    plt = _plt()
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if grid.hexagonal:
        mappable = _draw_polygons(ax, grid, values=values, cmap=cmap)
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
    _draw_cells(ax, grid, distance_map(som.cluster_centers_, grid, metric=som.metric), cmap, "mean distance to neighbours")
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


# ------------------------------------------------------ labels and regions
#
# Cells are polygons in data coordinates (x = column, y = row; a 1-D grid is
# one row): squares of side 1, or hexagons whose opposite sides are 1 apart,
# so that neighbouring cells touch at any figure size.


def _cell_centres(grid: Grid) -> np.ndarray:
    """Centre of each code's cell in the plot, (K, 2): x = column, y = row."""
    if grid.ndim == 1:
        return np.stack([np.arange(grid.n_codes, dtype=np.float64), np.zeros(grid.n_codes)], axis=1)
    return grid.coordinates[:, ::-1]


def _cell_polygons(grid: Grid) -> np.ndarray:
    """Corners of each code's cell, (K, n_corners, 2)."""
    if grid.hexagonal:
        # Pointy-top hexagons: the sides facing the row neighbours are 1 apart.
        angles = np.deg2rad(30 + 60 * np.arange(6))
        corners = np.stack([np.cos(angles), np.sin(angles)], axis=1) / np.sqrt(3)
    else:
        corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    return _cell_centres(grid)[:, None, :] + corners[None, :, :]


def _draw_polygons(ax, grid: Grid, *, values=None, facecolors=None, cmap=None):
    """Fill every code's cell, by ``values`` through ``cmap`` or by ``facecolors``."""
    from matplotlib.collections import PolyCollection

    cells = PolyCollection(_cell_polygons(grid), edgecolors="face", linewidths=0.3)
    if values is not None:
        cells.set_array(np.asarray(values, dtype=np.float64).reshape(-1))
        cells.set_cmap(cmap)
    else:
        cells.set_facecolor(facecolors)
    ax.add_collection(cells)
    ax.autoscale_view()
    ax.set_aspect("equal")
    return cells


def _class_colours(cmap, n_classes) -> np.ndarray:
    """One RGB colour per class from the colour map ``cmap``, (n_classes, 3)."""
    import matplotlib
    from matplotlib.colors import ListedColormap

    palette = matplotlib.colormaps[cmap]
    if isinstance(palette, ListedColormap) and palette.N >= n_classes:
        return np.asarray(palette(np.arange(n_classes)))[:, :3]
    return np.asarray(palette(np.linspace(0.0, 1.0, n_classes)))[:, :3]


def _majority(counts: np.ndarray):
    """Each code's majority class index and its share of the code's samples (NaN if none)."""
    total = counts.sum(axis=1)
    majority = counts.argmax(axis=1)
    purity = np.where(total > 0, counts.max(axis=1) / np.maximum(total, 1), np.nan)
    return majority, purity


def plot_label_map(som, X, y, ax=None, cmap="tab10", annotate=None):
    """Draw each code's majority class (colour) and purity (strength); returns the axes.

    A code's colour is the colour of the class most of its samples have,
    mixed with white in proportion to the other classes' share: full
    colour where all its samples agree, pale where they are mixed.  Codes
    that no sample reaches stay grey.

    Parameters
    ----------
    som : fitted KohonenQuantizer
        With a 1-D or 2-D grid, rectangular or hexagonal.
    X : array of shape (n_samples, n_features)
        The samples.
    y : array-like of shape (n_samples,)
        Their classes.
    ax : matplotlib Axes, optional
    cmap : str, default='tab10'
        A qualitative colour map; with more classes than it has colours,
        its colours are spread over them.
    annotate : bool, optional
        Write each code's majority class and purity in its cell; by default
        on maps of at most 144 codes.
    """
    plt = _plt()
    grid = _fitted_2d_grid(som, lines=True)
    counts = np.asarray(to_numpy(som.label_counts(X, y)))
    classes = np.unique(np.asarray(to_numpy(y)))
    majority, purity = _majority(counts)
    base = _class_colours(cmap, len(classes))
    strength = np.nan_to_num(purity)[:, None]
    colours = strength * base[majority] + (1 - strength) * 1.0
    colours[np.isnan(purity)] = 0.85
    ax = ax or plt.subplots(figsize=(6, 5))[1]
    _draw_polygons(ax, grid, facecolors=colours)
    if annotate is None:
        annotate = grid.n_codes <= 144
    if annotate:
        for (x, y_), k, p in zip(_cell_centres(grid), majority, purity):
            if not np.isnan(p):
                ax.text(x, y_, f"{classes[k]}\n{p:.0%}", ha="center", va="center", fontsize=6)
    from matplotlib.patches import Patch

    ax.legend(
        handles=[Patch(color=base[c], label=str(label)) for c, label in enumerate(classes)],
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize=8,
        title="majority class",
        title_fontsize=8,
        frameon=False,
    )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("majority class per code (paler = more mixed)")
    return ax


def _region_borders(grid: Grid, regions: np.ndarray) -> np.ndarray:
    """Segments between touching cells of different regions, (n, 2, 2)."""
    from .analysis import grid_adjacency

    adjacency = grid_adjacency(grid).tocoo()
    first, second = adjacency.row, adjacency.col
    centres = _cell_centres(grid)
    delta = centres[second] - centres[first]
    length = np.linalg.norm(delta, axis=1)
    # Cells that share a side: centres 1 apart in the plot (not diagonals,
    # not neighbours across the edge of a torus, drawn apart).
    keep = (first < second) & np.isclose(length, 1.0) & (regions[first] != regions[second])
    first, second, delta = first[keep], second[keep], delta[keep]
    middle = (centres[first] + centres[second]) / 2
    across = np.stack([-delta[:, 1], delta[:, 0]], axis=1)
    half_side = 0.5 / np.sqrt(3) if grid.hexagonal else 0.5
    return np.stack([middle - half_side * across, middle + half_side * across], axis=1)


def plot_regions(som, n_clusters=None, *, regions=None, linkage="ward", ax=None, cmap="bone_r"):
    """Draw connected regions of the map over its U-matrix; returns the axes.

    The cells show the U-matrix (:func:`distance_map`: dark = far from the
    neighbours, a border between clusters); thick lines separate the
    regions and each region's number sits in its middle.

    Parameters
    ----------
    som : fitted KohonenQuantizer
        With a 1-D or 2-D grid, rectangular or hexagonal (on a torus, the
        borders across the map's edges are not drawn).
    n_clusters : int, optional
        Number of regions, computed by ``som.cluster_codes(n_clusters, linkage)``.
    regions : array of shape (n_codes,), optional
        Region of each code, instead of ``n_clusters``.
    linkage : str, default='ward'
    ax : matplotlib Axes, optional
    cmap : str, default='bone_r'
        Colour map of the U-matrix.
    """
    plt = _plt()
    grid = _fitted_2d_grid(som, lines=True)
    if (regions is None) == (n_clusters is None):
        raise ValueError("Give either n_clusters (regions computed by som.cluster_codes) or regions, not both.")
    if regions is None:
        regions = som.cluster_codes(n_clusters, linkage=linkage)
    regions = np.asarray(to_numpy(regions)).reshape(-1)
    if regions.shape[0] != grid.n_codes:
        raise ValueError(f"regions has {regions.shape[0]} entries; the map has {grid.n_codes} codes.")
    from matplotlib.collections import LineCollection

    ax = ax or plt.subplots(figsize=(6, 5))[1]
    cells = _draw_polygons(ax, grid, values=distance_map(som.cluster_centers_, grid, metric=som.metric).reshape(-1), cmap=cmap)
    plt.colorbar(cells, ax=ax, label="mean distance to neighbours", shrink=0.8)
    ax.add_collection(LineCollection(_region_borders(grid, regions), colors="crimson", linewidths=2.5))
    centres = _cell_centres(grid)
    for region in np.unique(regions):
        members = centres[regions == region]
        # The member cell nearest the region's centroid: always inside it.
        spot = members[np.argmin(np.linalg.norm(members - members.mean(axis=0), axis=1))]
        ax.text(*spot, str(region), ha="center", va="center", fontsize=9, color="crimson", fontweight="bold")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{len(np.unique(regions))} regions over the U-matrix")
    return ax
