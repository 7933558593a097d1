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

# The benchmark programs, tested on tiny plans: `pytest -m "not benchmarks"` runs the library's tests alone.
pytestmark = pytest.mark.benchmarks


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
    # The twin does EMAVQ's work: its CPU-time ratio sits near 1 (a broken pairing or clock would not).
    assert 0.5 < results["layers"]["twin_over_ema_cpu"] < 2.0
    assert 0.5 < results["layers"]["kohonen_over_ema_cpu"] < 3.0
    assert [p["N"] for p in results["scaling"]["N"]] == list(TINY.scaling_n)
    (large,) = results["large_map"]
    assert large["dense_matrix"] is False and large["max_rss_bytes"] > large["max_rss_before_bytes"] > 0

    text = (tmp_path / "RESULTS.md").read_text()
    for heading in ("## Targets", "## Streaming", "## Batch training", "## Torch layers", "## Scaling", "## A 16×16 map"):
        assert heading in text
    assert (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "results.json").read_text())["plan"] == "tiny"


def test_update_replaces_the_sections_run_and_keeps_the_others_with_their_runs(tmp_path):
    from benchmarks.speed.plan import QUICK

    quiet = dict(out=tmp_path, data_source="blobs", log=lambda *args: None)
    first = run(TINY, sections=("anatomy", "batch"), command="first", **quiet)
    second = run(TINY, sections=("anatomy",), command="second", update=True, **quiet)

    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["batch"] == json.loads(json.dumps(first["batch"]))  # kept as the first run wrote it
    assert saved["anatomy"] == json.loads(json.dumps(second["anatomy"]))  # replaced
    assert saved["section_runs"]["batch"]["command"] == "first"
    assert saved["section_runs"]["anatomy"]["command"] == "second"
    text = (tmp_path / "RESULTS.md").read_text()
    assert "anatomy: `second` (tiny plan)" in text and "batch: `first` (tiny plan)" in text
    with pytest.raises(SystemExit, match="holds the tiny plan, this run the quick plan"):
        run(QUICK, sections=("anatomy",), update=True, **quiet)


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


def test_time_to_equal_quality_gives_ratio_rung_qe_and_te_for_every_peer(tmp_path):
    from benchmarks.speed import quality

    results = run(TINY, out=tmp_path, data_source="blobs", sections=("quality",), log=lambda *args: None)

    (shape,) = results["quality"]["shapes"]
    assert shape["n_train"] == TINY.quality.train_rows and shape["n_test"] == TINY.quality.test_rows
    assert {row["peer"] for row in shape["rows"]} == {*quality.SOM_PEERS, quality.KMEANS}
    for row in shape["rows"]:
        peer = shape["peers"][row["peer"]]
        assert peer["qe"] > 0 and len(peer["seconds"]) == TINY.quality.rounds
        if row["reached"]:
            assert row["ratio"] > 0 and row["rung"]
            assert row["our_qe"] <= peer["qe"]
            assert peer["te"] is None or row["our_te"] <= peer["te"]
        if len(quality.LADDERS[row["ladder"]]["rungs"]) == 1:  # the defaults: always timed
            assert row["ratio"] > 0 and row["rung"] == "defaults"
    settings = [p["setting"] for p in shape["one_pass"]]
    assert settings == list(quality.STREAMING)
    assert all(p["qe_ratio"] > 0 and p["speed_ratio"] > 0 for p in shape["one_pass"])

    text = (tmp_path / "RESULTS.md").read_text()
    assert "## Time to equal quality" in text and "peer time / ours" in text
    assert text.index("## Time to equal quality") < text.index("### blobs 8-D, 4×4")


def test_a_ladder_that_cannot_reach_the_peer_is_reported_as_not_reached():
    from benchmarks.speed import quality

    # A neighbourhood wider than the 4x4 map pulls every code to the data's mean.
    hopeless = {"sigma": 50.0, "sigma_end": 50.0}
    ladders = {"hopeless": {"trains": "fit", "against": (quality.MINISOM_RANDOM,),
                            "rungs": [{"max_iter": 1, **hopeless}, {"max_iter": 2, **hopeless}]}}  # fmt: skip
    result = quality.run("blobs", TINY.quality, log=lambda *args: None, ladders=ladders)

    (shape,) = result["shapes"]
    (row,) = shape["rows"]
    assert row["reached"] is False and row["rungs_tried"] == 2 and "ratio" not in row
    assert row["closest_qe"] > shape["peers"][quality.MINISOM_RANDOM]["qe"]
    assert "not reached" in quality.headline_table(result)
    assert "not reached (closest of 2" in quality.shape_table(shape)


def test_kohonenvq_and_the_twin_run_back_to_back_around_emavq_swapping_sides():
    from benchmarks.speed import layers

    kohonen = layers.kohonen_name((32, 16))
    names = [layers.VQP, layers.FLOOR, layers.EMA, layers.TWIN, kohonen]
    orders = [layers.round_order(names, round_, kohonen) for round_ in range(4)]
    for order in orders:
        assert sorted(order) == sorted(names)
        middle = order.index(layers.EMA)
        assert {order[middle - 1], order[middle + 1]} == {kohonen, layers.TWIN}
    assert [order.index(kohonen) < order.index(layers.EMA) for order in orders] == [True, False, True, False]
    assert {order[0] for order in orders} == {layers.VQP, layers.FLOOR}  # the others still rotate
