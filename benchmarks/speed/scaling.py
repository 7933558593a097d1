"""How time and working memory grow with N, K and D."""

from __future__ import annotations

import math

from sklearn_ksom import KohonenQuantizer

from . import contenders as c
from .measure import Contender, time_side_by_side, traced_peak

def _square_grid(n_codes):
    side = math.isqrt(n_codes)
    return (side, n_codes // side)


def _fit(X, grid_shape, iterations):
    def prepare():
        return lambda: KohonenQuantizer(grid_shape, max_iter=iterations, random_state=0).fit(X)

    return Contender(f"fit ({iterations} iterations)", prepare, X.shape[0])


def _point(X, grid_shape, plan):
    """Median times and traced peak memory of one epoch of partial_fit and of fit."""
    contenders = [c.kohonen_partial_fit(X, grid_shape, plan.batch_size), _fit(X, grid_shape, plan.scaling_fit_iterations)]
    timings = time_side_by_side(contenders, plan.scaling_repeats)
    point = {}
    for contender in contenders:
        run = contender.prepare()
        point[contender.name] = {
            "seconds": timings[contender.name].median,
            "peak_bytes": traced_peak(run),
        }
    return point


def scaling(data, plan, log=print) -> dict:
    sweeps = {
        "N": [(n, 256, 64) for n in plan.scaling_n],
        "K": [(plan.scaling_rows, k, 64) for k in plan.scaling_k],
        "D": [(plan.scaling_rows, 256, d) for d in plan.scaling_d],
    }
    results = {}
    for axis, points in sweeps.items():
        results[axis] = []
        for n_samples, n_codes, n_features in points:
            X = data.vectors(n_samples, n_features)
            grid_shape = _square_grid(n_codes)
            point = _point(X, grid_shape, plan)
            results[axis].append({"N": n_samples, "K": n_codes, "D": n_features, "results": point})
            log(
                f"scaling {axis}: N={n_samples} K={n_codes} D={n_features}: "
                + ", ".join(
                    f"{name} {r['seconds']:.3f} s / {r['peak_bytes'] / 2**20:.0f} MiB" for name, r in point.items()
                )
            )
    return results


def plot(results, path):
    """Time and traced peak memory against N, K and D (log-log), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 3, figsize=(10, 5.6), sharex="col")
    fixed = {"N": "K=256, D=64", "K": "D=64", "D": "K=256"}
    for column, (axis, points) in enumerate(results.items()):
        x = [p[axis] for p in points]
        for name in points[0]["results"]:
            seconds = [p["results"][name]["seconds"] for p in points]
            peaks = [p["results"][name]["peak_bytes"] / 2**20 for p in points]
            label = "partial_fit, one epoch" if name.endswith("partial_fit") else name
            axes[0, column].loglog(x, seconds, "o-", label=label)
            axes[1, column].loglog(x, peaks, "o-", label=label)
        rows = points[0]["N"] if axis != "N" else None
        axes[0, column].set_title(f"growing {axis} ({fixed[axis]}" + (f", N={rows})" if rows else ")"), fontsize=9)
        axes[1, column].set_xlabel(axis)
    axes[0, 0].set_ylabel("seconds (median)")
    axes[1, 0].set_ylabel("peak working memory, MiB")
    axes[0, 0].legend(fontsize=8)
    for ax in axes.flat:
        ax.grid(True, which="both", alpha=0.3)
        ax.tick_params(labelsize=8)
    figure.suptitle("KohonenQuantizer: one partial_fit epoch (batch 1024) and fit, float32", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=72)
    plt.close(figure)
