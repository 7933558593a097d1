"""Where the codes sit, and how strongly an assignment spreads to neighbours.

A :class:`Grid` places K codes on a rectangular grid of any dimension, or on
a hexagonal 2-D grid, optionally wrapped into a torus.  A neighbourhood
kernel turns grid distances and a width into weights; a width schedule
shrinks the width over the update steps.  :func:`neighbourhood` combines the
three into a :class:`Neighbourhood`, the matrix P(t) of SPEC section 1 in the
form that is cheapest to apply to K-sized statistics: a Kronecker product of
small per-axis matrices where the kernel factorises over the grid's axes, a
dense K x K matrix otherwise.  No N x K x K array is ever formed.

The grid geometry is static and small, so it is computed with NumPy on the
host; only the neighbourhood weights travel to the statistics' device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Callable

import numpy as np

from ._array_api import device_of, move_to, namespace

# Largest dense neighbourhood matrix (entries) built before refusing: 2**28
# float32 entries are 1 GiB.  Separable kernels never build one.
MAX_DENSE_ENTRIES = 2**28


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
        shape = tuple(int(s) for s in np.atleast_1d(self.shape))
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
    # codes a weight of about 0.14 (gaussian, exponential): close to k-means
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
    """The paper's 'Gaussian' exp(-d / b'), d not squared (SPEC section 1).

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
    "gaussian": Kernel("gaussian", _gaussian, _half_largest_side, factorises=lambda g: True),
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
    return float(function(step, n_steps, start, end, shrink))


# ----------------------------------------------------------- the operator P


@dataclass
class Neighbourhood:
    """P(t) as a linear operator on K-sized statistics (SPEC section 1).

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

    def spread(self, stats, xp):
        """Return P^T @ stats for stats of shape (K,) or (K, D).

        n = colsum(E) P and E~^T Z = P^T E^T Z are both this product.
        """
        if self.is_identity:
            return stats
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


def neighbourhood(
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
    diagonal = distances == 0
    if spec.amplitude:
        weights = amplitude * weights
    return Neighbourhood(dense=xp.where(diagonal, xp.ones_like(weights), weights))


@lru_cache(maxsize=64)
def _distances_on(grid: Grid, axis, xp, dtype, device):
    """Grid distances (all pairs, or along one axis) on a device, cached."""
    host = grid.distances() if axis is None else grid.axis_distances(axis)
    return move_to(xp, host, dtype=dtype, device=device)


def dense_matrix(grid: Grid, kernel, width: float) -> np.ndarray:
    """P as a NumPy K x K matrix, whichever form :func:`neighbourhood` picks
    (any kernel, the signed 'mexican_hat' included)."""
    if kernel == "none":
        return np.eye(grid.n_codes)
    return np.asarray(neighbourhood(grid, kernel, width, dense=True, signed=True).dense)
