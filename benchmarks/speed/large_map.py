"""A 256 x 256 map (K = 65 536) trained by partial_fit, in a process of its own.

``python -m benchmarks.speed.large_map ROWS COLS KERNEL STEPS`` prints one
JSON line: time per step and the process' peak resident memory, imports and
data included, and what it was before training began.  The parent runs it in a fresh process so that the peak is
this computation's alone.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time

import numpy as np

N_FEATURES = 64
BATCH = 1024


def main(rows, cols, kernel, steps):
    from sklearn_ksom import KohonenQuantizer
    from sklearn_ksom.topology import neighbourhood_operator

    rng = np.random.default_rng(0)
    X = rng.standard_normal((BATCH * (steps + 1), N_FEATURES)).astype(np.float32)
    model = KohonenQuantizer((rows, cols), neighbourhood=kernel, random_state=0)
    before = _max_rss()
    try:
        model.partial_fit(X[:BATCH])
    except ValueError as error:  # a kernel that needs the K x K matrix
        return {"kernel": kernel, "refused": str(error)}
    start = time.perf_counter()
    for step in range(1, steps + 1):
        model.partial_fit(X[step * BATCH : (step + 1) * BATCH])
    seconds = (time.perf_counter() - start) / steps
    return {
        "kernel": kernel,
        "grid": [rows, cols],
        "n_codes": math.prod((rows, cols)),
        "n_features": N_FEATURES,
        "batch_size": BATCH,
        "steps": steps,
        "seconds_per_step": seconds,
        "samples_per_s": BATCH / seconds,
        "dense_matrix": neighbourhood_operator(model.grid_, kernel, 1.0).dense is not None,
        "max_rss_before_bytes": before,
        "max_rss_bytes": _max_rss(),
    }


def _max_rss():
    """Peak resident memory of this process so far, bytes.

    Linux's VmHWM belongs to this program's own address space;
    ``ru_maxrss`` would also count the parent's size at the fork.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux; other systems differ

if __name__ == "__main__":
    rows, cols, kernel, steps = sys.argv[1:5]
    print(json.dumps(main(int(rows), int(cols), kernel, int(steps))))
