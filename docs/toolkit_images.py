"""Draw the pictures of docs/toolkit.md into docs/images/ (about a minute on 2 cores).

    PYTHONPATH=. python docs/toolkit_images.py [--out docs/images]

- toolkit_labels_regions.png: scikit-learn's digits on a 12 x 16 hexagonal
  map: each code's majority digit and purity, and 10 connected regions
  over the U-matrix.
- toolkit_kernels.png: the neighbourhood kernels by grid distance, and
  which codes of a 9 x 9 grid a bubble of width 2 covers here (a disc) and
  in MiniSom (a square).
- toolkit_quality.png: the quality measures of maps trained for more and
  more iterations, against the same codes shuffled over the grid.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sklearn_ksom import Grid, KohonenQuantizer, metrics  # noqa: E402
from sklearn_ksom.plotting import plot_label_map, plot_regions  # noqa: E402
from sklearn_ksom.topology import KERNELS, dense_matrix  # noqa: E402


def digits():
    data = load_digits()
    return StandardScaler().fit_transform(data.data), data.target


def labels_and_regions(out: Path):
    X, y = digits()
    som = KohonenQuantizer((12, 16), hexagonal=True, random_state=0).fit(X)
    figure, axes = plt.subplots(1, 2, figsize=(14, 5.2))
    plot_label_map(som, X, y, ax=axes[0])
    plot_regions(som, 10, ax=axes[1])
    figure.suptitle("scikit-learn digits on a 12 x 16 hexagonal map")
    figure.tight_layout()
    figure.savefig(out / "toolkit_labels_regions.png", dpi=90)


def kernels(out: Path):
    figure, axes = plt.subplots(1, 3, figsize=(14, 4.2), gridspec_kw={"width_ratios": [1.6, 1, 1]})
    d = np.linspace(0.0, 10.0, 401)
    width = 3.0
    for name in ("gaussian", "exponential", "triangle", "bubble", "mexican_hat"):
        axes[0].plot(d, KERNELS[name].weights(d, width), label=name)
    axes[0].axhline(0, color="grey", lw=0.5)
    axes[0].set(xlabel="grid distance d", ylabel="weight", title=f"kernels at width s = {width:g}")
    axes[0].legend(fontsize=8)
    grid = Grid((9, 9))
    centre = 40
    ours = dense_matrix(grid, "bubble", 2.0)[centre]
    offset = np.abs(grid.indices - grid.indices[centre])
    minisoms = np.all(offset < 2, axis=1).astype(float)  # MiniSom: |di| < s and |dj| < s
    for ax, cover, title in ((axes[1], ours, "'bubble' here: d <= 2 (disc)"), (axes[2], minisoms, "MiniSom's 'bubble', sigma=2 (square)")):
        ax.imshow(cover.reshape(grid.shape), cmap="Blues", vmin=0, vmax=1.3, origin="lower")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{title}: {int(cover.sum())} codes", fontsize=10)
    figure.tight_layout()
    figure.savefig(out / "toolkit_kernels.png", dpi=90)


def quality(out: Path):
    X, _ = digits()
    rng = np.random.default_rng(0)
    sample = X[rng.choice(X.shape[0], 800, replace=False)]
    iterations = [1, 2, 4, 8, 16, 32]
    rows = {name: ([], []) for name in ("quantisation error", "topographic error", "topographic product", "trustworthiness (k=20)", "continuity (k=20)", "distortion at s=0.5 / N")}
    for n in iterations:
        som = KohonenQuantizer((10, 10), max_iter=n, random_state=0).fit(X)
        for fitted, codebook in ((0, som.cluster_centers_), (1, som.cluster_centers_[rng.permutation(100)])):
            figures = {
                "quantisation error": metrics.quantization_error(X, codebook),
                "topographic error": metrics.topographic_error(X, codebook, som.grid_),
                "topographic product": metrics.topographic_product(codebook, som.grid_),
                "trustworthiness (k=20)": metrics.trustworthiness(sample, codebook, som.grid_, 20),
                "continuity (k=20)": metrics.continuity(sample, codebook, som.grid_, 20),
                "distortion at s=0.5 / N": metrics.som_distortion(X, codebook, som.grid_, sigma=0.5) / X.shape[0],
            }
            for name, value in figures.items():
                rows[name][fitted].append(value)
    figure, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for ax, (name, (fitted, shuffled)) in zip(axes.ravel(), rows.items()):
        ax.plot(iterations, fitted, "o-", label="fitted map")
        ax.plot(iterations, shuffled, "s--", label="its codes shuffled")
        ax.set_xscale("log", base=2)
        ax.set(title=name, xlabel="batch iterations of fit")
        if name == "topographic product":
            ax.axhline(0, color="grey", lw=0.5)
    axes[0, 0].legend(fontsize=8)
    figure.suptitle("quality of 10 x 10 maps of the digits (64-D), by training length")
    figure.tight_layout()
    figure.savefig(out / "toolkit_quality.png", dpi=90)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "images")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    labels_and_regions(out)
    kernels(out)
    quality(out)
    print(f"pictures written to {out}")


if __name__ == "__main__":
    main()
