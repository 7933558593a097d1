"""The data every contender gets: Fashion-MNIST projected to D features.

docs/design.md section 10 compares the tools on 60 000 x 64 float32 vectors.  Here
they are Fashion-MNIST's 60 000 training images (Debian package
``dataset-fashion-mnist``) projected on their top D principal components
and scaled to unit variance per sample coordinate on average; where the
package is missing, a mixture of Gaussian blobs of the same size stands in
(the run says which it used).  Speed does not depend on which: the
quantisation-error comparison is more telling on the real images.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
SOURCES = ("auto", "fashion-mnist", "blobs")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) as a NumPy array (docs/design.md section 10)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (magic {raw[:4]!r}).")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def resolve_source(source: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"data source must be one of {SOURCES}, got {source!r}.")
    if source == "auto":
        return "fashion-mnist" if FASHION_MNIST.exists() else "blobs"
    if source == "fashion-mnist" and not FASHION_MNIST.exists():
        raise FileNotFoundError(
            f"{FASHION_MNIST} not found: install it with `apt-get install dataset-fashion-mnist`, "
            "or run the benchmark with --data blobs."
        )
    return source


class Dataset:
    """Vectors of one source at any (n_samples, n_features), cached."""

    def __init__(self, source: str = "auto", seed: int = 0):
        self.requested = source
        self.source = resolve_source(source)
        self.seed = seed
        self._images = None
        self._cache: dict = {}

    def describe(self) -> str:
        if self.source == "fashion-mnist":
            return (
                "Fashion-MNIST training images (60 000 × 784) projected on their top D principal components "
                "(rows repeated for N above 60 000; Gaussian blobs for D above 784)"
            )
        reason = "Fashion-MNIST is not installed here" if self.requested == "auto" else "chosen with --data blobs"
        return f"Gaussian blobs (64 centres, scikit-learn make_blobs; {reason})"

    def vectors(self, n_samples: int, n_features: int) -> np.ndarray:
        """(n_samples, n_features) float32, C-contiguous, zero mean, unit mean variance."""
        key = (n_samples, n_features)
        if key not in self._cache:
            self._cache[key] = self._make(n_samples, n_features)
        return self._cache[key]

    def _make(self, n_samples, n_features):
        if self.source == "blobs" or n_features > 784:
            from sklearn.datasets import make_blobs

            X, _ = make_blobs(n_samples, n_features, centers=64, random_state=self.seed)
        else:
            X = self._projected(n_features)
            X = np.concatenate([X] * -(-n_samples // len(X)))[:n_samples]
        X = X - X.mean(axis=0)
        X = X / np.sqrt((X**2).sum(axis=1).mean() / n_features)
        return np.ascontiguousarray(X, dtype=np.float32)

    def _projected(self, n_features):
        if self._images is None:
            images = read_idx(FASHION_MNIST).reshape(-1, 28 * 28).astype(np.float64) / 255.0
            centred = images - images.mean(axis=0)
            # Principal axes from the 784 x 784 covariance, largest first:
            # exact, and the top 64 are the first 64 of the top 256.
            _, axes = np.linalg.eigh(centred.T @ centred)
            self._images = (centred, axes[:, ::-1])
        centred, axes = self._images
        return centred @ axes[:, :n_features]
