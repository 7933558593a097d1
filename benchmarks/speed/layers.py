"""Train-mode throughput of the torch VQ layers, side by side in one process.

Each contender quantises the same batch in training mode: nearest codes,
straight-through output, commitment loss and the EMA codebook update, with
K codes of D dimensions and N vectors a batch (the torch issue's shape:
K = 512, D = 64, N = 16 384; an input that needs a gradient, as an encoder
output does).  Contenders:

- ``EMAVQ`` and ``KohonenVQ`` (the paper's hard neighbourhood; a 32 x 16
  grid for K = 512) of :mod:`torch_adapter`;
- vector-quantize-pytorch's ``VectorQuantize`` with its EMA update (decay
  0.99, no dead-code replacement), started from the same codebook;
- a minimal EMA-VQ step written inline in plain torch: the floor that the
  shared core's overhead is measured against;
- a second ``EMAVQ``, timed like the first: the two do identical work, so
  their ratio is the timing noise that the KohonenVQ/EMAVQ ratio carries.

Rounds run every contender in turn (see :func:`round_order`), each afresh
from the same starting codebook with one untimed step; the table reports
medians over rounds as vectors per second, and every ratio as the median
over rounds of the per-round time ratio (the one statistic for ratios
here: it pairs runs made close together in time, so a shared machine's
load cancels better).  The first step's codes of every contender are compared, to show
they do the same work.  On a GPU every clock is read after
``torch.cuda.synchronize()``.
"""

from __future__ import annotations

import math
import statistics
import time

DECAY, EPSILON, COMMITMENT = 0.99, 1e-5, 0.25
EMAVQ_OVER_VQP = 2.5  # EMAVQ throughput at least 2.5x vector-quantize-pytorch's
KOHONEN_OVER_EMA = 1.05  # KohonenVQ step time at most 1.05x EMAVQ's

VQP = "vector-quantize-pytorch VectorQuantize (EMA)"
FLOOR = "plain torch EMA step (floor)"
EMA = "torch_adapter.EMAVQ"
TWIN = "torch_adapter.EMAVQ (a second instance)"


def grid_for(n_codes):
    """The paper's grid for K codes: 512 -> 32 x 16, 1024 -> 32 x 32, 256 -> 16 x 16."""
    rows = 2 ** math.ceil(math.log2(n_codes) / 2)
    return (rows, n_codes // rows)


def vector_quantize_pytorch(codebook):
    from vector_quantize_pytorch import VectorQuantize

    n_codes, dim = codebook.shape
    layer = VectorQuantize(dim=dim, codebook_size=n_codes, decay=DECAY, eps=EPSILON, commitment_weight=COMMITMENT)
    layer = layer.to(codebook.device)
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
    import torch

    n_codes, dim = codebook.shape
    codebook, counts, sums = codebook.clone(), torch.ones(n_codes, device=codebook.device), codebook.clone()

    def step(z):
        flat = z.reshape(-1, dim)
        x = flat.detach()
        with torch.no_grad():
            scores = torch.addmm((codebook * codebook).sum(1), x, codebook.T, alpha=-2)
            codes = scores.argmin(1)
            quantized = codebook[codes]
            counts.mul_(DECAY).add_(torch.bincount(codes, minlength=n_codes), alpha=1 - DECAY)
            sums.mul_(DECAY).index_add_(0, codes, x, alpha=1 - DECAY)
            total = counts.sum()
            smoothed = (counts + EPSILON) / (total + n_codes * EPSILON) * total
            codebook.copy_(sums / smoothed[:, None])
        loss = COMMITMENT * torch.nn.functional.mse_loss(flat, quantized)
        straight_through = flat + (quantized - flat).detach()
        return straight_through.reshape(z.shape), codes.reshape(z.shape[:-1]), loss

    return step


def torch_adapter_layer(layer_class, *args):
    def build(codebook):
        dim = codebook.shape[1]
        layer = layer_class(dim, *args, decay=DECAY, epsilon=EPSILON, commitment=COMMITMENT, init=codebook.cpu())
        layer = layer.to(codebook.device)

        def step(z):
            out = layer(z)
            return out.quantized, out.codes, out.loss

        return step

    return build


def kohonen_name(grid_shape):
    return f"torch_adapter.KohonenVQ (hard, {grid_shape[0]}x{grid_shape[1]})"


def contenders(n_codes):
    from torch_adapter import EMAVQ, KohonenVQ

    grid_shape = grid_for(n_codes)
    return {
        VQP: vector_quantize_pytorch,
        FLOOR: plain_torch,
        EMA: torch_adapter_layer(EMAVQ, n_codes),
        TWIN: torch_adapter_layer(EMAVQ, n_codes),
        kohonen_name(grid_shape): torch_adapter_layer(KohonenVQ, grid_shape),
    }


def round_order(names, round_, kohonen):
    """The contenders' order in round ``round_``: the others rotated, then the KohonenVQ trio.

    KohonenVQ and the second EMAVQ run right before and right after the
    first EMAVQ, swapping sides every round: both ratios to EMAVQ then
    compare runs made back to back, in the same positions, so the twin's
    ratio is the noise floor of KohonenVQ's (a fixed cyclic order made
    KohonenVQ always follow the twin and precede vector-quantize-pytorch).
    """
    others = [name for name in names if name not in (EMA, TWIN, kohonen)]
    shift = round_ % len(others)
    trio = [kohonen, EMA, TWIN] if round_ % 2 == 0 else [TWIN, EMA, kohonen]
    return others[shift:] + others[:shift] + trio


def neighbourhood_seconds(n_codes, dim, device, sync, repeats=200):
    """Time of what KohonenVQ adds to an EMAVQ step: P(t) and its spread."""
    import torch

    from array_api_compat import array_namespace

    from sklearn_ksom.core import spread_statistics
    from torch_adapter import KohonenVQ

    layer = KohonenVQ(dim, grid_for(n_codes)).to(device)
    schedule, xp = layer.neighbourhood_schedule, array_namespace(layer.codebook)
    sync()
    start = time.perf_counter()
    for step in range(repeats):
        P = schedule.at(step, xp=xp, dtype=torch.float32, device=layer.codebook.device)
        spread_statistics(P, layer.counts, layer.sums, xp=xp)
    sync()
    return (time.perf_counter() - start) / repeats


def argmin_cost(codebook, z, steps, sync, repeats=30) -> dict:
    """The argmin's cost on KohonenVQ's trained codes against EMAVQ's.

    The argmin scans each row of scores keeping a running minimum; how often
    that minimum moves depends on the order of the codes.  A trained map
    orders them, so scores change smoothly along a row and the scan finds
    more new minima (more mispredicted branches): the same work on a
    different codebook state takes longer.  Both layers are trained for
    ``steps + 1`` steps from ``codebook`` on ``z``; returns the median ratio of
    argmin times and the mean number of new minima per row for each.
    """
    import torch

    from torch_adapter import EMAVQ, KohonenVQ

    n_codes, dim = codebook.shape
    layers = {
        "ema": EMAVQ(dim, n_codes, decay=DECAY, epsilon=EPSILON, init=codebook.cpu()).to(codebook.device),
        "kohonen": KohonenVQ(dim, grid_for(n_codes), decay=DECAY, epsilon=EPSILON, init=codebook.cpu()).to(codebook.device),
    }
    x = z.detach().reshape(-1, dim)
    scores = {}
    for name, layer in layers.items():
        for _ in range(steps + 1):
            layer(z)
        with torch.no_grad():
            scores[name] = torch.addmm((layer.codebook * layer.codebook).sum(1), x, layer.codebook.T, alpha=-2)
    times = {name: [] for name in scores}
    for _ in range(repeats):
        for name, s in scores.items():
            sync()
            start = time.perf_counter()
            s.argmin(1)
            sync()
            times[name].append(time.perf_counter() - start)

    def new_minima(s):
        running = torch.cummin(s[:4096], dim=1).values
        return float((running[:, 1:] < running[:, :-1]).sum(1).float().mean()) + 1

    return {
        "argmin_kohonen_over_ema": statistics.median(a / b for a, b in zip(times["kohonen"], times["ema"])),
        "new_minima_per_row": {name: new_minima(s) for name, s in scores.items()},
    }


def compare(shape, *, rounds, steps, device="cpu", log=print) -> dict:
    """Time every contender on (K, D, N) = ``shape``; rows, ratios and targets."""
    import torch

    n_codes, dim, n_vectors = shape
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(16, n_vectors // 16, dim, generator=generator).to(device).requires_grad_(True)
    codebook = torch.randn(n_codes, dim, generator=generator).to(device)
    builders = contenders(n_codes)
    names = list(builders)
    kohonen = kohonen_name(grid_for(n_codes))
    first_codes = {name: builders[name](codebook)(z)[1].reshape(-1) for name in names}

    # Every round starts every contender afresh from the same codebook (one
    # untimed step first), so all time the same steps of training.
    # Process CPU time too: on a shared machine, wall time also counts the
    # waits for a core that a neighbour holds, which fall on small ops
    # (KohonenVQ's extra ones) more than on the large GEMMs.
    seconds, cpu_seconds = {name: [] for name in names}, {name: [] for name in names}
    for round_ in range(rounds):
        for name in round_order(names, round_, kohonen):
            step = builders[name](codebook)
            step(z)
            sync()
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(steps):
                step(z)
            sync()
            seconds[name].append((time.perf_counter() - start) / steps)
            cpu_seconds[name].append((time.process_time() - cpu_start) / steps)

    def ratio(numerator, denominator, times=seconds):
        """Median over rounds of the per-round time ratio."""
        return statistics.median(a / b for a, b in zip(times[numerator], times[denominator]))

    rows = {}
    for name in names:
        median = statistics.median(seconds[name])
        rows[name] = {
            "ms_per_step": median * 1e3,
            "vectors_per_s": z.shape[0] * z.shape[1] / median,
            "speedup_vs_vqp": ratio(VQP, name),
            "same_codes": float((first_codes[name] == first_codes[EMA]).float().mean()),
        }
        log(
            f"  {name:46s} {median * 1e3:8.2f} ms  {rows[name]['vectors_per_s']:12,.0f} vectors/s  "
            f"x{rows[name]['speedup_vs_vqp']:.2f} vs VectorQuantize"
        )
    ema_over_vqp, kohonen_over_ema = ratio(VQP, EMA), ratio(kohonen, EMA)
    own_share = neighbourhood_seconds(n_codes, dim, device, sync, repeats=20 * rounds) / statistics.median(seconds[EMA])
    floor_share = ratio(EMA, FLOOR)
    twin_over_ema = ratio(TWIN, EMA)
    argmin = argmin_cost(codebook, z, steps, sync)
    on_cpu = str(device) == "cpu"  # a GPU step's process time is the host's alone
    cpu = {"kohonen_over_ema_cpu": ratio(kohonen, EMA, cpu_seconds), "twin_over_ema_cpu": ratio(TWIN, EMA, cpu_seconds)}
    minima = argmin["new_minima_per_row"]
    attribution = (
        f"P(t) and its spread, timed alone, take {100 * own_share:.1f} % of an EMAVQ step; the argmin over a "
        f"batch's scores runs {argmin['argmin_kohonen_over_ema']:.3f}× as long on KohonenVQ's trained codes as on "
        f"EMAVQ's (the same work on another codebook state): the "
        f"map orders the codes, and scanning a row of scores finds {minima['kohonen']:.1f} new minima against "
        f"{minima['ema']:.1f}"
    )
    kohonen_limit = (
        f"{attribution}; a second EMAVQ, "
        f"doing identical work, timed {twin_over_ema:.3f}× the first"
        + (f"; in process CPU time KohonenVQ took {cpu['kohonen_over_ema_cpu']:.3f}× EMAVQ's (the twin "
           f"{cpu['twin_over_ema_cpu']:.3f}×)" if on_cpu else "")
        if kohonen_over_ema > KOHONEN_OVER_EMA
        else ""
    )
    ema_limit = (
        f"EMAVQ takes {floor_share:.2f}x the plain-torch floor's time; the floor itself is "
        f"{ratio(VQP, FLOOR):.2f}x VectorQuantize"
        if ema_over_vqp < EMAVQ_OVER_VQP
        else ""
    )
    return {
        "K": n_codes,
        "D": dim,
        "vectors": z.shape[0] * z.shape[1],
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "rounds": rounds,
        "steps": steps,
        "rows": rows,
        "ema_over_vqp": ema_over_vqp,
        "ema_over_floor": floor_share,
        "kohonen_over_ema": kohonen_over_ema,
        "twin_over_ema": twin_over_ema,
        "kohonen_own_share": own_share,
        "kohonen_attribution": attribution,
        **argmin,
        **(cpu if on_cpu else {}),
        "targets": [
            (f"EMAVQ ≥ {EMAVQ_OVER_VQP:g}× vector-quantize-pytorch's throughput", f"{ema_over_vqp:.2f}×",
             ema_over_vqp >= EMAVQ_OVER_VQP, ema_limit),
            (f"KohonenVQ step ≤ {KOHONEN_OVER_EMA:g}× EMAVQ's", f"{kohonen_over_ema:.3f}×",
             kohonen_over_ema <= KOHONEN_OVER_EMA, kohonen_limit),
        ],  # fmt: skip
    }
