"""The SOM pictures are drawn from real fitted maps."""

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from sklearn.datasets import load_iris  # noqa: E402

from sklearn_ksom import KohonenQuantizer  # noqa: E402
from sklearn_ksom.plotting import (  # noqa: E402
    plot_component_planes,
    plot_distance_map,
    plot_hits,
)


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
