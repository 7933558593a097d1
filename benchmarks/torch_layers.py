"""Train-mode throughput of the torch VQ layers against vector-quantize-pytorch.

The comparison itself lives in :mod:`benchmarks.speed.layers` and is part of
``python -m benchmarks.speed`` (``--only layers`` runs it alone, ``--gpu``
on CUDA); this command prints it on its own, with its rounds and threads:

    SCIPY_ARRAY_API=1 PYTHONPATH=. python benchmarks/torch_layers.py [--rounds 21] [--threads 1]

On a machine shared with other jobs, ``--threads 1`` keeps OpenMP from
stalling on a core that a neighbour holds (torch's scatter-adds and
small element-wise ops then cost 10-100x more), which would measure
the neighbours rather than the code.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.speed.layers import compare


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21, help="timed rounds (median reported)")
    parser.add_argument("--steps", type=int, default=3, help="training steps per contender per round")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"K=512, D=64, 16384 vectors a batch, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.rounds} rounds x {args.steps} steps (medians); speed-up = median per-round time ratio")
    result = compare((512, 64, 16_384), rounds=args.rounds, steps=args.steps, device=args.device)
    print(f"EMAVQ throughput / VectorQuantize throughput: {result['ema_over_vqp']:.2f}  (target >= 2.5)")
    print(f"EMAVQ time / plain-torch floor time:          {result['ema_over_floor']:.3f}")
    print(f"KohonenVQ time / EMAVQ time:                  {result['kohonen_over_ema']:.3f} (target <= 1.05)")
    print(f"KohonenVQ's own work (P(t), its spread) / EMAVQ step time: {result['kohonen_own_share']:.4f}")
    print(f"a second EMAVQ / EMAVQ (identical work: the timing noise): {result['twin_over_ema']:.3f}")


if __name__ == "__main__":
    main()
