"""The paper's sweep and report (benchmarks/paper): a tiny real sweep, its tables, its noise-tested
verdicts, the committed logs and the long-horizon section."""

import gzip
import json
import math
import statistics
import sys
from pathlib import Path

import pytest

PAPER = Path(__file__).resolve().parents[1] / "benchmarks" / "paper"
sys.path.insert(0, str(PAPER))
import paper_logs  # noqa: E402
import paper_report  # noqa: E402
import paper_stats  # noqa: E402
import paper_sweep  # noqa: E402

# Tests of the paper benchmark's programs (on committed logs): `pytest -m "not benchmarks"` runs the library's tests alone.
pytestmark = pytest.mark.benchmarks

VERDICTS = ("reproduced", "not reproduced", "mixed", "not resolved at this scale")

CELLS = ["ema-n1-all", "ksom-n1-all", "ksom-1d"]
SEEDS = 2
STEPS = 6


def sweep(out, *extra):
    return paper_sweep.main(["--out", str(out), "--size", "quick", "--data", "digits", "--cells", *CELLS,
                             "--seeds", str(SEEDS), "--steps", str(STEPS), "--val-every", "2", "--jobs", "1",
                             *extra])


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The quick mode on scikit-learn's digits: 3 cells x 2 seeds x 6 steps, and its report."""
    root = tmp_path_factory.mktemp("paper")
    runs, report = root / "runs", root / "report"
    assert sweep(runs) == 0
    notes = root / "notes.md"
    notes.write_text("## Discussion\n\nWritten after reading the figures.\n")
    path = paper_report.write_report(runs, report, notes=notes)
    return runs, report, path.read_text()


def logged(runs, cell, seed):
    path = runs / "digits" / cell / f"seed{seed}" / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def table_row(text, label):
    rows = [line for line in text.splitlines() if line.startswith(f"| {label} |")]
    assert rows, f"no table row for {label}"
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def test_sweep_writes_one_run_folder_per_cell_and_seed(swept):
    runs, _, _ = swept
    for cell in CELLS:
        for seed in range(SEEDS):
            lines = logged(runs, cell, seed)
            assert lines[-1]["step"] == STEPS and "val_mse" in lines[-1]
            config = json.loads((runs / "digits" / cell / f"seed{seed}" / "config.json").read_text())
            assert config["seed"] == seed and config["steps"] == STEPS
    assert json.loads((runs / "digits" / "ksom-1d" / "seed0" / "config.json").read_text())["grid_shape"] == [64]


def test_loss_and_convergence_columns_are_the_logs_figures(swept):
    runs, _, text = swept
    for cell in CELLS:
        best, reach = [], {1.1: [], 1.2: []}
        for seed in range(SEEDS):
            validation = [(line["step"], line["val_mse"]) for line in logged(runs, cell, seed) if "val_mse" in line]
            run_best = min(v for _, v in validation)
            best.append(run_best)
            for factor in reach:
                reach[factor].append(next(s for s, v in validation if v <= factor * run_best))
        row = table_row(text, paper_sweep.CELLS[cell][0])
        assert row[1] == str(SEEDS)
        assert row[2] == f"{statistics.fmean(best) * 1000:.2f} ± {statistics.stdev(best) * 1000:.2f}"
        assert row[3] == f"{statistics.fmean(reach[1.1]):.0f} ± {statistics.stdev(reach[1.1]):.0f}"
        assert row[4] == f"{statistics.fmean(reach[1.2]):.0f} ± {statistics.stdev(reach[1.2]):.0f}"
        final = [[line for line in logged(runs, cell, s) if "val_mse" in line][-1] for s in range(SEEDS)]
        topographic = [f["val_topographic_error"] for f in final]
        assert row[8] == f"{statistics.fmean(topographic):.3f} ± {statistics.stdev(topographic):.3f}"


def test_report_has_verdicts_timing_notes_and_readable_figures(swept):
    runs, report, text = swept
    assert "## Discussion" in text and "## digits" in text and "## Verdict rules" in text
    assert "--size quick" in text  # the exact sweep command
    for claim in ("2. KSOM converges faster", "3. KSOM's best validation MSE", "4. KSOM uses more",
                  "5. KSOM's codes form", "6. Ablations", "7. Cost"):
        line = next(line for line in text.splitlines() if claim in line)
        assert any(f": {v}.**" in line for v in VERDICTS), line
        assert "Welch" in line and " See " in line  # every verdict names its test and where to look
    assert "1. EMA-VQ is sensitive" not in text  # needs the eight N0 / update cells, not run here
    timing = json.loads((runs / "digits" / "timing.json").read_text())
    row = table_row(text, "KSOM, N0=1, update all")
    assert row[1] == "2"
    assert f"| {timing['ratio_to_ema']['ksom-n1-all']:.2f} |" in text
    figures = sorted((report / "figures").glob("*.png"))
    assert {"digits_val_mse.png", "digits_references.png", "digits_codebook_ksom-n1-all.png",
            "digits_index_shift_ksom-1d.png"} <= {f.name for f in figures}
    for figure in figures:
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](figures/{figure.name})" in text


def structured(text):
    """The lines a regenerated report must reproduce exactly: headings, tables and verdicts."""
    return [line for line in text.splitlines() if line.startswith(("#", "|", "- **"))]


def test_collected_logs_are_gzipped_deterministically_and_give_the_same_report(swept, tmp_path):
    runs, _, text = swept
    logs = tmp_path / "logs"
    written = paper_logs.collect([runs], logs)
    copy = logs / runs.name
    assert (copy / paper_sweep.SWEEP_FILE).read_bytes() == (runs / paper_sweep.SWEEP_FILE).read_bytes()
    assert (copy / "digits" / "timing.json").is_file()
    assert not list(copy.rglob("*.pt"))  # no checkpoints
    log = copy / "digits" / "ksom-1d" / "seed1" / "metrics.jsonl.gz"
    assert gzip.decompress(log.read_bytes()) == (runs / "digits" / "ksom-1d" / "seed1" / "metrics.jsonl").read_bytes()
    before = {p: p.read_bytes() for p in written}
    stale = copy / "digits" / "ksom-tau1" / "seed0" / "metrics.jsonl.gz"  # a run the source no longer has
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"")
    paper_logs.collect([runs], logs)  # a second copy is byte for byte the first (gzip mtime 0)
    assert {p: p.read_bytes() for p in written} == before and not stale.exists()
    assert paper_logs.unfinished(copy) == []
    regenerated = paper_report.write_report(copy, tmp_path / "report", notes=tmp_path / "absent.md",
                                            figures=False).read_text()
    assert [line for line in structured(regenerated) if "Discussion" not in line] == [
        line for line in structured(text) if "Discussion" not in line]


def test_collect_refuses_an_empty_source_and_writes_nothing(swept, tmp_path):
    runs, _, _ = swept
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no run folder"):
        paper_logs.collect([runs, empty], tmp_path / "logs")
    assert not (tmp_path / "logs").exists()
    with pytest.raises(ValueError, match="distinct folder names"):
        paper_logs.collect([runs, runs], tmp_path / "logs")


def test_a_second_start_trains_nothing_and_leaves_the_logs_alone(swept):
    runs, _, _ = swept
    before = {p: p.read_text() for p in runs.glob("digits/*/seed*/metrics.jsonl")}
    assert sweep(runs, "--no-timing") == 0
    assert json.loads((runs / paper_sweep.SWEEP_FILE).read_text())["sessions"][-1]["runs_trained"] == 0
    assert {p: p.read_text() for p in runs.glob("digits/*/seed*/metrics.jsonl")} == before


def test_a_run_folder_with_other_options_is_refused(tmp_path):
    directory = paper_sweep.run_directory(tmp_path, "digits", "ema-n1-all", 0)
    directory.mkdir(parents=True)
    config = paper_sweep.run_config("ema-n1-all", 0, "quick", data="digits")
    (directory / "config.json").write_text(json.dumps({**config.to_dict(), "hidden": 99}))
    with pytest.raises(SystemExit, match="other options"):
        sweep(tmp_path)


# ------------------------------------------------------- rules on synthetic logs


def log_lines(val_mse, *, perplexity=10.0, dead=5, topographic=0.5, every=100, steps=None):
    """A metrics log in the training loop's format: one validation line per value of ``val_mse``.

    ``perplexity``, ``dead`` and ``topographic`` are numbers or one number per line.
    """
    steps = steps or [every * i for i in range(1, len(val_mse) + 1)]

    def at(figure, i):
        return figure[i] if isinstance(figure, (list, tuple)) else figure

    return [{"step": step, "loss": value, "reconstruction_mse": value, "perplexity": at(perplexity, i),
             "utilisation": 0.5, "dead_codes": at(dead, i), "topographic_error": at(topographic, i),
             "wall_time": 0.1 * step, "val_mse": value, "val_perplexity": at(perplexity, i),
             "val_utilisation": 0.5, "val_dead_codes": at(dead, i), "val_topographic_error": at(topographic, i)}
            for i, (step, value) in enumerate(zip(steps, val_mse))]


def synthetic_run(seed, val_mse, *, every=100, **figures):
    lines = log_lines(val_mse, every=every, **figures)
    return paper_report.summarise_run(lines, {"steps": lines[-1]["step"]}, seed)


def test_convergence_steps_are_the_first_to_reach_the_runs_own_best():
    run = synthetic_run(0, [1.0, 0.5, 0.35, 0.31, 0.3, 0.32])
    assert run.best_mse == 0.3 and run.best_step == 500
    assert run.steps_to[1.2] == 300  # 0.35 <= 0.36
    assert run.steps_to[1.1] == 400  # 0.31 <= 0.33, 0.35 is not
    assert run.resolution(run.steps_to[1.1]) == 100
    assert run.complete


def cells_from(losses: dict, **figures):
    """Cells whose seed k ends at ``losses[cell][k]``; ``figures[cell]`` gives each seed's other figures."""
    def seed_figures(cell, seed):
        return {key: value[seed] if isinstance(value, list) else value
                for key, value in figures.get(cell, {}).items()}

    return {cell: paper_report.summarise_cell(cell, [synthetic_run(s, [2 * v, v], **seed_figures(cell, s))
                                                     for s, v in enumerate(values)])
            for cell, values in losses.items()}


def verdict(cells, number):
    return next(v.verdict for v in paper_report.verdicts(cells, None) if v.claim.startswith(f"{number}."))


TIGHT = [0.300, 0.302, 0.301, 0.303]  # four seeds, a spread of a third of a percent
NOISY = [0.25, 0.36, 0.30, 0.40]  # four seeds, a spread of tens of percent


def shifted(values, factor):
    return [v * factor for v in values]


def test_welch_separates_clearly_different_groups_and_not_overlapping_ones():
    separated = paper_stats.welch([1.0, 1.1, 0.9, 1.05], [2.0, 2.1, 1.9, 2.05])
    assert separated.p_value < 0.001 and math.isclose(separated.difference, -1.0)
    assert paper_stats.lower_part("a below b", separated).outcome == paper_stats.HOLDS
    assert paper_stats.lower_part("b below a", paper_stats.welch([2.0, 2.1, 1.9, 2.05], [1.0, 1.1, 0.9, 1.05])
                                  ).outcome == paper_stats.FAILS
    overlapping = paper_stats.welch([1.0, 1.4, 0.8, 1.2], [1.1, 1.5, 0.9, 1.3])
    assert overlapping.p_value > 0.5
    assert paper_stats.lower_part("a below b", overlapping).outcome == "not resolved at this scale"
    assert paper_stats.equal_part("a about b", overlapping, margin=0.05).outcome == "not resolved at this scale"


def test_about_equal_needs_the_interval_inside_the_margin_not_just_a_high_p_value():
    close = paper_stats.welch(TIGHT, shifted(TIGHT, 1.01))
    assert paper_stats.equal_part("1 % apart", close, margin=0.05 * 0.3).outcome == paper_stats.HOLDS
    far = paper_stats.welch(TIGHT, shifted(TIGHT, 1.5))
    assert paper_stats.equal_part("50 % apart", far, margin=0.05 * 0.3).outcome == paper_stats.FAILS
    noisy = paper_stats.welch(NOISY, shifted(NOISY, 1.01))  # p near 1, yet the interval is wide
    assert noisy.p_value > 0.9
    assert paper_stats.equal_part("noisy", noisy, margin=0.05 * 0.3).outcome == "not resolved at this scale"


def test_a_test_without_spread_or_with_one_seed_resolves_nothing():
    constant = paper_stats.welch([3.0, 3.0, 3.0], [5.0, 5.0, 5.0])
    assert not constant.defined and "no spread" in constant.describe()
    assert paper_stats.lower_part("3 below 5", constant).outcome == "not resolved at this scale"
    single = paper_stats.welch([3.0], [5.0, 5.1])
    assert not single.defined and "fewer than 2 seeds" in single.describe()
    with pytest.raises(ValueError, match="at least one value"):
        paper_stats.welch([], [1.0])


def test_a_claim_is_reproduced_only_when_every_part_holds():
    holds, fails, open_ = (paper_stats.Part("p", o, "") for o in
                           (paper_stats.HOLDS, paper_stats.FAILS, paper_stats.UNRESOLVED))
    assert paper_stats.combine([holds, holds]) == "reproduced"
    assert paper_stats.combine([fails, fails]) == "not reproduced"
    assert paper_stats.combine([fails, open_]) == "not reproduced"
    assert paper_stats.combine([holds, fails]) == "mixed"
    assert paper_stats.combine([holds, open_]) == "not resolved at this scale"


def test_claim_one_needs_a_tested_difference_for_ema_and_a_tested_equivalence_for_ksom():
    ema, ksom = paper_report.ABLATION_GRID[:4], paper_report.ABLATION_GRID[4:]
    robust_ksom = {c: TIGHT for c in ksom}
    sensitive_ema = dict(zip(ema, (shifted(TIGHT, 1.6), TIGHT, shifted(TIGHT, 1.3), TIGHT)))
    assert verdict(cells_from({**sensitive_ema, **robust_ksom}), 1) == "reproduced"
    robust_ema = {c: TIGHT for c in ema}
    sensitive_ksom = dict(zip(ksom, (shifted(TIGHT, 1.6), TIGHT, TIGHT, TIGHT)))
    assert verdict(cells_from({**robust_ema, **sensitive_ksom}), 1) == "not reproduced"
    assert verdict(cells_from({**sensitive_ema, **sensitive_ksom}), 1) == "mixed"
    # KSOM's variants 4 % apart on average, but with seed noise of tens of percent: no 5 % line decides it.
    noisy_ksom = dict(zip(ksom, (shifted(NOISY, 1.04), NOISY, shifted(NOISY, 0.97), NOISY)))
    assert verdict(cells_from({**sensitive_ema, **noisy_ksom}), 1) == "not resolved at this scale"


def test_claim_two_reads_the_steps_to_reach_each_runs_best():
    # Validation every 25 steps; KSOM's runs reach 1.1x / 1.2x their best 200 steps before EMA-VQ's.
    def run(seed, offset):
        curve = [3.0] * (8 + offset + seed) + [1.15, 1.05] + [1.0] * 10
        return synthetic_run(seed, curve, every=25)

    ema = paper_report.summarise_cell("ema-n1-all", [run(s, 8) for s in range(3)])
    ksom = paper_report.summarise_cell("ksom-n1-all", [run(s, 0) for s in range(3)])
    assert ksom.steps_to[1.2].mean == ema.steps_to[1.2].mean - 200
    two = next(v for v in paper_report.verdicts({"ema-n1-all": ema, "ksom-n1-all": ksom}, None)
               if v.claim.startswith("2."))
    assert two.verdict == "reproduced"
    assert "validations at most 25 steps apart" in two.markdown()
    late = paper_report.summarise_cell("ksom-n1-all", [run(s, 8) for s in (2, 1, 0)])
    assert verdict({"ema-n1-all": ema, "ksom-n1-all": late}, 2) == "not resolved at this scale"


def test_claims_three_to_five_compare_the_well_configured_pair():
    figures = {"ksom-n1-all": dict(perplexity=[40.0, 42.0, 41.0, 39.0], dead=[0, 1, 0, 2],
                                   topographic=[0.05, 0.06, 0.04, 0.05]),
               "ema-n1-all": dict(perplexity=[20.0, 22.0, 21.0, 19.0], dead=[30, 33, 31, 29],
                                  topographic=[0.90, 0.92, 0.88, 0.91])}
    cells = cells_from({"ema-n1-all": TIGHT, "ksom-n1-all": shifted(TIGHT, 1.01)}, **figures)
    assert [verdict(cells, n) for n in (3, 4, 5)] == ["reproduced"] * 3
    swapped = {"ksom-n1-all": figures["ema-n1-all"], "ema-n1-all": figures["ksom-n1-all"]}
    cells = cells_from({"ema-n1-all": TIGHT, "ksom-n1-all": shifted(TIGHT, 1.3)}, **swapped)
    assert [verdict(cells, n) for n in (3, 4, 5)] == ["not reproduced"] * 3
    cells = cells_from({"ema-n1-all": NOISY, "ksom-n1-all": shifted(NOISY, 1.02)}, **figures)
    assert verdict(cells, 3) == "not resolved at this scale"


def test_unfinished_runs_are_left_out_of_the_means_and_counted():
    finished = synthetic_run(0, [0.6, 0.3])
    unfinished = synthetic_run(1, [0.6, 0.2])
    unfinished.steps = 400
    cell = paper_report.summarise_cell("ksom-n1-all", [finished, unfinished])
    assert cell.loss.n == 1 and math.isclose(cell.loss.mean, 0.3) and cell.incomplete == 1


# ------------------------------------------------------------- long horizon


LONG_STEPS = list(range(25, 2001, 25)) + list(range(2250, 20001, 250))  # as the long size validates


def long_curve(step, start, end, seed):
    """A validation MSE falling from ``start`` towards ``end`` with a little seed noise."""
    return end + (start - end) * math.exp(-step / 4000) + 0.0005 * seed


def write_long_logs(folder, ema_end, last=None):
    """Synthetic collected logs of the long sweep: EMA-VQ ends at ``ema_end``, KSOM at 0.040.

    ``last`` maps (cell, seed) to the last logged step, for runs resumed past the configured 20 000.
    """
    for cell, start, end, dead in (("ema-n1-all", 0.09, ema_end, 200), ("ksom-n1-all", 0.06, 0.040, 0)):
        for seed in range(3):
            run = folder / "fashion-mnist" / cell / f"seed{seed}"
            run.mkdir(parents=True)
            steps = LONG_STEPS + list(range(20250, (last or {}).get((cell, seed), 20000) + 1, 250))
            values = [long_curve(s, start, end, seed) for s in steps]
            lines = log_lines(values, steps=steps, dead=[dead * math.exp(-s / 5000) + seed for s in steps],
                              perplexity=[30 + s / 200 + seed for s in steps])
            config = paper_sweep.run_config(cell, seed, "long", data="fashion-mnist", steps=20000)
            (run / "config.json").write_text(json.dumps(config.to_dict()))
            text = "".join(json.dumps(line) + "\n" for line in lines)
            (run / "metrics.jsonl.gz").write_bytes(paper_logs.gzip_bytes(text.encode()))


@pytest.fixture(scope="module")
def short_report(swept, tmp_path_factory):
    """The quick sweep's logs, collected, as the report's default part."""
    runs, _, _ = swept
    logs = tmp_path_factory.mktemp("logs")
    paper_logs.collect([runs], logs)
    return logs / runs.name


def test_long_horizon_table_has_best_so_far_and_figures_at_each_step(short_report, tmp_path):
    long = tmp_path / "paper-long"
    write_long_logs(long, ema_end=0.0402)
    text = paper_report.write_report(short_report, tmp_path / "out", long=long, pictures=False).read_text()
    assert "## Long horizon: fashion-mnist, 20000 steps" in text
    for step in (1500, 5000, 10000, 20000):
        row = table_row(text, str(step))
        seen = [s for s in LONG_STEPS if s <= step]
        for column, (start, end) in ((1, (0.09, 0.0402)), (2, (0.06, 0.040))):
            best = [min(long_curve(s, start, end, seed) for s in seen) for seed in range(3)]
            assert row[column] == f"{statistics.fmean(best) * 1000:.2f} ± {statistics.stdev(best) * 1000:.2f}"
    assert table_row(text, "1500")[-1] == "KSOM lower"
    assert "every 25 steps up to step 2000, then every 250" in text
    # Early codebook use: KSOM's seed 0 has no dead code from the first validation on, seeds 1 and 2 never get there.
    early = table_row(text, "KSOM, N0=1, update all")
    assert early[1:4] == ["1.0 ± 1.0"] * 3 and early[4] == "25 (never in 2 of 3 runs)"
    assert table_row(text, "EMA-VQ, N0=1, update all")[4] == "— (never in 3 of 3 runs)"
    assert (tmp_path / "out" / "figures" / "fashion-mnist_long.png").read_bytes()[:4] == b"\x89PNG"


def test_long_horizon_verdict_says_whether_the_gap_closes(short_report, tmp_path):
    closing, staying, narrowing = tmp_path / "closing", tmp_path / "staying", tmp_path / "narrowing"
    write_long_logs(closing, ema_end=0.0402)
    write_long_logs(staying, ema_end=0.060)
    write_long_logs(narrowing, ema_end=0.050)
    closes = paper_report.write_report(short_report, tmp_path / "a", long=closing, figures=False).read_text()
    stays = paper_report.write_report(short_report, tmp_path / "b", long=staying, figures=False).read_text()
    assert "- **Does the gap close? The gap closes:" in closes
    assert table_row(closes, "20000")[-1] == "about equal (within ±5 %)"
    assert "- **Does the gap close? The gap does not close by step 20000" in stays
    assert "the mean relative gap stays about the same" in stays  # 0.09 -> 0.06 against 0.06 -> 0.04: a third
    assert "the mean relative gap narrows" in paper_report.write_report(
        short_report, tmp_path / "c", long=narrowing, figures=False).read_text()
    assert table_row(stays, "20000")[-1] == "KSOM lower"


def test_long_runs_resumed_past_their_configured_steps_end_at_the_longest_log(short_report, tmp_path):
    long = tmp_path / "paper-long"
    last = {(cell, seed): 30000 for cell in ("ema-n1-all", "ksom-n1-all") for seed in range(3)}
    last["ksom-n1-all", 2] = 25000  # still going
    write_long_logs(long, ema_end=0.0402, last=last)
    text = paper_report.write_report(short_report, tmp_path / "out", long=long, figures=False).read_text()
    assert "## Long horizon: fashion-mnist, 30000 steps" in text and ", 30000 steps, lr" in text
    assert "3 and 2 complete runs (1 unfinished, left out)" in text
    assert [table_row(text, str(step))[0] for step in (1500, 5000, 10000, 20000, 30000)] == [
        "1500", "5000", "10000", "20000", "30000"]


# ------------------------------------------------------- the committed report


LOGS = PAPER / "logs"


def test_the_committed_results_are_regenerated_from_the_committed_logs(tmp_path):
    if not LOGS.is_dir():
        pytest.skip("benchmarks/paper/logs is not committed yet (collect it with paper_logs.py); "
                    "nothing to compare RESULTS.md against")
    regenerated = paper_report.write_report(LOGS / "paper", tmp_path, notes=PAPER / "notes.md",
                                            long=LOGS / "paper-long", figures=False).read_text()
    committed = (PAPER / "RESULTS.md").read_text()
    assert structured(regenerated) == structured(committed), (
        "RESULTS.md differs from the committed logs; regenerate it with the command in its 'Report:' line")
    for line in committed.splitlines():
        if line.startswith("!["):
            assert (PAPER / line[line.index("](") + 2:-1]).is_file(), line


@pytest.mark.parametrize("size", sorted(paper_sweep.SIZES))
def test_every_cell_makes_a_valid_training_config_at_every_size(size):
    from torch_adapter.train import build_quantizer

    for cell in paper_sweep.CELLS:
        config = paper_sweep.run_config(cell, 0, size, data="patches")
        assert config.steps == paper_sweep.SIZES[size]["config"]["steps"]
        layer = build_quantizer(config)
        assert layer.n_codes == config.n_codes
        if cell.startswith("ksom"):
            assert config.quantizer == "ksom" and config.schedule == "inverse"
    full = paper_sweep.run_config("ksom-1d", 0, "full", data="cifar10")
    assert (full.hidden, full.dim, full.grid_shape, full.batch_size, full.steps) == (128, 64, (512,), 256, 30000)
