"""``python -m benchmarks.speed``: the speed comparison, printed and written.

    python -m benchmarks.speed            # full run (about 10 minutes on 2 cores)
    python -m benchmarks.speed --quick    # smoke test, a minute
    python -m benchmarks.speed --gpu      # the GPU mode (CuPy arrays, CUDA tensors)

Writes RESULTS.md, results.json and scaling.png to ``--out`` (default: this
folder for the full run, runs/speed-quick for --quick, RESULTS-gpu.md here
for --gpu).  The peers come from the ``bench`` extra: ``make bench``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import shlex
import sys
import time
from pathlib import Path

from . import comparisons, gpu, machine, quality, report, scaling
from .data import SOURCES, Dataset
from .measure import run_child
from .plan import PLANS

HERE = Path(__file__).resolve().parent
SECTIONS = ("quality", "streaming", "anatomy", "batch", "layers", "scaling", "large_map")


def large_map(plan, log=print) -> list:
    rows, cols = plan.large_grid
    results = []
    for kernel in plan.large_kernels:
        result = run_child("benchmarks.speed.large_map", str(rows), str(cols), kernel, str(plan.large_steps))
        results.append(result)
        if "refused" in result:
            log(f"large map {rows}x{cols} '{kernel}': refused ({result['refused'][:80]}...)")
        else:
            log(
                f"large map {rows}x{cols} '{kernel}': {result['seconds_per_step'] * 1e3:.0f} ms a step, "
                f"peak RSS {result['max_rss_bytes'] / 2**20:.0f} MiB, K x K matrix: {result['dense_matrix']}"
            )
    return results


def layers(plan, device="cpu", log=print) -> dict:
    try:
        from .layers import compare

        import torch_adapter  # noqa: F401  (the layers need torch)
    except ImportError as error:
        return {"skipped": f"The torch-layer comparison needs PyTorch ({error})."}
    n_codes, dim, n_vectors = plan.layer_shape
    log(f"torch layers ({device}): K={n_codes}, D={dim}, {n_vectors} vectors a batch")
    return compare(plan.layer_shape, rounds=plan.layer_rounds, steps=plan.layer_steps, device=device, log=log)


@contextlib.contextmanager
def threads(n_threads):
    """Every library at ``n_threads`` threads (BLAS, OpenMP, torch) inside.

    On a machine shared with other jobs a thread pool waits for a core a
    neighbour holds; one thread each measures the code rather than the
    neighbours (the report records the choice).  ``None`` changes nothing.
    """
    if n_threads is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    torch_threads = torch.get_num_threads()
    limiter = threadpool_limits(limits=n_threads)
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        limiter.restore_original_limits()
        torch.set_num_threads(torch_threads)


def run(
    plan, *, out: Path, data_source="auto", sections=SECTIONS, use_gpu=False, n_threads=None, command="", log=print
) -> dict:
    """Run the plan's comparisons at ``n_threads``, write the report into ``out``; the results.

    With ``n_threads`` set, the reference-shape streaming comparison runs a
    second time with every library's own thread count, for the record.
    """
    with threads(n_threads):
        results = _run(plan, out=out, data_source=data_source, sections=sections, use_gpu=use_gpu,
                       command=command, log=log)  # fmt: skip
    if n_threads is not None and "streaming" in results:
        spec_only = dataclasses.replace(plan, streaming_shapes=plan.streaming_shapes[:1])
        log("again with each library's own thread count:")
        results["streaming_own_threads"] = comparisons.streaming(Dataset(data_source), spec_only, log)
        own = machine.describe()
        results["own_threads"] = {"blas": own["blas"], "torch_threads": own["torch_threads"]}
        _write(results, out, use_gpu, log)
    return results


def _run(plan, *, out, data_source, sections, use_gpu, command, log) -> dict:
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    data = Dataset(data_source)
    results = {
        "command": command or "python -m benchmarks.speed",
        "plan": plan.name,
        "repeats": plan.repeats,
        "rounds": {
            "time to equal quality": plan.quality.rounds,
            "streaming": plan.repeats,
            "batch training": min(plan.repeats, 3),
            "the torch layers": plan.layer_rounds,
            "scaling": plan.scaling_repeats,
        },
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "machine": machine.describe(),
        "data": data.describe(),
        "load_average": {"start": machine.load_average()},
    }
    if use_gpu:
        missing = gpu.availability()
        message = gpu.skip_message(missing)
        if message:
            log(message)
            return {"skipped": message}
        torch_device = "cuda" if missing["torch"] is None else None
        if missing["cupy"] is None:
            import cupy

            results["gpu"] = gpu.streaming(data, plan, xp=cupy, torch_device=torch_device, log=log)
        else:
            results["gpu"] = f"The estimators' GPU comparison was skipped: {missing['cupy']}."
        if torch_device is not None:
            results["layers"] = layers(plan, device=torch_device, log=log)
    else:
        if "quality" in sections:
            with threads(1):  # one thread each, whatever --threads says (SPEC section 6)
                results["quality"] = quality.run(data.source, plan.quality, log)
        if "streaming" in sections:
            results["streaming"] = comparisons.streaming(data, plan, log)
        if "anatomy" in sections:
            results["anatomy"] = comparisons.step_anatomy(data, plan, log)
        if "batch" in sections:
            results["batch"] = comparisons.batch_to_error(data, plan, log)
        if "layers" in sections:
            results["layers"] = layers(plan, log=log)
        if "scaling" in sections:
            results["scaling"] = scaling.scaling(data, plan, log)
            scaling.plot(results["scaling"], out / "scaling.png")
        if "large_map" in sections:
            results["large_map"] = large_map(plan, log)
            results["large_grid"] = list(plan.large_grid)
    results["load_average"]["end"] = machine.load_average()
    results["wall_seconds"] = time.perf_counter() - started
    _write(results, out, use_gpu, log)
    return results


def _write(results, out, use_gpu, log):
    name = "RESULTS-gpu.md" if use_gpu else "RESULTS.md"
    (out / name).write_text(report.markdown(results))
    (out / name.replace("RESULTS", "results").replace(".md", ".json")).write_text(
        json.dumps(results, indent=1, default=str)
    )
    log("")
    log(report.targets_table(results))
    log(f"\nwritten: {out / name}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes and few rounds: a smoke test")
    parser.add_argument("--gpu", action="store_true", help="the GPU mode (skipped with a message where there is no GPU)")
    parser.add_argument("--out", type=Path, help="folder for RESULTS.md, results.json, scaling.png")
    parser.add_argument("--data", choices=SOURCES, default="auto", help="Fashion-MNIST if installed (auto), or blobs")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="run only these sections")
    parser.add_argument(
        "--threads",
        type=int,
        help="BLAS / OpenMP / torch threads for every contender alike (default: each library's own choice)",
    )
    args = parser.parse_args(argv)
    plan = PLANS["quick" if args.quick else "full"]
    out = args.out or (Path("runs/speed-quick") if args.quick else HERE)
    command = "python -m benchmarks.speed " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    run(
        plan,
        out=out,
        data_source=args.data,
        sections=tuple(args.only),
        use_gpu=args.gpu,
        n_threads=args.threads,
        command=command.strip(),
    )


if __name__ == "__main__":
    main()
