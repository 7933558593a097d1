"""Data-parallel training of the VQ layers: a real two-process run on gloo.

The test starts two processes with torch.multiprocessing (CPU, a file
store on the loopback), trains an encoder + KohonenVQ under
DistributedDataParallel on each process's half of every batch, and checks
that both processes end with identical codebooks equal to one process
trained on the whole batches.
"""

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from torch_adapter import KohonenVQ

WORLD_SIZE, STEPS, PER_RANK, DIM = 2, 3, 32, 4


class EncoderAndQuantizer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.encoder = torch.nn.Linear(DIM, DIM)
        self.quantizer = KohonenVQ(DIM, (3, 3), neighbourhood="gaussian", schedule="exponential", schedule_steps=STEPS)

    def forward(self, x):
        out = self.quantizer(self.encoder(x))
        return torch.nn.functional.mse_loss(out.quantized, x) + out.loss


def whole_batches():
    """The same STEPS batches of WORLD_SIZE * PER_RANK vectors in every process."""
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(WORLD_SIZE * PER_RANK, DIM, generator=generator) for _ in range(STEPS)]


def train(model, batches):
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    for batch in batches:
        optimiser.zero_grad()
        model(batch).backward()
        optimiser.step()


def run_rank(rank, store, results):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD_SIZE)
    try:
        model = EncoderAndQuantizer()
        own_part = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        train(DistributedDataParallel(model), [batch[own_part] for batch in whole_batches()])
        state = {name: value.clone() for name, value in model.state_dict().items()}
        # A non-finite batch, or one whose squared distances overflow, on one
        # process only: every process refuses the step (none waits forever).
        errors = []
        for bad in (float("nan"), 1e20):
            batch = torch.randn(PER_RANK, DIM)
            if rank == 1:
                batch[3, 0] = bad
            try:
                model.quantizer(batch)
                errors.append("")
            except ValueError as exc:
                errors.append(str(exc))
        unchanged = all(torch.equal(model.state_dict()[name], value) for name, value in state.items())
        torch.save({"state": state, "errors": errors, "unchanged": unchanged}, f"{results}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two fresh interpreters importing torch: ~10-20 s on two cores
def test_two_gloo_processes_hold_one_codebook_equal_to_a_single_process_run(tmp_path, monkeypatch):
    # The spawned processes import this module by name (tests.test_torch_distributed)
    # with the parent's sys.path: make sure the repository root is on it.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    mp.spawn(run_rank, args=(tmp_path / "store", tmp_path), nprocs=WORLD_SIZE, join=True)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]

    assert not dist.is_initialized()  # the reference below runs without any process group
    single = EncoderAndQuantizer()
    train(single, whole_batches())

    for name, value in single.state_dict().items():
        assert torch.equal(ranks[0]["state"][name], ranks[1]["state"][name]), name
        torch.testing.assert_close(ranks[0]["state"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert int(ranks[0]["state"]["quantizer.step"]) == STEPS
    for rank in ranks:
        assert all("NaN or inf" in error for error in rank["errors"]) and rank["unchanged"]
