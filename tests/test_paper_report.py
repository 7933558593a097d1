"""The paper's sweep and report (benchmarks/paper): a tiny real sweep, its tables and its verdict rules."""

import json
import math
import statistics
import sys
from pathlib import Path

import pytest

PAPER = Path(__file__).resolve().parents[1] / "benchmarks" / "paper"
sys.path.insert(0, str(PAPER))
import paper_report  # noqa: E402
import paper_sweep  # noqa: E402

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
    assert "## Discussion" in text and "## digits" in text
    assert "--size quick" in text  # the exact sweep command
    for claim in ("2. KSOM converges faster", "3. KSOM's best validation MSE", "4. KSOM uses more",
                  "5. KSOM's codes form", "6. Ablations", "7. Cost"):
        line = next(line for line in text.splitlines() if claim in line)
        assert any(f": {v}.**" in line for v in ("reproduced", "not reproduced", "mixed")), line
    assert "1. EMA-VQ is sensitive" not in text  # needs the eight N0 / update cells, not run here
    timing = json.loads((runs / "digits" / "timing.json").read_text())
    row = table_row(text, "KSOM, N0=1, update all")
    assert row[1] == "2"
    assert f"| {timing['ratio_to_ema']['ksom-n1-all']:.2f} |" in text
    figures = sorted((report / "figures").glob("*.png"))
    assert {"digits_val_mse.png", "digits_codebook_ksom-n1-all.png", "digits_index_shift_ksom-1d.png"} <= {
        f.name for f in figures}
    for figure in figures:
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](figures/{figure.name})" in text


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


def synthetic_run(seed, val_mse, *, perplexity=10.0, dead=5, topographic=0.5, every=100):
    """A metrics log in the training loop's format with the given validation curve."""
    lines = []
    for i, value in enumerate(val_mse, start=1):
        lines.append({"step": i * every, "loss": value, "reconstruction_mse": value, "perplexity": perplexity,
                      "utilisation": 0.5, "dead_codes": dead, "topographic_error": topographic,
                      "wall_time": 0.1 * i * every, "val_mse": value, "val_perplexity": perplexity,
                      "val_utilisation": 0.5, "val_dead_codes": dead, "val_topographic_error": topographic})
    return paper_report.summarise_run(lines, {"steps": every * len(val_mse)}, seed)


def test_convergence_steps_are_the_first_to_reach_the_runs_own_best():
    run = synthetic_run(0, [1.0, 0.5, 0.35, 0.31, 0.3, 0.32])
    assert run.best_mse == 0.3 and run.best_step == 500
    assert run.steps_to[1.2] == 300  # 0.35 <= 0.36
    assert run.steps_to[1.1] == 400  # 0.31 <= 0.33, 0.35 is not
    assert run.complete


def cells_from(losses: dict, **figures):
    return {cell: paper_report.summarise_cell(cell, [synthetic_run(s, [2 * v, v], **figures.get(cell, {}))
                                                     for s, v in enumerate(values)])
            for cell, values in losses.items()}


def verdict(cells, number):
    return next(v for claim, v, _ in paper_report.verdicts(cells, None) if claim.startswith(f"{number}."))


def test_claim_one_reads_the_spread_of_each_quantiser_over_its_four_variants():
    robust_ksom = {c: [0.30, 0.31] for c in paper_report.ABLATION_GRID[4:]}
    sensitive_ema = dict(zip(paper_report.ABLATION_GRID[:4], ([0.5, 0.52], [0.3, 0.31], [0.4, 0.4], [0.3, 0.3])))
    assert verdict(cells_from({**sensitive_ema, **robust_ksom}), 1) == "reproduced"
    robust_ema = {c: [0.30, 0.31] for c in paper_report.ABLATION_GRID[:4]}
    sensitive_ksom = dict(zip(paper_report.ABLATION_GRID[4:], ([0.5, 0.5], [0.3, 0.3], [0.3, 0.3], [0.3, 0.3])))
    assert verdict(cells_from({**robust_ema, **sensitive_ksom}), 1) == "not reproduced"
    assert verdict(cells_from({**sensitive_ema, **sensitive_ksom}), 1) == "mixed"


def test_claims_three_to_five_compare_the_well_configured_pair():
    figures = {"ksom-n1-all": dict(perplexity=40.0, dead=0, topographic=0.05),
               "ema-n1-all": dict(perplexity=20.0, dead=30, topographic=0.9)}
    cells = cells_from({"ema-n1-all": [0.30, 0.31], "ksom-n1-all": [0.305, 0.31]}, **figures)
    assert [verdict(cells, n) for n in (3, 4, 5)] == ["reproduced"] * 3
    swapped = {"ksom-n1-all": figures["ema-n1-all"], "ema-n1-all": figures["ksom-n1-all"]}
    cells = cells_from({"ema-n1-all": [0.30, 0.31], "ksom-n1-all": [0.40, 0.41]}, **swapped)
    assert [verdict(cells, n) for n in (3, 4, 5)] == ["not reproduced"] * 3


def test_unfinished_runs_are_left_out_of_the_means_and_counted():
    finished = synthetic_run(0, [0.6, 0.3])
    unfinished = synthetic_run(1, [0.6, 0.2])
    unfinished.steps = 400
    cell = paper_report.summarise_cell("ksom-n1-all", [finished, unfinished])
    assert cell.loss.n == 1 and math.isclose(cell.loss.mean, 0.3) and cell.incomplete == 1


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
