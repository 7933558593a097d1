"""Train-mode throughput of the torch VQ layers, side by side in one process.

Each contender quantises the same batch in training mode: nearest codes,
straight-through output, commitment loss and the EMA codebook update, with
K = 512 codes of D = 64 and 16 384 vectors a batch (an input that needs a
gradient, as an encoder output does).  Contenders:

- ``EMAVQ`` and ``KohonenVQ`` (32 x 16 grid, the paper's hard
  neighbourhood) of :mod:`torch_adapter`;
- vector-quantize-pytorch's ``VectorQuantize`` with its EMA update (decay
  0.99, no dead-code replacement), started from the same codebook;
- a minimal EMA-VQ step written inline in plain torch: the floor that the
  shared core's overhead is measured against.

Rounds run every contender in turn (rotating the order), each from the same
starting codebook; the table reports medians over rounds, as vectors per
second and as per-round time ratios.  The
first step's codes of every contender are compared, to show they do the
same work.

    SCIPY_ARRAY_API=1 PYTHONPATH=. python benchmarks/torch_layers.py [--rounds 21] [--threads 1]

On a machine shared with other jobs, ``--threads 1`` keeps OpenMP from
stalling on a core that a neighbour holds (torch's scatter-adds and
small element-wise ops then cost 10-100x more), which would measure
the neighbours rather than the code.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from vector_quantize_pytorch import VectorQuantize

from sklearn_ksom._array_api import namespace
from torch_adapter import EMAVQ, KohonenVQ

N_CODES, DIM, N_VECTORS = 512, 64, 16_384
DECAY, EPSILON, COMMITMENT = 0.99, 1e-5, 0.25


def vector_quantize_pytorch(codebook):
    layer = VectorQuantize(dim=DIM, codebook_size=N_CODES, decay=DECAY, eps=EPSILON, commitment_weight=COMMITMENT)
    layer._codebook.embed.copy_(codebook[None])
    layer._codebook.embed_avg.copy_(codebook[None])
    layer._codebook.cluster_size.fill_(1.0)
    layer.train()

    def step(z):
        quantized, codes, loss = layer(z)
        return quantized, codes, loss

    return step


def plain_torch(codebook):
    """EMA-VQ in a dozen lines of torch, no checks: the reference floor."""
    codebook, counts, sums = codebook.clone(), torch.ones(N_CODES), codebook.clone()

    def step(z):
        flat = z.reshape(-1, DIM)
        x = flat.detach()
        with torch.no_grad():
            scores = torch.addmm((codebook * codebook).sum(1), x, codebook.T, alpha=-2)
            codes = scores.argmin(1)
            quantized = codebook[codes]
            counts.mul_(DECAY).add_(torch.bincount(codes, minlength=N_CODES), alpha=1 - DECAY)
            sums.mul_(DECAY).index_add_(0, codes, x, alpha=1 - DECAY)
            total = counts.sum()
            smoothed = (counts + EPSILON) / (total + N_CODES * EPSILON) * total
            codebook.copy_(sums / smoothed[:, None])
        loss = COMMITMENT * torch.nn.functional.mse_loss(flat, quantized)
        straight_through = flat + (quantized - flat).detach()
        return straight_through.reshape(z.shape), codes.reshape(z.shape[:-1]), loss

    return step


def torch_adapter_layer(layer_class, *args):
    def build(codebook):
        layer = layer_class(DIM, *args, decay=DECAY, epsilon=EPSILON, commitment=COMMITMENT, init=codebook)

        def step(z):
            out = layer(z)
            return out.quantized, out.codes, out.loss

        return step

    return build


VQP, FLOOR, EMA, KOHONEN = (
    "vector-quantize-pytorch VectorQuantize (EMA)",
    "plain torch EMA step (floor)",
    "torch_adapter.EMAVQ",
    "torch_adapter.KohonenVQ (hard, 32x16)",
)
CONTENDERS = {
    VQP: vector_quantize_pytorch,
    FLOOR: plain_torch,
    EMA: torch_adapter_layer(EMAVQ, N_CODES),
    KOHONEN: torch_adapter_layer(KohonenVQ, (32, 16)),
}


def neighbourhood_seconds(repeats=200):
    """Time of what KohonenVQ adds to an EMAVQ step: P(t) and its two spreads."""
    layer = KohonenVQ(DIM, (32, 16))
    settings, xp = layer._estimator, namespace(layer.codebook)
    start = time.perf_counter()
    for step in range(repeats):
        P = settings._neighbourhood_at(step, 1000, xp, torch.float32, layer.codebook.device)
        P.spread(layer.counts, xp), P.spread(layer.sums, xp)
    return (time.perf_counter() - start) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21, help="timed rounds (median reported)")
    parser.add_argument("--steps", type=int, default=3, help="training steps per contender per round")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    z = torch.randn(16, N_VECTORS // 16, DIM, requires_grad=True)
    codebook = torch.randn(N_CODES, DIM)
    names = list(CONTENDERS)
    first_codes = {name: CONTENDERS[name](codebook)(z)[1].reshape(-1) for name in names}

    # Every round starts every contender afresh from the same codebook (one
    # untimed step first), so all time the same steps of training.
    seconds = {name: [] for name in names}
    for round_ in range(args.rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            step = CONTENDERS[name](codebook)
            step(z)
            start = time.perf_counter()
            for _ in range(args.steps):
                step(z)
            seconds[name].append((time.perf_counter() - start) / args.steps)

    def ratio(numerator, denominator):
        """Median over rounds of the time ratio: pairs runs made close together
        in time, so the load of a shared machine cancels better."""
        return statistics.median(a / b for a, b in zip(seconds[numerator], seconds[denominator]))

    print(f"K={N_CODES}, D={DIM}, {N_VECTORS} vectors a batch, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.rounds} rounds x {args.steps} steps (medians)")
    print(f"{'contender':46s} {'ms/step':>8s} {'vectors/s':>11s} {'speed-up vs VQ-pytorch*':>23s} {'same codes':>10s}")
    for name in names:
        median = statistics.median(seconds[name])
        agreement = float((first_codes[name] == first_codes[EMA]).float().mean())
        print(f"{name:46s} {median * 1e3:8.1f} {N_VECTORS / median:11,.0f} "
              f"{ratio(VQP, name):22.2f}x {agreement:10.4f}")
    print("* median over rounds of the per-round time ratio")
    print(f"EMAVQ throughput / VectorQuantize throughput: {ratio(VQP, EMA):.2f}  (target >= 2.5)")
    print(f"EMAVQ time / plain-torch floor time:          {ratio(EMA, FLOOR):.3f}")
    print(f"KohonenVQ time / EMAVQ time:                  {ratio(KOHONEN, EMA):.3f} (target <= 1.05)")
    extra = neighbourhood_seconds() / statistics.median(seconds[EMA])
    print(f"KohonenVQ's own work (P(t), two spreads) / EMAVQ step time: {extra:.4f}")


if __name__ == "__main__":
    main()
