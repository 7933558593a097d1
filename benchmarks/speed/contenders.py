"""The contenders: this library's estimators, the peers and the GEMM bound.

Each function returns a :class:`~benchmarks.speed.measure.Contender` that
does the same work on the same data as the others: one pass over ``X`` in
mini-batches of ``batch_size`` (MiniSom: one sample a step, on a prefix of
``X`` when a whole epoch would take too long).  Models are built and warmed
up on the first batch outside the timed call.
"""

from __future__ import annotations

import math

import numpy as np

from sklearn_ksom import EMAQuantizer, KohonenQuantizer

from .measure import Contender


def batches(X, batch_size):
    return [X[start : start + batch_size] for start in range(0, X.shape[0], batch_size)]


def _streaming(name, make_model, X, batch_size, warm_rows):
    """A scikit-learn style ``partial_fit`` over every batch of ``X``."""

    def prepare():
        model = make_model()
        model.partial_fit(X[:warm_rows])
        parts = batches(X, batch_size)

        def run():
            for part in parts:
                model.partial_fit(part)

        return run

    return Contender(name, prepare, X.shape[0])


def warm_rows(X, n_codes, batch_size):
    """Rows for the untimed first call: k-means++ starts need >= K samples."""
    return min(X.shape[0], max(batch_size, n_codes))


def kohonen_partial_fit(X, grid_shape, batch_size, **params):
    n_codes = math.prod(grid_shape)
    return _streaming(
        "KohonenQuantizer.partial_fit",
        lambda: KohonenQuantizer(grid_shape, random_state=0, **params),
        X,
        batch_size,
        warm_rows(X, n_codes, batch_size),
    )


def ema_partial_fit(X, grid_shape, batch_size):
    n_codes = math.prod(grid_shape)
    return _streaming(
        "EMAQuantizer.partial_fit",
        lambda: EMAQuantizer(n_codes, random_state=0),
        X,
        batch_size,
        warm_rows(X, n_codes, batch_size),
    )


def minibatch_kmeans(X, grid_shape, batch_size):
    n_codes = math.prod(grid_shape)

    def make():
        from sklearn.cluster import MiniBatchKMeans

        return MiniBatchKMeans(n_codes, batch_size=batch_size, n_init=1, random_state=0)

    return _streaming("MiniBatchKMeans.partial_fit", make, X, batch_size, warm_rows(X, n_codes, batch_size))


def minisom_train_random(X, grid_shape, n_samples):
    """MiniSom's online training, one sample a step, on the first ``n_samples`` rows."""
    part = X[:n_samples]

    def prepare():
        from minisom import MiniSom

        som = MiniSom(*grid_shape, X.shape[1], random_seed=0)
        som.train_random(part[:10], 10)  # warm-up

        def run():
            som.train_random(part, part.shape[0])

        return run

    note = f"on the first {n_samples} samples" if n_samples < X.shape[0] else ""
    return Contender("MiniSom.train_random", prepare, part.shape[0], note)


def torchsom_fit(X, grid_shape, batch_size, device="cpu"):
    """torchsom's ``fit``: one epoch of its mini-batch training."""

    def prepare():
        import torch
        from torchsom import SOM

        data = torch.as_tensor(X, device=device)
        som = SOM(*grid_shape, X.shape[1], epochs=1, batch_size=batch_size, device=device, random_seed=0)
        som.fit(data[: 2 * batch_size], verbose=False)  # warm-up

        def run():
            som.fit(data, verbose=False)

        return run

    return Contender("torchsom.fit", prepare, X.shape[0])


def distance_gemm(X, grid_shape, batch_size, xp=np):
    """The bound: only the distance GEMM, batch (B x D) times codebook (D x K).

    What any nearest-code search must at least compute; a training step
    that costs twice this spends as long on everything else together.
    """
    n_codes = math.prod(grid_shape)

    def prepare():
        rng = np.random.default_rng(0)
        codebook = xp.asarray(rng.standard_normal((n_codes, X.shape[1])).astype(X.dtype))
        codebook_t = codebook.T
        parts = batches(X, batch_size)

        def run():
            for part in parts:
                xp.matmul(part, codebook_t)

        return run

    return Contender("distance GEMM alone", prepare, X.shape[0])
