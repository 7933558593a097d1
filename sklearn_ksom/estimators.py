"""scikit-learn estimators: :class:`KohonenQuantizer` and :class:`EMAQuantizer`.

Both are thin shells over :mod:`sklearn_ksom.core`: they validate input, own
the fitted state (codebook, EMA counts and sums, step counter, RNG) and call
the core's pure functions.  ``EMAQuantizer`` is the same engine with no
neighbourhood (P = I), so it is exactly EMA-VQ.

Their settings are built once, as a
:class:`~sklearn_ksom.topology.NeighbourhoodSchedule` and
:class:`~sklearn_ksom.core.EMAConstants`, and a later ``partial_fit``
compares the parameters with them by identity (docs/design.md sections 5
and 6).
"""

from __future__ import annotations

import functools
import math
import operator
from numbers import Integral, Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state
from sklearn.utils._array_api import check_same_namespace, get_namespace
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import analysis, metrics
from ._array_api import device_of, is_dask_array, move_to, namespace
from .core import (
    EMA_CONSTRAINTS,
    METRIC_CONSTRAINT,
    EMAConstants,
    EMAState,
    FitResult,
    assign,
    assignment_statistics,
    batch_som,
    distances,
    check_gaps_metric,
    check_missing,
    coarse_to_fine_rows,
    ema_epochs,
    ema_step,
    initial_state,
    normalised,
    reference_point,
    resting_state,
    unit_codes,
)
from .initialisation import (
    INITIALISERS,
    codes_for_metric,
    codes_from_array,
    fill_missing,
    subsample,
    weighted_rows,
)
from .topology import DEFAULT_STREAM_STEPS, SCHEDULE_CONSTRAINTS, SCHEDULE_PARAMETERS, Grid, NeighbourhoodSchedule


def _take_rows(X, sample_weight, chosen):
    """The rows ``chosen`` (host indices) of ``X`` and of ``sample_weight``."""
    xp = namespace(X)
    chosen = move_to(xp, chosen, device=device_of(X))
    return xp.take(X, chosen, axis=0), xp.take(sample_weight, chosen, axis=0)


def _keeps_state_on_error(draws_from_rng):
    """Decorate a method that, if it raises, puts every attribute back.

    Bad input must lose nothing: a failed fit or partial_fit leaves the
    estimator exactly as before the call, the RNG included where
    ``draws_from_rng(self)`` says the call may draw from it.
    """

    def decorate(method):
        @functools.wraps(method)
        def guarded(self, *args, **kwargs):
            saved = dict(self.__dict__)
            # The RNG is the one object that can change in place: a call that
            # draws takes check_random_state(random_state), which is shared
            # with the caller when random_state is an instance or None
            # (NumPy's global one).  Its state (60 us to read, a tenth of a
            # streaming step) is saved only for calls that may draw; a
            # seed's private RNG is replaced, never advanced.
            shared = draws_from_rng(self) and (
                self.random_state is None or isinstance(self.random_state, np.random.RandomState)
            )
            rng = check_random_state(self.random_state) if shared else None
            rng_state = rng.get_state() if shared else None
            try:
                return method(self, *args, **kwargs)
            except BaseException:
                self.__dict__.clear()
                self.__dict__.update(saved)
                if shared:
                    rng.set_state(rng_state)
                raise

        return guarded

    return decorate


class _BaseQuantizer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """Shared fit / partial_fit / predict machinery of both estimators."""

    _parameter_constraints: dict = {
        "init": [StrOptions(set(INITIALISERS)), "array-like"],
        "algorithm": [StrOptions({"batch", "ema"})],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "init_size": [Interval(Integral, 1, None, closed="left"), None],
        "subsample": [Interval(Integral, 1, None, closed="left"), None],
        **EMA_CONSTRAINTS,
        "metric": METRIC_CONSTRAINT,
        "max_missing": [Interval(Real, 0, 1, closed="left")],
        "random_state": ["random_state"],
    }

    # The parameters that fix the number and places of the codes: they
    # cannot change once there is a codebook.
    _grid_parameters: tuple = ()

    # ------------------------------------------------------------ settings

    def _schedule_from_params(self) -> NeighbourhoodSchedule:
        """The neighbourhood schedule the parameters describe (length
        ``schedule_steps``, or None for the run's)."""
        raise NotImplementedError

    def _settings_from_params(self):
        check_gaps_metric(self.metric, self.max_missing > 0, subject=f"max_missing={self.max_missing} needs")
        return self._schedule_from_params(), EMAConstants(
            self.decay, self.epsilon, self.initial_count, self.update
        )

    def _remember_params(self):
        """Note the parameter objects the settings were built from."""
        names = tuple(self._get_param_names())
        self._settings_params = (operator.itemgetter(*names), names, operator.itemgetter(*names)(self.__dict__))

    def _follow_params(self):
        """Settings for a later ``partial_fit``: the kept ones while no
        parameter has been reassigned (one identity test per parameter, a
        microsecond in all), else the new parameters validated and applied.

        Parameters that place the codes cannot change under a codebook:
        that raises a ValueError naming them, and nothing changes.
        """
        read, names, values = self._settings_params
        if all(map(operator.is_, read(self.__dict__), values)):
            return
        seen = dict(zip(names, values))
        self._validate_params()  # a ValueError naming the parameter
        fitted = self.neighbourhood_schedule_
        schedule, ema = self._settings_from_params()
        if schedule.grid != fitted.grid:
            changed = [name for name in self._grid_parameters if getattr(self, name) is not seen[name]]
            raise ValueError(
                f"{', '.join(changed)} changed after fitting, but the codebook has {fitted.grid.n_codes} "
                f"codes on a grid of shape {fitted.grid.shape}: set them back, or call fit to start "
                f"a new codebook."
            )
        if self.metric != self._metric:
            raise ValueError(
                f"metric changed after fitting, but the codebook was trained with metric={self._metric!r}: "
                f"set it back, or call fit to start a new codebook."
            )
        # A schedule of no given length keeps the length it had (fit's run
        # or the stream's): continuing, not restarting.
        self.neighbourhood_schedule_ = schedule.over(fitted.length)
        self._ema = ema
        self.decay_ = self._stream_decay(ema)
        self._remember_params()

    def _stream_decay(self, ema: EMAConstants) -> float:
        """The decay of ``partial_fit``'s steps: over ``schedule_steps``, else
        the 1000-step stream of unknown length."""
        return ema.decay_over(getattr(self, "schedule_steps", None) or DEFAULT_STREAM_STEPS)

    # -------------------------------------------------------- validation

    def _validate(self, X, *, reset: bool):
        """``X`` checked and converted, and whether it has missing values.

        NaN entries are missing values when ``max_missing`` > 0 (rows with
        a larger share of them are refused, naming the rows), else refused
        as any non-finite input.
        """
        if not reset and self._passes_unchanged(X):
            return X, False
        # scikit-learn's namespace: the input's under array_api_dispatch,
        # NumPy (the input converted) otherwise.
        xp, _ = get_namespace(X)
        try:
            X = validate_data(
                self,
                X,
                reset=reset,
                accept_sparse=False,
                dtype=[xp.float64, xp.float32] if reset else None,
                ensure_min_samples=1,
                ensure_all_finite="allow-nan" if self.max_missing else True,
            )
        except ValueError as error:
            if self.max_missing or "contains NaN" not in str(error):
                raise
            raise ValueError(
                f"{error} Or let {type(self).__name__} treat NaN entries as missing values: "
                "max_missing > 0 (the largest share of a row's features that may be missing)."
            ) from error
        if not reset:
            X = namespace(X).astype(X, self.cluster_centers_.dtype, copy=False)
        return X, bool(self.max_missing) and check_missing(X, self.max_missing)

    def _passes_unchanged(self, X) -> bool:
        """Whether ``validate_data`` would return ``X`` itself, unchanged.

        Checked directly (a few microseconds) for the streaming case: a
        finite 2-D NumPy array with the fitted dtype and number of features,
        and no feature names to compare.  Anything else, bad input included,
        goes through ``validate_data``, which converts it or raises its
        usual error.
        """
        codebook = getattr(self, "cluster_centers_", None)
        if (
            type(X) is not np.ndarray
            or type(codebook) is not np.ndarray
            or X.ndim != 2
            or X.dtype != codebook.dtype
            or X.shape[0] < 1
            or X.shape[1] != self.n_features_in_
            or hasattr(self, "feature_names_in_")
        ):
            return False
        # scikit-learn's own first test: the sum of finite values is finite
        # (an overflow falls back to its element-wise check).
        with np.errstate(over="ignore", invalid="ignore"):
            return bool(np.isfinite(np.sum(X)))

    def _initial_codebook(self, X, rng, sample_weight, grid: Grid, missing: bool = False):
        """The starting codebook; under metric='cosine' drawn from ``X``'s
        unit rows (the caller's) and put on the unit sphere (docs/design.md
        section 13); with ``missing``, from the observed entries (section 14)."""
        if not isinstance(self.init, str):
            codebook = codes_from_array(
                self.init, grid.n_codes, X.shape[1], xp=namespace(X), dtype=X.dtype, device=device_of(X)
            )
            return codes_for_metric(codebook, self.init, self.metric)
        # The initialiser sees init_size random rows (as MiniBatchKMeans'):
        # k-means++ and PCA on all rows would cost more than the training.
        # With missing values it sees all rows: a subsample could miss every
        # observation of a feature that the data do observe.
        n_rows = self.init_size if self.init_size is not None else 3 * max(self.batch_size, grid.n_codes)
        chosen = None if missing else subsample(weighted_rows(X.shape[0], sample_weight), n_rows, rng)
        if chosen is not None:
            X, sample_weight = _take_rows(X, sample_weight, chosen)
        gaps = {"missing": True} if missing else {}
        codebook = INITIALISERS[self.init](X, grid.n_codes, rng, sample_weight, grid, **gaps)
        return codes_for_metric(codebook, self.init, self.metric)

    # ------------------------------------------------------------ fitting

    @_keeps_state_on_error(draws_from_rng=lambda self: True)
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Learn the codebook from ``X`` (n_samples, n_features).

        ``algorithm='batch'`` runs up to ``max_iter`` iterations of the
        batch algorithm (Lloyd's k-means when there is no neighbourhood),
        coarse to fine on random subsamples when ``subsample`` is set;
        ``algorithm='ema'`` runs up to ``max_iter`` epochs of mini-batch
        EMA steps in shuffled order.  The neighbourhood schedule spans the
        run (or ``schedule_steps``); past its end, ``tol`` stops the run
        once the training error settles, and ``n_iter_`` says how many
        iterations or epochs ran.  A later ``partial_fit`` continues the
        schedule from where the run ended.

        ``max_iter=0`` trains nothing: the codebook is ``init`` (an array,
        e.g. one trained elsewhere, or any initialiser), with EMA statistics
        consistent with it and ``labels_``, ``inertia_`` from one assignment
        pass, so ``partial_fit`` can continue from it, with the schedule of
        a stream (from ``sigma`` over ``schedule_steps`` steps, 1000 if
        unset).

        ``X`` may be a Dask array: the statistics of every iteration are
        then computed on the workers, chunk by chunk, and only K-sized sums
        return (see :mod:`sklearn_ksom._dask` for what each ``init`` and
        ``algorithm`` does there).

        With ``max_missing`` > 0, NaN entries are missing values: winners
        over the observed features, statistics of the observed entries
        (docs/design.md section 14).
        """
        schedule, ema = self._settings_from_params()
        rng = check_random_state(self.random_state)
        if is_dask_array(X):
            from . import _dask  # dask is an optional extra

            fitted = _dask.fit(
                X, sample_weight, schedule, ema, init=self.init, algorithm=self.algorithm,
                max_iter=self.max_iter, tol=self.tol, batch_size=self.batch_size, rng=rng, metric=self.metric,
                max_missing=self.max_missing,
            )  # fmt: skip
            self.n_features_in_ = fitted.state.codebook.shape[1]
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_  # Dask arrays carry no column names
        else:
            X, missing = self._validate(X, reset=True)
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype, ensure_non_negative=True)
            # Cosine: the unit rows, once.
            X = normalised(X, self.metric)
            codebook = self._initial_codebook(X, rng, sample_weight, schedule.grid, missing)
            if self.algorithm == "ema" and self.max_iter > 0:
                fitted = self._fit_ema(X, sample_weight, codebook, schedule, ema, rng, missing)
            else:
                fitted = self._fit_batch(X, sample_weight, codebook, schedule, ema, rng, missing)
        self._set_fitted(fitted.state, fitted.schedule, ema, rng)
        self.labels_ = fitted.labels
        self.inertia_ = fitted.inertia
        self.n_iter_ = fitted.n_iter
        self.n_steps_ = fitted.n_steps
        return self

    def _fit_batch(self, X, sample_weight, codebook, schedule, ema, rng, missing):
        """Kohonen's batch algorithm over ``X`` in memory, coarse to fine
        when ``subsample`` is set (no iteration for ``max_iter=0``)."""
        xp = namespace(X)
        coarse = self.subsample is not None and X.shape[0] > self.subsample
        candidates = weighted_rows(X.shape[0], sample_weight) if coarse else None

        def statistics(codebook, n_rows):
            rows, weights = X, sample_weight
            if n_rows is not None:  # a fresh random subsample each iteration
                rows, weights = _take_rows(X, sample_weight, subsample(candidates, n_rows, rng))
            # Each pass's assignment comes back too: the last one, on the
            # final codebook and all rows, gives labels_ with no extra pass.
            assignment = assign(rows, codebook, metric=self.metric, missing=missing)
            n_codes = codebook.shape[0]
            # Sums added up relative to a point among the codes (docs/design.md section 11).
            reference = reference_point(codebook)
            statistics = assignment_statistics(rows, assignment, n_codes, weights, missing=missing, reference=reference)
            return (*statistics, assignment.first)

        schedule = schedule.over(self.max_iter) if self.max_iter else schedule
        rows = None if candidates is None else coarse_to_fine_rows(candidates.shape[0], schedule.length, self.subsample)
        codebook, (counts, _, error, labels), n_iter = batch_som(
            statistics, codebook, schedule, self.max_iter, rows=rows, tol=self.tol, metric=self.metric
        )
        state = resting_state(
            codebook, counts, batch_size=self.batch_size, total_weight=float(xp.sum(sample_weight)),
            initial_count=ema.initial_count,
        )  # fmt: skip
        return FitResult(state, labels, float(error), n_iter, schedule, n_iter)

    def _fit_ema(self, X, sample_weight, codebook, schedule, ema, rng, missing):
        """Up to ``max_iter`` epochs of mini-batch EMA (KSOM) steps over ``X``."""
        xp = namespace(X)
        schedule = schedule.over(self.max_iter * math.ceil(X.shape[0] / self.batch_size))
        state, n_steps, n_epochs = ema_epochs(
            initial_state(codebook, ema.initial_count), X, schedule, ema,
            batch_size=self.batch_size, n_epochs=self.max_iter, rng=rng, sample_weight=sample_weight, tol=self.tol,
            metric=self.metric, missing=missing,
        )  # fmt: skip
        assignment = assign(X, state.codebook, metric=self.metric, missing=missing)
        inertia = float(xp.sum(assignment.squared_distance * sample_weight))
        return FitResult(state, assignment.first, inertia, n_steps, schedule, n_epochs)

    def _set_fitted(self, state: EMAState, schedule: NeighbourhoodSchedule, ema: EMAConstants, rng):
        self.cluster_centers_ = state.codebook
        self.counts_ = state.counts
        self.sums_ = state.sums
        self._n_features_out = state.codebook.shape[0]
        self.neighbourhood_schedule_ = schedule
        self._ema = ema
        self.decay_ = self._stream_decay(ema)
        self._random_state = rng
        self._metric = self.metric
        self._remember_params()

    @classmethod
    def from_state(cls, codebook, counts, sums, *, n_steps=0, **params):
        """A fitted estimator from a trained codebook and its EMA statistics.

        The public way in for a state trained elsewhere, e.g. a torch
        layer's buffers (:meth:`torch_adapter.KohonenVQ.to_estimator`) or a
        checkpoint: ``partial_fit`` continues it at update step
        ``n_steps``.  The arrays are copied; ``params`` are the estimator's
        parameters.  There is no ``labels_`` or ``inertia_`` (no data was
        seen); to start from a codebook *and* data, use ``init=codebook``
        with ``max_iter=0`` in ``fit``.

        Parameters
        ----------
        codebook : array of shape (K, D)
        counts : array of shape (K,) or (K, D)
            EMA counts N_k, finite and >= 0; per code and feature (K, D)
            for a state that has seen missing values.
        sums : array of shape (K, D)
            EMA sums M.
        n_steps : int, default=0
            Update steps the state has taken (where its width schedule is).
        **params
            The estimator's parameters.
        """
        estimator = cls(**params)
        estimator._validate_params()
        schedule, ema = estimator._settings_from_params()
        xp = namespace(codebook)
        codebook = xp.asarray(codebook, copy=True)
        n_codes = schedule.grid.n_codes
        if codebook.ndim != 2 or codebook.shape[0] != n_codes or codebook.dtype not in (xp.float32, xp.float64):
            raise ValueError(
                f"codebook must be a float32 or float64 array of shape (n_codes, n_features) with "
                f"n_codes={n_codes}; got shape {tuple(codebook.shape)}, dtype {codebook.dtype}."
            )
        counts = xp.astype(xp.asarray(counts, copy=True, device=device_of(codebook)), codebook.dtype)
        sums = xp.astype(xp.asarray(sums, copy=True, device=device_of(codebook)), codebook.dtype)
        if tuple(counts.shape) not in ((n_codes,), tuple(codebook.shape)) or tuple(sums.shape) != tuple(codebook.shape):
            raise ValueError(
                f"counts and sums must have shapes ({n_codes},) (or {tuple(codebook.shape)}, per "
                f"feature) and {tuple(codebook.shape)}; got "
                f"{tuple(counts.shape)} and {tuple(sums.shape)}."
            )
        if not bool(xp.all(xp.isfinite(codebook)) & xp.all(xp.isfinite(sums)) & xp.all(xp.isfinite(counts))):
            raise ValueError("codebook, counts and sums must be finite; got NaN or infinity.")
        codebook = unit_codes(codebook, estimator.metric, "codebook")
        if bool(xp.any(counts < 0)):
            raise ValueError("counts must be >= 0.")
        if not (isinstance(n_steps, Integral) and n_steps >= 0):
            raise ValueError(f"n_steps must be an int >= 0, got {n_steps!r}.")
        estimator._set_fitted(EMAState(codebook, counts, sums), schedule, ema, check_random_state(estimator.random_state))
        estimator.n_features_in_ = codebook.shape[1]
        estimator.n_iter_ = 0
        estimator.n_steps_ = int(n_steps)
        return estimator

    # Only the first call draws (the initial codebook); later steps take none.
    @_keeps_state_on_error(draws_from_rng=lambda self: not hasattr(self, "cluster_centers_"))
    def partial_fit(self, X, y=None, sample_weight=None):
        """One EMA (KSOM) step on the batch ``X``.

        The first call initialises the codebook from this batch; later calls
        continue the step counter, the RNG and the neighbourhood schedule:
        after ``fit``, from where the fit ended; on a stream, over
        ``schedule_steps`` steps (1000 if unset).  ``labels_`` and
        ``inertia_`` describe this batch's assignment, made before the
        update.  With ``max_missing`` > 0 the batch may have missing values
        (NaN); after one, ``counts_`` are per code and feature, (K, D).

        Parameters changed between calls (``set_params``) are validated and
        applied; those that place the codes (``grid_shape``, ``hexagonal``,
        ``toroidal``, ``n_clusters``) cannot change under a codebook, and
        changing them raises a ValueError.  A failed call changes nothing.
        """
        if not hasattr(self, "cluster_centers_"):
            return self._first_partial_fit(X, sample_weight)
        # Later calls skip scikit-learn's fit context: on a fitted estimator
        # it would validate every parameter again, 10 % of a step at the
        # reference shape.  Parameters are re-validated only when one was
        # reassigned since the last call.
        self._follow_params()
        return self._partial_fit(X, sample_weight, first_call=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def _first_partial_fit(self, X, sample_weight):
        return self._partial_fit(X, sample_weight, first_call=True)

    def _partial_fit(self, X, sample_weight, *, first_call):
        X, missing = self._validate(X, reset=first_call)
        xp = namespace(X)
        if sample_weight is not None or first_call:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype, ensure_non_negative=True)
        if first_call:
            schedule, ema = self._settings_from_params()
            rng = check_random_state(self.random_state)
            codebook = self._initial_codebook(normalised(X, self.metric), rng, sample_weight, schedule.grid, missing)
            self._set_fitted(initial_state(codebook, ema.initial_count), schedule, ema, rng)
            self.n_steps_ = 0
            self.n_iter_ = 0
        ema = self._ema
        step = ema_step(
            EMAState(self.cluster_centers_, self.counts_, self.sums_),
            X,
            self.neighbourhood_schedule_.at(self.n_steps_, xp=xp, dtype=X.dtype, device=device_of(X)),
            decay=self.decay_,
            epsilon=ema.epsilon,
            update_all=ema.update_all,
            sample_weight=sample_weight,
            metric=self._metric,
            missing=missing,
            xp=xp,
        )
        self.cluster_centers_, self.counts_, self.sums_ = step.state
        self.labels_ = step.assignment.first
        error = step.assignment.squared_distance
        self.inertia_ = float(xp.sum(error if sample_weight is None else error * sample_weight))
        self.n_steps_ += 1
        return self

    # --------------------------------------------------------- inference

    def _checked(self, X, method):
        """``X`` validated for inference, and whether it has missing values."""
        check_is_fitted(self)
        if is_dask_array(X):
            # Converting would gather the whole array on this machine.
            raise TypeError(
                f"{type(self).__name__}.{method} does not take a Dask array: it would gather the "
                f"data here. predict and transform return lazy Dask arrays; or pass X.compute() "
                f"(or a sample of it) when it fits in memory."
            )
        check_same_namespace(X, self, attribute="cluster_centers_", method=method)
        return self._validate(X, reset=False)

    def predict(self, X):
        """Index of the nearest code for each sample, shape (n_samples,).

        A Dask array gives a lazy Dask array, computed chunk by chunk.
        """
        if is_dask_array(X):
            from . import _dask

            return _dask.predict(self, X)
        X, missing = self._checked(X, "predict")
        return assign(X, self.cluster_centers_, metric=self._metric, missing=missing).first

    def transform(self, X):
        """Distance to every code, shape (n_samples, n_codes): Euclidean, or
        the cosine distance 1 - cos under ``metric='cosine'``.

        With missing values, over each row's observed features, rescaled
        to the full dimension.  A Dask array gives a lazy Dask array,
        computed chunk by chunk.
        """
        if is_dask_array(X):
            from . import _dask

            return _dask.transform(self, X)
        X, missing = self._checked(X, "transform")
        return distances(X, self.cluster_centers_, metric=self._metric, missing=missing)

    def quantize(self, X):
        """Each sample replaced by its nearest code, shape (n_samples, n_features)
        (a unit vector under ``metric='cosine'``)."""
        X, missing = self._checked(X, "quantize")
        xp = namespace(X)
        nearest = assign(X, self.cluster_centers_, metric=self._metric, missing=missing).first
        return xp.take(self.cluster_centers_, nearest, axis=0)

    def impute(self, X):
        """``X`` with each missing entry (NaN) replaced by its row's nearest
        code's value, shape (n_samples, n_features).

        The nearest code is found over the row's observed features; observed
        entries are returned as they are.  Needs ``max_missing`` > 0 (rows
        with a larger share of missing features are refused).  A map-based
        imputer; in a pipeline, use :class:`sklearn_ksom.MapImputer`.
        """
        if not self.max_missing:
            raise ValueError(
                f"{type(self).__name__}.impute needs max_missing > 0 (the largest share of missing "
                f"features a row may have); got max_missing={self.max_missing}. Set it, e.g. "
                f"max_missing=0.5, and fit again."
            )
        X, missing = self._checked(X, "impute")
        if not missing:
            return namespace(X).asarray(X, copy=True)
        xp = namespace(X)
        codes = xp.take(self.cluster_centers_, assign(X, self.cluster_centers_, missing=True).first, axis=0)
        return fill_missing(X, codes)

    def score(self, X, y=None, sample_weight=None):
        """Negative mean squared quantisation error of ``X`` (higher is better);
        the negative mean cosine distance under ``metric='cosine'``."""
        X, missing = self._checked(X, "score")
        xp = namespace(X)
        error = assign(X, self.cluster_centers_, metric=self._metric, missing=missing).squared_distance
        if sample_weight is None:
            return -float(xp.mean(error))
        sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype, ensure_non_negative=True)
        return -float(xp.sum(error * sample_weight) / xp.sum(sample_weight))

    def quantization_error(self, X):
        """Mean distance from each sample to its nearest code (Euclidean, as
        MiniSom; 1 - cos under ``metric='cosine'``)."""
        X, missing = self._checked(X, "quantization_error")
        return metrics.quantization_error(X, self.cluster_centers_, metric=self._metric, missing=missing)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = bool(self.max_missing)
        return tags

    # ------------------------------------------------- analysing the map
    # (sklearn_ksom.analysis holds the functions.)

    def label_counts(self, X, y):
        """Samples of each class on each code, shape (n_codes, n_classes).

        Classes in ``np.unique(y)`` order; in the namespace of ``X``.  See
        :func:`sklearn_ksom.analysis.label_counts`.
        """
        return analysis.label_counts(self.predict(X), y, self.cluster_centers_.shape[0])

    def win_map(self, X):
        """The rows of ``X`` on each code, as indices, without copying ``X``.

        ``win_map(X)[k]`` (or ``[(i, j)]``, a grid index) are the row
        indices of the samples whose nearest code is k.  See
        :class:`sklearn_ksom.analysis.CodeMembers`.
        """
        grid = getattr(self, "grid_", None)
        return analysis.code_members(self.predict(X), self.cluster_centers_.shape[0], None if grid is None else grid.shape)


_FIT_PARAMETERS_DOC = """tol : float, default=1e-4
        Convergence test of ``fit``: the run stops once the mean squared
        error of the training samples changes by at most ``tol`` (relative)
        from one iteration to the next (batch algorithm: the error of all
        rows on each codebook) or from one epoch to the next ('ema': each
        batch measured on the codebook before its step, as MiniBatchKMeans'
        smoothed inertia).  Only changes made at the end of the width
        schedule count (any, without a neighbourhood): stopping while the
        neighbourhood is still wide would keep a map far from the data.
        ``n_iter_`` says how many iterations or epochs ran; ``tol=0`` runs
        all ``max_iter``.  Not applied to the EMA epochs of a Dask fit.
    batch_size : int, default=1024
        Mini-batch size of ``fit`` with ``algorithm='ema'``.  A batch fit
        leaves EMA counts of a batch of this size, for a later
        ``partial_fit``.
    init_size : int, default=None
        Rows the initialiser ('pca', 'random', 'sample', 'k-means++') sees:
        a random subsample of this many rows of non-zero weight, as
        MiniBatchKMeans' ``init_size``; None takes 3 * max(``batch_size``,
        K).  All rows when there are no more.  k-means++ and PCA on all
        rows can cost more than the training itself (on 60 000 x 784
        images, k-means++ for 256 codes on all rows took 3 times the whole
        default fit).  A Dask fit ignores it (see :mod:`sklearn_ksom._dask`)."""

_EMA_PARAMETERS_DOC = """
    decay : float or 'auto', default='auto'
        EMA decay gamma of the counts and sums (docs/design.md section 2).
        'auto' gives the EMA a memory of about a fifteenth of the run:
        gamma = 1 - 15 / n within [0.5, 0.99], n being ``schedule_steps``,
        else the update steps of an EMA ``fit``, else 1000 for
        ``partial_fit`` (0.985).  Over one pass of a stream whose length is
        given as ``schedule_steps`` this ends at 0.995-1.012 times
        MiniSom's one-pass quantisation error with the Gaussian's default
        end width 1/3 (1.02-1.06 with the former 0.5), where 0.99 ends
        24-53 % above it (benchmarks/streaming_memory.md); the paper's
        layers keep 0.99.
        Acts on EMA steps only (``partial_fit``, ``fit`` with
        ``algorithm='ema'``): no effect on a batch fit, but on a
        ``partial_fit`` after it.
    epsilon : float, default=1e-5
        Laplace smoothing constant of the counts.  EMA steps only, as
        ``decay``: no effect on a batch fit.
    initial_count : float, default=1.0
        Initial EMA count N0 of every code (the paper's ablation: 0 is what
        most EMA-VQ code does and lets codes die; 1 is robust).  Sets the
        counts where EMA training starts (the first ``partial_fit``,
        ``fit`` with ``algorithm='ema'``); no effect on a batch fit's
        codebook, which leaves counts from its data for a later
        ``partial_fit`` (N0 only for codes no sample chose).
    update : {'all', 'active'}, default='all'
        'all' decays every code's statistics each step and applies Laplace
        smoothing (the reference form); 'active' changes only the codes
        assigned in the batch, without smoothing (the paper's ablation).
        EMA steps only, as ``decay``: no effect on a batch fit.
    metric : {'euclidean', 'cosine'}, default='euclidean'
        How samples and codes are compared.  'cosine' compares directions:
        rows of X are scaled to unit length, the codes stay unit-length
        after every update, ``transform`` gives 1 - cos and ``score``, the
        inertia and the quality figures use it (docs/design.md section 13).
        A row of zeros is at distance 1 from every code and goes to code
        0.  Fixed once fitted: ``partial_fit`` refuses a changed metric.
    max_missing : float in [0, 1), default=0.0
        Largest share of missing features (NaN) a row may have.  0 refuses
        NaN, as any non-finite input.  Above 0, NaN entries are missing
        values: a row's nearest code is found over its observed features
        (the distance rescaled to the full dimension), training counts
        observed entries only (``counts_`` become per code and feature,
        (K, D)), and :meth:`impute` fills the gaps from the nearest codes.
        Rows with a larger share missing are refused, naming them
        (docs/design.md section 14).  Missing values take the Euclidean
        metric: ``metric='cosine'`` with ``max_missing`` > 0 is refused.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation and the order of mini-batches; an int makes
        runs exactly reproducible."""


class EMAQuantizer(_BaseQuantizer):
    __doc__ = f"""Vector quantiser trained by the EMA codebook update of VQ-VAEs.

    EMA-VQ (van den Oord et al. 2017): every step assigns each sample to its
    nearest code and moves the codes to exponential moving averages of the
    assigned samples.  It is :class:`KohonenQuantizer` without a
    neighbourhood.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of codes K.
    init : {{'k-means++', 'sample', 'random', 'pca'}} or array of shape (K, D), default='k-means++'
        Starting codebook.
    algorithm : {{'ema', 'batch'}}, default='ema'
        How ``fit`` trains: mini-batch EMA epochs, or full-batch Lloyd
        iterations.  ``partial_fit`` always takes one EMA step.
    max_iter : int, default=3
        Most epochs ('ema') or iterations ('batch') of ``fit`` (fewer when
        ``tol`` finds it converged); 0 takes the ``init`` codebook as it
        is (e.g. one trained elsewhere) with EMA statistics consistent with
        it, for ``partial_fit`` to continue.  3 epochs of batch 1024 after
        k-means++ on ``init_size`` rows end within 0.5 % of
        MiniBatchKMeans' held-out quantisation error (0.997-1.005 times it)
        in 0.5-0.9 times its time on Fashion-MNIST and MNIST, 256 codes
        (benchmarks/fit_defaults.md); 20 epochs after k-means++ on all rows,
        the former default, took 5-8 times its time for the same error.
    {_FIT_PARAMETERS_DOC}
    subsample : int, default=None
        The batch algorithm's coarse-to-fine subsamples, as for
        :class:`KohonenQuantizer`; None (the default) runs Lloyd's
        iterations on all rows.
    {_EMA_PARAMETERS_DOC}

    Attributes
    ----------
    cluster_centers_ : array of shape (K, D)
        The codebook.
    counts_ : array of shape (K,), or (K, D)
        EMA cluster sizes N_k; per code and feature, (K, D), once training
        has seen missing values (``max_missing``).
    sums_ : array of shape (K, D)
        EMA sums M.
    labels_ : array of shape (n_samples,)
        Nearest code of each training sample (of the last batch for
        ``partial_fit``).
    inertia_ : float
        Sum of squared distances of the training samples to their codes.
    n_iter_ : int
        Epochs or iterations run by ``fit``: ``max_iter``, or fewer when
        ``tol`` stopped it.
    n_steps_ : int
        Codebook updates made so far.
    decay_ : float
        The EMA decay of ``partial_fit``'s steps (``decay``, resolved for
        'auto').
    neighbourhood_schedule_ : NeighbourhoodSchedule
        The settings of the updates (here P = I at every step), shared with
        :class:`torch_adapter.EMAVQ`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ksom import EMAQuantizer
    >>> X = np.random.default_rng(0).normal(size=(500, 4))
    >>> vq = EMAQuantizer(n_clusters=16, random_state=0).fit(X)
    >>> vq.cluster_centers_.shape
    (16, 4)
    >>> vq.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints: dict = {
        **_BaseQuantizer._parameter_constraints,
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        init="k-means++",
        algorithm="ema",
        max_iter=3,
        tol=1e-4,
        batch_size=1024,
        init_size=None,
        subsample=None,
        decay="auto",
        epsilon=1e-5,
        initial_count=1.0,
        update="all",
        metric="euclidean",
        max_missing=0.0,
        random_state=None,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.algorithm = algorithm
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.init_size = init_size
        self.subsample = subsample
        self.decay = decay
        self.epsilon = epsilon
        self.initial_count = initial_count
        self.update = update
        self.metric = metric
        self.max_missing = max_missing
        self.random_state = random_state

    _grid_parameters = ("n_clusters",)

    def _schedule_from_params(self):
        return NeighbourhoodSchedule(Grid((self.n_clusters,)), "none")


class KohonenQuantizer(_BaseQuantizer):
    __doc__ = f"""Self-organising-map vector quantiser (KSOM, Irie et al. 2023).

    The codes sit on a grid.  Each training step assigns samples to their
    nearest code and spreads every assignment over the code's grid
    neighbours with weights P(t) that shrink over training; the codebook
    follows the EMA update of VQ-VAEs (``partial_fit``, ``algorithm='ema'``)
    or Kohonen's batch algorithm (``algorithm='batch'``).  With
    ``neighbourhood='none'`` it is exactly :class:`EMAQuantizer`.

    Parameters
    ----------
    grid_shape : tuple of int, default=(10, 10)
        Codes along each grid axis; K = product.  Any number of axes.
    hexagonal : bool, default=False
        Hexagonal 2-D grid instead of a rectangular one.
    toroidal : bool, default=False
        Wrap the grid's edges around.
    neighbourhood : {{'gaussian', 'hard', 'exponential', 'bubble', 'triangle', 'none'}} or callable, default='gaussian'
        Weight of a code at grid distance d from the winner, given the
        current width s:

        - 'gaussian': exp(-d^2 / (2 s^2)), the classic SOM kernel;
        - 'exponential': exp(-d / s), the paper's "Gaussian" form
          exp(-d (1 + tau t) / b) with ``sigma=b=10`` and
          ``schedule='inverse'``;
        - 'hard': the paper's hard neighbourhood, weight min(s, 1) on
          codes with 0 < d < 1.5 and 1 on the winner (``sigma=1`` and
          ``schedule='inverse'`` give 1 / (1 + tau t));
        - 'bubble': 1 within radius s, 0 beyond (a disc; MiniSom's
          'bubble' is a square, see docs/toolkit.md);
        - 'triangle': max(0, 1 - d / s);
        - 'none': no neighbourhood (EMA-VQ / k-means);
        - a callable ``f(d, s)`` on arrays of grid distances.
    sigma : float, default=None
        Starting width: half the largest grid side for 'gaussian',
        'bubble' and 'triangle', 10 for 'exponential', 1 for 'hard'.
    sigma_end : float, default=None
        Final width of the 'exponential' and 'linear' schedules; default
        1/3 for 'gaussian' (MiniSom's end width: adjacent codes keep a
        weight of 0.011), 7/6 for 'triangle', 0.01 for 'hard', 0.5 for the
        others.  With the Gaussian's former 0.5 (weight 0.14) ``fit`` ends
        on a map twice as well ordered but up to 2.5 % above MiniSom's
        quantisation error (benchmarks/fit_defaults.md).
    schedule : {{'exponential', 'linear', 'inverse'}} or callable, default='exponential'
        How the width shrinks with the update step t: geometric or linear
        from ``sigma`` to ``sigma_end`` over ``schedule_steps`` steps, or
        the paper's open-ended ``sigma / (1 + shrink * t)``.  A callable
        gets ``(t, n_steps, sigma, sigma_end, shrink)``.
    shrink : float, default=0.1
        The paper's shrink speed tau of the 'inverse' schedule.
    schedule_steps : int, default=None
        Steps over which the 'exponential' and 'linear' schedules run:
        the whole run in ``fit`` (``max_iter`` iterations, or the steps of
        ``max_iter`` epochs; a later ``partial_fit`` continues from where
        the fit ended), 1000 steps for ``partial_fit`` from scratch.  Set
        below the run's length, ``fit`` goes on at the end width until
        ``tol`` or ``max_iter`` stops it.  For a stream, give its length in
        ``partial_fit`` calls: a shorter stream than the 1000 steps assumed
        ends with the neighbourhood still wide (one pass of 59 batches over
        Fashion-MNIST PCA-64 ends at 1.79x the test QE of the same pass told
        its length; docs/design.md section 5).
    init : {{'pca', 'random', 'sample', 'k-means++'}} or array of shape (K, D), default='pca'
        Starting codebook; 'pca' lays the grid on the plane of the first
        principal components.
    algorithm : {{'batch', 'ema'}}, default='batch'
        How ``fit`` trains: Kohonen's batch algorithm (on growing random
        subsamples, see ``subsample``), or mini-batch EMA epochs.  ``partial_fit`` always takes
        one EMA step.
    max_iter : int, default=12
        Most iterations ('batch') or epochs ('ema') of ``fit``; the width
        schedule spans them unless ``schedule_steps`` is set, so by default
        the run ends with the schedule.  0 takes the ``init`` codebook as it
        is (e.g. one trained elsewhere) with EMA statistics consistent with
        it, for ``partial_fit`` to continue.  12 coarse-to-fine iterations
        (``subsample``) reach MiniSom's held-out one-pass quantisation
        error (0.980-0.992 times it) with half its topographic error
        (0.22-0.26 against 0.43-0.58), 24-36 times faster, on Fashion-MNIST
        and MNIST with a 16 x 16 map (benchmarks/fit_defaults.md); going on
        at the end width until the error settles lowers the quantisation
        error by 2 % but raises the topographic error to 0.36-0.41.
    {_FIT_PARAMETERS_DOC}
    subsample : int or None, default=4096
        Coarse to fine: iteration i of the batch algorithm's m-iteration
        width schedule sees a fresh random subsample of N / 2^(m-1-i)
        rows, never fewer than ``subsample`` (the wide-neighbourhood
        iterations need only a sketch of the data), and the schedule's last
        iteration and any after it see all rows.  Under 2.5 passes over
        60 000 rows for 12 iterations, where all rows cost 12 passes for
        the same map.  None: every iteration on all rows.  Rows are drawn
        from ``random_state``; a Dask fit ignores it (all rows).
    {_EMA_PARAMETERS_DOC}

    Attributes
    ----------
    cluster_centers_ : array of shape (K, D)
        The codebook, code k at grid position ``grid_.indices[k]``.
    grid_ : Grid
        The map's geometry.
    counts_, sums_ : arrays of shape (K,) and (K, D)
        EMA statistics N_k and M; ``counts_`` per code and feature,
        (K, D), once training has seen missing values (``max_missing``).
    labels_ : array of shape (n_samples,)
        Nearest code of each training sample (of the last batch for
        ``partial_fit``).
    inertia_ : float
        Sum of squared distances of the training samples to their codes.
    n_iter_, n_steps_ : int
        Iterations or epochs run by ``fit`` (``max_iter``, or fewer when
        ``tol`` stopped it); codebook updates so far.
    decay_ : float
        The EMA decay of ``partial_fit``'s steps (``decay``, resolved for
        'auto').
    neighbourhood_schedule_ : NeighbourhoodSchedule
        Grid, kernel, widths and schedule of the updates: P(t) at update
        step t is ``neighbourhood_schedule_.at(t)``.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_ksom import KohonenQuantizer
    >>> X = load_digits().data
    >>> som = KohonenQuantizer(grid_shape=(8, 8), random_state=0).fit(X)
    >>> som.project(X[:2]).shape
    (2, 2)
    >>> round(som.topographic_error(X), 1) < 0.5
    True
    """

    _parameter_constraints: dict = {
        **_BaseQuantizer._parameter_constraints,
        "grid_shape": ["array-like", Interval(Integral, 1, None, closed="left")],
        "hexagonal": ["boolean"],
        "toroidal": ["boolean"],
        **{name: SCHEDULE_CONSTRAINTS[field] for name, field in SCHEDULE_PARAMETERS.items()},
    }

    def __init__(
        self,
        grid_shape=(10, 10),
        *,
        hexagonal=False,
        toroidal=False,
        neighbourhood="gaussian",
        sigma=None,
        sigma_end=None,
        schedule="exponential",
        shrink=0.1,
        schedule_steps=None,
        init="pca",
        algorithm="batch",
        max_iter=12,
        tol=1e-4,
        batch_size=1024,
        init_size=None,
        subsample=4096,
        decay="auto",
        epsilon=1e-5,
        initial_count=1.0,
        update="all",
        metric="euclidean",
        max_missing=0.0,
        random_state=None,
    ):
        self.grid_shape = grid_shape
        self.hexagonal = hexagonal
        self.toroidal = toroidal
        self.neighbourhood = neighbourhood
        self.sigma = sigma
        self.sigma_end = sigma_end
        self.schedule = schedule
        self.shrink = shrink
        self.schedule_steps = schedule_steps
        self.init = init
        self.algorithm = algorithm
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.init_size = init_size
        self.subsample = subsample
        self.decay = decay
        self.epsilon = epsilon
        self.initial_count = initial_count
        self.update = update
        self.metric = metric
        self.max_missing = max_missing
        self.random_state = random_state

    _grid_parameters = ("grid_shape", "hexagonal", "toroidal")

    def _schedule_from_params(self):
        return NeighbourhoodSchedule.from_parameters(
            Grid(tuple(np.atleast_1d(self.grid_shape)), self.hexagonal, self.toroidal),
            caller=type(self).__name__,
            **{name: getattr(self, name) for name in SCHEDULE_PARAMETERS},
        )

    def _set_fitted(self, state, schedule, ema, rng):
        super()._set_fitted(state, schedule, ema, rng)
        self.grid_ = schedule.grid

    def project(self, X):
        """Grid index of each sample's nearest code, shape (n_samples, n_axes).

        The SOM projection: where on the map each sample lands.
        """
        labels = self.predict(X)
        xp = namespace(labels)
        indices = move_to(xp, self.grid_.indices, device=device_of(labels))
        return xp.take(indices, labels, axis=0)

    def codebook_grid(self):
        """The codebook reshaped to the grid, shape (*grid_shape, n_features)."""
        check_is_fitted(self)
        xp = namespace(self.cluster_centers_)
        return xp.reshape(self.cluster_centers_, (*self.grid_.shape, -1))

    def topographic_error(self, X):
        """Share of samples whose two nearest codes are not grid neighbours."""
        X, missing = self._checked(X, "topographic_error")
        return metrics.topographic_error(X, self.cluster_centers_, self.grid_, metric=self._metric, missing=missing)

    # ------------------------------------------------- analysing the map

    def cluster_codes(self, n_clusters, linkage="ward"):
        """Region of each code: connected patches of the map, shape (n_codes,).

        Agglomerative clustering of the codebook allowed to merge only
        regions that touch on the grid; ``regions[som.predict(X)]`` gives
        each sample's region.  See :func:`sklearn_ksom.analysis.cluster_codes`.
        """
        check_is_fitted(self)
        return analysis.cluster_codes(self.cluster_centers_, self.grid_, n_clusters, linkage=linkage)
