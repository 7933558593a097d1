"""Turn the logged runs of ``paper_sweep.py`` into the results report (RESULTS.md and PNGs).

Everything in the report is computed here from the run folders
(``config.json``, ``metrics.jsonl``, ``checkpoint.pt``), ``timing.json``
and ``sweep.json``; nothing is typed in by hand.  Figures follow the
paper's form (docs/design.md section 10): "loss" is the best validation MSE x 1000,
mean +- std over seeds; "+10 %" / "+20 %" the steps until a run's
validation MSE first reaches 1.1x (1.2x) its own best.

Each claim gets a verdict by a rule stated next to it in the report (for
instance "within 5 %"); an optional notes file (``--notes``) adds the
discussion written after reading the figures.

    PYTHONPATH=. python benchmarks/paper/paper_report.py runs/paper --out benchmarks/paper \\
        --notes benchmarks/paper/notes.md
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_sweep import CELLS, FAILED_FILE, SWEEP_FILE, TIMED_CELLS, TIMING_FILE  # noqa: E402

ABLATION_GRID = ("ema-n0-all", "ema-n1-all", "ema-n0-active", "ema-n1-active",
                 "ksom-n0-all", "ksom-n1-all", "ksom-n0-active", "ksom-n1-active")
ABLATIONS = ("ksom-n1-all", "ksom-tau1", "ksom-tau0.01", "ksom-1d", "ksom-gaussian")
EMA_REFERENCE, KSOM_REFERENCE = "ema-n1-all", "ksom-n1-all"
# "Within a few percent" (claims 1, 3, 6), read as 5 %.
CLOSE = 0.05
CONVERGENCE_FACTORS = (1.1, 1.2)


# --------------------------------------------------------------- one run


@dataclass
class RunSummary:
    """The figures of one run, from its metrics log."""

    seed: int
    steps: int  # steps the run was configured for
    last_step: int  # last logged step
    best_mse: float
    best_step: int
    steps_to: dict  # factor -> first step with validation MSE <= factor * best
    final: dict  # the last validation line's figures
    mean_perplexity: float  # training-batch perplexity averaged over the log
    step_seconds: float  # training wall time per step (inside the sweep, under its load)
    curves: dict = field(repr=False, default_factory=dict)  # key -> (steps, values)
    failed: str | None = None

    @property
    def complete(self) -> bool:
        return self.failed is None and self.last_step >= self.steps


def steps_to_reach(steps, values, target):
    """First step at which ``values`` is at or below ``target`` (None if never)."""
    for step, value in zip(steps, values):
        if value <= target:
            return step
    return None


def summarise_run(lines: list[dict], config: dict, seed: int, failed: str | None = None) -> RunSummary | None:
    validation = [line for line in lines if "val_mse" in line and math.isfinite(line["val_mse"])]
    if not validation:
        return None
    val_steps = [line["step"] for line in validation]
    val_mse = [line["val_mse"] for line in validation]
    best = min(val_mse)
    last = lines[-1]
    curves = {key: ([line["step"] for line in lines if key in line], [line[key] for line in lines if key in line])
              for key in ("val_mse", "perplexity", "val_perplexity", "val_dead_codes", "dead_codes",
                          "val_topographic_error")}
    return RunSummary(
        seed=seed,
        steps=int(config["steps"]),
        last_step=int(last["step"]),
        best_mse=best,
        best_step=val_steps[val_mse.index(best)],
        steps_to={f: steps_to_reach(val_steps, val_mse, f * best) for f in CONVERGENCE_FACTORS},
        final={key.removeprefix("val_"): validation[-1][key] for key in
               ("val_mse", "val_perplexity", "val_utilisation", "val_dead_codes", "val_topographic_error")},
        mean_perplexity=statistics.fmean(line["perplexity"] for line in lines),
        step_seconds=last["wall_time"] / last["step"],
        curves=curves,
        failed=failed,
    )


def load_runs(out) -> dict:
    """{data: {cell: [RunSummary, ...]}} of every run folder under ``out``."""
    found = {}
    for config_path in sorted(Path(out).glob("*/*/seed*/config.json")):
        run_dir = config_path.parent
        cell, data = run_dir.parent.name, run_dir.parent.parent.name
        if cell not in CELLS:
            continue
        config = json.loads(config_path.read_text())
        log = run_dir / "metrics.jsonl"
        lines = [json.loads(t) for t in log.read_text().splitlines() if t.strip()] if log.is_file() else []
        failed = (run_dir / FAILED_FILE).read_text().strip() if (run_dir / FAILED_FILE).is_file() else None
        summary = summarise_run(lines, config, int(config["seed"]), failed) if lines else None
        if summary is not None:
            found.setdefault(data, {}).setdefault(cell, []).append(summary)
    return found


# ------------------------------------------------------------ statistics


@dataclass
class Stat:
    mean: float
    std: float  # sample std over seeds (0 with one seed)
    n: int

    def format(self, scale=1.0, digits=2) -> str:
        if self.n == 0:
            return "—"
        text = f"{self.mean * scale:.{digits}f}"
        return text + (f" ± {self.std * scale:.{digits}f}" if self.n > 1 else "")


def stat(values) -> Stat:
    values = [v for v in values if v is not None]
    if not values:
        return Stat(math.nan, math.nan, 0)
    return Stat(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values))


@dataclass
class CellSummary:
    """Mean +- std over the complete runs of a cell."""

    cell: str
    runs: list
    loss: Stat  # best validation MSE
    steps_to: dict  # factor -> Stat of steps
    never: dict  # factor -> runs that never got there
    perplexity: Stat  # final validation perplexity
    mean_perplexity: Stat  # training perplexity averaged over training
    utilisation: Stat
    dead_codes: Stat
    topographic_error: Stat
    step_seconds: Stat
    incomplete: int  # runs still going, or failed

    @property
    def label(self) -> str:
        return CELLS[self.cell][0]


def summarise_cell(cell: str, runs: list[RunSummary]) -> CellSummary:
    done = [r for r in runs if r.complete]
    return CellSummary(
        cell=cell,
        runs=done,
        loss=stat(r.best_mse for r in done),
        steps_to={f: stat(r.steps_to[f] for r in done) for f in CONVERGENCE_FACTORS},
        never={f: sum(r.steps_to[f] is None for r in done) for f in CONVERGENCE_FACTORS},
        perplexity=stat(r.final["perplexity"] for r in done),
        mean_perplexity=stat(r.mean_perplexity for r in done),
        utilisation=stat(r.final["utilisation"] for r in done),
        dead_codes=stat(r.final["dead_codes"] for r in done),
        topographic_error=stat(r.final["topographic_error"] for r in done),
        step_seconds=stat(r.step_seconds for r in done),
        incomplete=len(runs) - len(done),
    )


# ----------------------------------------------------------------- tables


TABLE_HEADER = ("| setting | seeds | loss (best val MSE ×1000) | +10 % (steps) | +20 % (steps) "
                "| perplexity (val, end) | perplexity (train, mean) | dead codes (val, end) "
                "| topographic error (val, end) |")


def table(cells: dict, names) -> str:
    rows = [TABLE_HEADER, "|" + "---|" * 9]
    for name in names:
        if name not in cells:
            continue
        c = cells[name]
        seeds = f"{len(c.runs)}" + (f" (+{c.incomplete} unfinished)" if c.incomplete else "")
        rows.append(
            f"| {c.label} | {seeds} | {c.loss.format(1000)} | {c.steps_to[1.1].format(digits=0)} "
            f"| {c.steps_to[1.2].format(digits=0)} | {c.perplexity.format(digits=1)} "
            f"| {c.mean_perplexity.format(digits=1)} | {c.dead_codes.format(digits=1)} "
            f"| {c.topographic_error.format(digits=3)} |"
        )
    return "\n".join(rows)


def timing_table(timing: dict | None, cells: dict) -> str:
    rows = ["| setting | side by side: s / step | ratio to EMA-VQ | in the sweep: s / step | ratio to EMA-VQ |",
            "|---|---|---|---|---|"]
    reference = cells.get(EMA_REFERENCE)
    for name in TIMED_CELLS:
        side = "—", "—"
        if timing and name in timing["median_step_seconds"]:
            side = f"{timing['median_step_seconds'][name]:.4f}", f"{timing['ratio_to_ema'][name]:.2f}"
        swept = "—", "—"
        if name in cells and cells[name].step_seconds.n and reference and reference.step_seconds.n:
            seconds = cells[name].step_seconds
            swept = seconds.format(digits=4), f"{seconds.mean / reference.step_seconds.mean:.2f}"
        rows.append(f"| {CELLS[name][0]} | {side[0]} | {side[1]} | {swept[0]} | {swept[1]} |")
    return "\n".join(rows)


# --------------------------------------------------------------- verdicts


def spread(values) -> float:
    """(max - min) / min of positive figures."""
    return (max(values) - min(values)) / min(values)


def _has(cells, names):
    return all(n in cells and cells[n].loss.n for n in names)


def verdicts(cells: dict, timing: dict | None) -> list[tuple[str, str, str]]:
    """(claim, verdict, the numbers and the rule) for each claim that the finished runs can decide."""
    out = []
    ema_cells, ksom_cells = ABLATION_GRID[:4], ABLATION_GRID[4:]
    if _has(cells, ABLATION_GRID):
        ema_spread = spread([cells[n].loss.mean for n in ema_cells])
        ksom_spread = spread([cells[n].loss.mean for n in ksom_cells])
        ema_sensitive, ksom_robust = ema_spread > CLOSE, ksom_spread <= CLOSE
        verdict = ("reproduced" if ema_sensitive and ksom_robust
                   else "not reproduced" if not ema_sensitive and not ksom_robust else "mixed")
        out.append((
            "1. EMA-VQ is sensitive to N0 and to update-all vs active-only; KSOM is robust",
            verdict,
            f"spread of the mean best validation MSE over the four variants: EMA-VQ {ema_spread:.1%}, "
            f"KSOM {ksom_spread:.1%} (rule: sensitive if > {CLOSE:.0%}, robust if <= {CLOSE:.0%}). "
            + "; ".join(f"{cells[n].label}: {cells[n].loss.format(1000)}" for n in ABLATION_GRID),
        ))
    if _has(cells, (EMA_REFERENCE, KSOM_REFERENCE)):
        ema, ksom = cells[EMA_REFERENCE], cells[KSOM_REFERENCE]
        faster = [ksom.steps_to[f].mean < ema.steps_to[f].mean for f in CONVERGENCE_FACTORS]
        verdict = "reproduced" if all(faster) else "not reproduced" if not any(faster) else "mixed"
        out.append((
            "2. KSOM converges faster early in training (+10 % / +20 % steps)",
            verdict,
            f"+10 %: KSOM {ksom.steps_to[1.1].format(digits=0)} vs EMA-VQ {ema.steps_to[1.1].format(digits=0)} "
            f"steps; +20 %: KSOM {ksom.steps_to[1.2].format(digits=0)} vs EMA-VQ "
            f"{ema.steps_to[1.2].format(digits=0)} steps (both N0=1, update all; rule: reproduced if KSOM's "
            "mean is lower for both).",
        ))
        difference = (ksom.loss.mean - ema.loss.mean) / ema.loss.mean
        pooled = math.sqrt((ksom.loss.std**2 + ema.loss.std**2) / 2)
        same = abs(difference) <= CLOSE
        out.append((
            "3. KSOM's best validation MSE is about that of well-configured EMA-VQ (N0=1, update all)",
            "reproduced" if same else "not reproduced",
            f"KSOM {ksom.loss.format(1000)} vs EMA-VQ {ema.loss.format(1000)} (×1000): KSOM is "
            f"{abs(difference):.1%} {'higher' if difference > 0 else 'lower'}"
            + (f" (the difference is {abs(ksom.loss.mean - ema.loss.mean) / pooled:.1f} pooled seed std)"
               if pooled else "") + "; "
            f"rule: about the same if within {CLOSE:.0%}.",
        ))
        checks = {
            "higher final validation perplexity": ksom.perplexity.mean > ema.perplexity.mean,
            "higher training perplexity averaged over training": ksom.mean_perplexity.mean > ema.mean_perplexity.mean,
            "fewer or as many dead codes at the end": ksom.dead_codes.mean <= ema.dead_codes.mean,
        }
        if _has(cells, ABLATION_GRID):
            # Over the four variants each: where EMA-VQ's settings kill codes.
            ema_dead = statistics.fmean(cells[n].dead_codes.mean for n in ema_cells)
            ksom_dead = statistics.fmean(cells[n].dead_codes.mean for n in ksom_cells)
            checks["fewer dead codes averaged over the four N0 / update variants"] = ksom_dead < ema_dead
        held = sum(checks.values())
        out.append((
            "4. KSOM uses more of its codebook (perplexity, utilisation, dead codes)",
            "reproduced" if held == len(checks) else "not reproduced" if held == 0 else "mixed",
            f"validation perplexity at the end: KSOM {ksom.perplexity.format(digits=1)} vs EMA-VQ "
            f"{ema.perplexity.format(digits=1)}; training perplexity averaged over training: KSOM "
            f"{ksom.mean_perplexity.format(digits=1)} vs {ema.mean_perplexity.format(digits=1)}; utilisation: "
            f"{ksom.utilisation.format(digits=3)} vs {ema.utilisation.format(digits=3)}; dead codes: "
            f"{ksom.dead_codes.format(digits=1)} vs {ema.dead_codes.format(digits=1)}"
            + (f"; dead codes over the four variants: KSOM {ksom_dead:.1f} vs EMA-VQ {ema_dead:.1f}"
               if _has(cells, ABLATION_GRID) else "")
            + ". Checks held: " + ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in checks.items()) + ".",
        ))
        ratio = ksom.topographic_error.mean / ema.topographic_error.mean if ema.topographic_error.mean else math.inf
        out.append((
            "5. KSOM's codes form a topological map (topographic error far below EMA-VQ's; pictures)",
            "reproduced" if ratio < 0.5 else "not reproduced",
            f"topographic error on validation latents: KSOM {ksom.topographic_error.format(digits=3)} vs EMA-VQ "
            f"{ema.topographic_error.format(digits=3)} (ratio {ratio:.2f}; rule: far below if under half). "
            "See the decoded-codebook and index-shift pictures.",
        ))
    present = [n for n in ABLATIONS if n in cells and cells[n].loss.n]
    if KSOM_REFERENCE in present and len(present) > 1:
        reference = cells[KSOM_REFERENCE].loss.mean
        offsets = {n: (cells[n].loss.mean - reference) / reference for n in present if n != KSOM_REFERENCE}
        close = [abs(v) <= CLOSE for v in offsets.values()]
        out.append((
            "6. Ablations (tau, 1-D vs 2-D grid, hard vs Gaussian): KSOM stays robust",
            "reproduced" if all(close) else "not reproduced" if not any(close) else "mixed",
            "best validation MSE relative to KSOM hard 2-D tau=0.1: "
            + "; ".join(f"{cells[n].label}: {v:+.1%} (loss {cells[n].loss.format(1000)}, +10 % "
                        f"{cells[n].steps_to[1.1].format(digits=0)} steps, topographic error "
                        f"{cells[n].topographic_error.format(digits=3)})" for n, v in offsets.items())
            + f" (rule: robust if within {CLOSE:.0%}).",
        ))
    if timing:
        ratios = timing["ratio_to_ema"]
        worst = max(ratios[n] for n in TIMED_CELLS if n != EMA_REFERENCE)
        out.append((
            "7. Cost: KSOM's wall time per training step is close to EMA-VQ's",
            "reproduced" if worst <= 1.1 else "mixed" if worst <= 1.25 else "not reproduced",
            "median s / step side by side in one process ("
            + ", ".join(f"{CELLS[n][0]}: {timing['median_step_seconds'][n]:.4f} s, ratio {ratios[n]:.2f}"
                        for n in TIMED_CELLS)
            + "); rule: close if KSOM is at most 10 % slower, mixed up to 25 %.",
        ))
    return out


# ------------------------------------------------------------------ plots


STYLE = {"ema": dict(linestyle="--"), "ksom": dict(linestyle="-")}


def _mean_curve(runs, key):
    """Mean over runs at the steps all of them logged."""
    common = None
    for run in runs:
        steps = set(run.curves[key][0])
        common = steps if common is None else common & steps
    steps = sorted(common or ())
    values = []
    for step in steps:
        values.append(statistics.fmean(r.curves[key][1][r.curves[key][0].index(step)] for r in runs))
    return steps, values


def plot_curves(cells: dict, groups: dict, key: str, path, *, ylabel: str, log=False):
    """One panel per group of cells; mean over complete seeds of ``key`` against step."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FormatStrFormatter

    figure = Figure(figsize=(4.2 * len(groups), 3.3), layout="constrained")
    axes = figure.subplots(1, len(groups), squeeze=False, sharey=True)[0]
    for axis, (title, names) in zip(axes, groups.items()):
        for name in names:
            if name not in cells or not cells[name].runs:
                continue
            steps, values = _mean_curve(cells[name].runs, key)
            axis.plot(steps, values, label=cells[name].label, linewidth=1.3, **STYLE[name.split("-")[0]])
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("training step")
        if log:
            axis.set_yscale("log")
            axis.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
            axis.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    axes[0].set_ylabel(ylabel)
    figure.savefig(path, dpi=80)
    return Path(path)


def has_ablations(cells) -> bool:
    """Whether any KSOM ablation beyond the reference setting was run."""
    return any(name in cells for name in ABLATIONS if name != KSOM_REFERENCE)


def draw_figures(out_runs, data, cells: dict, folder: Path, *, pictures=True) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    variants = {"EMA-VQ: N0 and update variants": ABLATION_GRID[:4],
                "KSOM: N0 and update variants": ABLATION_GRID[4:]}
    ablations = {"KSOM ablations": ABLATIONS, "references": (EMA_REFERENCE, KSOM_REFERENCE)}
    paths = [
        plot_curves(cells, variants, "val_mse", folder / f"{data}_val_mse.png", ylabel="validation MSE", log=True),
        plot_curves(cells, variants, "perplexity", folder / f"{data}_perplexity.png",
                    ylabel="perplexity (training batch)"),
        plot_curves(cells, variants, "val_dead_codes", folder / f"{data}_dead_codes.png",
                    ylabel="dead codes (validation)"),
    ]
    if has_ablations(cells):
        paths.append(plot_curves(cells, ablations, "val_mse", folder / f"{data}_ablations_val_mse.png",
                                 ylabel="validation MSE", log=True))
    if pictures:
        paths += draw_code_pictures(out_runs, data, cells, folder)
    for path in paths:
        shrink_png(path)
    return paths


def shrink_png(path):
    """Re-save a PNG with a 256-colour palette: the committed figures stay small."""
    from PIL import Image

    with Image.open(path) as image:
        reduced = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    reduced.save(path, optimize=True)


def draw_code_pictures(out_runs, data, cells, folder: Path) -> list[Path]:
    """Decoded codebook on the grid and index shifts, for seed 0 of the two reference cells."""
    from torch_adapter import pictures
    from torch_adapter.train import code_grid, load_run

    paths = []
    for name in (EMA_REFERENCE, KSOM_REFERENCE, "ksom-1d"):
        if name not in cells or not cells[name].runs:
            continue
        seed = min(r.seed for r in cells[name].runs)
        model, images, config = load_run(Path(out_runs) / data / name / f"seed{seed}")
        grid = code_grid(model.quantizer, config)
        label = cells[name].label
        if grid.ndim == 2:
            paths.append(pictures.plot_codebook(model, grid, images, folder / f"{data}_codebook_{name}.png",
                                                title=f"{name}, seed {seed}"))
        paths.append(pictures.plot_index_shift(model, grid, images, folder / f"{data}_index_shift_{name}.png",
                                               n_images=6, title=f"{label}, seed {seed}"))
    return paths


# ----------------------------------------------------------------- report


def sweep_facts(out) -> dict:
    path = Path(out) / SWEEP_FILE
    return json.loads(path.read_text()) if path.is_file() else {"sessions": []}


def write_report(out_runs, folder, *, notes=None, pictures=True, command=None) -> Path:
    """Write ``folder/RESULTS.md`` and ``folder/figures/*.png`` from the runs in ``out_runs``."""
    folder = Path(folder)
    runs = load_runs(out_runs)
    facts = sweep_facts(out_runs)
    lines = ["# Reproducing the paper's findings", ""]
    lines += [
        "Generated by `benchmarks/paper/paper_report.py` from the run logs; do not edit by hand, "
        "regenerate (command below).", "",
    ]
    if notes is not None and Path(notes).is_file():
        lines += [Path(notes).read_text().rstrip(), ""]
    lines += ["## How it was run", ""]
    for session in facts["sessions"]:
        lines.append(f"- `{session['command']}` — started {session['started']}, "
                     + (f"finished {session['finished']} ({session['wall_seconds'] / 60:.1f} min wall, "
                        f"{session['runs_trained']} runs trained)" if "finished" in session else "not finished")
                     + f"; size `{session['size']}`, {session['seeds']} seed(s), {session['jobs']} runs in "
                     f"parallel × {session['threads']} torch thread.")
    if facts["sessions"]:
        m = facts["sessions"][-1]["machine"]
        lines.append(f"- Machine: {m['cpus']} CPUs ({m['processor']}), {m['platform']}, Python {m['python']}, "
                     f"torch {m['torch']}" + (f", GPU {m['cuda']}" if m["cuda"] else ", no GPU") + ".")
    lines.append(f"- Report: `{command or 'PYTHONPATH=. python benchmarks/paper/paper_report.py ' + str(out_runs)}`")
    lines.append("")
    for data, found in runs.items():
        cells = {name: summarise_cell(name, found[name]) for name in CELLS if name in found}
        timing_path = Path(out_runs) / data / TIMING_FILE
        timing = json.loads(timing_path.read_text()) if timing_path.is_file() else None
        any_run = next(iter(next(iter(found.values()))))
        config = json.loads((Path(out_runs) / data / next(iter(found)) / f"seed{any_run.seed}" /
                             "config.json").read_text())
        total = sum(len(v) for v in found.values())
        complete = sum(len(c.runs) for c in cells.values())
        # Runs from before the renaming of TrainConfig's fields say 'grid' and 'beta'.
        grid_shape = config.get("grid_shape", config.get("grid"))
        commitment = config.get("commitment", config.get("beta"))
        lines += [
            f"## {data}", "",
            f"Model: h = {config['hidden']}, r = {config['residual_hidden']}, D = {config['dim']}, "
            f"K = {math.prod(grid_shape)} (grid {'×'.join(map(str, grid_shape))} for the 2-D cells), "
            f"batch {config['batch_size']}, {config['steps']} steps, lr {config['lr']}, β = {commitment}, "
            f"γ = {config['decay']}; validation MSE on {config['val_images']} held-out images "
            f"(of a {config['validation_fraction']:.0%} split) every {config['val_every']} steps. "
            f"Runs complete: {complete} of {total} started "
            f"({len(cells)} cells).", "",
            "### Verdicts", "",
        ]
        for claim, verdict, numbers in verdicts(cells, timing):
            lines += [f"- **{claim}: {verdict}.** {numbers}", ""]
        lines += [
            "### EMA-VQ and KSOM, initial count N0 × update rule (claims 1-5)", "",
            table(cells, ABLATION_GRID), "",
        ]
        if has_ablations(cells):
            lines += ["### KSOM ablations (claim 6)", "", table(cells, ABLATIONS), ""]
        lines += [
            "### Step time (claim 7)", "",
            "Side by side: the three settings take turns step by step in one process (one thread), "
            "median over the steps. In the sweep: training wall time per step of each run, under the "
            "sweep's own parallel load.", "",
            timing_table(timing, cells), "",
        ]
        figures = draw_figures(out_runs, data, cells, folder / "figures", pictures=pictures)
        lines += ["### Figures", ""]
        for path in figures:
            lines += [f"![{path.stem}](figures/{path.name})", ""]
    path = folder / "RESULTS.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, help="the sweep's --out folder")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/paper"),
                        help="folder of RESULTS.md and figures/")
    parser.add_argument("--notes", type=Path, default=None, help="markdown with the discussion, put near the top")
    parser.add_argument("--no-pictures", action="store_true", help="skip the decoded-codebook pictures")
    args = parser.parse_args(argv)
    command = "PYTHONPATH=. python benchmarks/paper/paper_report.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    path = write_report(args.runs, args.out, notes=args.notes, pictures=not args.no_pictures, command=command)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
