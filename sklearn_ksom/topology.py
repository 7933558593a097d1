"""Where the codes sit, and how strongly an assignment spreads to neighbours.

A :class:`Grid` places K codes on a rectangular grid of any dimension, or on
a hexagonal 2-D grid, optionally wrapped into a torus.  A neighbourhood
kernel turns grid distances and a width into weights; a width schedule
shrinks the width over the update steps.  :func:`neighbourhood` combines the
three into a :class:`Neighbourhood`, the matrix P(t) of
docs/design.md section 3 in the form that is cheapest to apply to K-sized
statistics: a Kronecker product of small per-axis matrices where the kernel
factorises over the grid's axes, a dense K x K matrix otherwise.  No
N x K x K array is ever formed.

:class:`NeighbourhoodSchedule` is the public, validated settings object the
estimators and the torch layers share: grid, kernel, widths (with each
kernel's defaults), schedule and its length, and ``at(step)``, the P(t) of
an update step.

The grid geometry is static and small, so it is computed with NumPy on the
host; only the neighbourhood weights travel to the statistics' device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from numbers import Integral, Real
from typing import Callable

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints

from ._array_api import device_of, move_to, namespace

# Largest dense neighbourhood matrix (entries) built before refusing: 2**28
# float32 entries are 1 GiB.  Separable kernels never build one.
MAX_DENSE_ENTRIES = 2**28

# A stream of unknown length (partial_fit, the torch layers): the
# exponential and linear schedules reach their end width after this many
# steps (the paper's Gaussian neighbourhood fades within about 1000 steps,
# docs/design.md section 5).
DEFAULT_STREAM_STEPS = 1000


# --------------------------------------------------------------------- grids


@dataclass(frozen=True)
class Grid:
    """Positions of the codes of a self-organising map.

    Parameters
    ----------
    shape : tuple of int
        Number of codes along each axis, e.g. ``(32, 16)``; any number of
        axes.  Codes are numbered in C order (last axis fastest).
    hexagonal : bool, default=False
        Hexagonal 2-D grid (odd rows shifted by half a cell, rows
        sqrt(3)/2 apart, so each inner code has six neighbours at distance 1).
    toroidal : bool, default=False
        Wrap every axis around, so that opposite edges are neighbours.
    """

    shape: tuple
    hexagonal: bool = False
    toroidal: bool = False

    def __post_init__(self):
        given = np.atleast_1d(self.shape)
        if given.ndim != 1 or not all(isinstance(s, Integral) for s in given.tolist()):
            raise ValueError(
                f"grid_shape must be a non-empty tuple of positive ints, got {self.shape!r}."
            )
        shape = tuple(int(s) for s in given.tolist())
        if not shape or any(s < 1 for s in shape):
            raise ValueError(
                f"grid_shape must be a non-empty tuple of positive ints, got {self.shape!r}."
            )
        if self.hexagonal and len(shape) != 2:
            raise ValueError(f"A hexagonal grid must be 2-D, got grid_shape={shape}.")
        if self.hexagonal and self.toroidal and shape[0] % 2:
            raise ValueError(
                f"A toroidal hexagonal grid needs an even number of rows, got {shape[0]}."
            )
        object.__setattr__(self, "shape", shape)

    @property
    def n_codes(self) -> int:
        return math.prod(self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @cached_property
    def indices(self) -> np.ndarray:
        """Integer grid index of every code, shape (K, ndim), C order."""
        return np.stack(np.unravel_index(np.arange(self.n_codes), self.shape), axis=1)

    @cached_property
    def coordinates(self) -> np.ndarray:
        """Position of every code in the plane / space, shape (K, ndim), float."""
        position = self.indices.astype(np.float64)
        if self.hexagonal:
            row, col = position[:, 0], position[:, 1]
            position = np.stack([row * math.sqrt(3) / 2, col + 0.5 * (row % 2)], axis=1)
        return position

    @cached_property
    def _period(self) -> np.ndarray:
        """Length of each axis in coordinate units (for toroidal wrapping)."""
        period = np.asarray(self.shape, dtype=np.float64)
        if self.hexagonal:
            period[0] *= math.sqrt(3) / 2
        return period

    def displacement(self, a, b):
        """Coordinate difference b - a, the shortest one on a torus.

        ``a`` and ``b`` are coordinate arrays of any namespace broadcasting
        to (..., ndim).  The hexagonal torus needs no special case: with an
        even number of rows, the half-cell shift is the same in every
        periodic copy.
        """
        delta = b - a
        if self.toroidal:
            xp = namespace(delta)
            period = move_to(xp, self._period, dtype=delta.dtype, device=device_of(delta))
            delta = delta - period * xp.round(delta / period)
        return delta

    def adjacent(self, first, second):
        """Whether codes ``first`` and ``second`` (index arrays) are grid neighbours."""
        xp = namespace(first)
        coordinates = move_to(xp, self.coordinates, device=device_of(first))
        delta = self.displacement(
            xp.take(coordinates, first, axis=0), xp.take(coordinates, second, axis=0)
        )
        return xp.sum(delta * delta, axis=1) <= self.neighbour_radius**2

    def distances(self) -> np.ndarray:
        """Euclidean grid distance between every pair of codes, (K, K) float64."""
        c = self.coordinates
        return np.linalg.norm(self.displacement(c[:, None, :], c[None, :, :]), axis=-1)

    def axis_distances(self, axis: int) -> np.ndarray:
        """Distance along one axis of a rectangular grid, (n, n) float64."""
        if self.hexagonal:
            raise ValueError("A hexagonal grid does not factorise over its axes.")
        n = self.shape[axis]
        delta = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :]).astype(np.float64)
        if self.toroidal:
            delta = np.minimum(delta, n - delta)
        return delta

    @property
    def neighbour_radius(self) -> float:
        """Grid distance up to which two codes count as adjacent.

        Rectangular grids count diagonal cells too (the 8-neighbourhood in
        2-D, MiniSom's topographic-error definition); hexagonal grids count
        the six cells at distance 1.
        """
        return 1.0 + 1e-6 if self.hexagonal else math.sqrt(self.ndim) + 1e-6


# ----------------------------------------------------------------- kernels
#
# A kernel maps grid distances d and a width to neighbourhood weights, with
# weight 1 at d = 0.  ``factorises(grid)`` says whether the weights on the
# grid equal the product of the same kernel applied to each axis' distances
# (then P is a Kronecker product and no K x K matrix is needed).


@dataclass(frozen=True)
class Kernel:
    name: str
    weights: Callable[[np.ndarray, float], np.ndarray]
    default_width: Callable[[Grid], float]
    # End width of the exponential / linear schedules: 0.5 leaves adjacent
    # codes a weight of about 0.14 (exponential), close to k-means
    # in quantisation error while keeping the map ordered.
    default_end: float = 0.5
    # Weights of the form a * shape(d) + (1 - a) * I: the hard kernel's
    # amplitude is its width, and only shape(d) factorises.
    amplitude: bool = False
    factorises: Callable[[Grid], bool] = lambda grid: False
    # Weights below 0 somewhere (the Mexican hat): no weighted mean can use
    # them, so training refuses the kernel; the distortion measure takes it.
    signed: bool = False

    def separable_on(self, grid: Grid) -> bool:
        return (not grid.hexagonal) and self.factorises(grid)


def _gaussian(d, width):
    """Classic SOM Gaussian exp(-d^2 / (2 sigma^2)) (MiniSom's 'gaussian')."""
    return namespace(d).exp(-(d**2) / (2.0 * max(width, 1e-12) ** 2))


def _exponential(d, width):
    """The paper's 'Gaussian' exp(-d / b'), d not squared (docs/design.md section 4).

    With width b / (1 + tau t) this is exactly exp(-d (1 + tau t) / b).
    """
    return namespace(d).exp(-d / max(width, 1e-12))


def _bubble(d, width):
    """Hard cut-off: weight 1 within radius ``width``, 0 beyond."""
    return namespace(d).astype(d <= width, d.dtype)


def _triangle(d, width):
    """Linear fall-off max(0, 1 - d / s): 1 at the winner, 0 from radius s on."""
    xp = namespace(d)
    return xp.clip(1.0 - d / max(width, 1e-12), min=0.0)


def _mexican_hat(d, width):
    """(1 - d^2 / s^2) exp(-d^2 / (2 s^2)): 1 at the winner, negative beyond s.

    MiniSom's 'mexican_hat'.  Its sum over a 2-D grid is about -2 pi s^2,
    so it cannot weight a mean: the batch-SOM and EMA updates refuse it.
    """
    ratio = d**2 / max(width, 1e-12) ** 2
    return (1.0 - ratio) * namespace(d).exp(-ratio / 2.0)


def _hard_shape(d, width):
    """The paper's hard neighbourhood, 1[d < 1.5]; the amplitude is separate."""
    return namespace(d).astype(d < 1.5, d.dtype)


def _half_largest_side(grid: Grid) -> float:
    return max(1.0, max(grid.shape) / 2.0)


KERNELS = {
    # End width 1/3, MiniSom's own: adjacent codes keep a weight of 0.011,
    # and fit's defaults reach MiniSom's one-pass QE with half its TE, where
    # 0.5 (weight 0.14) ends up to 2.5 % above it (benchmarks/fit_defaults.md).
    "gaussian": Kernel("gaussian", _gaussian, _half_largest_side, default_end=1 / 3, factorises=lambda g: True),
    "exponential": Kernel("exponential", _exponential, lambda grid: 10.0),
    "bubble": Kernel("bubble", _bubble, _half_largest_side),
    # End width 7/6 leaves adjacent codes the weight 1/7 ~ 0.14, as 'gaussian' at 0.5.
    "triangle": Kernel("triangle", _triangle, _half_largest_side, default_end=7 / 6),
    "mexican_hat": Kernel("mexican_hat", _mexican_hat, _half_largest_side, signed=True),
    # 1[d < 1.5] is the box |d_i| <= 1 on each axis only up to two axes.
    "hard": Kernel(
        "hard",
        _hard_shape,
        lambda grid: 1.0,
        default_end=0.01,
        amplitude=True,
        factorises=lambda g: g.ndim <= 2,
    ),
}
# The kernels training accepts: every one whose weights are never negative.
NEIGHBOURHOODS = ("none", *(name for name, kernel in KERNELS.items() if not kernel.signed))


# ---------------------------------------------------------------- schedules


def _inverse(step, n_steps, start, end, shrink):
    """The paper's shrink: start / (1 + tau t), open-ended."""
    return start / (1.0 + shrink * step)


def _exponential_decay(step, n_steps, start, end, shrink):
    progress = min(step / max(n_steps - 1, 1), 1.0)
    return start * (end / start) ** progress


def _linear(step, n_steps, start, end, shrink):
    progress = min(step / max(n_steps - 1, 1), 1.0)
    return start + (end - start) * progress


SCHEDULES = {"inverse": _inverse, "exponential": _exponential_decay, "linear": _linear}


def width_at(schedule, step, n_steps, start, end, shrink) -> float:
    """Neighbourhood width after ``step`` update steps of ``n_steps``.

    ``schedule`` is a name of :data:`SCHEDULES` or a callable
    ``f(step, n_steps, start, end, shrink) -> width``.
    """
    function = SCHEDULES[schedule] if isinstance(schedule, str) else schedule
    width = float(function(step, n_steps, start, end, shrink))
    if not (math.isfinite(width) and width >= 0):
        raise ValueError(
            f"The schedule {getattr(function, '__name__', function)!r} gave the width {width} at step {step}; "
            "a width must be a finite number >= 0. Check sigma, sigma_end or the schedule callable."
        )
    return width


# ----------------------------------------------------------- the operator P


@dataclass
class Neighbourhood:
    """P(t) as a linear operator on K-sized statistics (docs/design.md section 3).

    ``P = scale * (F_1 kron F_2 kron ...) + identity * I`` when ``factors``
    is set, ``P = dense`` otherwise, or ``P = I`` when both are None.
    Applying it costs O(K * sum(n_i) * D) for a separable kernel against
    O(K^2 D) for a dense one.
    """

    factors: list | None = None
    dense: object = None
    scale: float = 1.0
    identity: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.factors is None and self.dense is None

    def spread(self, stats, *, xp=None):
        """Return P^T @ stats for stats of shape (K,) or (K, D).

        n = colsum(E) P and E~^T Z = P^T E^T Z are both this product.
        """
        if self.is_identity:
            return stats
        xp = namespace(stats) if xp is None else xp
        if self.dense is not None:
            return xp.matmul(xp.matrix_transpose(self.dense), stats)
        vector = stats.ndim == 1
        out = xp.reshape(stats, (-1, 1)) if vector else stats
        trailing = out.shape[1]
        sizes = [f.shape[0] for f in self.factors]
        for axis, factor in enumerate(self.factors):
            before = math.prod(sizes[:axis])
            after = math.prod(sizes[axis + 1 :]) * trailing
            block = xp.reshape(out, (before, sizes[axis], after))
            out = xp.matmul(xp.matrix_transpose(factor), block)
        out = xp.reshape(out, (-1, trailing))
        if self.scale != 1.0:
            out = self.scale * out
        if self.identity:
            out = out + self.identity * (xp.reshape(stats, (-1, 1)) if vector else stats)
        return xp.reshape(out, (-1,)) if vector else out


def neighbourhood_operator(
    grid: Grid,
    kernel,
    width: float,
    *,
    xp=np,
    dtype=None,
    device=None,
    dense: bool = False,
    signed: bool = False,
) -> Neighbourhood:
    """Build P for ``grid`` with ``kernel`` (a name or callable) at ``width``.

    The weights are computed where the statistics live (namespace ``xp``,
    ``dtype``, ``device``) from grid distances cached there.  ``dense=True``
    forces the K x K matrix even for a separable kernel (the reference the
    fast path is tested against).  ``signed=True`` admits a kernel with
    negative weights ('mexican_hat'), for measuring only: the training
    updates divide by spread counts that such a P can make negative.
    """
    if kernel == "none":
        return Neighbourhood()
    if isinstance(kernel, str):
        spec = KERNELS[kernel]
        if spec.signed and not signed:
            raise ValueError(
                f"neighbourhood={kernel!r} has negative weights, which the batch-SOM and EMA "
                "updates cannot use (they divide by neighbourhood-weighted counts, negative on "
                "most of the map); train with 'gaussian' or 'triangle', and use "
                f"{kernel!r} in metrics.som_distortion."
            )
    else:
        spec = Kernel(getattr(kernel, "__name__", "callable"), kernel, _half_largest_side)
    amplitude = min(max(width, 0.0), 1.0) if spec.amplitude else 1.0
    if spec.separable_on(grid) and not dense:
        factors = [
            spec.weights(_distances_on(grid, axis, xp, dtype, device), width)
            for axis in range(grid.ndim)
        ]
        return Neighbourhood(factors=factors, scale=amplitude, identity=1.0 - amplitude)

    if grid.n_codes**2 > MAX_DENSE_ENTRIES:
        raise ValueError(
            f"The {spec.name!r} neighbourhood on a grid of {grid.n_codes} codes needs a "
            f"{grid.n_codes}x{grid.n_codes} matrix; use neighbourhood='gaussian' (or 'hard' "
            "on a rectangular grid of at most 2 axes), which factorises over the axes."
        )
    distances = _distances_on(grid, None, xp, dtype, device)
    weights = xp.asarray(spec.weights(distances, width), dtype=distances.dtype)
    if not isinstance(kernel, str):
        _check_callable_weights(kernel, weights, distances, width, xp)
    diagonal = distances == 0
    if spec.amplitude:
        weights = amplitude * weights
    return Neighbourhood(dense=xp.where(diagonal, xp.ones_like(weights), weights))


def _check_callable_weights(kernel, weights, distances, width, xp):
    """A neighbourhood callable must give one finite weight per distance."""
    name = getattr(kernel, "__name__", repr(kernel))
    if tuple(weights.shape) != tuple(distances.shape):
        raise ValueError(
            f"The neighbourhood callable {name!r} returned shape {tuple(weights.shape)} for grid "
            f"distances of shape {tuple(distances.shape)}; it must return one weight per distance."
        )
    if not bool(xp.all(xp.isfinite(weights))):
        raise ValueError(
            f"The neighbourhood callable {name!r} returned NaN or infinite weights at width {width}; "
            "it must return finite weights."
        )


@lru_cache(maxsize=64)
def _distances_on(grid: Grid, axis, xp, dtype, device):
    """Grid distances (all pairs, or along one axis) on a device, cached."""
    host = grid.distances() if axis is None else grid.axis_distances(axis)
    return move_to(xp, host, dtype=dtype, device=device)


def dense_matrix(grid: Grid, kernel, width: float) -> np.ndarray:
    """P as a NumPy K x K matrix, whichever form :func:`neighbourhood_operator` picks
    (any kernel, the signed 'mexican_hat' included)."""
    if kernel == "none":
        return np.eye(grid.n_codes)
    return np.asarray(neighbourhood_operator(grid, kernel, width, dense=True, signed=True).dense)


# ------------------------------------------------- the neighbourhood schedule

# What each setting of a schedule may be, declared once: the estimators take
# these constraints for their parameters of the same meaning.
SCHEDULE_CONSTRAINTS = {
    "kernel": [StrOptions(set(NEIGHBOURHOODS)), callable],
    "sigma": [Interval(Real, 0, None, closed="neither"), None],
    "sigma_end": [Interval(Real, 0, None, closed="neither"), None],
    "schedule": [StrOptions(set(SCHEDULES)), callable],
    "shrink": [Interval(Real, 0, None, closed="left")],
    "n_steps": [Interval(Integral, 1, None, closed="left"), None],
}


# The estimators' and layers' parameter for each setting of a schedule.
SCHEDULE_PARAMETERS = {
    "neighbourhood": "kernel",
    "sigma": "sigma",
    "sigma_end": "sigma_end",
    "schedule": "schedule",
    "shrink": "shrink",
    "schedule_steps": "n_steps",
}


@dataclass(frozen=True)
class NeighbourhoodSchedule:
    """The neighbourhood P(t) of every update step t, validated once.

    One object holds what the estimators and the torch layers need to
    spread a step's statistics: the grid, the kernel, its start and end
    widths and the schedule between them (docs/design.md sections 3 to 5).
    It is immutable, picklable and compares by value, so an estimator can
    tell cheaply whether its parameters still describe it.

    Parameters
    ----------
    grid : Grid
        Where the codes sit.
    kernel : str or callable, default='gaussian'
        A name of :data:`KERNELS`, ``'none'`` (P = I) or a callable
        ``f(d, width)`` on arrays of grid distances (the estimators'
        ``neighbourhood`` parameter).
    sigma : float, default=None
        Start width; None takes the kernel's default for ``grid`` (half the
        largest grid side for 'gaussian' and 'bubble', 10 for
        'exponential', 1 for 'hard').
    sigma_end : float, default=None
        End width of the 'exponential' and 'linear' schedules; None takes the
        kernel's default (1/3 for 'gaussian', 7/6 for 'triangle', 0.01 for
        'hard', 0.5 for the others), capped at the start width.
    schedule : {'exponential', 'linear', 'inverse'} or callable, default='exponential'
        How the width shrinks; a callable gets
        ``(step, n_steps, start, end, shrink)`` and returns the width.
    shrink : float, default=0.1
        The paper's shrink speed tau of the 'inverse' schedule.
    n_steps : int, default=None
        Steps over which the 'exponential' and 'linear' schedules run; None
        means "the run's length" (see :meth:`over`), or
        :data:`DEFAULT_STREAM_STEPS` for a stream of unknown length.

    Examples
    --------
    >>> from sklearn_ksom.topology import Grid, NeighbourhoodSchedule
    >>> schedule = NeighbourhoodSchedule(Grid((4, 4)), "gaussian", n_steps=10)
    >>> schedule.start, round(schedule.end, 3)
    (2.0, 0.333)
    >>> round(schedule.width(9), 3)
    0.333
    >>> schedule.at(0).spread(np.eye(16)).shape
    (16, 16)
    """

    grid: Grid
    kernel: object = "gaussian"
    sigma: float | None = None
    sigma_end: float | None = None
    schedule: object = "exponential"
    shrink: float = 0.1
    n_steps: int | None = None
    # The last P built, for the step that asks again (once a schedule has
    # reached its end width, every step): not part of the value.
    _last: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.grid, Grid):
            raise TypeError(f"grid must be a Grid, got {type(self.grid).__name__}.")
        validate_parameter_constraints(
            SCHEDULE_CONSTRAINTS,
            {name: getattr(self, name) for name in SCHEDULE_CONSTRAINTS},
            caller_name=type(self).__name__,
        )

    @classmethod
    def from_parameters(cls, grid: Grid, *, caller: str = "NeighbourhoodSchedule", **parameters):
        """The schedule that the parameters of :data:`SCHEDULE_PARAMETERS`
        describe (as the estimators and layers name them); a bad one raises a
        ValueError naming it and ``caller``."""
        validate_parameter_constraints(
            {name: SCHEDULE_CONSTRAINTS[field] for name, field in SCHEDULE_PARAMETERS.items()},
            parameters,
            caller_name=caller,
        )
        return cls(grid, **{SCHEDULE_PARAMETERS[name]: value for name, value in parameters.items()})

    @property
    def is_identity(self) -> bool:
        """Whether P = I at every step (no neighbourhood: EMA-VQ, k-means)."""
        return isinstance(self.kernel, str) and self.kernel == "none"

    @property
    def _defaults(self) -> Kernel:
        # A callable kernel takes the Gaussian's default widths.
        if isinstance(self.kernel, str) and self.kernel in KERNELS:
            return KERNELS[self.kernel]
        return KERNELS["gaussian"]

    @property
    def start(self) -> float:
        """Width at step 0."""
        return self._defaults.default_width(self.grid) if self.sigma is None else float(self.sigma)

    @property
    def end(self) -> float:
        """End width of the 'exponential' and 'linear' schedules."""
        if self.sigma_end is None:
            return min(self._defaults.default_end, self.start)
        return float(self.sigma_end)

    @property
    def length(self) -> int:
        """Steps over which the width reaches its end (bounded schedules)."""
        return DEFAULT_STREAM_STEPS if self.n_steps is None else int(self.n_steps)

    def over(self, n_steps: int) -> NeighbourhoodSchedule:
        """This schedule spanning a run of ``n_steps`` steps, unless its
        length was given."""
        return self if self.n_steps is not None else replace(self, n_steps=max(int(n_steps), 1))

    def width(self, step: int) -> float:
        """Width after ``step`` update steps: a finite number >= 0 (else a ValueError)."""
        return width_at(self.schedule, step, self.length, self.start, self.end, self.shrink)

    def at(self, step: int, *, xp=np, dtype=None, device=None) -> Neighbourhood:
        """P(t) at update step ``step``, in namespace ``xp`` on ``device``.

        The last operator built is kept: a run whose width has stopped
        changing does not rebuild it every step (a dense kernel costs K^2
        exponentials).
        """
        if self.is_identity:
            return _IDENTITY
        width = self.width(step)
        key = (width, xp, dtype, device)
        last = self._last
        if last.get("key") == key:
            return last["operator"]
        operator = neighbourhood_operator(self.grid, self.kernel, width, xp=xp, dtype=dtype, device=device)
        last.clear()
        last.update(key=key, operator=operator)
        return operator

    def __getstate__(self):
        # The kept operator lives on a device and names a namespace module.
        return {name: value for name, value in self.__dict__.items() if name != "_last"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        object.__setattr__(self, "_last", {})


_IDENTITY = Neighbourhood()
