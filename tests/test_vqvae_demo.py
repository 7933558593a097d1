"""The demo end to end, shrunk to a few steps on the digits: report, pictures, printed path."""

import pytest
import torch
from matplotlib.image import imread

from torch_adapter import cli

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
    linked = [part.split(")")[0] for part in text.split("](")[1:]]
    assert len(linked) == 8
    for name in linked:
        assert imread(tmp_path / name).shape[0] > 50, name
