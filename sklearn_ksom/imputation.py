"""A map-based imputer as a pipeline step: :class:`MapImputer`.

The quantisers fill gaps with :meth:`KohonenQuantizer.impute`, but their
``transform`` already means the distances to the codes (as KMeans'), so a
quantiser cannot itself be the imputing step of a pipeline.
:class:`MapImputer` is that step: it fits a quantiser that takes missing
values and its ``transform`` is the quantiser's ``impute``.
"""

from __future__ import annotations

from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context, clone
from sklearn.utils._array_api import check_same_namespace
from sklearn.utils.validation import check_is_fitted

from .estimators import KohonenQuantizer, _BaseQuantizer


class MapImputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Fill missing values (NaN) from the nearest code of a self-organising map.

    ``fit`` trains a clone of ``quantizer`` on data with gaps; ``transform``
    replaces each missing entry with the value of its row's nearest code,
    found over the row's observed features, and leaves observed entries as
    they are (:meth:`KohonenQuantizer.impute`; docs/design.md section 14).

    Parameters
    ----------
    quantizer : KohonenQuantizer or EMAQuantizer, default=None
        The map to fit, with ``max_missing`` > 0.  None:
        ``KohonenQuantizer((24, 24), max_missing=0.5)``, the
        map of benchmarks/imputation.md (sized for thousands of rows).

    Attributes
    ----------
    quantizer_ : KohonenQuantizer or EMAQuantizer
        The fitted map.
    cluster_centers_ : array of shape (K, n_features)
        Its codebook (``quantizer_.cluster_centers_``).
    n_features_in_ : int
        Number of features seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ksom import KohonenQuantizer, MapImputer
    >>> X = np.random.default_rng(0).normal(size=(200, 4))
    >>> X[::7, 1] = np.nan
    >>> imputer = MapImputer(KohonenQuantizer((5, 5), max_missing=0.5, random_state=0))
    >>> bool(np.isnan(imputer.fit_transform(X)).any())
    False
    """

    _parameter_constraints: dict = {"quantizer": [_BaseQuantizer, None]}

    def __init__(self, quantizer=None):
        self.quantizer = quantizer

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the map on ``X`` (n_samples, n_features), NaN entries missing."""
        quantizer = default_quantizer() if self.quantizer is None else clone(self.quantizer)
        if not quantizer.max_missing:
            raise ValueError(
                f"MapImputer needs a quantizer with max_missing > 0 (the largest share of missing "
                f"features a row may have); got max_missing={quantizer.max_missing}. Set it, e.g. "
                f"{type(quantizer).__name__}(..., max_missing=0.5)."
            )
        self.quantizer_ = quantizer.fit(X, sample_weight=sample_weight)
        self.n_features_in_ = self.quantizer_.n_features_in_
        if hasattr(self.quantizer_, "feature_names_in_"):
            self.feature_names_in_ = self.quantizer_.feature_names_in_
        return self

    @property
    def cluster_centers_(self):
        return self.quantizer_.cluster_centers_

    def transform(self, X):
        """``X`` with its missing entries filled from the nearest codes."""
        check_is_fitted(self)
        check_same_namespace(X, self, attribute="cluster_centers_", method="transform")
        return self.quantizer_.impute(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = False
        tags.array_api_support = True
        return tags


def default_quantizer() -> KohonenQuantizer:
    """The map :class:`MapImputer` fits when given none."""
    return KohonenQuantizer((24, 24), max_missing=0.5)
