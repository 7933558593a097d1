"""Dask fit on a local 2-worker cluster against the in-memory fit, same data.

Both sides run the same ``KohonenQuantizer.fit`` (batch algorithm on all
rows, PCA start on all rows, same iterations) on the same array, alternately, from one process;
the Dask side on a ``LocalCluster`` of worker processes on loopback, with
the data generated on and held by the workers (the in-memory side gets a
gathered copy).  The figures: the ratio of the best times, and how far
apart the two codebooks are.

    SCIPY_ARRAY_API=1 PYTHONPATH=. python benchmarks/dask_fit.py [--dtype float32]

In float32 the two sums differ in rounding order (chunk partial sums added
in a tree); about 1e-5 after one iteration, and on structureless data such
differences can flip near-tied assignments and grow over the iterations.
In float64 the codebooks agree to about 1e-14.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from sklearn.base import clone


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=200_000)
    parser.add_argument("--n-features", type=int, default=64)
    parser.add_argument("--grid", type=int, nargs="+", default=[16, 16])
    parser.add_argument("--max-iter", type=int, default=10)
    parser.add_argument("--chunk-rows", type=int, default=25_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    args = parser.parse_args()

    import dask.array as da
    from dask.distributed import Client, LocalCluster, wait

    from sklearn_ksom import KohonenQuantizer

    # Every iteration and the PCA start on all rows, as the Dask path runs
    # them (it ignores subsample and init_size): the same fit on both sides.
    estimator = KohonenQuantizer(
        grid_shape=tuple(args.grid), init="pca", max_iter=args.max_iter, subsample=None, init_size=args.n_samples,
        random_state=0,
    )

    with (
        LocalCluster(
            n_workers=args.workers, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        X_on_cluster = da.random.default_rng(0).standard_normal(
            (args.n_samples, args.n_features), chunks=(args.chunk_rows, args.n_features), dtype=args.dtype
        )
        X_on_cluster = client.persist(X_on_cluster)
        wait(X_on_cluster)
        X = X_on_cluster.compute()
        # Warm both sides once (imports on the workers, BLAS start-up).
        clone(estimator).set_params(max_iter=1).fit(X_on_cluster)
        clone(estimator).set_params(max_iter=1).fit(X)

        memory_times, cluster_times = [], []
        for _ in range(args.repeats):
            elapsed, in_memory = timed(lambda: clone(estimator).fit(X))
            memory_times.append(elapsed)
            elapsed, on_cluster = timed(lambda: clone(estimator).fit(X_on_cluster))
            cluster_times.append(elapsed)

    difference = np.abs(on_cluster.cluster_centers_ - in_memory.cluster_centers_).max()
    scale = np.abs(in_memory.cluster_centers_).max()
    print(
        f"data {args.n_samples} x {args.n_features} {args.dtype} (standard normal), grid {tuple(args.grid)}, "
        f"{args.max_iter} batch iterations, chunks of {args.chunk_rows} rows, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"in memory (one process):        best {min(memory_times):.3f} s  (all: {', '.join(f'{t:.3f}' for t in memory_times)})")
    print(
        f"Dask, {args.workers} local workers x 1 thread: best {min(cluster_times):.3f} s  "
        f"(all: {', '.join(f'{t:.3f}' for t in cluster_times)})"
    )
    print(f"ratio Dask / in memory: {min(cluster_times) / min(memory_times):.2f}")
    print(
        f"same answer: max |codebook difference| = {difference:.2e} (codebook scale {scale:.2f}), "
        f"inertia {on_cluster.inertia_:.6g} vs {in_memory.inertia_:.6g}"
    )


if __name__ == "__main__":
    main()
