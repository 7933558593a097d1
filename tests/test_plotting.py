"""The SOM pictures are drawn from real fitted maps."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from sklearn.datasets import load_iris  # noqa: E402

from sklearn_ksom import KohonenQuantizer  # noqa: E402
from sklearn_ksom.plotting import (  # noqa: E402
    _region_borders,
    plot_component_planes,
    plot_distance_map,
    plot_hits,
    plot_label_map,
    plot_regions,
)
from sklearn_ksom.topology import Grid  # noqa: E402


@pytest.mark.parametrize("hexagonal", [False, True])
def test_plots_of_a_fitted_map(tmp_path, hexagonal):
    import matplotlib.pyplot as plt

    iris = load_iris()
    som = KohonenQuantizer((6, 8), hexagonal=hexagonal, random_state=0).fit(iris.data)
    plot_distance_map(som).figure.savefig(tmp_path / "umatrix.png")
    plot_hits(som, iris.data).figure.savefig(tmp_path / "hits.png")
    plot_component_planes(som, iris.feature_names).savefig(tmp_path / "planes.png")
    for name in ("umatrix", "hits", "planes"):
        assert (tmp_path / f"{name}.png").stat().st_size > 5000
    plt.close("all")


def test_plots_need_a_fitted_two_dimensional_map():
    with pytest.raises(ValueError, match="call fit first"):
        plot_distance_map(KohonenQuantizer())
    som = KohonenQuantizer((3,), random_state=0).fit(load_iris().data)
    with pytest.raises(ValueError, match="2-D grid"):
        plot_hits(som, load_iris().data)


@pytest.mark.parametrize(
    "kwargs",
    [dict(grid_shape=(6, 8)), dict(grid_shape=(6, 8), hexagonal=True), dict(grid_shape=(12,)), dict(grid_shape=(4, 6), toroidal=True)],
    ids=["rect", "hex", "line", "torus"],
)
def test_label_and_region_maps_of_a_fitted_map(tmp_path, kwargs):
    import matplotlib.pyplot as plt

    iris = load_iris()
    som = KohonenQuantizer(**kwargs, random_state=0).fit(iris.data)
    ax = plot_label_map(som, iris.data, np.array(iris.target_names)[iris.target])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(iris.target_names)
    ax.figure.savefig(tmp_path / "labels.png")
    plot_regions(som, 3).figure.savefig(tmp_path / "regions.png")
    for name in ("labels", "regions"):
        assert (tmp_path / f"{name}.png").stat().st_size > 5000
    plt.close("all")


def test_label_map_colours_say_majority_and_purity():
    import matplotlib.pyplot as plt

    X = np.array([[0.0], [0.0], [1.0], [1.0], [1.0], [1.0]])
    y = np.array([0, 0, 0, 1, 1, 1])
    som = KohonenQuantizer((3,), init=np.array([[0.0], [1.0], [9.0]]), max_iter=1, neighbourhood="bubble", sigma=0.1).fit(X)
    ax = plot_label_map(som, X, y, cmap="tab10")
    colours = ax.collections[0].get_facecolors()[:, :3]
    blue, orange = np.array(plt.get_cmap("tab10")(0)[:3]), np.array(plt.get_cmap("tab10")(1)[:3])
    np.testing.assert_allclose(colours[0], blue)  # code 0: all class 0
    np.testing.assert_allclose(colours[1], 0.75 * orange + 0.25)  # code 1: 3 of 4 are class 1
    np.testing.assert_allclose(colours[2], 0.85)  # code 2: no sample, grey
    plt.close("all")


def test_region_borders_run_between_cells_of_different_regions():
    # A line of 4 codes, regions 0 0 1 1: one border, upright at x = 1.5.
    segments = _region_borders(Grid((4,)), np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(segments, [[[1.5, -0.5], [1.5, 0.5]]])
    # A hexagonal 2 x 2 map split by rows: the shared sides of the three
    # touching pairs, each 1/sqrt(3) long.
    segments = _region_borders(Grid((2, 2), hexagonal=True), np.array([0, 0, 1, 1]))
    assert segments.shape == (3, 2, 2)
    np.testing.assert_allclose(np.linalg.norm(segments[:, 1] - segments[:, 0], axis=1), 1 / np.sqrt(3))
    # Across the edge of a torus nothing is drawn.
    assert _region_borders(Grid((4,), toroidal=True), np.array([0, 1, 1, 0])).shape == (2, 2, 2)


def test_label_and_region_maps_refuse_what_they_cannot_draw():
    iris = load_iris()
    som = KohonenQuantizer((2, 2, 2), max_iter=2, random_state=0).fit(iris.data)
    with pytest.raises(ValueError, match="1-D or 2-D grid"):
        plot_label_map(som, iris.data, iris.target)
    flat = KohonenQuantizer((3, 3), max_iter=2, random_state=0).fit(iris.data)
    with pytest.raises(ValueError, match="either n_clusters .* or regions"):
        plot_regions(flat)
    with pytest.raises(ValueError, match="regions has 4 entries"):
        plot_regions(flat, regions=np.zeros(4, dtype=int))


def test_label_and_region_maps_of_a_map_fitted_on_any_namespace(xp):
    import matplotlib.pyplot as plt
    from sklearn import config_context

    iris = load_iris()
    with config_context(array_api_dispatch=True):
        X = xp.asarray(iris.data)
        som = KohonenQuantizer((4, 5), hexagonal=True, max_iter=3, random_state=0).fit(X)
        plot_label_map(som, X, xp.asarray(iris.target))
        plot_regions(som, 3)
    plt.close("all")
