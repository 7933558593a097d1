"""``python -m sklearn_ksom``: fit a map on scikit-learn's digits, print its figures.

A quick look at the library on data that ships with scikit-learn: a
KohonenQuantizer next to an EMAQuantizer and KMeans of the same size.
"""

import time

from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_ksom import EMAQuantizer, Grid, KohonenQuantizer, metrics


def main():
    X = StandardScaler().fit_transform(load_digits().data)
    X_train, X_test = train_test_split(X, test_size=0.2, random_state=0)
    models = {
        "KohonenQuantizer 8x8 (batch)": KohonenQuantizer(grid_shape=(8, 8), random_state=0),
        "KohonenQuantizer 8x8 (ema)": KohonenQuantizer(
            grid_shape=(8, 8), algorithm="ema", batch_size=128, max_iter=30, random_state=0
        ),
        "EMAQuantizer 64": EMAQuantizer(64, batch_size=128, max_iter=30, random_state=0),
        "KMeans 64 (scikit-learn)": KMeans(64, n_init=1, random_state=0),
    }
    grid = Grid((8, 8))
    print(f"digits: {X_train.shape[0]} train / {X_test.shape[0]} test samples, {X.shape[1]} features")
    print(f"{'model':32s} {'fit s':>6s} {'test QE':>8s} {'test MSE':>9s} {'topo err':>9s} {'perplexity':>10s} {'dead':>5s}")
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(X_train)
        seconds = time.perf_counter() - start
        codebook = model.cluster_centers_
        labels = model.predict(X_test)
        print(
            f"{name:32s} {seconds:6.2f} {metrics.quantization_error(X_test, codebook):8.3f} "
            f"{metrics.quantization_error(X_test, codebook, squared=True):9.3f} "
            f"{metrics.topographic_error(X_test, codebook, grid):9.3f} "
            f"{metrics.perplexity(labels, 64):10.1f} {metrics.dead_codes(labels, 64):5d}"
        )
    print("topographic error of the non-grid models uses the same 8x8 layout of their codes: "
          "it shows how far they are from a map.")


if __name__ == "__main__":
    main()
