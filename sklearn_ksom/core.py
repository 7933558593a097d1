"""The quantiser engine: pure array-API functions, shared by every front end.

Everything that updates a codebook is here, once: the squared distances, the
best (and second-best) units, the per-code statistics of a batch, the EMA
step with Laplace smoothing, the batch-SOM step, and the two training loops
built on them (mini-batch EMA epochs and Kohonen's batch algorithm;
docs/design.md sections 2 and 6).  The scikit-learn estimators, the Dask
path and the PyTorch layers own state and call these functions; they never
repeat a formula.

Functions take arrays and return new arrays in the inputs' namespace and on
their device (NumPy, CuPy, torch, array_api_strict, ...); ``xp``, where a
function takes it, is keyword-only and defaults to the inputs' namespace.
The neighbourhood is applied to K-sized statistics only, through
:meth:`sklearn_ksom.topology.Neighbourhood.spread`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Callable, NamedTuple

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints

from ._array_api import count_labels, device_of, move_to, namespace, on_accelerator, scatter_add_rows, to_numpy
from .topology import Neighbourhood, NeighbourhoodSchedule

# Rows of X per distance block.  On the host a block's N x K distances stay
# near 2**20 entries (4 MiB in float32), so the argmin reads them from cache
# rather than memory (a full pass over 60 000 x 256 runs 25 % faster than
# with 64 MiB blocks); but never under MIN_BLOCK_ROWS rows, below which the
# GEMM loses its efficiency (for K = 65 536, 16-row blocks take twice as
# long).  A GPU wants few large launches: 2**24 entries (64 MiB).
HOST_BLOCK_ENTRIES = 2**20
ACCELERATOR_BLOCK_ENTRIES = 2**24
# Entries of the (rows, K, D) differences the exact fallback holds at once.
DIRECT_BLOCK_ENTRIES = 2**22
MIN_BLOCK_ROWS = 256


class EMAState(NamedTuple):
    """What an EMA / KSOM quantiser carries from step to step.

    codebook : (K, D) the codes W.
    counts : (K,) EMA cluster sizes N_k; (K, D), per code and feature, once
        a batch with missing values has been seen (docs/design.md section 14).
    sums : (K, D) EMA sums M.
    """

    codebook: object
    counts: object
    sums: object


class FitResult(NamedTuple):
    """What a training run (``fit``, in memory or on a cluster) produced."""

    state: EMAState  # final codebook and EMA statistics
    labels: object  # (N,) nearest code of each training sample, or None
    inertia: float  # sum of weighted squared distances on the final codebook
    n_steps: int  # update steps taken
    schedule: NeighbourhoodSchedule  # the schedule, spanning the run
    n_iter: int  # iterations (batch algorithm) or epochs (EMA) run: fewer than asked when converged


class Assignment(NamedTuple):
    """Best units of a batch and their squared distances."""

    first: object  # (N,) int, index of the nearest code
    # (N,) squared distance to it; under metric='cosine' the cosine distance
    # 1 - cos, which is half the squared distance of the unit vectors
    squared_distance: object
    second: object = None  # (N,) int, second-nearest code, when asked for


# decay='auto': an EMA memory of about a fifteenth of the run's update steps,
# chosen by benchmarks/streaming_memory.py (docs/design.md section 2).
AUTO_MEMORY_SHARE = 15.0


def auto_decay(n_steps: int) -> float:
    """The 'auto' EMA decay of a run of ``n_steps`` update steps.

    gamma = 1 - 15 / n_steps within [0.5, 0.99]: a memory of about
    n_steps / 15 steps, so the codebook forgets the wide early
    neighbourhoods as the width schedule ends (0.985 for the 1 000-step
    stream assumed when its length is not given; 0.99 from 1 500 steps).
    """
    return min(0.99, max(0.5, 1.0 - AUTO_MEMORY_SHARE / max(int(n_steps), 1)))


# What each EMA constant may be, declared once: the estimators take these
# constraints for their parameters of the same names.
EMA_CONSTRAINTS = {
    "decay": [Interval(Real, 0, 1, closed="left"), StrOptions({"auto"})],
    "epsilon": [Interval(Real, 0, None, closed="neither")],
    "initial_count": [Interval(Real, 0, None, closed="left")],
    "update": [StrOptions({"all", "active"})],
}


@dataclass(frozen=True)
class EMAConstants:
    """The constants of the EMA codebook update, validated once.

    Parameters
    ----------
    decay : float or 'auto', default=0.99
        EMA decay gamma of the counts and sums, in [0, 1); 'auto' takes
        :func:`auto_decay` of the run's length (:meth:`decay_over`).
    epsilon : float, default=1e-5
        Laplace smoothing constant, > 0.
    initial_count : float, default=1.0
        Starting count N0 of every code, >= 0.
    update : {'all', 'active'}, default='all'
        Every code's statistics decay each step (with smoothing), or only
        the codes assigned in the batch change (docs/design.md section 2).
    """

    decay: float | str = 0.99
    epsilon: float = 1e-5
    initial_count: float = 1.0
    update: str = "all"

    def __post_init__(self):
        validate_parameter_constraints(
            EMA_CONSTRAINTS,
            {name: getattr(self, name) for name in EMA_CONSTRAINTS},
            caller_name=type(self).__name__,
        )

    @property
    def update_all(self) -> bool:
        return self.update == "all"

    def decay_over(self, n_steps: int) -> float:
        """The decay of a run of ``n_steps`` update steps: ``decay``, or
        :func:`auto_decay` of ``n_steps`` when it is 'auto'."""
        return auto_decay(n_steps) if isinstance(self.decay, str) else float(self.decay)


def initial_state(codebook, initial_count: float) -> EMAState:
    """Reference initialisation (docs/design.md section 2): M = W (a copy), N_k = N0.

    M is W whatever N0 is, so with N0 = 0 a code that is never assigned
    ends with W = M / N_k ~ M / eps after smoothing: the dead code of the
    paper's ablation.
    """
    xp = namespace(codebook)
    counts = xp.full((codebook.shape[0],), initial_count, dtype=codebook.dtype, device=device_of(codebook))
    return EMAState(codebook, counts, xp.asarray(codebook, copy=True))


# ------------------------------------------------------------ metrics
# How samples and codes are compared (docs/design.md section 13).
# 'cosine' compares directions: rows of X and codes are scaled to unit
# length, the codebook stays on the unit sphere, and the distance is
# 1 - cos = ||u - w||^2 / 2 of the unit vectors u, w, so the squared
# Euclidean machinery below serves both metrics.  A zero row of X has no
# direction: it has cosine 0 with every code (scikit-learn's convention),
# so all codes tie at distance 1 and the tie rule gives code 0.
METRICS = ("euclidean", "cosine")
METRIC_CONSTRAINT = [StrOptions(set(METRICS))]


def check_metric(metric):
    """Raise a ``ValueError`` unless ``metric`` is one of :data:`METRICS`."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(map(repr, METRICS))}; got {metric!r}.")


def unit_rows(X, *, fill=None):
    """Every row of ``X`` divided by its Euclidean norm, (N, D).

    The norm is taken of the row scaled by its largest absolute entry, so
    rows of huge or subnormal values keep their direction (their squares
    would overflow or vanish).  A zero row has no direction: it stays zero,
    or becomes the row of ``fill`` at the same index.  Differentiable in
    torch, with finite gradients at zero rows too.
    """
    xp = namespace(X)
    largest = xp.max(xp.abs(X), axis=-1, keepdims=True)
    zero = largest == 0
    one = xp.ones_like(largest)
    scaled = X / xp.where(zero, one, largest)
    # The norm of a zero row is never taken: sqrt'(0) would make its
    # gradient NaN.
    unit = scaled / xp.sqrt(xp.where(zero, one, xp.sum(scaled * scaled, axis=-1, keepdims=True)))
    return unit if fill is None else xp.where(zero, fill, unit)


def unit_codes(codebook, metric: str = "cosine", name: str = "the codebook", advice: str = ""):
    """The codebook as ``metric`` compares it: itself ('euclidean'), or its
    codes scaled to unit length ('cosine').

    A zero code has no direction: a ``ValueError`` naming it (with
    ``advice``, what to do).  One host sync under 'cosine'.
    """
    check_metric(metric)
    if metric == "euclidean":
        return codebook
    xp = namespace(codebook)
    zero = xp.all(codebook == 0, axis=-1)
    if bool(xp.any(zero)):
        rows = np.flatnonzero(np.asarray(to_numpy(zero)))
        shown = ", ".join(str(int(i)) for i in rows[:5]) + (", ..." if rows.size > 5 else "")
        raise ValueError(
            f"{name} has {rows.size} code(s) of zeros (rows {shown}); metric='cosine' compares directions "
            f"and a zero vector has none. {advice or 'Pass codes of non-zero length.'}"
        )
    return unit_rows(codebook)


def normalised(X, metric: str):
    """``X`` as ``metric`` compares it: itself ('euclidean'), or its unit
    rows ('cosine'; zero rows stay zero, see above)."""
    check_metric(metric)
    return X if metric == "euclidean" else unit_rows(X)


def distances(X, codebook, *, metric: str = "euclidean", missing: bool = False):
    """Distance of every row of ``X`` to every code, (N, K).

    'euclidean': ||x - w||; 'cosine': 1 - cos(x, w), in [0, 2], with both
    sides normalised here (a zero row of ``X`` is at distance 1 from every
    code; a zero code is a ``ValueError``).  ``missing=True``: NaN entries
    are missing values (Euclidean only; :func:`squared_distances`).
    """
    check_gaps_metric(metric, missing)
    if metric == "euclidean":
        return namespace(X, codebook).sqrt(squared_distances(X, codebook, missing=missing))
    units = normalised(X, metric)
    return _cosine(squared_distances(units, unit_codes(codebook, metric)), _zero_rows(units))


def check_gaps_metric(metric, missing, *, subject: str = "missing values (NaN entries) need"):
    """Missing values take the Euclidean metric only: a row with unknown
    features has no known direction (docs/design.md section 14).  A
    ``ValueError`` opening with ``subject`` (what asks for the gaps)
    otherwise."""
    if missing and metric != "euclidean":
        raise ValueError(
            f"{subject} metric='euclidean', got metric={metric!r}: a row with missing features has no "
            "known direction to compare by cosine. Impute the gaps first (e.g. with MapImputer) or use "
            "the Euclidean metric."
        )


def _zero_rows(units):
    """Rows of zeros among unit rows, as (N, 1)."""
    xp = namespace(units)
    return xp.all(units == 0, axis=-1, keepdims=True)


def _cosine(squared_unit_distance, zero):
    """1 - cos from squared distances of unit rows to unit codes
    (``zero``: the rows of zeros, at distance 1)."""
    xp = namespace(squared_unit_distance)
    half = xp.clip(squared_unit_distance / 2, max=2)
    return xp.where(zero, xp.ones_like(half), half)


def squared_norms(X):
    """||x_i||^2 of every row, (N,)."""
    return namespace(X).vecdot(X, X, axis=-1)


def squared_distances(X, codebook, *, missing: bool = False):
    """||x_i - w_k||^2 for every sample and code, (N, K), by one GEMM.

    Computed relative to a point among the codes (see
    :func:`reference_point`), so data far from the origin lose nothing to
    cancellation; raises a ``ValueError`` when a distance overflows.

    ``missing=True``: NaN entries of ``X`` are missing values, and each
    distance is the sum over the row's observed features rescaled to the
    full dimension (:func:`masked_parts`; docs/design.md section 14).
    """
    xp = namespace(X, codebook)
    reference = reference_point(codebook)
    centred = X - reference
    with _overflow_checked():
        if missing:
            centred, mask = masked_parts(centred)
            distances = _masked_scores(centred, mask, _masked_augmented(codebook - reference, xp), xp)
        else:
            distances = _scores(centred, _augmented(codebook - reference, xp), xp)
        norms = squared_norms(centred)
        nearest = xp.min(distances, axis=1) + norms
        _check_underflow(norms, nearest, centred, xp)
        error = _rounding_error(norms, X.shape[1], xp)
        suspect = _candidates(error, nearest, DISTANCE_SHARE)
        imprecise = _imprecise(error, nearest, suspect, xp) if bool(xp.any(suspect)) else None
        distances += xp.reshape(norms, (-1, 1))
        if missing:
            distances = distances * xp.reshape(_rescaling(mask, xp), (-1, 1))
        if imprecise is not None:  # rows far from r next to their distances: by differences
            index = xp.nonzero(imprecise)[0]
            exact = _direct_squared_distances(xp.take(X, index, axis=0), codebook, xp, missing)
            distances = _merged(imprecise, index, exact, distances, xp)
    _check_finite(distances, xp)
    return xp.clip(distances, min=0)


def reference_point(codebook):
    """The point distances are computed from: a code near the codebook's middle, or 0, (D,).

    ||x||^2 - 2 x.w + ||w||^2 cancels catastrophically when x and w lie far
    from the origin next to their distance (float32 data at offset 1e4 lose
    every digit, and 93 % of the rows go to a wrong code).  Distances do not
    change when X and W move together, so both are taken relative to a
    point among the codes: the error then scales with the distances from
    that point, not from the origin.  Subtracting it costs O(N D) next to
    the GEMM's O(N D K).

    The point is the code nearest the codebook's mean, not the mean itself:
    one code far from the rest (a dead code of an EMA run without a count
    floor) drags the mean off the data by 1/K of its distance, but the code
    nearest the dragged mean is still one of the others.  Being a code, the
    point keeps data on the codes' grid (integers, pixel levels) exact when
    shifted, so ties between equidistant codes break as in a brute-force
    search.  It is 0 when the origin lies no farther from that code than the
    next code nearest the mean does (data around the origin): then nothing
    is shifted, and on the host the pass over X is skipped.  Cost: the mean
    (one matrix-vector product) and one pass over the K x D codebook, on
    every streaming step (docs/design.md section 11).
    """
    xp = namespace(codebook)
    n_codes = codebook.shape[0]
    ones = xp.ones((1, n_codes), dtype=codebook.dtype, device=device_of(codebook))
    with _overflow_checked():
        mean = xp.matmul(ones, codebook) / n_codes
        # The two codes nearest the mean: the point, and the scale around it.
        two = xp.take(codebook, xp.argsort(squared_norms(codebook - mean), stable=False)[:2], axis=0)
        point = two[0, ...]
        near_origin = squared_norms(point) <= squared_norms(two[-1, ...] - point)
    return xp.where(near_origin, 0.0, point)


def _shifts(reference, X, xp) -> bool:
    """Whether data are taken relative to ``reference``: on an accelerator
    always (the test would cost a device sync), on the host unless the
    reference is 0 (data around the origin skip the pass over X)."""
    return on_accelerator(X) or bool(xp.any(reference))


def _overflow_checked():
    """NumPy's overflow warnings in a distance computation, silenced: the
    one clear error of :func:`_check_finite` replaces them."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


def _check_finite(squared, xp):
    """Refuse squared distances that overflowed (or are NaN: a NaN codebook)."""
    # The sum first: one pass where all is well (as scikit-learn's test).
    if not bool(xp.isfinite(xp.sum(squared))) and not bool(xp.all(xp.isfinite(squared))):
        limit = float(xp.finfo(squared.dtype).max) ** 0.5
        raise ValueError(
            f"Squared distances overflow {squared.dtype} (or are NaN): some samples lie about "
            f"{limit:.0e} or more from the codes, or the samples or the codebook hold NaN or "
            "infinity. Rescale X (e.g. with StandardScaler) or pass float64 data."
        )


def _check_underflow(norms, distance, shifted, xp):
    """Refuse data whose squares underflow: every row's squared distance to
    the reference point (``norms``) and to its nearest code (``distance``)
    below the smallest normal number over eps, while not every row sits on
    the point (``shifted`` = X - r not all 0).  Distances there round to 0
    or lose their digits (float32 data and codes around 1e-16 and
    smaller).  One reduction over the N norms where all is well."""
    info = xp.finfo(norms.dtype)
    limit = float(info.smallest_normal) / float(info.eps)
    if bool(xp.max(norms) < limit) and bool(xp.max(distance) < limit) and bool(xp.any(shifted != 0)):
        limit = limit**0.5
        raise ValueError(
            f"Squared distances underflow {norms.dtype}: the samples lie within about {limit:.0e} of the codes "
            "and of one another, so their squares fall below the smallest normal number and distances lose "
            "their digits. Rescale X (e.g. with StandardScaler) or pass float64 data."
        )


def _augmented(codebook, xp):
    """[-2 W, ||w||^2], (K, D + 1): the codebook side of :func:`_scores`.

    The factor -2 goes on the small codebook (exact: a power of two).
    Callers pass the codebook relative to its :func:`reference_point`.
    """
    return xp.concat([-2 * codebook, xp.reshape(squared_norms(codebook), (-1, 1))], axis=1)


def _scores(X, augmented_codebook, xp):
    """||w_k||^2 - 2 x_i.w_k, (N, K): the distances up to the per-row ||x_i||^2.

    X gains a column of ones against the codebook's column of norms, so the
    one GEMM adds the norms too: its output is the only pass over N x K.
    ``X`` and the codebook are both relative to the same reference point.
    """
    ones = xp.ones((X.shape[0], 1), dtype=X.dtype, device=device_of(X))
    return xp.matmul(xp.concat([X, ones], axis=1), xp.matrix_transpose(augmented_codebook))


# ------------------------------------------------------------ missing values


def masked_parts(X):
    """``X`` zero-filled where missing (NaN) and its observation mask M, as
    numbers of ``X``'s dtype (1 observed, 0 missing).

    The two operands of the masked distance (docs/design.md section 14):
    sum over observed d of (x_d - w_d)^2
    = rowsum(M X^2) - 2 X W^T + M (W W)^T, with X zero-filled.
    """
    xp = namespace(X)
    observed = ~xp.isnan(X)
    return xp.where(observed, X, 0.0), xp.astype(observed, X.dtype)


def _masked_augmented(codebook, xp):
    """[-2 W, W W], (K, 2D): the codebook side of :func:`_masked_scores`."""
    return xp.concat([-2 * codebook, codebook * codebook], axis=1)


def _masked_scores(filled, mask, augmented_codebook, xp):
    """-2 x.w + sum over observed d of w_d^2, (N, K): the masked distances up
    to the per-row rowsum(M X^2) and rescaling; [X, M] [-2W, W W]^T, one GEMM."""
    return xp.matmul(xp.concat([filled, mask], axis=1), xp.matrix_transpose(augmented_codebook))


def _rescaling(mask, xp):
    """D / (observed features) of each row, (N,): a distance over the
    observed features rescaled to the full dimension."""
    return mask.shape[1] / xp.sum(mask, axis=1)


def check_missing(X, max_missing: float, *, first_row: int = 0) -> bool:
    """Whether ``X`` holds missing values (NaN), refusing rows with too many.

    A row whose share of missing features exceeds ``max_missing`` (an
    all-missing row always does: ``max_missing`` < 1) raises a
    ``ValueError`` naming the first few such rows, counted from
    ``first_row`` (for a chunk of a larger array).  One pass over ``X``.
    """
    xp = namespace(X)
    n_missing = xp.count_nonzero(xp.isnan(X), axis=1)
    if not bool(xp.any(n_missing)):
        return False
    refused = n_missing > allowed_missing(X.shape[1], max_missing)
    if bool(xp.any(refused)):
        rows = xp.nonzero(refused)[0]
        first_rows = [first_row + int(rows[i]) for i in range(min(rows.shape[0], 5))]
        empty = int(xp.count_nonzero(n_missing == X.shape[1]))
        raise too_many_missing(first_rows, rows.shape[0], empty, X.shape[1], max_missing)
    return True


def allowed_missing(n_features: int, max_missing: float) -> int:
    """The most missing features a row may have: the largest n with
    n / n_features <= max_missing (the share as a Python float)."""
    allowed = min(int(max_missing * n_features), n_features)
    while allowed < n_features and (allowed + 1) / n_features <= max_missing:
        allowed += 1
    while allowed > 0 and allowed / n_features > max_missing:
        allowed -= 1
    return allowed


def too_many_missing(first_rows, n_refused: int, n_empty: int, n_features: int, max_missing: float):
    """The error refusing ``n_refused`` rows with too many missing values, the
    first of them ``first_rows``; ``n_empty`` of them have none observed."""
    return ValueError(
        f"X has {n_refused} row(s) with more than max_missing={max_missing} of their "
        f"{n_features} features missing (NaN), {n_empty} of them with none observed; rows "
        f"{list(first_rows)}{' and more' if n_refused > len(first_rows) else ''}. Drop those rows, or "
        f"raise max_missing (below 1; a row needs at least one observed feature)."
    )


# The GEMM's distances err by at most about 4 (D + 2) eps ||x - r||^2 (a dot
# product of n terms errs by at most about n eps times the sum of the terms'
# sizes, and those of ||w||^2 - 2 x.w, taken from the reference point r with
# the winner near x, sum to about 4 ||x - r||^2; docs/design.md section 11).
# A row within WINNER_SHARE times that error of its winner whose runner-up is
# within the error (a near tie, or a row far from r) is assigned again by
# differences (O(K D)); a row whose error exceeds 1/DISTANCE_SHARE of its
# distance and of a floor (:func:`_imprecise`) has its distances computed
# again by differences (O(D) to the winner; O(K D) a row of a full matrix).
DISTANCE_SHARE = 2**8
WINNER_SHARE = 2**4


def _rounding_error(norms, n_features: int, xp):
    """The worst-case rounding error of a row's scores, (N,), from its
    squared distances to the reference point ``norms``."""
    return norms * (4 * (n_features + 2) * float(xp.finfo(norms.dtype).eps))


def _assign_block(X, augmented_codebook, second: bool, xp, missing: bool = False):
    """The assignment of one block of rows, the rows whose winner the
    rounding may have changed (:func:`_doubtful`) and those whose distance
    it may have spoilt (:func:`_imprecise`): (N,) booleans, or None."""
    # X is relative to the reference point, like the augmented codebook.
    # argmin over ||w||^2 - 2 x.w: ||x||^2 does not change the winner (nor,
    # with missing values, the row's positive rescaling factor).
    if missing:
        X, mask = masked_parts(X)
        scores = _masked_scores(X, mask, augmented_codebook, xp)
    else:
        scores = _scores(X, augmented_codebook, xp)
    first = xp.argmin(scores, axis=1)
    # The winner's score read back: a gather, not a second pass over N x K.
    best = xp.reshape(xp.take_along_axis(scores, xp.reshape(first, (-1, 1)), axis=1), (-1,))
    norms = squared_norms(X)
    distance = best + norms
    _check_underflow(norms, distance, X, xp)
    doubtful = imprecise = None
    error = _rounding_error(norms, X.shape[1], xp)
    suspect = _candidates(error, distance, DISTANCE_SHARE)
    # One test in the common case: no row close to a code or far from r.
    if bool(xp.any(suspect)):
        doubtful = _doubtful(error, distance, best, scores, xp)
        imprecise = _imprecise(error, distance, suspect, xp)
    squared_distance = xp.clip(distance, min=0)
    if missing:
        squared_distance = squared_distance * _rescaling(mask, xp)
    runner_up = xp.argmin(_without_winner(scores, first, xp), axis=1) if second else None
    return Assignment(first, squared_distance, runner_up), doubtful, imprecise


def _imprecise(error, distance, suspect, xp):
    """Rows whose squared ``distance`` the rounding ``error`` may have
    spoilt: (N,) booleans, or None where there are none.

    ``suspect``: the rows whose error exceeds 1/DISTANCE_SHARE of their
    distance (:func:`_candidates`).  Of those, a row is imprecise when its
    error also exceeds 1/DISTANCE_SHARE of the floor: the other rows' share
    of the block's mean distance.  Every distance is then within 1/DISTANCE_SHARE of the
    larger of itself and the mean distance, and their sum (inertia, QE)
    within 2/DISTANCE_SHARE of exact; a row close to its code is not
    recomputed for a relative error that no sum can see.
    """
    floor = xp.sum(xp.where(suspect, xp.zeros_like(distance), distance)) / distance.shape[0]
    imprecise = suspect & (error * DISTANCE_SHARE > floor)
    return imprecise if bool(xp.any(imprecise)) else None


def _winner_distances(X, codebook, rows, assignment: Assignment, xp, missing: bool) -> Assignment:
    """``assignment`` with the squared distance of its ``rows`` (N,) to their
    winners by differences: exact to rounding wherever X lies, O(D) a row.
    With ``missing``, over the observed features, rescaled to the full
    dimension."""
    index = xp.nonzero(rows)[0]
    samples = xp.take(X, index, axis=0)
    exact = _summed_squares(samples - xp.take(codebook, xp.take(assignment.first, index), axis=0), xp, missing)
    if missing:
        exact = exact * _rescaling(masked_parts(samples)[1], xp)
    return assignment._replace(squared_distance=_merged(rows, index, exact, assignment.squared_distance, xp))


def _without_winner(scores, first, xp):
    """``scores`` (N, K) with each row's entry ``first`` set to infinity."""
    codes = xp.reshape(xp.arange(scores.shape[1], device=device_of(scores)), (1, -1))
    return xp.where(codes == xp.reshape(first, (-1, 1)), xp.inf, scores)


def _candidates(error, distance, share):
    """Rows whose squared ``distance`` to the nearest code is below ``share``
    times the rounding ``error`` of their scores, (N,) booleans."""
    return error * share > distance


def _doubtful(error, distance, best, scores, xp):
    """Rows whose winner the rounding ``error`` of their ``scores`` may have
    changed, (N,) booleans, or None where there are none.

    One pass over the N numbers finds the candidates, whose squared
    ``distance`` to the winner is below WINNER_SHARE times their error (a
    row close to a code, or far from the reference point); of those, the
    rows with another score within the error of the ``best`` are doubtful.
    A row left out of the candidates has a gap to its runner-up below its
    error only in a near tie, within 1/WINNER_SHARE of its distance to the
    winner.
    """
    candidates = _candidates(error, distance, WINNER_SHARE)
    if not bool(xp.any(candidates)):
        return None
    index = xp.nonzero(candidates)[0]
    within = xp.take(scores, index, axis=0) <= xp.reshape(xp.take(best + error, index), (-1, 1))
    doubtful = xp.count_nonzero(within, axis=1) > 1
    if not bool(xp.any(doubtful)):
        return None
    return _merged(candidates, index, doubtful, xp.zeros_like(candidates), xp)


def _direct_squared_distances(X, codebook, xp, missing: bool = False):
    """||x_i - w_k||^2 by differences, (N, K): no cancellation, O(N K D)
    memory traffic; for the few rows the GEMM cannot resolve.  With
    ``missing``, over the observed features, rescaled to the full dimension."""
    n_codes, n_features = codebook.shape
    chunk = max(1, DIRECT_BLOCK_ENTRIES // max(n_codes * n_features, 1))
    parts = []
    n_samples = X.shape[0]
    for start in range(0, n_samples, chunk):
        parts.append(_summed_squares(X[start:min(start + chunk, n_samples), None, :] - codebook[None, :, :], xp, missing))
    distances = xp.concat(parts) if len(parts) > 1 else parts[0]
    if missing:
        distances = distances * xp.reshape(_rescaling(masked_parts(X)[1], xp), (-1, 1))
    return distances


def _summed_squares(difference, xp, missing: bool):
    """The sum of squares of ``difference`` over its last axis; with
    ``missing``, its NaN entries (missing features) count nothing."""
    if missing:
        difference = xp.where(xp.isnan(difference), 0.0, difference)
    return xp.sum(difference * difference, axis=-1)


def _merged(replaced, index, new, old, xp):
    """``old`` with its rows where ``replaced`` (N,) taken from ``new`` (the
    rows ``index`` = nonzero(replaced), in order)."""
    position = xp.clip(xp.cumulative_sum(xp.astype(replaced, xp.int64)) - 1, min=0)
    taken = xp.take(new, position, axis=0)
    where = replaced if old.ndim == 1 else xp.reshape(replaced, (-1, 1))
    return xp.where(where, taken, old)


def _direct_assignment(X, codebook, rows, assignment: Assignment, xp, missing: bool) -> Assignment:
    """``assignment`` with its ``rows`` (N,) assigned by differences."""
    index = xp.nonzero(rows)[0]
    distances = _direct_squared_distances(xp.take(X, index, axis=0), codebook, xp, missing)
    first = xp.argmin(distances, axis=1)
    best = xp.reshape(xp.take_along_axis(distances, xp.reshape(first, (-1, 1)), axis=1), (-1,))
    runner_up = None
    if assignment.second is not None:
        runner_up = xp.argmin(_without_winner(distances, first, xp), axis=1)
        runner_up = _merged(rows, index, runner_up, assignment.second, xp)
    return Assignment(
        _merged(rows, index, first, assignment.first, xp),
        _merged(rows, index, best, assignment.squared_distance, xp),
        runner_up,
    )


def assign(
    X, codebook, *, second: bool = False, block_rows: int | None = None, metric: str = "euclidean",
    missing: bool = False,
) -> Assignment:
    """Nearest code (and optionally second-nearest) of every row of ``X``.

    Works through ``X`` in row blocks so the N x K distance matrix never
    exists whole, each block taken relative to the codebook's
    :func:`reference_point`.  Raises a ``ValueError`` when a squared
    distance overflows (data too far from the codes for the dtype) or is
    NaN (a NaN codebook): a wrong winner is never returned silently.

    ``metric='cosine'`` normalises the rows of ``X`` and the codes (a zero
    code is a ``ValueError``; a zero row is at distance 1 from every code)
    and gives 1 - cos as the assignment's ``squared_distance``.

    ``missing=True``: NaN entries of ``X`` are missing values; the winner is
    the nearest code over each row's observed features, and the squared
    distance is rescaled to the full dimension (docs/design.md section 14).
    Missing values take the Euclidean metric only.
    """
    check_gaps_metric(metric, missing)
    X, codebook = normalised(X, metric), unit_codes(codebook, metric)
    with _overflow_checked():
        assignment = _assign(X, codebook, second, block_rows, missing)
    _check_finite(assignment.squared_distance, namespace(X, codebook))
    return _in_metric(assignment, X, metric, codebook.shape[0])


def _in_metric(assignment: Assignment, X, metric: str, n_codes: int) -> Assignment:
    """The assignment of rows ``X`` under ``metric``: under 'cosine' (unit
    rows ``X``) its distances as 1 - cos, and rows of zeros on code 0 (the
    first of the codes they tie with), second code 1."""
    if metric == "euclidean":
        return assignment
    xp = namespace(X)
    zero = _zero_rows(X)
    flat = xp.reshape(zero, (-1,))
    first = xp.where(flat, xp.zeros_like(assignment.first), assignment.first)
    second = assignment.second
    if second is not None:
        second = xp.where(flat, xp.full_like(second, min(1, n_codes - 1)), second)
    distance = xp.reshape(_cosine(xp.reshape(assignment.squared_distance, (-1, 1)), zero), (-1,))
    return Assignment(first, distance, second)


def _assign(X, codebook, second, block_rows, missing=False, reference=None) -> Assignment:
    """:func:`assign` without the finiteness check (the caller makes it);
    ``reference``: the codebook's :func:`reference_point`, if known."""
    xp = namespace(X, codebook)
    n_samples = X.shape[0]
    reference = reference_point(codebook) if reference is None else reference
    accelerator = on_accelerator(X)
    shift = _shifts(reference, X, xp)
    augmented = (_masked_augmented if missing else _augmented)(codebook - reference if shift else codebook, xp)

    def block(rows):
        # A missing entry stays NaN when shifted: the reference moves the
        # observed entries only.
        part = X[rows, ...]
        shifted = part - reference if shift else part
        assignment, doubtful, imprecise = _assign_block(shifted, augmented, second, xp, missing)
        # Rows far from r next to their distances: by differences.
        if doubtful is not None:
            assignment = _direct_assignment(part, codebook, doubtful, assignment, xp, missing)
        if imprecise is not None:
            assignment = _winner_distances(part, codebook, imprecise, assignment, xp, missing)
        return assignment

    if block_rows is None:
        entries = ACCELERATOR_BLOCK_ENTRIES if accelerator else HOST_BLOCK_ENTRIES
        block_rows = max(MIN_BLOCK_ROWS, entries // max(codebook.shape[0], 1))
    if n_samples <= block_rows:
        return block(slice(None))
    parts = [block(slice(start, min(start + block_rows, n_samples))) for start in range(0, n_samples, block_rows)]
    return Assignment(
        xp.concat([p.first for p in parts]),
        xp.concat([p.squared_distance for p in parts]),
        xp.concat([p.second for p in parts]) if second else None,
    )


def code_statistics(X, units, n_codes: int, sample_weight=None, *, missing: bool = False, reference=None, xp=None):
    """Counts colsum(E) (K,) and sums E^T Z (K, D) of a hard assignment.

    With weights w, ``counts[k] = sum_{i: units[i]=k} w_i`` and
    ``sums[k] = sum_{i: units[i]=k} w_i X[i]``: rows of E weighted
    (docs/design.md section 2).  Both are scatter-adds over the rows; each
    backend's fastest one is in :mod:`sklearn_ksom._array_api`.

    ``reference`` (a point near the data, such as the codebook's
    :func:`reference_point`): the sums are added up relative to it,
    E^T (Z - r) + counts r, so that data far from the origin lose only the
    last rounding, not one per row added (docs/design.md section 11).

    ``missing=True``: NaN entries are missing values and count nowhere: the
    sums add the observed entries, E^T (X zero-filled), and the counts
    become per code and feature, E^T M (K, D), both in one scatter-add
    (docs/design.md section 14).
    """
    xp = namespace(X, units) if xp is None else xp
    shift = reference is not None and _shifts(reference, X, xp)
    if shift:
        X = X - reference  # a missing entry stays NaN
    if missing:
        n_features = X.shape[1]
        filled, mask = masked_parts(X)
        both = scatter_add_rows(xp.concat([filled, mask], axis=1), units, n_codes, sample_weight, xp=xp)
        counts, sums = both[:, n_features:], both[:, :n_features]
    else:
        counts = count_labels(units, n_codes, sample_weight, dtype=X.dtype, xp=xp)
        sums = scatter_add_rows(X, units, n_codes, sample_weight, xp=xp)
    return counts, (sums + per_code(counts, xp) * reference if shift else sums)


def spread_statistics(neighbourhood: Neighbourhood, counts, sums, *, xp=None):
    """The neighbourhood-spread counts colsum(E) P and sums P^T E^T Z.

    Both are P^T applied to K-sized statistics, so they go through P in one
    product, the counts as an extra column of the sums (as D extra columns
    when they are per code and feature, (K, D), after missing values).
    """
    if neighbourhood.is_identity:
        return counts, sums
    xp = namespace(sums, counts) if xp is None else xp
    stacked = xp.concat([sums, per_code(counts, xp)], axis=1)
    spread = neighbourhood.spread(stacked, xp=xp)
    if counts.ndim == 2:
        return spread[:, sums.shape[1] :], spread[:, : sums.shape[1]]
    return spread[:, -1], spread[:, :-1]


def _spread_about(neighbourhood: Neighbourhood, counts, sums, reference, xp):
    """:func:`spread_statistics` with the sums taken relative to
    ``reference`` first: spread counts, and spread sums about the reference.
    Spreading adds up K terms of the size of the data; relative to a point
    among the codes they are the size of the codes' spread, so data far
    from the origin keep their digits (docs/design.md section 11)."""
    return spread_statistics(neighbourhood, counts, sums - per_code(counts, xp) * reference, xp=xp)


def per_code(counts, xp):
    """Counts shaped to divide (K, D) sums: (K,) ones as a column (K, 1),
    per-feature ones (K, D) as they are."""
    return xp.reshape(counts, (-1, 1)) if counts.ndim == 1 else counts


def ema_update(
    state: EMAState,
    counts,
    sums,
    *,
    decay: float,
    epsilon: float,
    update_all: bool = True,
    metric: str = "euclidean",
    xp=None,
) -> EMAState:
    """One EMA codebook update from a batch's (neighbourhood-spread) statistics.

    ``update_all`` (docs/design.md section 2, the reference form): every code's EMA
    decays, then Laplace smoothing keeps the total count and keeps every
    N_k > 0.  Otherwise ("active only", the paper's ablation) only codes with
    counts > 0 in this batch change, without smoothing.  ``metric='cosine'``
    puts the codes M / N back on the unit sphere (section 13).

    Counts per code and feature (K, D), from a batch with missing values or
    in a state that has seen one, make every count, the smoothing total
    and the division per feature (docs/design.md section 14); the state's
    counts are then (K, D) from this step on.
    """
    xp = namespace(state.codebook, counts) if xp is None else xp
    new_state = _ema_update(state, counts, sums, decay, epsilon, update_all, xp)
    if metric == "euclidean":
        return new_state
    check_metric(metric)
    return new_state._replace(codebook=renormalised(new_state.codebook, state.codebook))


def renormalised(codebook, previous):
    """The updated ``codebook`` back on the unit sphere; a zero code (its
    vectors cancel, or its sums decayed to nothing) keeps its ``previous``
    direction (docs/design.md section 13)."""
    return unit_rows(codebook, fill=previous)


def _ema_update(state, counts, sums, decay, epsilon, update_all, xp):
    """Steps 4-6 of docs/design.md section 2: the EMA, smoothing, W = M / N."""
    old_counts = state.counts
    if counts.ndim != old_counts.ndim:
        counts, old_counts = per_code(counts, xp), per_code(old_counts, xp)
    new_counts = decay * old_counts + (1 - decay) * counts
    new_sums = decay * state.sums + (1 - decay) * sums
    if update_all:
        total = xp.sum(new_counts, axis=0)
        n_codes = new_counts.shape[0]
        new_counts = (new_counts + epsilon) / (total + n_codes * epsilon) * total
        return EMAState(new_sums / per_code(new_counts, xp), new_counts, new_sums)
    active = counts > 0
    new_counts = xp.where(active, new_counts, old_counts)
    rows = per_code(active, xp)
    new_sums = xp.where(rows, new_sums, state.sums)
    safe_counts = per_code(xp.where(active, new_counts, xp.ones_like(new_counts)), xp)
    codebook = xp.where(rows, new_sums / safe_counts, state.codebook)
    return EMAState(codebook, new_counts, new_sums)


class EMAStep(NamedTuple):
    """What one EMA / KSOM step returns."""

    state: EMAState  # the state after the update
    assignment: Assignment  # the batch's best units, on the codebook before it
    counts: object  # (K,) the batch's counts the update used (after ``reduce``), before spreading


def ema_step(
    state: EMAState,
    X,
    neighbourhood: Neighbourhood,
    *,
    decay: float,
    epsilon: float,
    update_all: bool = True,
    sample_weight=None,
    reduce: Callable | None = None,
    metric: str = "euclidean",
    missing: bool = False,
    xp=None,
) -> EMAStep:
    """One KSOM-VQ training step on the batch ``X`` (EMA-VQ when P = I).

    Assign each row to its nearest code, spread the counts and sums over the
    neighbourhood (n = colsum(E) P, E~^T Z = P^T E^T Z) and apply the EMA
    update (docs/design.md section 2).  Returns the new state, the
    assignment made before the update and the batch counts it used.

    ``reduce``, if given, maps the batch's raw ``(counts, sums)`` to the
    statistics to use, e.g. their sum over all processes of a data-parallel
    run: every process then makes the same update.

    Squared distances that overflow raise a ``ValueError`` (as in
    :func:`assign`).  With ``reduce``, raising on one process would leave the
    others waiting in the reduction, so instead they make the statistics
    non-finite, and ``reduce`` must refuse non-finite statistics (after
    reducing them, so every process refuses alike).

    ``metric='cosine'`` (section 13) assigns and averages the unit rows of
    ``X``; the codebook is unit-length already (the state's invariant).
    ``missing=True``: NaN entries of ``X`` are missing values, for the
    assignment and the statistics (docs/design.md section 14; Euclidean
    only).
    """
    xp = namespace(X, state.codebook) if xp is None else xp
    n_codes = state.codebook.shape[0]
    check_gaps_metric(metric, missing)
    X = normalised(X, metric)
    reference = reference_point(state.codebook)
    shift = _shifts(reference, X, xp)  # sums and spread relative to it (section 11)
    with _overflow_checked():
        assignment = _assign(X, state.codebook, False, None, missing, reference=reference)
        assignment = _in_metric(assignment, X, metric, n_codes)
    counts, sums = code_statistics(
        X, assignment.first, n_codes, sample_weight, missing=missing, reference=reference if shift else None, xp=xp
    )
    if reduce is None:
        _check_finite(assignment.squared_distance, xp)
    else:
        # 0 * inf is NaN: an overflowed distance poisons the sums (O(N + KD)).
        with _overflow_checked():
            sums = sums + 0 * xp.sum(assignment.squared_distance)
        counts, sums = reduce(counts, sums)
    if neighbourhood.is_identity or not shift:
        spread_counts, spread_sums = spread_statistics(neighbourhood, counts, sums, xp=xp)
    else:
        spread_counts, about = _spread_about(neighbourhood, counts, sums, reference, xp)
        spread_sums = about + per_code(spread_counts, xp) * reference
    new_state = ema_update(
        state,
        spread_counts,
        spread_sums,
        decay=decay,
        epsilon=epsilon,
        update_all=update_all,
        metric=metric,
        xp=xp,
    )
    return EMAStep(new_state, assignment, counts)


def batch_statistics(X, codebook, sample_weight=None, *, metric: str = "euclidean", missing: bool = False):
    """Per-code counts, sums and the weighted squared error of ``X``.

    These add up over chunks of data, which is what lets the batch
    algorithm run over data split across blocks or machines.  Under
    ``metric='cosine'`` the sums are of the unit rows and the error is the
    sum of 1 - cos.  With ``missing=True`` NaN entries are missing values
    (:func:`code_statistics`).
    """
    X = normalised(X, metric)
    assignment = assign(X, codebook, metric=metric, missing=missing)
    reference = reference_point(unit_codes(codebook, metric))
    return assignment_statistics(X, assignment, codebook.shape[0], sample_weight, missing=missing, reference=reference)


def assignment_statistics(
    X, assignment: Assignment, n_codes: int, sample_weight=None, *, missing: bool = False, reference=None
):
    """:func:`batch_statistics` of an assignment already made (sums added up
    relative to ``reference``: see :func:`code_statistics`)."""
    counts, sums = code_statistics(X, assignment.first, n_codes, sample_weight, missing=missing, reference=reference)
    error = assignment.squared_distance
    if sample_weight is not None:
        error = error * sample_weight
    return counts, sums, namespace(X).sum(error)


def batch_som_update(codebook, counts, sums, neighbourhood: Neighbourhood, *, metric: str = "euclidean", xp=None):
    """Kohonen's batch-SOM step from whole-data statistics (docs/design.md section 6).

    W_k = (P^T E^T Z)_k / (colsum(E) P)_k for every code whose spread count
    is positive; other codes keep their place.  With P = I this is Lloyd's
    k-means step.  ``metric='cosine'`` puts the codes back on the unit
    sphere (spherical k-means when P = I; section 13).  Counts per code and
    feature (K, D), from data with missing values, make this per feature:
    W_kd = (P^T S)_kd / (C P)_kd where positive (docs/design.md section 14).
    """
    xp = namespace(codebook, counts) if xp is None else xp
    # Relative to a point among the codes: data far from the origin keep
    # their digits through the spread and the division (section 11).
    reference = reference_point(codebook)
    spread_counts, about = _spread_about(neighbourhood, counts, sums, reference, xp)
    active = spread_counts > 0
    safe = per_code(xp.where(active, spread_counts, xp.ones_like(spread_counts)), xp)
    updated = xp.where(per_code(active, xp), reference + about / safe, codebook)
    if metric == "euclidean":
        return updated
    check_metric(metric)
    return renormalised(updated, codebook)


# ------------------------------------------------------------ training loops


class BatchRun(NamedTuple):
    """What :func:`batch_som` returns."""

    codebook: object  # the final codebook
    statistics: tuple  # ``statistics(codebook, None)`` of it: whole-data counts, sums, error, ...
    n_iterations: int  # updates made: fewer than asked when the run converged


def coarse_to_fine_rows(n_samples: int, n_iterations: int, min_rows: int | None) -> list | None:
    """Rows each iteration of a coarse-to-fine batch run sees (docs/design.md section 6).

    Iteration i of n sees N / 2^(n-1-i) rows, never fewer than
    ``min_rows``: the early, wide-neighbourhood iterations run on small
    random subsamples, each of the last ones on twice the rows of the one
    before, the last on all of them.  ``None`` stands for all rows;
    ``min_rows=None`` gives None (all rows every iteration).
    """
    if min_rows is None:
        return None
    sizes = (max(int(min_rows), math.ceil(math.ldexp(n_samples, -(n_iterations - 1 - i)))) for i in range(n_iterations))
    return [None if size >= n_samples else size for size in sizes]


def relative_change(previous: float, current: float) -> float:
    """|previous - current| / previous: the convergence measure of ``fit``'s
    ``tol`` (0 when both are 0)."""
    change = abs(previous - current)
    return change / previous if previous > 0 else (0.0 if change == 0 else math.inf)


def _mean(total_error, total_weight) -> float:
    """Mean squared error per unit of weight, on the host (NaN for no weight)."""
    weight = float(total_weight)
    return float(total_error) / weight if weight > 0 else math.nan


def batch_som(
    statistics: Callable,
    codebook,
    schedule: NeighbourhoodSchedule,
    n_iterations: int,
    *,
    rows: list | None = None,
    tol: float = 0.0,
    metric: str = "euclidean",
) -> BatchRun:
    """Kohonen's batch algorithm: up to ``n_iterations`` updates from ``codebook``.

    ``statistics(codebook, n_rows)`` returns the ``(counts, sums, squared
    error, ...)`` of ``n_rows`` random rows of the data (all rows for
    None), however it is computed (in memory, or reduced over a cluster's
    chunks); iteration t sees ``rows[t]`` rows (all when ``rows`` is None
    or shorter: see :func:`coarse_to_fine_rows`) and spreads their
    statistics with ``schedule.at(t)`` (docs/design.md section 6).

    The run stops early once the mean squared error of all rows changes by
    at most ``tol`` (relative) from one codebook to the next, counting
    only updates made at the schedule's end width, from its step L - 1 on
    (any update when there is no neighbourhood); ``tol=0`` runs every
    iteration.  Returns the final codebook, ``statistics`` of it on all
    rows (which give the labels and the inertia with no extra pass) and the
    number of updates made.  ``n_iterations=0`` keeps ``codebook``.
    Under ``metric='cosine'`` the statistics are of unit rows and every
    update puts the codes back on the unit sphere.
    """
    xp = namespace(codebook)
    dtype, device = codebook.dtype, device_of(codebook)
    previous = None  # mean squared error of the codebook before, on all rows
    for iteration in range(n_iterations):
        n_rows = rows[iteration] if rows is not None and iteration < len(rows) else None
        current = statistics(codebook, n_rows)
        counts, sums, error = current[:3]
        if tol > 0:
            # Only whole-data errors compare; weights sum to the counts' total.
            mean_error = None if n_rows is not None else _mean(error, xp.sum(counts))
            settled = schedule.is_identity or iteration >= schedule.length
            if None not in (previous, mean_error) and settled and relative_change(previous, mean_error) <= tol:
                return BatchRun(codebook, current, iteration)
            previous = mean_error
        neighbourhood = schedule.at(iteration, xp=xp, dtype=dtype, device=device)
        codebook = batch_som_update(codebook, counts, sums, neighbourhood, metric=metric, xp=xp)
    return BatchRun(codebook, statistics(codebook, None), n_iterations)


def resting_state(codebook, counts, *, batch_size: int, total_weight: float, initial_count: float) -> EMAState:
    """EMA statistics consistent with a codebook trained elsewhere.

    ``counts`` are the whole data's counts on ``codebook``.  The EMA counts
    take them in the units of one mini-batch (scaled by
    ``batch_size / total_weight``) and the sums are ``N_k W_k``, so W = M / N
    and a later EMA step moves each code as much as a step of a long EMA
    run would.  A code no sample chose keeps the reference start
    (N_k = N0, M = W).  See docs/design.md section 6.
    """
    xp = namespace(codebook, counts)
    scaled = counts * (min(batch_size, total_weight) / total_weight)
    chosen = scaled > 0
    counts = xp.where(chosen, scaled, xp.full_like(scaled, initial_count))
    sums = xp.where(per_code(chosen, xp), per_code(counts, xp) * codebook, codebook)
    return EMAState(codebook, counts, sums)


def ema_steps(
    state: EMAState,
    X,
    order,
    schedule: NeighbourhoodSchedule,
    ema: EMAConstants,
    *,
    batch_size: int,
    first_step: int,
    sample_weight=None,
    metric: str = "euclidean",
    missing: bool = False,
) -> tuple[EMAState, object]:
    """EMA steps over the rows of ``X`` in ``order``, ``batch_size`` rows a
    step, the first being update step ``first_step`` of ``schedule`` (NaN
    entries missing values with ``missing=True``).

    Returns the final state and the rows' (weighted) squared error, each
    batch measured on the codebook before its step (a 0-d array: no
    device sync per step).
    """
    xp = namespace(X)
    dtype, device = X.dtype, device_of(X)
    decay = ema.decay_over(schedule.length)
    step = first_step
    error = 0.0
    for start in range(0, order.shape[0], batch_size):
        rows = order[start : min(start + batch_size, order.shape[0])]
        weights = None if sample_weight is None else xp.take(sample_weight, rows, axis=0)
        state, assignment, _ = ema_step(
            state,
            xp.take(X, rows, axis=0),
            schedule.at(step, xp=xp, dtype=dtype, device=device),
            decay=decay,
            epsilon=ema.epsilon,
            update_all=ema.update_all,
            sample_weight=weights,
            metric=metric,
            missing=missing,
            xp=xp,
        )
        squared = assignment.squared_distance
        error = error + xp.sum(squared if weights is None else squared * weights)
        step += 1
    return state, error


def ema_epochs(
    state: EMAState,
    X,
    schedule: NeighbourhoodSchedule,
    ema: EMAConstants,
    *,
    batch_size: int,
    n_epochs: int,
    rng,
    sample_weight=None,
    metric: str = "euclidean",
    missing: bool = False,
    tol: float = 0.0,
) -> tuple[EMAState, int, int]:
    """Up to ``n_epochs`` passes of mini-batch EMA steps over ``X``, each in
    a new random order drawn from ``rng`` (a NumPy ``RandomState``).

    The run stops early once an epoch's mean squared error (each batch
    measured before its step, as MiniBatchKMeans' smoothed inertia) differs
    by at most ``tol`` (relative) from the epoch before, counting only
    epochs that start at the schedule's end width, at its step L - 1 or
    later (any epoch when there is no neighbourhood); ``tol=0`` runs every
    epoch.  Returns
    the final state, the number of update steps and the number of epochs
    run (docs/design.md section 6).
    """
    xp = namespace(X)
    n_samples = X.shape[0]
    batches_per_epoch = math.ceil(n_samples / batch_size)
    total_weight = n_samples if sample_weight is None else xp.sum(sample_weight)
    step = 0
    previous = None  # mean squared error of the epoch before
    for epoch in range(n_epochs):
        order = move_to(xp, rng.permutation(n_samples), device=device_of(X))
        settled = schedule.is_identity or step >= schedule.length - 1
        state, error = ema_steps(
            state, X, order, schedule, ema, batch_size=batch_size, first_step=step, sample_weight=sample_weight,
            metric=metric, missing=missing,
        )  # fmt: skip
        step += batches_per_epoch
        if tol > 0:
            mean_error = _mean(error, total_weight)
            if previous is not None and relative_change(previous, mean_error) <= tol:
                return state, step, epoch + 1
            previous = mean_error if settled else None
    return state, step, n_epochs
