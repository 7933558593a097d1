"""The side-by-side comparisons: streaming epochs and training to an error."""

from __future__ import annotations

import math

import numpy as np
from array_api_compat import array_namespace

from sklearn_ksom import KohonenQuantizer, metrics
from sklearn_ksom.topology import Grid

from . import contenders as c
from .measure import Contender, time_side_by_side

OURS = "KohonenQuantizer.partial_fit"
BOUND = "distance GEMM alone"


def streaming(data, plan, log=print) -> list:
    """One epoch of every streaming contender at each shape of the plan."""
    results = []
    for grid_shape, n_features in plan.streaming_shapes:
        X = data.vectors(plan.n_samples, n_features)
        batch = plan.batch_size
        log(f"streaming: {X.shape[0]} x {n_features}, map {grid_shape[0]}x{grid_shape[1]}, batch {batch}")
        timings = time_side_by_side(
            [
                c.kohonen_partial_fit(X, grid_shape, batch),
                c.ema_partial_fit(X, grid_shape, batch),
                c.minibatch_kmeans(X, grid_shape, batch),
                c.minisom_train_random(X, grid_shape, min(plan.minisom_samples, X.shape[0])),
                c.torchsom_fit(X, grid_shape, batch),
                c.distance_gemm(X, grid_shape, batch),
            ],
            plan.repeats,
        )
        results.append(_shape_result(grid_shape, n_features, X.shape[0], batch, timings))
        _log_rates(results[-1], log)
    return results


def _shape_result(grid_shape, n_features, n_samples, batch, timings):
    rows = {}
    ours, bound = timings[OURS].rate, timings[BOUND].rate
    for name, timing in timings.items():
        rows[name] = {
            "samples_per_s": timing.rate,
            "seconds": timing.seconds,
            "samples": timing.samples,
            "speedup_of_ours": ours / timing.rate if timing.seconds else None,
            "share_of_bound": timing.rate / bound if timing.seconds else None,
            "note": timing.note,
            "error": timing.error,
        }
    return {
        "grid": list(grid_shape),
        "n_codes": math.prod(grid_shape),
        "n_features": n_features,
        "n_samples": n_samples,
        "batch_size": batch,
        "rows": rows,
    }


def _log_rates(result, log):
    for name, row in result["rows"].items():
        if row["error"]:
            log(f"  {name:32s} failed: {row['error']}")
        else:
            log(f"  {name:32s} {row['samples_per_s']:12,.0f} samples/s  (ours x{row['speedup_of_ours']:.2f})")


# ------------------------------------------------- fit to the same error


def _minisom(X, grid_shape, train):
    """A MiniSom from a PCA start, trained by ``train(som)``; returns the codebook."""
    from minisom import MiniSom

    som = MiniSom(*grid_shape, X.shape[1], random_seed=0)
    som.pca_weights_init(X)
    train(som)
    return som.get_weights().reshape(-1, X.shape[1])


def batch_peers(X, grid_shape, plan) -> list:
    """The peers' batch training, each returning its trained codebook."""

    def train_batch():
        # MiniSom's "batch" training: one pass over the data in order, one
        # sample a step.
        return lambda: _minisom(X, grid_shape, lambda som: som.train_batch(X, X.shape[0]))

    def train_batch_offline():
        # Kohonen's batch algorithm as MiniSom implements it.
        iterations = plan.minisom_offline_iterations
        return lambda: _minisom(X, grid_shape, lambda som: som.train_batch_offline(X, iterations))

    def torchsom_fit():
        import torch
        from torchsom import SOM

        data = torch.as_tensor(X)

        def run():
            som = SOM(*grid_shape, X.shape[1], epochs=plan.torchsom_epochs, batch_size=plan.batch_size,
                      device="cpu", random_seed=0)
            som.fit(data, verbose=False)
            return som.weights.detach().reshape(-1, X.shape[1]).numpy()

        return run

    return [
        Contender("MiniSom.train_batch", train_batch, X.shape[0], "one pass in order, PCA start"),
        Contender(
            "MiniSom.train_batch_offline",
            train_batch_offline,
            X.shape[0],
            f"{plan.minisom_offline_iterations} iteration(s), PCA start",
        ),
        Contender("torchsom.fit", torchsom_fit, X.shape[0], f"{plan.torchsom_epochs} epochs, batch {plan.batch_size}"),
    ]


# The settings of ``fit`` tried against each peer: the defaults (coarse to
# fine, ending at MiniSom's own final width 1/3), the former end width 0.5,
# and mini-batch EMA epochs with the end width 1/3, smaller batches and a
# shorter memory (max_iter then counts epochs).
FIT_SETTINGS = {
    "defaults": {},
    "sigma_end=0.5": {"sigma_end": 0.5},
    "ema, batch_size=256, decay=0.95, sigma_end=1/3": {
        "algorithm": "ema",
        "batch_size": 256,
        "decay": 0.95,
        "sigma_end": 1 / 3,
    },
}


def _fit_name(setting, max_iter):
    return f"KohonenQuantizer.fit ({setting}, max_iter={max_iter})"


def _our_fit(X, grid_shape, setting, max_iter):
    def prepare():
        def run():
            model = KohonenQuantizer(grid_shape, max_iter=max_iter, random_state=0, **FIT_SETTINGS[setting])
            return np.asarray(model.fit(X).cluster_centers_)

        return run

    return Contender(_fit_name(setting, max_iter), prepare, X.shape[0])


def batch_to_error(data, plan, log=print) -> dict:
    """Time for ``fit`` (batch algorithm) to reach each peer's quantisation error.

    Each peer trains once untimed to learn its error; for each setting of
    :data:`FIT_SETTINGS`, the smallest ``max_iter`` of the plan's ladder
    whose ``fit`` reaches that error is then timed side by side with the
    peers.
    """
    grid_shape = plan.batch_grid
    X = data.vectors(plan.n_samples, plan.streaming_shapes[0][1])
    grid = Grid(grid_shape)
    log(f"fit to the peers' error: {X.shape[0]} x {X.shape[1]}, map {grid_shape[0]}x{grid_shape[1]}")

    def quality(codebook):
        codebook = np.asarray(codebook, dtype=X.dtype)
        return {
            "quantization_error": metrics.quantization_error(X, codebook),
            "topographic_error": metrics.topographic_error(X, codebook, grid),
        }

    ladders = {setting: {} for setting in FIT_SETTINGS}

    def our_error(setting, max_iter):
        ladder = ladders[setting]
        if max_iter not in ladder:
            model = KohonenQuantizer(grid_shape, max_iter=max_iter, random_state=0, **FIT_SETTINGS[setting])
            ladder[max_iter] = quality(model.fit(X).cluster_centers_)
        return ladder[max_iter]["quantization_error"]

    peers = batch_peers(X, grid_shape, plan)
    targets = {}
    for peer in peers:
        try:
            targets[peer.name] = quality(peer.prepare()())
        except Exception as error:
            targets[peer.name] = {"error": f"{type(error).__name__}: {error}"}
            log(f"  {peer.name} failed: {targets[peer.name]['error']}")
    matched = {}
    for name, target in targets.items():
        if "error" in target:
            continue
        for setting in FIT_SETTINGS:
            # The first rung that reaches the error; later ones are not fitted.
            matched[name, setting] = next(
                (m for m in plan.batch_iterations if our_error(setting, m) <= target["quantization_error"]), None
            )
    ours = sorted({(setting, m) for (_, setting), m in matched.items() if m is not None})
    timings = time_side_by_side(
        [p for p in peers if "error" not in targets[p.name]] + [_our_fit(X, grid_shape, *pair) for pair in ours],
        min(plan.repeats, 3),
    )
    rows = []
    for name, target in targets.items():
        if "error" in target:
            rows.append({"peer": name, **target})
            continue
        timing = timings[name]
        for setting in FIT_SETTINGS:
            m = matched[name, setting]
            row = {"peer": name, **target, "seconds": timing.median, "note": timing.note, "setting": setting,
                   "our_max_iter": m}  # fmt: skip
            if m is not None:
                fit_seconds = timings[_fit_name(setting, m)].median
                row.update(our_seconds=fit_seconds, speedup=timing.median / fit_seconds, ours=ladders[setting][m])
            rows.append(row)
            log(
                f"  {name:28s} {timing.median:7.2f} s, error {target['quantization_error']:.4f}; fit ({setting}) "
                + (f"max_iter={m}: {row['our_seconds']:.3f} s, x{row['speedup']:.1f}" if m else "not reached")
            )
    return {
        "grid": list(grid_shape),
        "n_samples": X.shape[0],
        "n_features": X.shape[1],
        "settings": {name: repr(params) for name, params in FIT_SETTINGS.items()},
        "ladders": {
            setting: {str(m): q for m, q in sorted(ladder.items())} for setting, ladder in ladders.items()
        },
        "rows": rows,
    }


# --------------------------------------------------- where a step's time goes


def step_anatomy(data, plan, log=print) -> dict:
    """Time of each part of a ``partial_fit`` step at the reference shape, per epoch.

    The parts are the core's own functions called on the epoch's batches
    with the trained model's state, side by side with the whole
    ``partial_fit``: what is left is validation and bookkeeping.
    """
    from sklearn_ksom import core

    grid_shape, n_features = plan.streaming_shapes[0]
    X = data.vectors(plan.n_samples, n_features)
    parts = c.batches(X, plan.batch_size)
    model = KohonenQuantizer(grid_shape, random_state=0)
    model.partial_fit(parts[0])
    state = core.EMAState(model.cluster_centers_, model.counts_, model.sums_)
    n_codes = state.codebook.shape[0]
    xp = array_namespace(X)
    neighbourhood = model.neighbourhood_schedule_.at(model.n_steps_, xp=xp, dtype=X.dtype, device="cpu")
    units = [core.assign(part, state.codebook).first for part in parts]
    statistics = [core.code_statistics(part, u, n_codes) for part, u in zip(parts, units)]
    codebook_t = state.codebook.T

    def each(function):
        return Contender(function.__name__, lambda: function, X.shape[0])

    def distance_gemm():
        for part in parts:
            xp.matmul(part, codebook_t)

    def assign():
        for part in parts:
            core.assign(part, state.codebook)

    def translation_safety():
        # What core.assign adds to keep distances exact far from the origin
        # (docs/design.md section 11): the reference point, and the shift of
        # the batch and the codebook where the reference is not the origin.
        for part in parts:
            reference = core.reference_point(state.codebook)
            if xp.any(reference):
                part - reference, state.codebook - reference

    def code_statistics():
        for part, u in zip(parts, units):
            core.code_statistics(part, u, n_codes)

    def neighbourhood_update():
        for counts, sums in statistics:
            spread_counts, spread_sums = core.spread_statistics(neighbourhood, counts, sums, xp=xp)
            core.ema_update(state, spread_counts, spread_sums, decay=model.decay_, epsilon=model.epsilon)

    def partial_fit():
        for part in parts:
            model.partial_fit(part)

    functions = (partial_fit, distance_gemm, assign, translation_safety, code_statistics, neighbourhood_update)
    timings = time_side_by_side([each(f) for f in functions], max(plan.repeats, 3))
    seconds = {name: timing.median for name, timing in timings.items()}
    total = seconds["partial_fit"]
    anatomy = {
        "distance GEMM": seconds["distance_gemm"],
        "argmin and distances (assign less GEMM and translation safety)": (
            seconds["assign"] - seconds["distance_gemm"] - seconds["translation_safety"]
        ),
        "translation safety (reference point and shift)": seconds["translation_safety"],
        "counts and sums (code_statistics)": seconds["code_statistics"],
        "neighbourhood spread and EMA update": seconds["neighbourhood_update"],
    }
    anatomy["validation, schedule and bookkeeping (the rest)"] = total - sum(anatomy.values())
    log("step anatomy (per epoch): " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in anatomy.items()))
    return {"grid": list(grid_shape), "n_features": n_features, "total_seconds": total, "parts": anatomy}
