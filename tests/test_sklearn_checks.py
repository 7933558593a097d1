"""scikit-learn's own estimator checks, array-API checks included."""

import os

import pytest
import scipy
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_ksom import EMAQuantizer, KohonenQuantizer, MapImputer

# The same and only check KMeans lists as failing, for the same reason:
# where the codebook starts from randomly drawn samples (k-means++,
# 'sample') or mini-batches are drawn in random order ('ema'), weighting a
# sample by 2 is not the same as repeating it.  The batch algorithm from a
# PCA start is deterministic and passes it.
RANDOM_DRAWS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "samples are drawn at random (initialisation or mini-batch order): sample_weight "
        "is not equivalent to removing or repeating samples, as for KMeans"
    ),
}

ESTIMATORS = [
    EMAQuantizer(n_clusters=3, random_state=0),
    EMAQuantizer(n_clusters=3, algorithm="batch", random_state=0),
    # Rows drawn by weight: the weights come to the host from any device.
    EMAQuantizer(n_clusters=3, init="sample", random_state=0),
    KohonenQuantizer(grid_shape=(3,), random_state=0),
    KohonenQuantizer(grid_shape=(3,), neighbourhood="hard", schedule="inverse", random_state=0),
    KohonenQuantizer(grid_shape=(2, 2), neighbourhood="hard", sigma=0.5, toroidal=True, random_state=0),
    # decay=0.99: with 'auto' the 20 full-batch steps of check_clustering's
    # tiny fit get decay 0.5 and converge, and the code between two of its
    # three blobs wins no sample, where the check wants every label used.
    KohonenQuantizer(grid_shape=(2, 2), neighbourhood="gaussian", algorithm="ema", decay=0.99, random_state=0),
    KohonenQuantizer(grid_shape=(3,), algorithm="ema", random_state=0),
    KohonenQuantizer(grid_shape=(2, 2), neighbourhood="exponential", hexagonal=True, random_state=0),
    # Cosine codebooks: the batch algorithm, the EMA epochs, both estimators.
    EMAQuantizer(n_clusters=3, metric="cosine", random_state=0),
    KohonenQuantizer(grid_shape=(3,), metric="cosine", random_state=0),
    KohonenQuantizer(grid_shape=(3,), algorithm="ema", metric="cosine", random_state=0),
    # NaN entries as missing values: allow_nan follows max_missing.
    KohonenQuantizer(grid_shape=(3,), max_missing=0.9, random_state=0),
    EMAQuantizer(n_clusters=3, max_missing=0.9, random_state=0),
    MapImputer(KohonenQuantizer(grid_shape=(3,), max_missing=0.9, random_state=0)),
]


def expected_failures(estimator):
    init = getattr(estimator, "quantizer", estimator).init
    draws = init in ("k-means++", "sample", "random")
    return RANDOM_DRAWS if draws else {}


def test_array_api_checks_are_enabled():
    """Without SCIPY_ARRAY_API=1 scikit-learn skips every array-API check."""
    assert os.environ.get("SCIPY_ARRAY_API") == "1"
    assert scipy._lib._array_api.SCIPY_ARRAY_API


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failures)
def test_sklearn_compatible(estimator, check):
    check(estimator)
