"""The demo end to end, shrunk to a few steps on the digits: report, pictures, printed path."""

import pytest
import torch
from matplotlib.image import imread

from torch_adapter import cli
from torch_adapter.train import TrainConfig, read_metrics, train

SHRUNK = dict(data="digits", n_downsample=1, hidden=16, residual_hidden=8, dim=8, grid_shape=(4, 4), batch_size=32,
              steps=4, log_every=1, val_every=2, val_images=64, progress=False)


@pytest.fixture
def keep_torch_threads():
    """The demo sets torch's thread count; give the rest of the session its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_demo_writes_a_report_with_both_bottlenecks_and_its_pictures(tmp_path, monkeypatch, capsys, keep_torch_threads):
    from torch_adapter import demo

    monkeypatch.setattr(demo, "DEMO_SETTINGS", {**demo.DEMO_SETTINGS, **SHRUNK})
    assert cli.main(["demo", "--out", str(tmp_path), "--no-progress"]) == 0
    assert torch.get_num_threads() == 1
    report = tmp_path / "report.md"
    assert f"report: {report}" in capsys.readouterr().out
    text = report.read_text()
    assert "| KSOM |" in text and "| EMA-VQ |" in text and "scikit-learn's 8x8 grey digits" in text
    assert f"PyTorch {torch.__version__}" in text and "1 torch thread(s). The figures repeat bit for bit" in text
    linked = [part.split(")")[0] for part in text.split("](")[1:]]
    assert len(linked) == 8
    for name in linked:
        assert imread(tmp_path / name).shape[0] > 50, name


def test_the_demo_repeats_bit_for_bit_at_one_thread(tmp_path, keep_torch_threads):
    """The same code, seed and thread count give the same log and weights: what the README's figures rest on."""
    from torch_adapter.demo import DEMO_RUNS, DEMO_SETTINGS

    torch.set_num_threads(1)
    config = TrainConfig(**{**DEMO_SETTINGS, **SHRUNK, **DEMO_RUNS["KSOM"], "steps": 30, "log_every": 5,
                            "val_every": 10})
    runs = [train(tmp_path / name, config) for name in ("first", "second")]
    logs = [[{k: v for k, v in line.items() if k != "wall_time"} for line in read_metrics(tmp_path / name)]
            for name in ("first", "second")]
    assert logs[0] == logs[1] and len(logs[0]) == 6
    first, second = (run.model.state_dict() for run in runs)
    assert all(torch.equal(first[k], second[k]) for k in first)
