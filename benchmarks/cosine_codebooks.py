"""Do cosine codebooks change a VQ-VAE's codebook use and reconstruction?

The demo's VQ-VAE (``torch_adapter.demo.DEMO_SETTINGS``: the bundled photo
patches, h=64, D=32, a 16 x 16 codebook, batch 64) trained with each
bottleneck (KSOM, EMA-VQ) and each metric (Euclidean, cosine), for a few
seeds, everything else equal.  Figures are the last validation's
(validation images, standardised pixels): reconstruction MSE, perplexity
of the code usage and the share of codes used, and the best validation MSE
of the run.  One torch thread, the runs one after the other.

    PYTHONPATH=. python benchmarks/cosine_codebooks.py --steps 800 --seeds 0 1 --out runs/cosine

writes ``runs/cosine/table.md`` (the table of docs/vqvae.md) and prints it.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import torch

from torch_adapter.demo import DEMO_SETTINGS
from torch_adapter.train import TrainConfig, read_metrics, train

QUANTIZERS = {"KSOM": "ksom", "EMA-VQ": "ema"}
METRICS = ("euclidean", "cosine")
FIGURES = ("val_mse", "best_val_mse", "val_perplexity", "val_used")


def run(out: Path, quantizer: str, metric: str, seed: int, steps: int) -> dict:
    """Train one cell (or reuse a finished run of it) and read its figures."""
    folder = out / f"{quantizer}-{metric}-seed{seed}"
    log = read_metrics(folder) if (folder / "metrics.jsonl").exists() else []
    if not log or log[-1]["step"] < steps:
        shutil.rmtree(folder, ignore_errors=True)
        config = TrainConfig(**{**DEMO_SETTINGS, "steps": steps, "seed": seed, "progress": False,
                                "quantizer": quantizer, "metric": metric})  # fmt: skip
        started = time.perf_counter()
        train(folder, config)
        print(f"{folder.name}: {time.perf_counter() - started:.0f} s", flush=True)
        log = read_metrics(folder)
    validated = [line for line in log if "val_mse" in line]
    last = validated[-1]
    n_codes = TrainConfig(**DEMO_SETTINGS).n_codes
    return {
        "val_mse": last["val_mse"],
        "best_val_mse": min(line["val_mse"] for line in validated),
        "val_perplexity": last["val_perplexity"],
        "val_used": last["val_utilisation"] * n_codes,
    }


def table(results: dict, seeds, steps: int) -> str:
    """Markdown: one row per bottleneck and metric, mean over seeds (each seed's value after it)."""
    lines = [
        f"| bottleneck | metric | val MSE | best val MSE | val perplexity | codes used (of 256) |",
        "|---|---|---|---|---|---|",
    ]
    formats = {"val_mse": "{:.4f}", "best_val_mse": "{:.4f}", "val_perplexity": "{:.1f}", "val_used": "{:.0f}"}
    for name in QUANTIZERS:
        for metric in METRICS:
            cells = []
            for figure in FIGURES:
                values = [results[name, metric, seed][figure] for seed in seeds]
                shown = formats[figure].format(statistics.mean(values))
                if len(values) > 1:
                    shown += " (" + ", ".join(formats[figure].format(v) for v in values) + ")"
                cells.append(shown)
            lines.append(f"| {name} | {metric} | " + " | ".join(cells) + " |")
    seeds_text = ", ".join(str(s) for s in seeds)
    return "\n".join(lines) + f"\n\n{steps} steps, seeds {seeds_text}: the mean, each seed's value in brackets.\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=Path("runs/cosine"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = {
        (name, metric, seed): run(args.out, quantizer, metric, seed, args.steps)
        for seed in args.seeds
        for name, quantizer in QUANTIZERS.items()
        for metric in METRICS
    }
    text = table(results, args.seeds, args.steps)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
