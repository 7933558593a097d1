"""Turn the logs of ``paper_sweep.py`` into the results report (RESULTS.md and PNGs).

Everything in the report is computed here from the run logs
(``config.json`` and ``metrics.jsonl`` or its gzipped copy), ``timing.json``
and ``sweep.json``; nothing is typed in by hand.  The committed copies of
the logs (``paper_logs.py``) are enough: checkpoints are needed only to
redraw the decoded-codebook pictures (``--checkpoints``).  Figures follow
the paper's form (docs/design.md section 10): "loss" is the best validation MSE x 1000, mean +- std
over seeds; "+10 %" / "+20 %" the steps until a run's validation MSE first
reaches 1.1x (1.2x) its own best.

Each claim is split into parts decided by Welch's t-test over seeds
(``paper_stats``); the report states the rule, each part's test and the
figure to look at.  ``--long`` adds the long-horizon section (claim 3 over
20 000 steps); ``--notes`` adds the discussion written after reading the
figures.  The report of the committed logs:

    PYTHONPATH=. python benchmarks/paper/paper_report.py benchmarks/paper/logs/paper \\
        --long benchmarks/paper/logs/paper-long --out benchmarks/paper --notes benchmarks/paper/notes.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paper_stats as ps  # noqa: E402
from paper_logs import read_metrics, run_folders  # noqa: E402
from paper_sweep import CELLS, FAILED_FILE, SWEEP_FILE, TIMED_CELLS, TIMING_FILE  # noqa: E402

ABLATION_GRID = ("ema-n0-all", "ema-n1-all", "ema-n0-active", "ema-n1-active",
                 "ksom-n0-all", "ksom-n1-all", "ksom-n0-active", "ksom-n1-active")
ABLATIONS = ("ksom-n1-all", "ksom-tau1", "ksom-tau0.01", "ksom-1d", "ksom-gaussian")
EMA_REFERENCE, KSOM_REFERENCE = "ema-n1-all", "ksom-n1-all"
# "Within a few percent" (claims 1, 3, 6), read as 5 % of the reference's mean.
CLOSE = 0.05
# Claim 7: "close" as at most 10 % more time per step.
SLOWER = 0.10
CONVERGENCE_FACTORS = (1.1, 1.2)
# Long horizon: the figures at these steps and at the end of the runs.
LONG_STEPS = (1500, 5000, 10000, 20000)
# The long-horizon sentence calls a change of the mean relative gap under this (one point) no change.
TREND = 0.01


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
    validation: list = field(repr=False, default_factory=list)  # the validation lines
    failed: str | None = None

    @property
    def complete(self) -> bool:
        return self.failed is None and self.last_step >= self.steps

    def resolution(self, step) -> int | None:
        """Steps between the validation at ``step`` and the one before (None if ``step`` is None)."""
        if step is None:
            return None
        earlier = [line["step"] for line in self.validation if line["step"] < step]
        return step - (earlier[-1] if earlier else 0)

    def at(self, step) -> dict | None:
        """Best validation MSE up to ``step`` and the other figures of the last validation there."""
        seen = [line for line in self.validation if line["step"] <= step]
        if not seen:
            return None
        last = seen[-1]
        return {"step": last["step"], "best_mse": min(line["val_mse"] for line in seen),
                "perplexity": last["val_perplexity"], "dead_codes": last["val_dead_codes"],
                "topographic_error": last["val_topographic_error"]}


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
        validation=validation,
        failed=failed,
    )


def load_runs(out) -> dict:
    """{data: {cell: [RunSummary, ...]}} of every run folder under ``out`` (raw or collected logs)."""
    found = {}
    for run_dir in run_folders(out):
        cell, data = run_dir.parent.name, run_dir.parent.parent.name
        if cell not in CELLS:
            continue
        config = json.loads((run_dir / "config.json").read_text())
        lines = read_metrics(run_dir)
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


@dataclass
class Verdict:
    """A claim, its verdict, the tested parts that decide it and where to look."""

    claim: str
    verdict: str
    parts: list
    figures: str  # the figure or table to look at
    note: str = ""  # figures shown next to the test, not tested

    def markdown(self) -> str:
        text = f"- **{self.claim}: {self.verdict}.** " + "; ".join(p.describe() for p in self.parts) + "."
        if self.note:
            text += f" {self.note}"
        return text + f" See {self.figures}."


def per_run(cell: CellSummary, figure) -> list:
    """``figure(run)`` for each complete run of ``cell``."""
    return [figure(run) for run in cell.runs]


def compare(a: CellSummary, b: CellSummary, figure, scale_b=1.0) -> ps.Comparison:
    """Welch's test of ``figure`` over the runs of ``a`` against ``scale_b`` times those of ``b``."""
    return ps.welch(per_run(a, figure), [v * scale_b if v is not None else None for v in per_run(b, figure)])


def _loss(run):
    return run.best_mse


def loss_evidence(a: CellSummary, b: CellSummary, c: ps.Comparison, confidence=1 - ps.ALPHA) -> str:
    """'KSOM ... 59.88 ± 2.80 vs EMA-VQ ... 77.28 ± 6.04 (×1000), -22.5 %, difference ...'."""
    relative = c.difference / b.loss.mean
    return (f"{a.label} {a.loss.format(1000)} vs {b.label} {b.loss.format(1000)} (×1000), "
            f"{ps.percent(relative, 1, sign=True)}, "
            f"{c.describe(scale=1000, confidence=confidence)}")


def claim_one(cells, data) -> Verdict:
    parts = []
    for quantiser, reference in (("EMA-VQ", EMA_REFERENCE), ("KSOM", KSOM_REFERENCE)):
        names = [n for n in ABLATION_GRID if n.startswith(reference.split("-")[0]) and n != reference]
        ref = cells[reference]
        comparisons = [compare(cells[n], ref, _loss) for n in names]
        margin = CLOSE * ref.loss.mean
        # The interval of each part's own test: alpha / m two-sided for "differs", 1 - 2 alpha for "within".
        confidence = 1 - ps.ALPHA / len(names) if quantiser == "EMA-VQ" else 1 - 2 * ps.ALPHA
        evidence = "; ".join(loss_evidence(cells[n], ref, c, confidence=confidence)
                             for n, c in zip(names, comparisons))
        if quantiser == "EMA-VQ":
            parts.append(ps.any_differs_part(
                f"EMA-VQ's best validation MSE changes with N0 or the update rule (some variant differs from "
                f"N0=1, update all at α/{len(names)})", comparisons, margin, evidence=evidence))
        else:
            parts.append(ps.all_equal_part(
                f"KSOM's does not (every variant within ±{ps.percent(CLOSE)} of N0=1, update all)", comparisons,
                [margin] * len(comparisons), evidence=evidence))
    return Verdict("1. EMA-VQ is sensitive to N0 and to update-all vs active-only; KSOM is robust",
                   ps.combine(parts), parts, f"the table below and `{data}_val_mse.png`")


def claim_two(ema, ksom, data) -> Verdict:
    m = len(CONVERGENCE_FACTORS)
    parts = []
    for f in CONVERGENCE_FACTORS:
        c = compare(ksom, ema, lambda r, f=f: r.steps_to[f])
        resolution = max(r.resolution(r.steps_to[f]) or 0 for r in ksom.runs + ema.runs)
        parts.append(ps.lower_part(
            f"KSOM reaches {ps.percent(f - 1, sign=True)} of its best in fewer steps", c, alpha_fail=ps.ALPHA / m,
            evidence=f"KSOM {ksom.steps_to[f].format(digits=0)} vs EMA-VQ {ema.steps_to[f].format(digits=0)} "
                     f"steps, KSOM − EMA-VQ: {c.describe(digits=0)}; validations at most {resolution} steps "
                     "apart there"))
    return Verdict("2. KSOM converges faster early in training (+10 % / +20 % steps)", ps.combine(parts), parts,
                   f"`{data}_references.png` (validation MSE over each run's best)",
                   note="Both N0=1, update all.")


def claim_three(ema, ksom, data) -> Verdict:
    c = compare(ksom, ema, _loss)
    part = ps.equal_part(f"KSOM's best validation MSE is within ±{ps.percent(CLOSE)} of EMA-VQ's", c,
                         CLOSE * ema.loss.mean,
                         evidence=loss_evidence(ksom, ema, c, confidence=1 - 2 * ps.ALPHA))
    return Verdict("3. KSOM's best validation MSE is about that of well-configured EMA-VQ (N0=1, update all)",
                   ps.combine([part]), [part], f"`{data}_references.png` and the long-horizon section",
                   note=f"This is the reading after this sweep's {ema.runs[0].steps} steps; the long-horizon "
                        "section (where run) tests the gap over more steps.")


def claim_four(cells, ema, ksom, data) -> Verdict:
    def final(key):
        return lambda r: r.final[key]

    checks = [  # (statement, comparison, figures, what the comparison's difference is)
        ("KSOM's validation perplexity at the end is higher", compare(ema, ksom, final("perplexity")),
         f"KSOM {ksom.perplexity.format(digits=1)} vs EMA-VQ {ema.perplexity.format(digits=1)}", "EMA-VQ − KSOM"),
        ("its training perplexity averaged over training is higher",
         compare(ema, ksom, lambda r: r.mean_perplexity),
         f"KSOM {ksom.mean_perplexity.format(digits=1)} vs EMA-VQ {ema.mean_perplexity.format(digits=1)}",
         "EMA-VQ − KSOM"),
        ("it has fewer dead codes at the end", compare(ksom, ema, final("dead_codes")),
         f"KSOM {ksom.dead_codes.format(digits=1)} vs EMA-VQ {ema.dead_codes.format(digits=1)}", "KSOM − EMA-VQ"),
    ]
    if _has(cells, ABLATION_GRID):
        # Pooled over the four N0 / update variants each: where EMA-VQ's settings kill codes.
        pooled = {q: [r.final["dead_codes"] for n in ABLATION_GRID if n.startswith(q) for r in cells[n].runs]
                  for q in ("ema", "ksom")}
        checks.append(("it has fewer dead codes over the runs of the four N0 / update variants",
                       ps.welch(pooled["ksom"], pooled["ema"]),
                       f"KSOM {stat(pooled['ksom']).format(digits=1)} vs EMA-VQ "
                       f"{stat(pooled['ema']).format(digits=1)}", "KSOM − EMA-VQ"))
    m = len(checks)
    parts = [ps.lower_part(statement, c, alpha_fail=ps.ALPHA / m,
                           evidence=f"{figures}; {label}: {c.describe(digits=1)}")
             for statement, c, figures, label in checks]
    return Verdict("4. KSOM uses more of its codebook (perplexity, utilisation, dead codes)", ps.combine(parts),
                   parts, f"`{data}_references.png`, `{data}_perplexity.png` and `{data}_dead_codes.png`",
                   note=f"Utilisation at the end (not tested): KSOM {ksom.utilisation.format(digits=3)} vs "
                        f"EMA-VQ {ema.utilisation.format(digits=3)}.")


def claim_five(ema, ksom, data) -> Verdict:
    c = compare(ksom, ema, lambda r: r.final["topographic_error"], scale_b=0.5)
    part = ps.lower_part(
        "KSOM's topographic error is below half of EMA-VQ's", c,
        evidence=f"KSOM {ksom.topographic_error.format(digits=3)} vs EMA-VQ {ema.topographic_error.format(digits=3)}; "
                 f"KSOM − EMA-VQ / 2: {c.describe(digits=3)}")
    return Verdict("5. KSOM's codes form a topological map (topographic error far below EMA-VQ's; pictures)",
                   ps.combine([part]), [part],
                   f"the decoded-codebook and index-shift pictures (`{data}_codebook_*.png`, "
                   f"`{data}_index_shift_*.png`)")


def claim_six(cells, present, data) -> Verdict:
    reference = cells[KSOM_REFERENCE]
    others = [n for n in present if n != KSOM_REFERENCE]
    parts = []
    for name in others:
        c = compare(cells[name], reference, _loss)
        parts.append(ps.equal_part(
            f"{cells[name].label} within ±{ps.percent(CLOSE)} of KSOM hard 2-D τ=0.1", c,
            CLOSE * reference.loss.mean,
            alpha_fail=ps.ALPHA / len(others),
            evidence=loss_evidence(cells[name], reference, c, confidence=1 - 2 * ps.ALPHA)
            + f"; topographic error {cells[name].topographic_error.format(digits=3)}"))
    return Verdict("6. Ablations (tau, 1-D vs 2-D grid, hard vs Gaussian): KSOM stays robust", ps.combine(parts),
                   parts, f"the ablation table and `{data}_ablations_val_mse.png`")


def claim_seven(cells, timing) -> Verdict | None:
    ema = cells.get(EMA_REFERENCE)
    names = [n for n in TIMED_CELLS if n != EMA_REFERENCE and n in cells and cells[n].step_seconds.n]
    if ema is None or not ema.step_seconds.n or not names:
        return None
    parts = []
    for name in names:
        c = compare(cells[name], ema, lambda r: r.step_seconds, scale_b=1 + SLOWER)
        parts.append(ps.lower_part(
            f"{cells[name].label}: training time per step in the sweep at most {ps.percent(SLOWER)} above "
            "EMA-VQ's", c,
            alpha_fail=ps.ALPHA / len(names),
            evidence=f"{cells[name].step_seconds.format(digits=4)} vs {ema.step_seconds.format(digits=4)} s; "
                     f"KSOM − {1 + SLOWER:.1f} × EMA-VQ: {c.describe(scale=1000, digits=1)} ms"))
    note = ""
    if timing:
        note = ("Side by side in one process (one interleaved measurement per setting: no spread, not tested): "
                + ", ".join(f"{CELLS[n][0]} {timing['median_step_seconds'][n]:.4f} s, ratio "
                            f"{timing['ratio_to_ema'][n]:.2f}" for n in TIMED_CELLS
                            if n in timing["median_step_seconds"]) + ".")
    return Verdict("7. Cost: KSOM's wall time per training step is close to EMA-VQ's", ps.combine(parts), parts,
                   "the step-time table", note=note)


def verdicts(cells: dict, timing: dict | None, data: str = "data") -> list[Verdict]:
    """The verdict of each claim that the finished runs can decide."""
    out = []
    if _has(cells, ABLATION_GRID):
        out.append(claim_one(cells, data))
    if _has(cells, (EMA_REFERENCE, KSOM_REFERENCE)):
        ema, ksom = cells[EMA_REFERENCE], cells[KSOM_REFERENCE]
        out += [claim_two(ema, ksom, data), claim_three(ema, ksom, data), claim_four(cells, ema, ksom, data),
                claim_five(ema, ksom, data)]
    present = [n for n in ABLATIONS if n in cells and cells[n].loss.n]
    if KSOM_REFERENCE in present and len(present) > 1:
        out.append(claim_six(cells, present, data))
    seven = claim_seven(cells, timing)
    if seven is not None:
        out.append(seven)
    return out


def _has(cells, names):
    return all(n in cells and cells[n].loss.n for n in names)


# ----------------------------------------------------------- long horizon


def horizon_steps(cells) -> list[int]:
    """LONG_STEPS below the end of the complete runs, then the end."""
    end = min(r.steps for name in (EMA_REFERENCE, KSOM_REFERENCE) for r in cells[name].runs)
    return [s for s in LONG_STEPS if s < end] + [end]


def figure_at(cell: CellSummary, step: int, key: str) -> list:
    return [r.at(step)[key] for r in cell.runs if r.at(step) is not None]


GAP_EQUAL, GAP_KSOM, GAP_EMA = f"about equal (within ±{ps.percent(CLOSE)})", "KSOM lower", "EMA-VQ lower"


def gap_reading(c: ps.Comparison, margin: float) -> str:
    """How the best validation MSEs compare: about equal, one lower, or not resolved at this scale."""
    if ps.within(c, margin, ps.ALPHA):
        return GAP_EQUAL
    if ps.below(c, 0.0, ps.ALPHA):
        return GAP_KSOM
    if ps.above(c, 0.0, ps.ALPHA):
        return GAP_EMA
    return ps.UNRESOLVED


@dataclass
class Horizon:
    """The two reference settings' figures at one step of the long runs."""

    step: int
    ema: dict  # key -> Stat
    ksom: dict
    comparison: ps.Comparison  # best MSE so far, KSOM against EMA-VQ
    reading: str

    @property
    def relative_gap(self) -> float:
        return self.comparison.difference / self.ema["best_mse"].mean


LONG_KEYS = ("best_mse", "perplexity", "dead_codes", "topographic_error")


def horizons(cells) -> list[Horizon]:
    ema, ksom = cells[EMA_REFERENCE], cells[KSOM_REFERENCE]
    out = []
    for step in horizon_steps(cells):
        c = ps.welch(figure_at(ksom, step, "best_mse"), figure_at(ema, step, "best_mse"))
        ema_stats = {k: stat(figure_at(ema, step, k)) for k in LONG_KEYS}
        out.append(Horizon(step, ema_stats, {k: stat(figure_at(ksom, step, k)) for k in LONG_KEYS}, c,
                           gap_reading(c, CLOSE * ema_stats["best_mse"].mean)))
    return out


def long_tables(rows: list[Horizon]) -> str:
    gap = ["| step | EMA-VQ best val MSE ×1000 | KSOM best val MSE ×1000 | KSOM − EMA-VQ | 95 % CI (×1000) "
           "| Welch p | 90 % CI (×1000) vs ±5 % of EMA-VQ | reading |", "|" + "---|" * 8]
    for h in rows:
        c = h.comparison
        margin = CLOSE * h.ema["best_mse"].mean * 1000
        if c.defined:
            low95, high95 = c.interval(1 - ps.ALPHA)
            low90, high90 = c.interval(1 - 2 * ps.ALPHA)
            tests = (f"{low95 * 1000:+.2f} to {high95 * 1000:+.2f} | {ps.format_p(c.p_value)} "
                     f"| {low90 * 1000:+.2f} to {high90 * 1000:+.2f} vs ±{margin:.2f}")
        else:
            tests = f"— | — | — vs ±{margin:.2f}"
        gap.append(f"| {h.step} | {h.ema['best_mse'].format(1000)} | {h.ksom['best_mse'].format(1000)} "
                   f"| {ps.percent(h.relative_gap, 1, sign=True)} | {tests} | {h.reading} |")
    other = ["| step | perplexity (val), EMA-VQ | KSOM | dead codes (val), EMA-VQ | KSOM "
             "| topographic error (val), EMA-VQ | KSOM |", "|" + "---|" * 7]
    for h in rows:
        other.append(f"| {h.step} | {h.ema['perplexity'].format(digits=1)} | {h.ksom['perplexity'].format(digits=1)} "
                     f"| {h.ema['dead_codes'].format(digits=1)} | {h.ksom['dead_codes'].format(digits=1)} "
                     f"| {h.ema['topographic_error'].format(digits=3)} "
                     f"| {h.ksom['topographic_error'].format(digits=3)} |")
    return "\n".join(gap) + "\n\n" + "\n".join(other)


EARLY_STEPS = (100, 500, 1000)


def first_step_without_dead_codes(run: RunSummary) -> int | None:
    """First validation step at which no code is dead (None if none is)."""
    return next((line["step"] for line in run.validation if line["val_dead_codes"] == 0), None)


def early_table(cells) -> str:
    """Dead codes at the first validations and the step they first reach zero, both references."""
    rows = ["| setting | " + " | ".join(f"dead codes at step {s}" for s in EARLY_STEPS)
            + " | first step with no dead code |", "|" + "---|" * (len(EARLY_STEPS) + 2)]
    for name in (EMA_REFERENCE, KSOM_REFERENCE):
        cell = cells[name]
        first = [first_step_without_dead_codes(r) for r in cell.runs]
        never = sum(f is None for f in first)
        reached = stat(first).format(digits=0) if never < len(first) else "—"
        rows.append(f"| {cell.label} | " + " | ".join(stat(figure_at(cell, s, 'dead_codes')).format(digits=1)
                                                        for s in EARLY_STEPS)
                    + f" | {reached}" + (f" (never in {never} of {len(first)} runs)" if never else "") + " |")
    return "\n".join(rows)


def gap_verdict(rows: list[Horizon]) -> str:
    """Whether the gap in best validation MSE closes, by the readings of the first and last steps.

    Closes: the last reading is "about equal" (or EMA-VQ lower: closes and
    reverses).  Does not close: KSOM still lower at the end; the sentence
    adds whether the mean relative gap narrowed or widened since the first
    step by at least ``TREND``.  Not resolved at this scale: the last
    step's test separates nothing.
    """
    first, last = rows[0], rows[-1]
    test = (f"{last.comparison.describe(scale=1000, confidence=1 - 2 * ps.ALPHA)} ×1000, margin "
            f"±{CLOSE * last.ema['best_mse'].mean * 1000:.2f}")
    if last.reading in (GAP_EQUAL, GAP_EMA):
        equal_since = last.step
        for h in reversed(rows):
            if h.reading not in (GAP_EQUAL, GAP_EMA):
                break
            equal_since = h.step
        how = ("closes" if last.reading == GAP_EQUAL else "closes and reverses (EMA-VQ ends lower)")
        text = (f"The gap {how}: at step {last.step} KSOM's best validation MSE is "
                f"{ps.percent(last.relative_gap, 1, sign=True)} from EMA-VQ's ({test}), read as {last.reading} "
                f"at every tested step from step {equal_since} on")
    elif last.reading == GAP_KSOM:
        change = abs(last.relative_gap) - abs(first.relative_gap)
        trend = ("stays about the same" if abs(change) < TREND else "narrows" if change < 0 else "widens")
        text = (f"The gap does not close by step {last.step}: KSOM's best validation MSE is still "
                f"{ps.percent(abs(last.relative_gap), 1)} lower than EMA-VQ's ({test}); the mean relative gap "
                f"{trend} (it was {ps.percent(abs(first.relative_gap), 1)} at step {first.step}; a change under "
                f"{TREND * 100:.0f} percentage point counts as none; not tested)")
    else:
        text = (f"Whether the gap closes is not resolved at this scale: at step {last.step} KSOM's best validation "
                f"MSE is {ps.percent(last.relative_gap, 1, sign=True)} from EMA-VQ's ({test}), neither a "
                f"significant difference nor shown within ±{ps.percent(CLOSE)}")
    use = (f"Over the same steps EMA-VQ's dead codes go from {first.ema['dead_codes'].mean:.1f} to "
           f"{last.ema['dead_codes'].mean:.1f} (KSOM: {first.ksom['dead_codes'].mean:.1f} to "
           f"{last.ksom['dead_codes'].mean:.1f}) and its validation perplexity from "
           f"{first.ema['perplexity'].mean:.1f} to {last.ema['perplexity'].mean:.1f} (KSOM: "
           f"{first.ksom['perplexity'].mean:.1f} to {last.ksom['perplexity'].mean:.1f}), means over seeds.")
    return text + ". " + use


def long_section(long, folder: Path, *, figures=True) -> list[str]:
    """The long-horizon section of the runs in ``long``: tables, the closing verdict and its figure."""
    lines = []
    for data, found in load_runs(long).items():
        if not all(name in found for name in (EMA_REFERENCE, KSOM_REFERENCE)):
            continue
        # A sweep resumed with more --steps keeps the first value in config.json: the end of the
        # section is the longest log of the two settings, and runs short of it are unfinished.
        longest = max(r.last_step for name in (EMA_REFERENCE, KSOM_REFERENCE) for r in found[name])
        found = {name: [dataclasses.replace(r, steps=max(r.steps, longest)) for r in found[name]]
                 for name in (EMA_REFERENCE, KSOM_REFERENCE)}
        cells = {name: summarise_cell(name, runs) for name, runs in found.items()}
        if not _has(cells, (EMA_REFERENCE, KSOM_REFERENCE)):
            continue
        rows = horizons(cells)
        seeds = {name: len(cells[name].runs) for name in (EMA_REFERENCE, KSOM_REFERENCE)}
        unfinished = sum(cells[name].incomplete for name in (EMA_REFERENCE, KSOM_REFERENCE))
        path = folder / "figures" / f"{data}_long.png"
        if figures:
            path.parent.mkdir(parents=True, exist_ok=True)
            plot_runs(cells, (EMA_REFERENCE, KSOM_REFERENCE), LONG_PANELS, path, log_x=True, ratio=True)
            shrink_png(path)
        lines += [
            f"## Long horizon: {data}, {rows[-1].step} steps (claim 3)", "",
            model_line(long, data, found, cells, steps=longest), "",
            f"EMA-VQ and KSOM, both N0 = 1 and update all, {seeds[EMA_REFERENCE]} and {seeds[KSOM_REFERENCE]} "
            f"complete runs" + (f" ({unfinished} unfinished, left out)" if unfinished else "") + ". "
            "Best validation MSE so far, and the other figures at the last validation up to each step; "
            "mean ± std over seeds. The reading is the noise test of the gap: about equal when the 90 % Welch "
            f"interval lies inside ±{ps.percent(CLOSE)} of EMA-VQ's mean, one setting lower when the 95 % interval "
            "excludes 0, otherwise not resolved at this scale.", "",
            long_tables(rows), "",
            "Early codebook use (validation):", "",
            early_table(cells), "",
            f"- **Does the gap close? {gap_verdict(rows)}** See `{data}_long.png`.", "",
            f"![{path.stem}](figures/{path.name})", "",
        ]
    return lines


# ------------------------------------------------------------------ plots


STYLE = {"ema": dict(linestyle="--", color="tab:blue"), "ksom": dict(linestyle="-", color="tab:orange")}


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


def _log_axis(axis):
    from matplotlib.ticker import FormatStrFormatter, LogLocator

    axis.set_yscale("log")
    axis.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))  # labelled minor ticks, not a crowd of them
    axis.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
    axis.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))


def plot_curves(cells: dict, groups: dict, key: str, path, *, ylabel: str, log=False):
    """One panel per group of cells; mean over complete seeds of ``key`` against step."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2 * len(groups), 3.3), layout="constrained")
    axes = figure.subplots(1, len(groups), squeeze=False, sharey=True)[0]
    for axis, (title, names) in zip(axes, groups.items()):
        for name in names:
            if name not in cells or not cells[name].runs:
                continue
            steps, values = _mean_curve(cells[name].runs, key)
            axis.plot(steps, values, label=cells[name].label, linewidth=1.3, linestyle=STYLE[name.split("-")[0]][
                "linestyle"])
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("training step")
        if log:
            _log_axis(axis)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    axes[0].set_ylabel(ylabel)
    figure.savefig(path, dpi=80)
    return Path(path)


def _validation(key):
    """A panel's curve: ``key`` of each validation line."""
    return lambda run: ([line["step"] for line in run.validation], [line[key] for line in run.validation])


def _over_best(run):
    return [line["step"] for line in run.validation], [line["val_mse"] / run.best_mse for line in run.validation]


# (title, curve of a run, log y, horizontal guides)
REFERENCE_PANELS = (
    ("validation MSE / the run's best", _over_best, True, CONVERGENCE_FACTORS),
    ("validation perplexity", _validation("val_perplexity"), False, ()),
    ("dead codes (validation)", _validation("val_dead_codes"), False, ()),
)
LONG_PANELS = (
    ("validation MSE", _validation("val_mse"), True, ()),
    ("validation perplexity", _validation("val_perplexity"), False, ()),
    ("dead codes (validation)", _validation("val_dead_codes"), False, ()),
    ("topographic error (validation)", _validation("val_topographic_error"), False, ()),
)


def _mean_over_seeds(curves):
    """Mean of per-seed (steps, values) curves at the steps they all have."""
    common = sorted(set.intersection(*(set(steps) for steps, _ in curves)))
    return common, [statistics.fmean(values[steps.index(s)] for steps, values in curves) for s in common]


def plot_runs(cells: dict, names, panels, path, *, log_x=False, ratio=False):
    """One panel per figure: each seed thin, the mean over seeds thick, for each cell in ``names``.

    With ``ratio``, a last panel shows the second cell's mean validation MSE over the first's,
    with the ±``CLOSE`` band of "about equal".
    """
    from matplotlib.figure import Figure

    n_panels = len(panels) + bool(ratio)
    figure = Figure(figsize=(3.6 * n_panels, 3.2), layout="constrained")
    axes = figure.subplots(1, n_panels, squeeze=False)[0]
    for axis, (title, curve, log_y, guides) in zip(axes, panels):
        for name in names:
            style = STYLE[name.split("-")[0]]
            curves = [curve(run) for run in cells[name].runs]
            for steps, values in curves:
                axis.plot(steps, values, linewidth=0.6, alpha=0.35, **style)
            axis.plot(*_mean_over_seeds(curves), linewidth=1.5, label=cells[name].label, **style)
        for guide in guides:
            axis.axhline(guide, color="grey", linewidth=0.8, linestyle=":")
        if log_y:
            _log_axis(axis)
        axis.set_title(title, fontsize=10)
    if ratio:
        axis = axes[-1]
        first, second = (dict(zip(*_mean_over_seeds([_validation("val_mse")(r) for r in cells[n].runs])))
                         for n in names)
        steps = sorted(set(first) & set(second))
        axis.plot(steps, [second[s] / first[s] for s in steps], color="black", linewidth=1.3)
        axis.axhspan(1 - CLOSE, 1 + CLOSE, color="grey", alpha=0.2, label=f"±{ps.percent(CLOSE)}")
        axis.axhline(1.0, color="grey", linewidth=0.8)
        quantisers = [cells[n].label.split(",")[0] for n in names]
        axis.set_title(f"validation MSE, {quantisers[1]} / {quantisers[0]} (means)", fontsize=10)
        axis.legend(fontsize=7)
    for axis in axes:
        if log_x:
            from matplotlib.ticker import NullFormatter, ScalarFormatter

            axis.set_xscale("log")
            axis.xaxis.set_major_formatter(ScalarFormatter())
            axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_xlabel("training step")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.savefig(path, dpi=80)
    return Path(path)


def has_ablations(cells) -> bool:
    """Whether any KSOM ablation beyond the reference setting was run."""
    return any(name in cells for name in ABLATIONS if name != KSOM_REFERENCE)


def curve_figures(data, cells: dict, folder: Path, *, draw=True) -> list[Path]:
    """The curve figures of a data set (drawn when ``draw``; their paths either way)."""
    variants = {"EMA-VQ: N0 and update variants": ABLATION_GRID[:4],
                "KSOM: N0 and update variants": ABLATION_GRID[4:]}
    ablations = {"KSOM ablations": ABLATIONS, "references": (EMA_REFERENCE, KSOM_REFERENCE)}
    plots = [
        (folder / f"{data}_val_mse.png",
         lambda p: plot_curves(cells, variants, "val_mse", p, ylabel="validation MSE", log=True)),
        (folder / f"{data}_perplexity.png",
         lambda p: plot_curves(cells, variants, "perplexity", p, ylabel="perplexity (training batch)")),
        (folder / f"{data}_dead_codes.png",
         lambda p: plot_curves(cells, variants, "val_dead_codes", p, ylabel="dead codes (validation)")),
    ]
    if _has(cells, (EMA_REFERENCE, KSOM_REFERENCE)):
        plots.append((folder / f"{data}_references.png",
                      lambda p: plot_runs(cells, (EMA_REFERENCE, KSOM_REFERENCE), REFERENCE_PANELS, p)))
    if has_ablations(cells):
        plots.append((folder / f"{data}_ablations_val_mse.png",
                      lambda p: plot_curves(cells, ablations, "val_mse", p, ylabel="validation MSE", log=True)))
    if draw:
        folder.mkdir(parents=True, exist_ok=True)
        for path, plot in plots:
            plot(path)
            shrink_png(path)
    return [path for path, _ in plots]


def shrink_png(path):
    """Re-save a PNG with a 256-colour palette: the committed figures stay small."""
    from PIL import Image

    with Image.open(path) as image:
        reduced = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    reduced.save(path, optimize=True)


PICTURED = (EMA_REFERENCE, KSOM_REFERENCE, "ksom-1d")


def code_pictures(checkpoints, data, cells, folder: Path, *, draw=True) -> list[Path]:
    """Decoded codebook on the grid and index shifts, for the first seed of the reference cells.

    Drawn from the run folders under ``checkpoints`` that hold a checkpoint
    (the committed logs have none); pictures drawn before are kept.
    Returns the pictures that exist in ``folder``.
    """
    from torch_adapter.train import CHECKPOINT

    paths = []
    for name in PICTURED:
        if name not in cells or not cells[name].runs:
            continue
        seed = min(r.seed for r in cells[name].runs)
        run = Path(checkpoints) / data / name / f"seed{seed}"
        wanted = [folder / f"{data}_codebook_{name}.png", folder / f"{data}_index_shift_{name}.png"]
        if draw and (run / CHECKPOINT).is_file():
            drawn = draw_code_pictures(run, cells[name].label, name, seed, wanted, folder)
            for path in drawn:
                shrink_png(path)
        paths += [path for path in wanted if path.is_file()]
    return paths


def draw_code_pictures(run, label, name, seed, paths, folder) -> list[Path]:
    from torch_adapter import pictures
    from torch_adapter.train import code_grid, load_run

    folder.mkdir(parents=True, exist_ok=True)
    model, images, config = load_run(run)
    grid = code_grid(model.quantizer, config)
    drawn = []
    if grid.ndim == 2:
        drawn.append(pictures.plot_codebook(model, grid, images, paths[0], title=f"{name}, seed {seed}"))
    drawn.append(pictures.plot_index_shift(model, grid, images, paths[1], n_images=6, title=f"{label}, seed {seed}"))
    return drawn


# ----------------------------------------------------------------- report


def sweep_facts(out) -> dict:
    path = Path(out) / SWEEP_FILE
    return json.loads(path.read_text()) if path.is_file() else {"sessions": []}


def how_it_was_run(facts) -> list[str]:
    lines = []
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
    return lines


def model_line(out_runs, data, found: dict, cells: dict, steps=None) -> str:
    """The model, training and validation settings (of the first run found) and how many runs are complete.

    ``steps`` replaces the configured steps (a sweep resumed to more steps keeps the first value).
    """
    cell = next(iter(found))
    config = json.loads((Path(out_runs) / data / cell / f"seed{found[cell][0].seed}" / "config.json").read_text())
    config["steps"] = steps or config["steps"]
    # Runs from before the renaming of TrainConfig's fields say 'grid' and 'beta'.
    grid_shape = config.get("grid_shape", config.get("grid"))
    commitment = config.get("commitment", config.get("beta"))
    complete, total, n_cells = sum(len(c.runs) for c in cells.values()), sum(map(len, found.values())), len(cells)
    dense = config.get("val_dense_every")
    validation = (f"every {dense} steps up to step {config['val_dense_until']}, then every {config['val_every']}"
                  if dense else f"every {config['val_every']} steps")
    return (f"Model: h = {config['hidden']}, r = {config['residual_hidden']}, D = {config['dim']}, "
            f"K = {math.prod(grid_shape)} (grid {'×'.join(map(str, grid_shape))} for the 2-D cells), "
            f"batch {config['batch_size']}, {config['steps']} steps, lr {config['lr']}, β = {commitment}, "
            f"γ = {config['decay']}; validation MSE on {config['val_images']} held-out images "
            f"(of a {ps.percent(config['validation_fraction'])} split) {validation}. "
            f"Runs complete: {complete} of {total} started ({n_cells} cells).")


def write_report(out_runs, folder, *, notes=None, long=None, checkpoints=None, figures=True, pictures=True,
                 command=None) -> Path:
    """Write ``folder/RESULTS.md`` and ``folder/figures/*.png`` from the logs in ``out_runs`` (and ``long``).

    ``checkpoints`` is the folder of the run folders to draw the codebook
    pictures from (by default ``out_runs``; ``pictures=False`` draws none);
    with ``figures=False`` nothing is drawn and the text is the same.
    """
    folder = Path(folder)
    figure_folder = folder / "figures"
    checkpoints = out_runs if checkpoints is None else checkpoints
    runs = load_runs(out_runs)
    if not runs:
        raise ValueError(f"{out_runs} holds no run logs (<data>/<cell>/seed<k>/config.json); pass the sweep's "
                         "--out folder or its collected copy under benchmarks/paper/logs.")
    lines = ["# Reproducing the paper's findings", ""]
    lines += [
        "Generated by `benchmarks/paper/paper_report.py` from the run logs; do not edit by hand, "
        "regenerate (command below).", "",
    ]
    if notes is not None and Path(notes).is_file():
        lines += [Path(notes).read_text().rstrip(), ""]
    lines += ["## How it was run", ""]
    lines += how_it_was_run(sweep_facts(out_runs))
    if long is not None:
        lines += how_it_was_run(sweep_facts(long))
    lines.append(f"- Report: `{command or 'PYTHONPATH=. python benchmarks/paper/paper_report.py ' + str(out_runs)}`")
    lines += ["", "## Verdict rules", "", ps.rule(CLOSE), ""]
    if long is not None:
        lines += long_section(long, folder, figures=figures) or [
            "## Long horizon (claim 3)", "", f"No complete runs of both {EMA_REFERENCE} and {KSOM_REFERENCE} "
            f"in `{long}` yet.", ""]
    for data, found in runs.items():
        cells = {name: summarise_cell(name, found[name]) for name in CELLS if name in found}
        timing_path = Path(out_runs) / data / TIMING_FILE
        timing = json.loads(timing_path.read_text()) if timing_path.is_file() else None
        lines += [f"## {data}", "", model_line(out_runs, data, found, cells), "", "### Verdicts", ""]
        for verdict in verdicts(cells, timing, data):
            lines += [verdict.markdown(), ""]
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
        paths = curve_figures(data, cells, figure_folder, draw=figures)
        paths += code_pictures(checkpoints, data, cells, figure_folder, draw=figures and pictures)
        lines += ["### Figures", ""]
        for path in paths:
            lines += [f"![{path.stem}](figures/{path.name})", ""]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "RESULTS.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, help="the sweep's --out folder, or its collected logs")
    parser.add_argument("--long", type=Path, default=None,
                        help="the long sweep's folder (or its collected logs): the long-horizon section")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/paper"),
                        help="folder of RESULTS.md and figures/")
    parser.add_argument("--notes", type=Path, default=None, help="markdown with the discussion, put near the top")
    parser.add_argument("--checkpoints", type=Path, default=None,
                        help="folder of the run folders with checkpoints, to draw the codebook pictures "
                             "(default: RUNS itself; the committed logs have none, pictures drawn before are kept)")
    parser.add_argument("--no-pictures", action="store_true", help="skip the decoded-codebook pictures")
    args = parser.parse_args(argv)
    command = "PYTHONPATH=. python benchmarks/paper/paper_report.py " + " ".join(
        str(a) for a in (argv if argv is not None else sys.argv[1:]))
    try:
        path = write_report(args.runs, args.out, notes=args.notes, long=args.long, checkpoints=args.checkpoints,
                            pictures=not args.no_pictures, command=command)
    except ValueError as error:
        parser.error(str(error))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
