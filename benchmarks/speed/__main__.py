"""``python -m benchmarks.speed``: the speed comparison, printed and written.

    python -m benchmarks.speed --threads 1              # full run (`make bench`; the time-to-quality
                                                        # section alone takes about an hour on 2 cores)
    python -m benchmarks.speed --quick                  # smoke test, a few minutes
    python -m benchmarks.speed --gpu                    # the GPU mode (CuPy arrays, CUDA tensors)
    python -m benchmarks.speed --threads 1 --only quality --update
                                                        # one section again, the others kept

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
import subprocess
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
    plan, *, out: Path, data_source="auto", sections=SECTIONS, use_gpu=False, n_threads=None, command="",
    update=False, log=print,
) -> dict:
    """Run the plan's comparisons at ``n_threads``, write the report into ``out``; the results.

    With ``n_threads`` set, the reference-shape streaming comparison runs a
    second time with every library's own thread count, for the record.
    With ``update``, the sections run replace theirs in the report already
    in ``out`` and the others are kept; the report then names the run
    (command, date, commit) behind each section.
    """
    previous = _previous(out / _results_name(use_gpu), plan, log) if update else None
    with threads(n_threads):
        results = _run(plan, out=out, data_source=data_source, sections=sections, use_gpu=use_gpu,
                       command=command, log=log)  # fmt: skip
    if "skipped" in results:
        return results
    if n_threads is not None and "streaming" in sections:
        spec_only = dataclasses.replace(plan, streaming_shapes=plan.streaming_shapes[:1])
        log("again with each library's own thread count:")
        results["streaming_own_threads"] = comparisons.streaming(Dataset(data_source), spec_only, log)
        own = machine.describe()
        results["own_threads"] = {"blas": own["blas"], "torch_threads": own["torch_threads"]}
    if previous is not None:
        results = _merged(previous, results)
    _write(results, out, use_gpu, log)
    return results


def _commit() -> str:
    """The checked-out commit (with '+' where the tree has changes), or '' outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return head.stdout.strip() + ("+" if dirty.stdout.strip() else "")


def _run(plan, *, out, data_source, sections, use_gpu, command, log) -> dict:
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    data = Dataset(data_source)
    results = {
        "command": command or "python -m benchmarks.speed",
        "commit": _commit(),
        "sections_run": list(sections),
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
    return results


# results.json keys written by each section (the rest describe the run).
SECTION_KEYS = {
    "quality": ("quality",),
    "streaming": ("streaming", "streaming_own_threads", "own_threads"),
    "anatomy": ("anatomy",),
    "batch": ("batch",),
    "layers": ("layers",),
    "scaling": ("scaling",),
    "large_map": ("large_map", "large_grid"),
}
RUN_KEYS = ("command", "commit", "date", "plan", "machine", "data", "load_average", "wall_seconds")


def _results_name(use_gpu):
    return "results-gpu.json" if use_gpu else "results.json"


def _previous(path, plan, log):
    """The report that ``--update`` adds to, or None where there is none yet."""
    if not path.exists():
        log(f"--update: no {path} yet; this run's sections alone are written")
        return None
    previous = json.loads(path.read_text())
    if previous.get("plan") != plan.name:
        raise SystemExit(f"--update: {path} holds the {previous.get('plan')} plan, this run the {plan.name} plan")
    return previous


def _merged(previous, results) -> dict:
    """``previous`` with the sections of ``results`` in place of its own."""
    # Each section's run: as the earlier report records it, or its whole run.
    runs = previous.get("section_runs") or {
        section: {key: previous.get(key) for key in RUN_KEYS}
        for section in SECTION_KEYS
        if any(key in previous for key in SECTION_KEYS[section])
    }
    merged = dict(previous)
    for section in results["sections_run"]:
        for key in SECTION_KEYS[section]:
            merged.pop(key, None)
            if key in results:
                merged[key] = results[key]
        runs[section] = {key: results.get(key) for key in RUN_KEYS}
    merged.update({key: results[key] for key in (*RUN_KEYS, "rounds", "sections_run") if key in results})
    merged["section_runs"] = runs
    return merged


def _write(results, out, use_gpu, log):
    name = "RESULTS-gpu.md" if use_gpu else "RESULTS.md"
    (out / name).write_text(report.markdown(results))
    (out / _results_name(use_gpu)).write_text(json.dumps(results, indent=1, default=str))
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
        "--update",
        action="store_true",
        help="replace only the sections run in the report already in --out, keeping the others (each section "
        "names its own run)",
    )
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
        update=args.update,
    )


if __name__ == "__main__":
    main()
