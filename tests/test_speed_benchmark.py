"""The speed benchmark's code runs (tiny shapes), so it cannot rot unnoticed.

Speed itself is measured by ``python -m benchmarks.speed``, never here.
"""

import json
import math

import pytest
import torch

from benchmarks.speed import gpu
from benchmarks.speed.__main__ import run
from benchmarks.speed.comparisons import BOUND, OURS
from benchmarks.speed.plan import TINY


def test_the_quick_code_path_writes_a_full_report(tmp_path):
    threads_before = torch.get_num_threads()
    results = run(TINY, out=tmp_path, data_source="blobs", n_threads=1, log=lambda *args: None)

    rows = results["streaming"][0]["rows"]
    for name in (OURS, "EMAQuantizer.partial_fit", BOUND):
        assert not rows[name]["error"], rows[name]["error"]
        assert rows[name]["samples_per_s"] > 0
        # The ratios the report prints, from the rates it prints.
        assert math.isclose(rows[name]["speedup_of_ours"], rows[OURS]["samples_per_s"] / rows[name]["samples_per_s"])
        assert math.isclose(rows[name]["share_of_bound"], rows[name]["samples_per_s"] / rows[BOUND]["samples_per_s"])
    assert results["machine"]["torch_threads"] == 1 and torch.get_num_threads() == threads_before
    assert results["streaming_own_threads"][0]["rows"][OURS]["samples_per_s"] > 0
    assert results["anatomy"]["total_seconds"] > 0
    assert {row["peer"] for row in results["batch"]["rows"]} == {
        "MiniSom.train_batch", "MiniSom.train_batch_offline", "torchsom.fit"
    }
    assert all(row["same_codes"] > 0.99 for row in results["layers"]["rows"].values())
    assert [p["N"] for p in results["scaling"]["N"]] == list(TINY.scaling_n)
    (large,) = results["large_map"]
    assert large["dense_matrix"] is False and large["max_rss_bytes"] > large["max_rss_before_bytes"] > 0

    text = (tmp_path / "RESULTS.md").read_text()
    for heading in ("## Targets", "## Streaming", "## Batch training", "## Torch layers", "## Scaling", "## A 16×16 map"):
        assert heading in text
    assert (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "results.json").read_text())["plan"] == "tiny"


def test_the_gpu_mode_says_why_it_is_skipped_without_a_gpu(tmp_path):
    missing = gpu.availability()
    if gpu.skip_message(missing) is None:
        pytest.skip("a CUDA device is present: the GPU mode runs instead of skipping")
    lines = []
    results = run(TINY, out=tmp_path, data_source="blobs", use_gpu=True, log=lines.append)
    assert lines == [results["skipped"]]
    assert results["skipped"].startswith("GPU mode skipped: no CUDA device here")
    assert "CuPy" in results["skipped"] and "torch.cuda.is_available() is False" in results["skipped"]
    assert not (tmp_path / "RESULTS-gpu.md").exists()


def test_the_gpu_streaming_path_runs_on_numpy_and_cpu_tensors():
    """The GPU mode's code, with NumPy standing in for CuPy and torch on the CPU."""
    import numpy as np

    from benchmarks.speed.data import Dataset

    (result,) = gpu.streaming(Dataset("blobs"), TINY, xp=np, torch_device="cpu", log=lambda *args: None)
    for name in (OURS, "EMAQuantizer.partial_fit", "torchsom.fit", BOUND):
        assert not result["rows"][name]["error"], result["rows"][name]["error"]
        assert result["rows"][name]["samples_per_s"] > 0
