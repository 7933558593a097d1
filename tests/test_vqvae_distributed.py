"""Multi-process VQ-VAE training: 2 processes under torchrun on loopback (gloo, CPU)."""

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPOSITORY = Path(__file__).resolve().parents[1]

# Each process trains through the same entry point as the command, then saves
# what it holds, so the test can compare the two ranks.
WORKER = textwrap.dedent(
    """
    import os, sys, torch
    from torch_adapter.train import TrainConfig, train
    out = sys.argv[1]
    run = train(out + "/run", TrainConfig(
        data="digits", n_downsample=1, hidden=16, residual_hidden=8, grid_shape=(4, 4), dim=8, batch_size=32,
        steps=5, log_every=1, val_every=5, val_images=100, progress=False, device="cpu"))
    torch.save({"state": run.model.state_dict(), "world_size": run.processes.world_size,
                "batch": run.batch(0)}, f"{out}/rank{os.environ['RANK']}.pt")
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_processes_hold_identical_codebooks_and_weights(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
               "127.0.0.1", "--master_port", str(free_port()), str(script), str(tmp_path)]
    result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPOSITORY)})
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert all(rank["world_size"] == 2 for rank in ranks)
    # Each rank trained on its own half of every global batch ...
    assert ranks[0]["batch"].shape[0] == 16 and not torch.equal(ranks[0]["batch"], ranks[1]["batch"])
    # ... and both ended with the same model and the same codebook statistics.
    first, second = ranks[0]["state"], ranks[1]["state"]
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert int(first["quantizer.step"]) == 5
    # Only rank 0 writes the run's files.
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 5
