"""The KSOM step written out from the method's formulas, for the tests alone.

Nothing here comes from the library: the grid positions, the grid distances,
the width schedules, the kernels and P(t) are plain NumPy loops over codes,
and the step uses the explicit one-hot E and spread assignment E~ = E P that
the library never builds.  Tests compare the estimators' ``partial_fit`` and
the torch layers' training step with it.
"""

import math

import numpy as np
from hypothesis import strategies as st


def grid_distances(shape, hexagonal=False, toroidal=False):
    """Euclidean distance between the grid positions of every pair of codes, (K, K).

    Codes are numbered row by row.  On a hexagonal grid odd rows are shifted
    by half a cell and rows lie sqrt(3)/2 apart; a toroidal grid wraps each
    axis, so the distance along it is the shorter way round.
    """
    rows, cols = shape if len(shape) == 2 else (1, shape[0])
    row_step = math.sqrt(3) / 2 if hexagonal else 1.0
    positions = []
    for r in range(rows):
        for c in range(cols):
            shift = 0.5 if hexagonal and r % 2 == 1 else 0.0
            positions.append((r * row_step, c + shift))
    periods = (rows * row_step, cols)
    K = len(positions)
    d = np.zeros((K, K))
    for a in range(K):
        for b in range(K):
            squared = 0.0
            for axis in range(2):
                delta = positions[b][axis] - positions[a][axis]
                if toroidal:
                    delta -= periods[axis] * round(delta / periods[axis])
                squared += delta * delta
            d[a, b] = math.sqrt(squared)
    return d


def width(schedule, t, n_steps, sigma, sigma_end, tau):
    """Neighbourhood width at update step t."""
    if schedule == "inverse":
        return sigma / (1 + tau * t)  # the paper's shrink
    progress = min(t / max(n_steps - 1, 1), 1.0)
    if schedule == "exponential":
        return sigma * (sigma_end / sigma) ** progress
    return sigma + (sigma_end - sigma) * progress  # linear


def weight(kernel, d, s, *, t=None, b=None, tau=None):
    """P entry of a code at grid distance d from the winner, width s.

    With ``t``, ``b`` and ``tau`` the paper's Gaussian is written in its own
    form exp(-d (1 + tau t) / b).
    """
    if d == 0:
        return 1.0  # the winner itself
    if kernel == "hard":  # the paper's 1[d < 1.5] / (1 + tau t), weight at most 1
        return min(s, 1.0) if d < 1.5 else 0.0
    if kernel == "exponential":
        if t is not None:
            return math.exp(-d * (1 + tau * t) / b)
        return math.exp(-d / s)
    if kernel == "gaussian":
        return math.exp(-(d**2) / (2 * s**2))
    if kernel == "bubble":
        return 1.0 if d <= s else 0.0
    raise ValueError(kernel)


def neighbourhood_matrix(distances, kernel, schedule, t, n_steps, sigma, sigma_end, tau):
    """P(t), K x K, one entry at a time."""
    s = width(schedule, t, n_steps, sigma, sigma_end, tau)
    paper_form = dict(t=t, b=sigma, tau=tau) if (kernel, schedule) == ("exponential", "inverse") else {}
    K = distances.shape[0]
    P = np.zeros((K, K))
    for winner in range(K):
        for code in range(K):
            P[winner, code] = weight(kernel, distances[winner, code], s, **paper_form)
    return P


def nearest_codes(W, Z):
    """Nearest code of each row of Z, and the smallest gap between the best
    and the second-best squared distance (how close to a tie it came)."""
    codes, gap = [], np.inf
    for z in Z:
        d = np.array([np.sum((z - w) ** 2) for w in W])
        codes.append(int(np.argmin(d)))
        if len(d) > 1:
            best, second = np.sort(d)[:2]
            gap = min(gap, (second - best) / (1 + second))
    return np.array(codes), gap


def ksom_step(W, counts, sums, Z, P, *, decay, epsilon, update_all):
    """One KSOM step: nearest codes, E~ = E P, the EMA update (Laplace-smoothed
    over all codes, or of the assigned codes only).  Returns W, N, M, codes."""
    K = W.shape[0]
    codes, _ = nearest_codes(W, Z)
    E = np.zeros((len(Z), K))
    E[np.arange(len(Z)), codes] = 1.0
    spread = E @ P
    n, S = spread.sum(0), spread.T @ Z
    new_counts, new_sums = decay * counts + (1 - decay) * n, decay * sums + (1 - decay) * S
    if update_all:
        total = new_counts.sum()
        new_counts = (new_counts + epsilon) / (total + K * epsilon) * total
        return new_sums / new_counts[:, None], new_counts, new_sums, codes
    active = n > 0
    new_counts = np.where(active, new_counts, counts)
    new_sums = np.where(active[:, None], new_sums, sums)
    W = np.where(active[:, None], new_sums / np.where(active, new_counts, 1.0)[:, None], W)
    return W, new_counts, new_sums, codes


GRIDS = {
    "line": ((5,), False, False),
    "rectangular": ((3, 4), False, False),
    "hexagonal": ((3, 4), True, False),
    "toroidal": ((3, 4), False, True),
    "hexagonal toroidal": ((4, 3), True, True),
}


@st.composite
def ksom_settings(draw):
    """Grid, kernel, schedule, widths, EMA constants and a step to test."""
    shape, hexagonal, toroidal = GRIDS[draw(st.sampled_from(sorted(GRIDS)))]
    kernel = draw(st.sampled_from(["hard", "exponential", "gaussian", "bubble"]))
    sigma = draw(st.floats(0.3, 6.0))
    return dict(
        grid_shape=shape,
        hexagonal=hexagonal,
        toroidal=toroidal,
        neighbourhood=kernel,
        schedule=draw(st.sampled_from(["inverse", "exponential", "linear"])),
        sigma=sigma,
        sigma_end=draw(st.floats(0.05, 1.0)) * sigma,
        shrink=draw(st.floats(0.0, 2.0)),
        schedule_steps=draw(st.integers(2, 8)),
        decay=draw(st.floats(0.0, 0.99)),
        epsilon=draw(st.sampled_from([1e-5, 1e-2])),
        initial_count=draw(st.sampled_from([0.0, 1.0, 3.0])),
        update=draw(st.sampled_from(["all", "active"])),
    ), draw(st.integers(0, 5)), draw(st.integers(0, 2**32 - 1))


def reference_run(settings, W, batches):
    """The state after a KSOM step on each of ``batches`` from codebook W,
    and that step's codes: a list of (W, N, M, codes).

    Also the smallest relative gap between a row's two nearest codes over
    the run: below about 1e-9 the winner is a tie at float64 precision,
    which any implementation may break either way.
    """
    distances = grid_distances(settings["grid_shape"], settings["hexagonal"], settings["toroidal"])
    counts, sums = np.full(W.shape[0], settings["initial_count"]), W.copy()
    states, smallest_gap = [], np.inf
    for t, Z in enumerate(batches):
        smallest_gap = min(smallest_gap, nearest_codes(W, Z)[1])
        P = neighbourhood_matrix(
            distances, settings["neighbourhood"], settings["schedule"], t, settings["schedule_steps"],
            settings["sigma"], settings["sigma_end"], settings["shrink"],
        )  # fmt: skip
        W, counts, sums, codes = ksom_step(
            W, counts, sums, Z, P, decay=settings["decay"], epsilon=settings["epsilon"],
            update_all=settings["update"] == "all",
        )  # fmt: skip
        states.append((W, counts, sums, codes))
    return states, smallest_gap


def topographic_error(X, W, distances, radius):
    """Share of rows of X whose two nearest codes lie further apart on the
    grid than ``radius`` (1 on a hexagonal grid, the diagonal sqrt(2) on a
    rectangular one)."""
    errors = 0
    for x in X:
        first, second = np.argsort([np.sum((x - w) ** 2) for w in W], kind="stable")[:2]
        errors += distances[first, second] > radius + 1e-9
    return errors / len(X)
