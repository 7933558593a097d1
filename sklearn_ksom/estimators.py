"""scikit-learn estimators: :class:`KohonenQuantizer` and :class:`EMAQuantizer`.

Both are thin shells over :mod:`sklearn_ksom.core`: they validate input, own
the fitted state (codebook, EMA counts and sums, step counter, RNG) and call
the core's pure functions.  ``EMAQuantizer`` is the same engine with no
neighbourhood (P = I), so it is exactly EMA-VQ.
"""

from __future__ import annotations

import functools
import math
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
    EMAState,
    assign,
    assignment_statistics,
    batch_som_update,
    ema_step,
    initial_state,
    squared_distances,
)
from .initialisation import INITIALISERS
from .topology import KERNELS, NEIGHBOURHOODS, SCHEDULES, Grid, Neighbourhood, neighbourhood, width_at

# partial_fit does not know how long the stream is: the exponential and
# linear schedules then reach their end width after this many steps (the
# paper's Gaussian neighbourhood fades within about 1000 steps, SPEC 1).
DEFAULT_STREAM_STEPS = 1000


def _keeps_state_on_error(method):
    """Run ``method``; if it raises, put every attribute back as it was.

    Bad input must lose nothing: a failed fit or partial_fit leaves the
    estimator exactly as before the call (the RNG included).
    """

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        saved = dict(self.__dict__)
        rng = saved.get("_random_state")
        # The RNG is the one attribute that can change in place, and only if
        # this call draws from it: fit and a first partial_fit draw from
        # check_random_state(random_state), which is the kept RNG itself only
        # when random_state is shared (an instance, or None: NumPy's global
        # one).  A seed's private RNG is replaced, never advanced, so its
        # state (60 us to read) is not copied on every partial_fit.
        shared = rng is not None and rng is (np.random.mtrand._rand if self.random_state is None else self.random_state)
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


class _BaseQuantizer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """Shared fit / partial_fit / predict machinery of both estimators."""

    _parameter_constraints: dict = {
        "init": [StrOptions(set(INITIALISERS)), "array-like"],
        "algorithm": [StrOptions({"batch", "ema"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "decay": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "initial_count": [Interval(Real, 0, None, closed="left")],
        "update": [StrOptions({"all", "active"})],
        "random_state": ["random_state"],
    }

    # ------------------------------------------------------------ hooks

    def _codebook_size(self) -> int:
        raise NotImplementedError

    def _grid(self) -> Grid:
        raise NotImplementedError

    def _neighbourhood_at(self, step, n_steps, xp, dtype, device) -> Neighbourhood:
        return Neighbourhood()

    def _check_params(self, X):
        """Checks that need the data or several parameters at once."""

    # -------------------------------------------------------- validation

    def _validate(self, X, *, reset: bool):
        if not reset and self._passes_unchanged(X):
            return X
        # scikit-learn's namespace: the input's under array_api_dispatch,
        # NumPy (the input converted) otherwise.
        xp, _ = get_namespace(X)
        X = validate_data(
            self,
            X,
            reset=reset,
            accept_sparse=False,
            dtype=[xp.float64, xp.float32] if reset else None,
            ensure_min_samples=1,
        )
        if not reset:
            X = namespace(X).astype(X, self.cluster_centers_.dtype, copy=False)
        return X

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

    def _initial_codebook(self, X, rng, sample_weight):
        if isinstance(self.init, str):
            return INITIALISERS[self.init](X, self._codebook_size(), rng, sample_weight, self._grid())
        return self._given_codebook(namespace(X), X.shape[1], X.dtype, device_of(X))

    def _given_codebook(self, xp, n_features, dtype, device):
        """A copy of the ``init`` array, checked and moved to ``xp``."""
        n_codes = self._codebook_size()
        init = move_to(xp, np.asarray(self.init) if isinstance(self.init, list) else self.init, dtype=dtype, device=device)
        if tuple(init.shape) != (n_codes, n_features):
            raise ValueError(
                f"init array has shape {tuple(init.shape)}; expected (n_codes, n_features) = "
                f"({n_codes}, {n_features})."
            )
        return xp.asarray(init, copy=True)

    def _schedule_length(self, default):
        steps = getattr(self, "schedule_steps", None)
        return default if steps is None else steps

    # ------------------------------------------------------------ fitting

    @_keeps_state_on_error
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Learn the codebook from ``X`` (n_samples, n_features).

        ``algorithm='batch'`` runs ``max_iter`` iterations of the batch
        algorithm over all data (Lloyd's k-means when there is no
        neighbourhood); ``algorithm='ema'`` runs ``max_iter`` epochs of
        mini-batch EMA steps in shuffled order.  The neighbourhood schedule
        spans the whole run.

        ``X`` may be a Dask array: the statistics of every iteration are
        then computed on the workers, chunk by chunk, and only K-sized sums
        return (see :mod:`sklearn_ksom._dask` for what each ``init`` and
        ``algorithm`` does there).
        """
        if is_dask_array(X):
            from . import _dask  # dask is an optional extra

            return _dask.fit(self, X, sample_weight)
        X = self._validate(X, reset=True)
        xp = namespace(X)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        self._check_params(X)
        rng = check_random_state(self.random_state)
        codebook = self._initial_codebook(X, rng, sample_weight)
        state = initial_state(codebook, float(self.initial_count))
        device = device_of(X)
        n_samples = X.shape[0]

        if self.algorithm == "batch":
            latest = [None]

            def statistics(codebook):
                # The last call is on the final codebook: its assignment
                # gives labels_, with no extra pass over the data.
                latest[0] = assign(X, codebook)
                return assignment_statistics(X, latest[0], codebook.shape[0], sample_weight)

            state, error = self._batch_iterations(codebook, statistics, float(xp.sum(sample_weight)))
            labels = latest[0].first
            n_updates = self.max_iter
        else:
            batches_per_epoch = math.ceil(n_samples / self.batch_size)
            n_steps = self._schedule_length(self.max_iter * batches_per_epoch)
            step = 0
            for _ in range(self.max_iter):
                order = move_to(xp, rng.permutation(n_samples), device=device)
                state = self._ema_steps(state, X, sample_weight, order, step, n_steps)
                step += batches_per_epoch
            n_updates = step
            assignment = assign(X, state.codebook)
            labels = assignment.first
            error = xp.sum(assignment.squared_distance * sample_weight)

        return self._set_fitted(state, labels, float(error), n_updates, rng)

    def _set_fitted(self, state, labels, inertia, n_updates, rng):
        # fit's last neighbourhood is not partial_fit's next: let it go.
        self.__dict__.pop("_last_neighbourhood", None)
        self._store(state)
        self.labels_ = labels
        self.inertia_ = inertia
        self.n_iter_ = self.max_iter
        self.n_steps_ = n_updates
        self._random_state = rng
        return self

    def _batch_iterations(self, codebook, statistics, total_weight):
        """Kohonen's batch algorithm, ``max_iter`` iterations from ``codebook``.

        ``statistics(codebook)`` returns the whole data's (counts, sums,
        squared error), however it is computed (in memory, or reduced over
        a cluster's chunks).  Returns the final EMA state and the squared
        error of the data on the final codebook.
        """
        xp = namespace(codebook)
        dtype, device = codebook.dtype, device_of(codebook)
        n_steps = self._schedule_length(self.max_iter)
        for iteration in range(self.max_iter):
            counts, sums, _ = statistics(codebook)
            P = self._neighbourhood_at(iteration, n_steps, xp, dtype, device)
            codebook = batch_som_update(codebook, counts, sums, P)
        # Leave EMA statistics consistent with the result, in per-batch
        # units, so partial_fit can continue from a batch fit.
        counts, _, error = statistics(codebook)
        counts = counts * (min(self.batch_size, total_weight) / total_weight)
        return EMAState(codebook, counts, xp.reshape(counts, (-1, 1)) * codebook), error

    def _ema_steps(self, state, X, sample_weight, order, step, n_steps):
        """EMA steps over the rows of ``X`` in ``order``, ``batch_size`` rows
        a step, the first being update step ``step`` of ``n_steps``."""
        xp = namespace(X)
        for start in range(0, order.shape[0], self.batch_size):
            rows = order[start : min(start + self.batch_size, order.shape[0])]
            state, _ = ema_step(
                state,
                xp.take(X, rows, axis=0),
                self._neighbourhood_at(step, n_steps, xp, X.dtype, device_of(X)),
                decay=self.decay,
                epsilon=self.epsilon,
                update_all=self.update == "all",
                sample_weight=None if sample_weight is None else xp.take(sample_weight, rows, axis=0),
            )
            step += 1
        return state

    @_keeps_state_on_error
    def partial_fit(self, X, y=None, sample_weight=None):
        """One EMA (KSOM) step on the batch ``X``.

        The first call initialises the codebook from this batch; later calls
        continue the step counter, the RNG and the neighbourhood schedule
        (which then reaches its end after ``schedule_steps`` steps, 1000 if
        unset).  ``labels_`` and ``inertia_`` describe this batch's
        assignment, made before the update.
        """
        if not hasattr(self, "cluster_centers_"):
            return self._first_partial_fit(X, sample_weight)
        # Later calls skip scikit-learn's fit context: on a fitted estimator
        # it would only skip the parameter validation again, at a cost of
        # 3 % of a training step.  As in scikit-learn (MiniBatchKMeans),
        # parameters are validated on the first call only; validating them
        # on every call would cost 70 us, 10 % of a step at the SPEC shape.
        return self._partial_fit(X, sample_weight, first_call=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def _first_partial_fit(self, X, sample_weight):
        return self._partial_fit(X, sample_weight, first_call=True)

    def _partial_fit(self, X, sample_weight, *, first_call):
        X = self._validate(X, reset=first_call)
        xp = namespace(X)
        if sample_weight is not None or first_call:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        if first_call:
            self._check_params(X)
            self._random_state = check_random_state(self.random_state)
            codebook = self._initial_codebook(X, self._random_state, sample_weight)
            state = initial_state(codebook, float(self.initial_count))
            step = 0
        else:
            state = EMAState(self.cluster_centers_, self.counts_, self.sums_)
            step = self.n_steps_
        P = self._neighbourhood_at(
            step, self._schedule_length(DEFAULT_STREAM_STEPS), xp, X.dtype, device_of(X)
        )
        state, assignment = ema_step(
            state,
            X,
            P,
            decay=self.decay,
            epsilon=self.epsilon,
            update_all=self.update == "all",
            sample_weight=sample_weight,
        )
        self._store(state)
        self.labels_ = assignment.first
        error = assignment.squared_distance
        self.inertia_ = float(xp.sum(error if sample_weight is None else error * sample_weight))
        self.n_steps_ = step + 1
        self.n_iter_ = getattr(self, "n_iter_", 0) if not first_call else 0
        return self

    def _store(self, state: EMAState):
        self.cluster_centers_ = state.codebook
        self.counts_ = state.counts
        self.sums_ = state.sums
        self._n_features_out = state.codebook.shape[0]

    # --------------------------------------------------------- inference

    def _checked(self, X, method):
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
        return assign(self._checked(X, "predict"), self.cluster_centers_).first

    def transform(self, X):
        """Euclidean distance to every code, shape (n_samples, n_codes).

        A Dask array gives a lazy Dask array, computed chunk by chunk.
        """
        if is_dask_array(X):
            from . import _dask

            return _dask.transform(self, X)
        X = self._checked(X, "transform")
        return namespace(X).sqrt(squared_distances(X, self.cluster_centers_))

    def quantize(self, X):
        """Each sample replaced by its nearest code, shape (n_samples, n_features)."""
        X = self._checked(X, "quantize")
        xp = namespace(X)
        return xp.take(self.cluster_centers_, assign(X, self.cluster_centers_).first, axis=0)

    def score(self, X, y=None, sample_weight=None):
        """Negative mean squared quantisation error of ``X`` (higher is better)."""
        X = self._checked(X, "score")
        xp = namespace(X)
        error = assign(X, self.cluster_centers_).squared_distance
        if sample_weight is None:
            return -float(xp.mean(error))
        sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        return -float(xp.sum(error * sample_weight) / xp.sum(sample_weight))

    def quantization_error(self, X):
        """Mean Euclidean distance from each sample to its nearest code (as MiniSom)."""
        return metrics.quantization_error(self._checked(X, "quantization_error"), self.cluster_centers_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        tags.input_tags.sparse = False
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


_EMA_PARAMETERS_DOC = """
    decay : float, default=0.99
        EMA decay gamma of the counts and sums (SPEC section 1).
    epsilon : float, default=1e-5
        Laplace smoothing constant of the counts.
    initial_count : float, default=1.0
        Initial EMA count N0 of every code (the paper's ablation: 0 is what
        most EMA-VQ code does and lets codes die; 1 is robust).
    update : {'all', 'active'}, default='all'
        'all' decays every code's statistics each step and applies Laplace
        smoothing (the reference form); 'active' changes only the codes
        assigned in the batch, without smoothing (the paper's ablation).
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
    max_iter : int, default=20
        Epochs ('ema') or iterations ('batch') of ``fit``.
    batch_size : int, default=1024
        Mini-batch size of ``fit`` with ``algorithm='ema'``.
    {_EMA_PARAMETERS_DOC}

    Attributes
    ----------
    cluster_centers_ : array of shape (K, D)
        The codebook.
    counts_ : array of shape (K,)
        EMA cluster sizes N_k.
    sums_ : array of shape (K, D)
        EMA sums M.
    labels_ : array of shape (n_samples,)
        Nearest code of each training sample (of the last batch for
        ``partial_fit``).
    inertia_ : float
        Sum of squared distances of the training samples to their codes.
    n_iter_ : int
        Epochs or iterations run by ``fit``.
    n_steps_ : int
        Codebook updates made so far.

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
        max_iter=20,
        batch_size=1024,
        decay=0.99,
        epsilon=1e-5,
        initial_count=1.0,
        update="all",
        random_state=None,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.algorithm = algorithm
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.decay = decay
        self.epsilon = epsilon
        self.initial_count = initial_count
        self.update = update
        self.random_state = random_state

    def _codebook_size(self):
        return self.n_clusters

    def _grid(self):
        return Grid((self.n_clusters,))


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
        - 'hard': the paper's hard neighbourhood, weight s on codes with
          d < 1.5 (``sigma=1`` and ``schedule='inverse'`` give
          1 / (1 + tau t));
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
        0.5 (0.01 for 'hard', 7/6 for 'triangle'), where adjacent codes keep a weight of about
        0.14: nearly k-means' quantisation error on a still-ordered map.
    schedule : {{'exponential', 'linear', 'inverse'}} or callable, default='exponential'
        How the width shrinks with the update step t: geometric or linear
        from ``sigma`` to ``sigma_end`` over ``schedule_steps`` steps, or
        the paper's open-ended ``sigma / (1 + shrink * t)``.  A callable
        gets ``(t, n_steps, sigma, sigma_end, shrink)``.
    shrink : float, default=0.1
        The paper's shrink speed tau of the 'inverse' schedule.
    schedule_steps : int, default=None
        Steps over which the 'exponential' and 'linear' schedules run:
        the whole run in ``fit``, 1000 steps for ``partial_fit``.
    init : {{'pca', 'random', 'sample', 'k-means++'}} or array of shape (K, D), default='pca'
        Starting codebook; 'pca' lays the grid on the plane of the first
        principal components.
    algorithm : {{'batch', 'ema'}}, default='batch'
        How ``fit`` trains: Kohonen's batch algorithm over all data each
        iteration, or mini-batch EMA epochs.  ``partial_fit`` always takes
        one EMA step.
    max_iter : int, default=20
        Iterations ('batch') or epochs ('ema') of ``fit``.
    batch_size : int, default=1024
        Mini-batch size of ``fit`` with ``algorithm='ema'``.
    {_EMA_PARAMETERS_DOC}

    Attributes
    ----------
    cluster_centers_ : array of shape (K, D)
        The codebook, code k at grid position ``grid_.indices[k]``.
    grid_ : Grid
        The map's geometry.
    counts_, sums_ : arrays of shape (K,) and (K, D)
        EMA statistics N_k and M.
    labels_ : array of shape (n_samples,)
        Nearest code of each training sample (of the last batch for
        ``partial_fit``).
    inertia_ : float
        Sum of squared distances of the training samples to their codes.
    n_iter_, n_steps_ : int
        Iterations or epochs of ``fit``; codebook updates so far.

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
        "neighbourhood": [StrOptions(set(NEIGHBOURHOODS)), callable],
        "sigma": [Interval(Real, 0, None, closed="neither"), None],
        "sigma_end": [Interval(Real, 0, None, closed="neither"), None],
        "schedule": [StrOptions(set(SCHEDULES)), callable],
        "shrink": [Interval(Real, 0, None, closed="left")],
        "schedule_steps": [Interval(Integral, 1, None, closed="left"), None],
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
        max_iter=20,
        batch_size=1024,
        decay=0.99,
        epsilon=1e-5,
        initial_count=1.0,
        update="all",
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
        self.batch_size = batch_size
        self.decay = decay
        self.epsilon = epsilon
        self.initial_count = initial_count
        self.update = update
        self.random_state = random_state

    def _grid(self):
        return Grid(tuple(np.atleast_1d(self.grid_shape)), self.hexagonal, self.toroidal)

    def _codebook_size(self):
        return self._grid().n_codes

    def _check_params(self, X):
        self.grid_ = self._grid()

    def _widths(self):
        kernel = KERNELS.get(self.neighbourhood, KERNELS["gaussian"]) if isinstance(self.neighbourhood, str) else KERNELS["gaussian"]
        start = kernel.default_width(self.grid_) if self.sigma is None else float(self.sigma)
        end = min(kernel.default_end, start) if self.sigma_end is None else float(self.sigma_end)
        return start, end

    def _neighbourhood_at(self, step, n_steps, xp, dtype, device):
        start, end = self._widths()
        width = width_at(self.schedule, step, n_steps, start, end, self.shrink)
        # Once the schedule has reached its end width (a long stream), P
        # stays the same: keep the last one rather than rebuild it every
        # step (a dense K x K kernel costs K^2 exponentials).
        key = (self.grid_, self.neighbourhood, width, xp, dtype, device)
        memo = getattr(self, "_last_neighbourhood", None)
        if memo is not None and memo[0] == key:
            return memo[1]
        P = neighbourhood(self.grid_, self.neighbourhood, width, xp=xp, dtype=dtype, device=device)
        self._last_neighbourhood = (key, P)
        return P

    def __getstate__(self):
        # The memo holds a namespace module and is rebuilt on demand.
        state = super().__getstate__()
        state.pop("_last_neighbourhood", None)
        return state

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
        return metrics.topographic_error(self._checked(X, "topographic_error"), self.cluster_centers_, self.grid_)

    # ------------------------------------------------- analysing the map

    def cluster_codes(self, n_clusters, linkage="ward"):
        """Region of each code: connected patches of the map, shape (n_codes,).

        Agglomerative clustering of the codebook allowed to merge only
        regions that touch on the grid; ``regions[som.predict(X)]`` gives
        each sample's region.  See :func:`sklearn_ksom.analysis.cluster_codes`.
        """
        check_is_fitted(self)
        return analysis.cluster_codes(self.cluster_centers_, self.grid_, n_clusters, linkage=linkage)
