"""The VQ-VAE model and its training loop: few-step runs, resume, failed steps."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from torch_adapter.train import RunFolderError, RunLock, TrainConfig, build_quantizer, load_run, read_metrics, train
from torch_adapter.vqvae import VQVAE

ROOT = Path(__file__).resolve().parents[1]

# A tiny model on scikit-learn's 8x8 digits: a step takes milliseconds.
TINY = dict(data="digits", n_downsample=1, hidden=16, residual_hidden=8, grid_shape=(4, 4), dim=8, batch_size=32,
            log_every=2, val_every=4, val_images=200, checkpoint_every=3, progress=False, device="cpu")


def tiny_config(**changes):
    return TrainConfig(**{**TINY, **changes})


def strip_wall_time(lines):
    return [{k: v for k, v in line.items() if k != "wall_time"} for line in lines]


# ------------------------------------------------------------------ model


@pytest.mark.parametrize("n_downsample, latent", [(1, 16), (2, 8)])
def test_reference_model_maps_32x32_images_to_latent_grids(n_downsample, latent):
    config = TrainConfig(hidden=16, residual_hidden=8, dim=8, grid_shape=(4, 4), n_downsample=n_downsample)
    model = VQVAE(build_quantizer(config), 3, hidden=16, residual_hidden=8, n_downsample=n_downsample)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.reconstruction.shape == (2, 3, 32, 32)
    assert out.latents.shape == (2, 8, latent, latent)
    assert out.quantizer.codes.shape == (2, latent, latent)
    torch.testing.assert_close(out.loss, out.reconstruction_loss + out.quantizer.loss)


def test_gradients_reach_the_encoder_through_the_straight_through_estimator():
    config = tiny_config()
    model = VQVAE(build_quantizer(config), 1, hidden=16, residual_hidden=8, n_downsample=1)
    model(torch.randn(4, 1, 8, 8)).reconstruction_loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert not any(b.requires_grad for b in model.quantizer.buffers())


def test_images_of_the_wrong_size_are_refused():
    config = tiny_config()
    model = VQVAE(build_quantizer(config), 1, hidden=16, residual_hidden=8, n_downsample=2)
    with pytest.raises(ValueError, match="multiples of 4"):
        model(torch.randn(2, 1, 6, 6))


# ------------------------------------------------------------------ runs


@pytest.mark.parametrize("quantizer", ["ksom", "ema"])
def test_a_few_steps_train_each_bottleneck_and_log_every_figure(tmp_path, quantizer):
    run = train(tmp_path, tiny_config(quantizer=quantizer, steps=8))
    assert run.step == 8 and int(run.model.quantizer.step) == 8
    lines = read_metrics(tmp_path)
    assert [line["step"] for line in lines] == [2, 4, 6, 8]
    for key in ("loss", "reconstruction_mse", "perplexity", "utilisation", "dead_codes", "topographic_error",
                "wall_time"):
        assert all(key in line for line in lines)
    validated = [line for line in lines if "val_mse" in line]
    assert [line["step"] for line in validated] == [4, 8]
    assert all(line["val_mse"] > 0 and 1 <= line["val_perplexity"] <= 16 for line in validated)
    assert validated[-1]["val_mse"] < validated[0]["val_mse"]  # trained: the held-out error fell
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["quantizer"] == quantizer and saved["grid_shape"] == [4, 4]


def test_training_changes_the_codebook_and_the_weights(tmp_path):
    config = tiny_config(steps=4)
    torch.manual_seed(config.seed)
    untrained = VQVAE(build_quantizer(config), 1, hidden=16, residual_hidden=8, n_downsample=1).state_dict()
    trained = train(tmp_path, config).model.state_dict()
    assert not torch.equal(untrained["quantizer.codebook"], trained["quantizer.codebook"])
    assert not torch.equal(untrained["decoder.0.weight"], trained["decoder.0.weight"])


def test_resume_gives_the_same_run_as_an_uninterrupted_one(tmp_path):
    straight = train(tmp_path / "straight", tiny_config(steps=10))
    train(tmp_path / "resumed", tiny_config(steps=5))  # stops between two checkpoints' worth of logging
    resumed = train(tmp_path / "resumed", resume=True, steps=10)
    assert resumed.step == 10
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    a, b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(a[i]["exp_avg"], b[i]["exp_avg"]) for i in a)
    assert strip_wall_time(read_metrics(tmp_path / "straight")) == strip_wall_time(read_metrics(tmp_path / "resumed"))


def test_resume_after_a_crash_replays_from_the_last_checkpoint(tmp_path):
    straight = train(tmp_path / "straight", tiny_config(steps=8))
    run_dir = tmp_path / "crashed"
    train(run_dir, tiny_config(steps=3))
    at_step_3 = (run_dir / "checkpoint.pt").read_bytes()
    train(run_dir, resume=True, steps=5)  # logs steps 4 and 5 ...
    (run_dir / "checkpoint.pt").write_bytes(at_step_3)  # ... then dies before its next checkpoint
    resumed = train(run_dir, resume=True, steps=8)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert strip_wall_time(read_metrics(tmp_path / "straight")) == strip_wall_time(read_metrics(run_dir))


def test_resume_refuses_to_change_what_the_run_computes(tmp_path):
    train(tmp_path, tiny_config(steps=2))
    with pytest.raises(ValueError, match="lr cannot change"):
        train(tmp_path, resume=True, lr=0.5)


def test_resume_without_a_checkpoint_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        train(tmp_path / "nothing", resume=True)


def test_a_failed_step_leaves_the_model_exactly_as_it_was(tmp_path):
    run = train(tmp_path, tiny_config(steps=2))
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    optimizer_before = run.optimizer.state_dict()["state"][0]["exp_avg"].clone()
    poisoned = torch.full((4, 1, 8, 8), float("nan"))
    # The layer refuses NaN itself, or the loop finds the loss non-finite: either way nothing moves.
    with pytest.raises((FloatingPointError, ValueError), match="(?i)nan"):
        run.train_step(poisoned)
    after = run.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(optimizer_before, run.optimizer.state_dict()["state"][0]["exp_avg"])


def test_load_run_rebuilds_the_trained_model(tmp_path):
    run = train(tmp_path, tiny_config(quantizer="ema", steps=3))
    model, images, config = load_run(tmp_path)
    assert config.quantizer == "ema" and not model.training
    assert all(torch.equal(v, run.model.state_dict()[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"steps": 0}, r"'steps' parameter of TrainConfig must be an int in the range \[1, inf\)"),
        ({"quantizer": "kmeans"}, r"'quantizer' parameter of TrainConfig must be a str among .*'ksom'"),
        ({"grid_shape": (4, 0)}, "grid_shape must be a non-empty tuple of positive ints"),
        ({"lr": -1.0}, r"'lr' parameter of TrainConfig must be a float in the range \(0\.0, inf\)"),
        ({"lr": float("inf")}, r"'lr' parameter .* Got inf instead"),
        ({"device": "tpu"}, "device must be auto, cpu, cuda"),
        ({"decay": 1.5}, "'decay' parameter of KohonenVQ"),
        ({"quantizer": "ema", "commitment": -1.0}, "'commitment' parameter of EMAVQ"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        train(tmp_path, tiny_config(**changes))
    assert not (tmp_path / "metrics.jsonl").exists()


def test_dense_early_validation_adds_validations_up_to_its_last_step_and_survives_resume(tmp_path):
    config = tiny_config(steps=12, log_every=6, val_every=6, val_dense_every=2, val_dense_until=5)
    straight = train(tmp_path / "straight", config)
    validated = [line["step"] for line in read_metrics(tmp_path / "straight") if "val_mse" in line]
    assert validated == [2, 4, 6, 12]
    train(tmp_path / "resumed", TrainConfig(**{**config.to_dict(), "steps": 3}))
    train(tmp_path / "resumed", resume=True, steps=12)
    assert strip_wall_time(read_metrics(tmp_path / "straight")) == strip_wall_time(read_metrics(tmp_path / "resumed"))
    assert straight.step == 12


@pytest.mark.parametrize("changes, message", [({"val_dense_every": 0}, "'val_dense_every' parameter .* range \\[1, inf\\)"),
                                              ({"val_dense_until": -1}, "'val_dense_until' parameter .* range \\[0, inf\\)")])
def test_bad_dense_validation_options_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**changes)


# ------------------------------------------------------------ older run folders


def test_config_under_the_former_names_beta_and_grid_loads_as_commitment_and_grid_shape():
    saved = TrainConfig().to_dict()
    del saved["commitment"], saved["grid_shape"]
    config = TrainConfig.from_dict({**saved, "beta": 0.5, "grid": [8, 4]})
    assert config.commitment == 0.5 and config.grid_shape == (8, 4)
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_a_config_from_before_the_metric_loads_as_euclidean():
    saved = TrainConfig().to_dict()
    del saved["metric"]
    assert TrainConfig.from_dict(saved).metric == "euclidean"


@pytest.mark.parametrize("quantizer", ["ksom", "ema"])
def test_metric_cosine_reaches_the_bottleneck(quantizer):
    assert build_quantizer(tiny_config(quantizer=quantizer, metric="cosine")).metric == "cosine"
    with pytest.raises(ValueError, match="'metric' parameter of (KohonenVQ|EMAVQ) must be a str among"):
        tiny_config(quantizer=quantizer, metric="dot")


@pytest.mark.parametrize(
    "values, message",
    [
        ({"beta": 0.5, "commitment": 0.25}, "'beta' .* and 'commitment' differ"),
        ({"lerning_rate": 0.1}, "unknown option.*lerning_rate"),
    ],
)
def test_config_with_conflicting_or_unknown_options_is_refused(values, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(values)


def test_a_run_folder_from_before_the_renaming_resumes(tmp_path):
    straight = train(tmp_path / "straight", tiny_config(steps=6))
    old = tmp_path / "old"
    train(old, tiny_config(steps=3))
    # Write config.json and the checkpoint's copy as the code before the renaming did.
    config = json.loads((old / "config.json").read_text())
    config["beta"], config["grid"] = config.pop("commitment"), config.pop("grid_shape")
    (old / "config.json").write_text(json.dumps(config))
    state = torch.load(old / "checkpoint.pt", weights_only=True)
    state["config"] = config
    del state["logged_through"]  # added with the renaming
    torch.save(state, old / "checkpoint.pt")
    resumed = train(old, resume=True, steps=6)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert strip_wall_time(read_metrics(tmp_path / "straight")) == strip_wall_time(read_metrics(old))
    assert load_run(old)[2].grid_shape == (4, 4)


# ------------------------------------------------------------ resume and the log


def test_resume_below_the_current_step_says_so_and_changes_nothing(tmp_path):
    train(tmp_path, tiny_config(steps=6))
    log, checkpoint = (tmp_path / "metrics.jsonl").read_bytes(), (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(ValueError, match="--steps 4 is below the step .* has reached \\(6\\)"):
        train(tmp_path, resume=True, steps=4)
    assert (tmp_path / "metrics.jsonl").read_bytes() == log
    assert (tmp_path / "checkpoint.pt").read_bytes() == checkpoint


def test_a_log_line_cut_by_a_crash_is_dropped_and_its_step_runs_again(tmp_path):
    straight = train(tmp_path / "straight", tiny_config(steps=8))
    run_dir = tmp_path / "crashed"
    train(run_dir, tiny_config(steps=3))  # checkpoint at step 3, last on-schedule line at step 2
    log = run_dir / "metrics.jsonl"
    lines = log.read_text().splitlines()
    log.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # killed while writing a later line
    resumed = train(run_dir, resume=True, steps=8)
    assert all(torch.equal(v, resumed.model.state_dict()[k]) for k, v in straight.model.state_dict().items())
    assert strip_wall_time(read_metrics(tmp_path / "straight")) == strip_wall_time(read_metrics(run_dir))


def test_a_log_that_lost_lines_before_the_checkpoint_is_refused(tmp_path):
    train(tmp_path, tiny_config(steps=6))  # lines at steps 2, 4, 6
    log = tmp_path / "metrics.jsonl"
    log.write_text(log.read_text()[:40])  # cut inside the first line
    with pytest.raises(RunFolderError, match="metrics.jsonl ends at step 0, but the run had logged up to step 6"):
        train(tmp_path, resume=True, steps=8)


def test_a_damaged_line_inside_the_log_is_refused_with_its_number(tmp_path):
    train(tmp_path, tiny_config(steps=6))
    log = tmp_path / "metrics.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], "{\"step\": 4, \"lo", lines[2]]) + "\n")
    with pytest.raises(RunFolderError, match="metrics.jsonl line 2 is damaged"):
        read_metrics(tmp_path)


def test_resume_with_another_log_every_keeps_the_lines_already_logged(tmp_path):
    train(tmp_path, tiny_config(steps=4, log_every=2, val_every=4))  # lines at 2, 4
    train(tmp_path, resume=True, steps=9, log_every=3)  # validation (every 4) logs too
    assert [line["step"] for line in read_metrics(tmp_path)] == [2, 4, 6, 8, 9]


# ------------------------------------------------------------ the folder lock


HOLD_LOCK = """
import sys, time
from torch_adapter.train import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_second_run_on_a_folder_in_use_is_refused_naming_the_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match=f"in use by another training run \\(process {holder.pid} on"):
            train(tmp_path, tiny_config(steps=2))
        assert not (tmp_path / "metrics.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # The holder died without releasing: its lock file is taken over.
    assert (tmp_path / "run.lock").exists()
    assert train(tmp_path, tiny_config(steps=2)).step == 2
    assert not (tmp_path / "run.lock").exists()


def test_a_lock_file_left_by_a_dead_process_is_taken_over(tmp_path):
    (tmp_path / "run.lock").write_text("process 999999 on elsewhere, since long ago\n")
    assert train(tmp_path, tiny_config(steps=2)).step == 2
    assert {p.name for p in tmp_path.iterdir()} == {"config.json", "metrics.jsonl", "checkpoint.pt"}


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    with pytest.raises(ValueError):
        train(tmp_path, tiny_config(steps=2, batch_size=5000))  # more than the images: refused while loading
    with RunLock(tmp_path):  # free again
        pass


# ------------------------------------------------------------ progress


def test_progress_in_a_log_file_is_a_line_every_tenth_of_the_run(tmp_path, capsys):
    train(tmp_path, tiny_config(steps=200, progress=True, log_every=50, val_every=100))
    err = capsys.readouterr().err
    assert "\r" not in err  # no redrawn bar
    lines = err.splitlines()
    assert len(lines) == 10 and len(err) < 1500
    assert lines[0].startswith("step 20/200 (10 %)") and lines[-1].startswith("step 200/200 (100 %)")
