"""The demo (``make demo``): KSOM against EMA-VQ on the bundled photo patches.

Trains the two bottlenecks with the same model, data, seed and steps, draws
every picture of :mod:`torch_adapter.pictures` and writes ``report.md``
with the figures side by side.  Sized for a few minutes on two CPU cores
(docs/design.md section 10: about 0.12 s a step at h=64, batch 128).

The demo is deterministic: every random draw comes from the seed (weights,
codebook, split, batch order) and nothing depends on the clock.  Its
figures repeat bit for bit with the same code, PyTorch build and torch
thread count.  Another thread count (or a change to the arithmetic of the
core) sums in another order; training amplifies the last-bit differences
within a hundred or so steps, and gives another run of the same quality,
not the same figures.  The report therefore names what it ran on.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from sklearn_ksom.metrics import grid_smoothness

from . import pictures
from .train import TrainConfig, code_grid, load_run, read_metrics, saved_config, train

# The two runs of the demo: same everything but the bottleneck.
DEMO_RUNS = {"KSOM": {"quantizer": "ksom"}, "EMA-VQ": {"quantizer": "ema"}}
DEMO_SETTINGS = dict(
    data="patches", hidden=64, residual_hidden=32, dim=32, grid_shape=(16, 16), batch_size=64, steps=1000,
    lr=1e-3, log_every=10, val_every=100, val_images=1024, checkpoint_every=500, seed=0,
)

DATA_DESCRIPTIONS = {
    "patches": "32x32 colour patches of the photos bundled with scikit-learn and scikit-image",
    "digits": "scikit-learn's 8x8 grey digits",
    "fashion-mnist": "Fashion-MNIST, 28x28 grey",
    "mnist": "MNIST, 28x28 grey",
    "cifar10": "CIFAR-10, 32x32 colour",
}


def draw_pictures(run_dirs, out, *, device="cpu", shift_axis: int = 0, names=None) -> list[Path]:
    """Every picture for the runs in ``run_dirs``; returns the PNG paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run_dirs = [Path(d) for d in run_dirs]
    names = names or [d.name for d in run_dirs]
    logs = {name: read_metrics(d) for name, d in zip(names, run_dirs)}
    paths = [
        pictures.plot_metrics(logs, ["loss", "val_mse"], out / "losses.png"),
        pictures.plot_metrics(logs, ["perplexity", "val_perplexity"], out / "perplexity.png"),
        pictures.plot_metrics(logs, ["topographic_error", "val_topographic_error"], out / "topographic_error.png"),
    ]
    models, data_sets = {}, {}
    for name, directory in zip(names, run_dirs):
        model, images, config = load_run(directory, device)
        grid = code_grid(model.quantizer, config)
        models[name], data_sets[name] = model, images
        slug = _slug(name)
        paths.append(pictures.plot_codebook(model, grid, images, out / f"codebook_{slug}.png",
                                            title=f"{name}: each code decoded alone", device=device))
        paths.append(pictures.plot_index_shift(model, grid, images, out / f"index_shift_{slug}.png",
                                               axis=shift_axis, title=f"{name}: latent indices shifted by k",
                                               device=device))
    if len({data_sets[name].name for name in names}) == 1:  # one figure when the runs share their data
        paths.append(pictures.plot_reconstructions(models, images, out / "reconstructions.png", device=device))
    else:
        for name in names:
            paths.append(pictures.plot_reconstructions({name: models[name]}, data_sets[name],
                                                       out / f"reconstructions_{_slug(name)}.png", device=device))
    return paths


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def run_demo(out="runs/demo", **changes) -> Path:
    """Train both runs in ``out``, draw the pictures and write ``out/report.md``."""
    out = Path(out)
    settings = {**DEMO_SETTINGS, **changes}
    started = time.perf_counter()
    for name, bottleneck in DEMO_RUNS.items():
        print(f"training {name} ({settings['steps']} steps)", flush=True)
        train(out / _slug(name), TrainConfig(**{**settings, **bottleneck}))
    run_dirs = [out / _slug(name) for name in DEMO_RUNS]
    draw_pictures(run_dirs, out, names=list(DEMO_RUNS))
    report = write_report(out, run_dirs, list(DEMO_RUNS), time.perf_counter() - started)
    return report


def headline(run_dir, name: str) -> dict:
    """The figures the report compares, from a run's log and checkpoint."""
    log = read_metrics(run_dir)
    validated = [line for line in log if "val_mse" in line]
    last = validated[-1]
    model, images, config = load_run(run_dir)
    tiles = pictures.decode_each_code(model, images)
    return {
        "name": name,
        "steps": last["step"],
        "best_val_mse": min(line["val_mse"] for line in validated),
        "val_mse": last["val_mse"],
        "val_perplexity": last["val_perplexity"],
        "val_utilisation": last["val_utilisation"],
        "val_topographic_error": last["val_topographic_error"],
        "smoothness": grid_smoothness(tiles, code_grid(model.quantizer, config)),
        "seconds_per_step": log[-1]["wall_time"] / max(log[-1]["step"], 1),
        "n_codes": model.quantizer.n_codes,
    }


def _usage_text(ksom: dict, ema: dict) -> str:
    n_codes = ksom["n_codes"]
    text = (
        f"On the validation set KSOM uses {round(ksom['val_utilisation'] * n_codes)} of its {n_codes} codes "
        f"(perplexity {ksom['val_perplexity']:.1f}), EMA-VQ {round(ema['val_utilisation'] * n_codes)} "
        f"(perplexity {ema['val_perplexity']:.1f})."
    )
    if ema["val_utilisation"] < 0.5 * ksom["val_utilisation"]:
        text += (
            " EMA-VQ uses a small part of its codebook. At the start the encoder's outputs lie close to zero while "
            "the codes are drawn from N(0, 1), so a handful of codes win every assignment, and EMA-VQ moves only "
            "the codes that win; KSOM's early neighbourhood moves the winners' grid neighbours too and so pulls "
            "the whole codebook towards the data (the robustness the paper reports for KSOM)."
        )
    return text


def write_report(out: Path, run_dirs, names, seconds: float) -> Path:
    rows = [headline(d, n) for d, n in zip(run_dirs, names)]
    config = saved_config(run_dirs[0])
    ksom, ema = rows[0], rows[1]
    islands = ksom["smoothness"] < 0.8 * ema["smoothness"]
    lines = [
        "# KSOM against EMA-VQ: VQ-VAE demo report",
        "",
        f"Data: {config.data} ({DATA_DESCRIPTIONS.get(config.data, 'see --data')}), "
        f"{config.steps} steps, batch {config.batch_size}, h={config.hidden}, D={config.dim}, "
        f"K={ksom['n_codes']} on a {'x'.join(map(str, config.grid_shape))} grid, seed {config.seed}. "
        f"Total wall time {seconds / 60:.1f} min.",
        "",
        f"Ran on PyTorch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), Python "
        f"{platform.python_version()}, {torch.get_num_threads()} torch thread(s). The figures repeat bit for bit "
        "with the same code, PyTorch build and thread count; another thread count rounds its sums in another "
        "order and gives another run of the same quality, not the same figures.",
        "",
        "| bottleneck | best val MSE | last val MSE | val perplexity | utilisation | topographic error "
        "| grid smoothness | s / step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['best_val_mse']:.4f} | {row['val_mse']:.4f} | {row['val_perplexity']:.1f} "
            f"| {row['val_utilisation']:.2f} | {row['val_topographic_error']:.3f} | {row['smoothness']:.2f} "
            f"| {row['seconds_per_step']:.3f} |"
        )
    lines += [
        "",
        "Validation MSE is on per-channel standardised pixels. Topographic error: share of validation latents "
        "whose two nearest codes are not grid neighbours (EMA-VQ's codes are laid out on the same grid by "
        "index). Grid smoothness: mean squared difference of the decoded tiles of neighbouring codes over that "
        "of all pairs (1 = no topology, lower = smoother). s / step: training time per step (no validation), "
        "on the machine as loaded during the run.",
        "",
        "## Codebook use",
        "",
        _usage_text(ksom, ema),
        "",
        "## Topology",
        "",
        (
            f"The KSOM codebook is ordered: neighbouring codes decode to similar tiles (smoothness "
            f"{ksom['smoothness']:.2f} against {ema['smoothness']:.2f} for EMA-VQ), which shows as smooth islands "
            "in its picture; EMA-VQ's tiles sit in no order (noise)."
            if islands else
            f"In this run the smooth islands do NOT clearly appear: the KSOM codebook's smoothness "
            f"({ksom['smoothness']:.2f}) is not well below EMA-VQ's ({ema['smoothness']:.2f}). Train longer "
            "(--steps) or with a slower-shrinking neighbourhood (smaller --shrink)."
        ),
        "",
        "| KSOM | EMA-VQ |",
        "|---|---|",
        "| ![KSOM codebook](codebook_ksom.png) | ![EMA-VQ codebook](codebook_ema_vq.png) |",
        "",
        "## Index shift",
        "",
        "Every latent index moved k grid steps along the grid's first axis, then decoded. A topological "
        "codebook keeps the images recognisable for small k.",
        "",
        "| KSOM | EMA-VQ |",
        "|---|---|",
        "| ![KSOM index shift](index_shift_ksom.png) | ![EMA-VQ index shift](index_shift_ema_vq.png) |",
        "",
        "## Curves",
        "",
        "![losses](losses.png)",
        "",
        "![perplexity](perplexity.png)",
        "",
        "![topographic error](topographic_error.png)",
        "",
        "## Reconstructions",
        "",
        "![reconstructions](reconstructions.png)",
        "",
        "Reproduce: `make demo` (or `python -m torch_adapter demo --out " + str(out) + "`).",
        "",
    ]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report
