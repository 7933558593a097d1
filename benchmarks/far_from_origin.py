"""Quality far from the origin: the same data shifted by an offset, in float32.

3 000 rows of a standard normal in 3-D, shifted by 0, 1e4, 1e5, 1e6 and
1e7 and cast to float32; each estimator's defaults fitted on them, and the
quantisation error of its codes measured in float64 against the shifted
rows.  A translation-safe quantiser gives the same QE at every offset
until float32 cannot hold the spread (its spacing at 1e7 is 1).
scikit-learn's KMeans (16 clusters, one init) is the yardstick.

    PYTHONPATH=. python benchmarks/far_from_origin.py    # writes benchmarks/far_from_origin.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from sklearn_ksom import EMAQuantizer, KohonenQuantizer, metrics

HERE = Path(__file__).resolve().parent
OFFSETS = (0.0, 1e4, 1e5, 1e6, 1e7)
ESTIMATORS = {
    "KohonenQuantizer((4, 4)) (batch)": lambda: KohonenQuantizer((4, 4), random_state=0),
    "KohonenQuantizer((4, 4), algorithm='ema')": lambda: KohonenQuantizer((4, 4), algorithm="ema", random_state=0),
    "EMAQuantizer(16)": lambda: EMAQuantizer(16, random_state=0),
    "KMeans(16, n_init=1)": lambda: KMeans(16, n_init=1, random_state=0),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=HERE / "far_from_origin.md")
    args = parser.parse_args(argv)
    X = np.random.default_rng(0).normal(size=(args.rows, 3))
    lines = [
        "# Quality far from the origin (float32)",
        "",
        f"`PYTHONPATH=. python benchmarks/far_from_origin.py`: {args.rows} standard normal rows in 3-D plus the "
        "offset, as float32; QE of the fitted codes against the shifted rows, in float64.",
        "",
        "| estimator | " + " | ".join(f"offset {offset:g}" for offset in OFFSETS) + " |",
        "|---|" + "---|" * len(OFFSETS),
    ]
    with threadpool_limits(1):
        for name, make in ESTIMATORS.items():
            cells = []
            for offset in OFFSETS:
                shifted = (X + offset).astype(np.float32)
                codes = make().fit(shifted).cluster_centers_.astype(np.float64)
                cells.append(f"{metrics.quantization_error(shifted.astype(np.float64), codes):.3f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
