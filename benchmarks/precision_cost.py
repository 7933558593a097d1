"""What exact distances and the doubtful-row check cost a streaming step.

``core.assign`` computes each row's distance to its winner by differences
and assigns again, by differences, the rows whose winner the GEMM's
rounding may have changed (docs/design.md section 11).  This times
``KohonenQuantizer.partial_fit`` epochs (batch 256, the estimator's fitted
defaults) with that work and without it (the GEMM's own distances, no
check: the code path before), alternating in one process, one thread,
and reports the minimum over rounds.  Shapes: the speed benchmark's
reference (Fashion-MNIST PCA-64 where installed, else blobs; 16x16) and
maps on standard normal 2-D and 3-D data, where many rows lie close to a
code and so are candidates.  It also counts the rows checked and
reassigned.

    PYTHONPATH=. python benchmarks/precision_cost.py    # writes benchmarks/precision_cost.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.speed.data import Dataset
from sklearn_ksom import KohonenQuantizer, core

HERE = Path(__file__).resolve().parent
SHAPES = (((16, 16), 64), ((16, 16), 3), ((32, 32), 2), ((64, 64), 2))


def data(n_features: int, n_samples: int) -> np.ndarray:
    if n_features == 64:
        return Dataset("auto").vectors(n_samples, n_features)
    return np.random.default_rng(0).normal(size=(n_samples, n_features)).astype(np.float32)


class Switch:
    """Turns the exact distances and the check off (and counts when on)."""

    def __init__(self):
        self.doubtful, self.imprecise, self.rounding_error = core._doubtful, core._imprecise, core._rounding_error
        self.candidates = self.reassigned = self.recomputed = 0

    def on(self):
        def doubtful(error, distance, best, scores, xp):
            found = self.doubtful(error, distance, best, scores, xp)
            self.candidates += int(np.count_nonzero(core._candidates(error, distance, core.WINNER_SHARE)))
            self.reassigned += 0 if found is None else int(np.count_nonzero(found))
            return found

        def imprecise(error, distance, suspect, xp):
            found = self.imprecise(error, distance, suspect, xp)
            self.recomputed += 0 if found is None else int(np.count_nonzero(found))
            return found

        core._doubtful, core._imprecise, core._rounding_error = doubtful, imprecise, self.rounding_error

    def off(self):
        core._doubtful = lambda *args: None
        core._imprecise = lambda *args: None
        # The one test of the common case never passes: no row is suspect.
        core._rounding_error = lambda norms, n_features, xp: xp.full_like(norms, -xp.inf)

    def restore(self):
        core._doubtful, core._imprecise, core._rounding_error = self.doubtful, self.imprecise, self.rounding_error


def measure(grid, n_features, rounds, steps):
    X = data(n_features, 60_000)
    som = KohonenQuantizer(grid, random_state=0).fit(X[:20_000])
    switch = Switch()
    times = {"on": [], "off": []}
    try:
        for _ in range(rounds):
            for side in ("on", "off"):
                getattr(switch, side)()
                start = time.perf_counter()
                for i in range(0, steps * 256, 256):
                    som.partial_fit(X[i:i + 256])
                times[side].append((time.perf_counter() - start) / steps)
    finally:
        switch.restore()
    rows = rounds * steps * 256
    return {
        "grid": grid, "n_features": n_features, "with": min(times["on"]), "without": min(times["off"]),
        "candidates": switch.candidates / rows, "reassigned": switch.reassigned / rows,
        "recomputed": switch.recomputed / rows,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=50, help="partial_fit steps of 256 rows a round")
    parser.add_argument("--out", type=Path, default=HERE / "precision_cost.md")
    args = parser.parse_args(argv)
    lines = [
        "# What exact distances and the doubtful-row check cost a streaming step",
        "",
        "`PYTHONPATH=. python benchmarks/precision_cost.py` (one thread; minimum over "
        f"{args.rounds} alternating rounds of {args.steps} `partial_fit` steps of 256 rows; data: "
        f"{Dataset('auto').describe()} for D = 64, standard normal otherwise).",
        "",
        "| map | D | step with | step without | cost | rows checked for a near tie | rows reassigned "
        "| rows whose distance is recomputed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    with threadpool_limits(1):
        for grid, n_features in SHAPES:
            r = measure(grid, n_features, args.rounds, args.steps)
            lines.append(
                f"| {grid[0]}x{grid[1]} | {n_features} | {r['with'] * 1e6:.0f} us | {r['without'] * 1e6:.0f} us | "
                f"{100 * (r['with'] / r['without'] - 1):+.1f} % | {100 * r['candidates']:.1f} % | "
                f"{100 * r['reassigned']:.3f} % | {100 * r['recomputed']:.1f} % |"
            )
            print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
