"""Labels, members and regions of a fitted map, on every grid and namespace."""

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components
from sklearn import config_context
from sklearn.cluster import AgglomerativeClustering
from sklearn.datasets import load_iris

from sklearn_ksom import EMAQuantizer, KohonenQuantizer
from sklearn_ksom._array_api import namespace, to_numpy
from sklearn_ksom.analysis import CodeMembers, cluster_codes, code_members, grid_adjacency, label_counts
from sklearn_ksom.topology import Grid

from .conftest import to_xp

# Every kind of grid the estimators take.
GRIDS = [
    dict(grid_shape=(7,)),
    dict(grid_shape=(1, 6)),
    dict(grid_shape=(4, 5)),
    dict(grid_shape=(4, 5), toroidal=True),
    dict(grid_shape=(4, 6), hexagonal=True),
    dict(grid_shape=(5, 4), hexagonal=True),
    dict(grid_shape=(4, 6), hexagonal=True, toroidal=True),
    dict(grid_shape=(2, 3, 4)),
    dict(grid_shape=(3, 3, 2), toroidal=True),
]
GRID_IDS = ["line", "1x6", "rect", "torus", "hex", "hex-odd-rows", "hex-torus", "3d", "3d-torus"]


@pytest.fixture(scope="module")
def iris():
    data = load_iris()
    return data.data, data.target


@pytest.fixture(scope="module", params=GRIDS, ids=GRID_IDS)
def fitted(request, iris):
    X, _ = iris
    return KohonenQuantizer(**request.param, max_iter=5, random_state=0).fit(X)


def brute_force_counts(codes, y, n_codes):
    classes = np.unique(y)
    return np.array([[np.sum((codes == k) & (y == c)) for c in classes] for k in range(n_codes)])


# ------------------------------------------------------------- label counts


def test_label_counts_count_each_class_on_each_code(fitted, iris):
    X, y = iris
    counts = fitted.label_counts(X, y)
    codes = fitted.predict(X)
    np.testing.assert_array_equal(counts, brute_force_counts(codes, y, fitted.grid_.n_codes))
    np.testing.assert_array_equal(counts.sum(axis=1), np.bincount(codes, minlength=fitted.grid_.n_codes))
    assert counts.dtype == np.int64


def test_label_counts_classes_come_in_np_unique_order():
    codes = np.array([0, 0, 1, 2, 2, 2])
    y = np.array(["zebra", "ant", "ant", "zebra", "moth", "zebra"])  # unique: ant, moth, zebra
    expected = [[1, 0, 1], [1, 0, 0], [0, 1, 2]]
    np.testing.assert_array_equal(label_counts(codes, y, 3), expected)
    np.testing.assert_array_equal(label_counts(codes, list(y), 4), expected + [[0, 0, 0]])


def test_ema_quantizer_has_label_counts_and_win_map(iris):
    X, y = iris
    vq = EMAQuantizer(n_clusters=6, random_state=0).fit(X)
    codes = vq.predict(X)
    np.testing.assert_array_equal(vq.label_counts(X, y), brute_force_counts(codes, y, 6))
    members = vq.win_map(X)
    for k in range(6):
        np.testing.assert_array_equal(members[k], np.flatnonzero(codes == k))


def test_label_counts_on_any_namespace(xp, iris):
    X, y = iris
    reference = KohonenQuantizer((3, 4), hexagonal=True, max_iter=3, random_state=0).fit(X)
    with config_context(array_api_dispatch=True):
        som = KohonenQuantizer((3, 4), hexagonal=True, max_iter=3, random_state=0).fit(to_xp(xp, X))
        numeric = som.label_counts(to_xp(xp, X), to_xp(xp, y))  # y an array of the same namespace
        named = som.label_counts(to_xp(xp, X), np.array(["setosa", "versicolor", "virginica"])[y])
    expected = reference.label_counts(X, y)
    for counts in (numeric, named):
        assert namespace(counts) is namespace(to_xp(xp, X))
        np.testing.assert_array_equal(to_numpy(counts), expected)


def test_label_counts_refuse_labels_that_do_not_match_the_samples(iris):
    X, y = iris
    som = KohonenQuantizer((3, 3), max_iter=2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="y has 149 labels for 150 samples"):
        som.label_counts(X, y[:-1])
    with pytest.raises(ValueError, match="1-D"):
        som.label_counts(X, y[:, None])
    with pytest.raises(ValueError, match="y is required"):
        som.label_counts(X, None)


# ------------------------------------------------------------------ win map


def test_win_map_gives_every_code_its_rows_in_order(fitted, iris):
    X, _ = iris
    members = fitted.win_map(X)
    codes = fitted.predict(X)
    assert isinstance(members, CodeMembers) and len(members) == fitted.grid_.n_codes
    for k in range(fitted.grid_.n_codes):
        np.testing.assert_array_equal(members[k], np.flatnonzero(codes == k))
        np.testing.assert_array_equal(members[tuple(fitted.grid_.indices[k])], members[k])
    np.testing.assert_array_equal(np.sort(members.order), np.arange(X.shape[0]))
    np.testing.assert_array_equal(members.counts, np.bincount(codes, minlength=fitted.grid_.n_codes))


def test_win_map_holds_indices_not_data(iris):
    X, _ = iris
    som = KohonenQuantizer((3, 3), max_iter=2, random_state=0).fit(X)
    members = som.win_map(X)
    assert members.order.shape == (X.shape[0],) and members.order.dtype.kind == "i"
    assert members.offsets.shape == (10,)
    rows = X[members[(1, 1)]]  # the samples on unit (1, 1), as MiniSom's win_map[(1, 1)]
    np.testing.assert_array_equal(som.predict(rows), np.full(rows.shape[0], 4))


def test_win_map_refuses_what_is_no_code():
    members = code_members(np.array([0, 2, 2]), 4, grid_shape=(2, 2))
    np.testing.assert_array_equal(members[-1], [])  # code 3, Python-style
    for key in (4, -5, (2, 0), (0,), 1.5):
        with pytest.raises((KeyError, ValueError)):
            members[key]


def test_win_map_on_any_namespace(xp):
    codes = to_xp(xp, np.array([3, 0, 3, 1, 0]))
    members = code_members(codes, 4)
    assert namespace(members.order) is namespace(codes)
    np.testing.assert_array_equal(to_numpy(members.order), [1, 4, 3, 0, 2])
    np.testing.assert_array_equal(to_numpy(members.offsets), [0, 2, 3, 3, 5])
    np.testing.assert_array_equal(to_numpy(members[3]), [0, 2])


# ---------------------------------------------------------------- adjacency


@pytest.mark.parametrize("kwargs", GRIDS + [dict(grid_shape=(2, 5), toroidal=True)], ids=GRID_IDS + ["torus-side-2"])
def test_grid_adjacency_is_the_topographic_error_neighbourhood(kwargs):
    grid = Grid(kwargs["grid_shape"], kwargs.get("hexagonal", False), kwargs.get("toroidal", False))
    adjacency = grid_adjacency(grid).toarray()
    expected = (grid.distances() <= grid.neighbour_radius) & ~np.eye(grid.n_codes, dtype=bool)
    np.testing.assert_array_equal(adjacency, expected.astype(float))


def test_inner_codes_have_8_6_and_26_neighbours():
    assert grid_adjacency(Grid((5, 5)))[12].nnz == 8
    assert grid_adjacency(Grid((5, 5), hexagonal=True))[12].nnz == 6
    assert grid_adjacency(Grid((3, 3, 3)))[13].nnz == 26
    assert grid_adjacency(Grid((4, 4), toroidal=True))[0].nnz == 8  # corners too, on a torus


# ------------------------------------------------------------------ regions


def each_region_is_connected(regions, grid):
    adjacency = grid_adjacency(grid)
    for region in np.unique(regions):
        inside = np.flatnonzero(regions == region)
        n_parts, _ = connected_components(adjacency[inside][:, inside], directed=False)
        if n_parts != 1:
            return False
    return True


@pytest.mark.parametrize("linkage", ["ward", "complete", "average", "single"])
def test_every_region_is_a_connected_patch_of_the_map(fitted, linkage):
    n_regions = min(4, fitted.grid_.n_codes)
    regions = fitted.cluster_codes(n_regions, linkage=linkage)
    assert sorted(np.unique(regions)) == list(range(n_regions))
    assert each_region_is_connected(regions, fitted.grid_)
    # Numbered in the order of their first code.
    _, first = np.unique(regions, return_index=True)
    assert np.all(np.diff(first) > 0)


def test_regions_follow_the_grid_where_unconstrained_clustering_would_not():
    # Both ends of a line hold the same codes: unconstrained Ward joins them.
    codebook = np.array([[0.0], [0.1], [5.0], [5.1], [0.2], [0.3]])
    grid = Grid((6,))
    free = AgglomerativeClustering(n_clusters=2).fit_predict(codebook)
    assert not each_region_is_connected(free, grid)
    regions = cluster_codes(codebook, grid, 3)
    np.testing.assert_array_equal(regions, [0, 0, 1, 1, 2, 2])
    assert each_region_is_connected(regions, grid)


def test_regions_are_the_map_clusters_of_well_separated_data():
    # Three blobs on a line map: three regions, each a run of the line.
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(centre, 0.1, size=(100, 2)) for centre in (0.0, 5.0, 10.0)])
    som = KohonenQuantizer((12,), random_state=0).fit(X)
    regions = som.cluster_codes(3)
    sample_regions = regions[som.predict(X)]
    for blob in range(3):
        assert len(np.unique(sample_regions[blob * 100 : (blob + 1) * 100])) == 1
    assert len(np.unique(sample_regions)) == 3


def test_one_region_per_code_and_one_for_all():
    codebook = np.random.default_rng(0).normal(size=(6, 2))
    np.testing.assert_array_equal(cluster_codes(codebook, Grid((2, 3)), 6), np.arange(6))
    np.testing.assert_array_equal(cluster_codes(codebook, Grid((2, 3)), 1), np.zeros(6))


def test_cluster_codes_on_any_namespace(xp):
    codebook = np.random.default_rng(1).normal(size=(12, 3))
    grid = Grid((3, 4), hexagonal=True)
    regions = cluster_codes(to_xp(xp, codebook), grid, 4)
    assert namespace(regions) is namespace(to_xp(xp, codebook))
    np.testing.assert_array_equal(to_numpy(regions), cluster_codes(codebook, grid, 4))


def test_cluster_codes_refuses_bad_arguments():
    codebook = np.zeros((6, 2))
    with pytest.raises(ValueError, match="n_clusters must be an int from 1 to the number of codes"):
        cluster_codes(codebook, Grid((2, 3)), 7)
    with pytest.raises(ValueError, match="n_clusters"):
        cluster_codes(codebook, Grid((2, 3)), 0)
    with pytest.raises(ValueError, match="linkage must be one of"):
        cluster_codes(codebook, Grid((2, 3)), 2, linkage="centroid")
    with pytest.raises(ValueError, match="codebook has shape"):
        cluster_codes(codebook, Grid((7,)), 2)
    with pytest.raises(Exception, match="fit"):
        KohonenQuantizer().cluster_codes(3)
