"""The results as tables: printed, and written to RESULTS.md with the plot."""

from __future__ import annotations

import math

from . import quality
from .comparisons import BOUND, OURS

REFERENCE_TARGETS = {
    "MiniBatchKMeans.partial_fit": 4.0,
    "MiniSom.train_random": 100.0,
    "torchsom.fit": 8.0,
}
BOUND_FACTOR = 2.0  # partial_fit within 2x of the distance GEMM alone
FIT_SPEEDUP = 50.0  # fit reaches MiniSom's error at least 50x faster
LARGE_MAP_BYTES = 2 * 10**9  # the 256 x 256 map under 2 GB


def _rate(value):
    return "—" if value is None or math.isnan(value) else f"{value:,.0f}"


def _times(value):
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}×"


def _share(value):
    return "—" if value is None else f"{100 * value:.0f} %"


def _rounds(results):
    plan = results.get("rounds", {})
    return ", ".join(f"{n} for {what}" for what, n in plan.items()) or f"{results['repeats']} each"


def _load(values):
    return ", ".join(f"{v:.1f}" for v in values or [])


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _shape_title(result):
    rows, cols = result["grid"]
    return f"{result['n_samples']:,} × {result['n_features']}, map {rows}×{cols} (K = {result['n_codes']:,}), batch {result['batch_size']}"


def streaming_tables(results) -> str:
    blocks = []
    for result in results:
        rows = []
        for name, row in result["rows"].items():
            if row["error"]:
                rows.append([name, "failed: " + row["error"].splitlines()[0][:120], "", "", ""])
                continue
            rows.append(
                [
                    name,
                    _rate(row["samples_per_s"]),
                    "—" if name == OURS else _times(row["speedup_of_ours"]),
                    _share(row["share_of_bound"]) if name != BOUND else "100 %",
                    row["note"],
                ]
            )
        blocks.append(
            f"**{_shape_title(result)}**\n\n"
            + _table(["contender", "samples/s (median)", "KohonenQuantizer is faster by", "share of the GEMM bound", "note"], rows)
        )
    return "\n\n".join(blocks)


def batch_table(result) -> str:
    rows = []
    for row in result["rows"]:
        if "error" in row:
            rows.append([row["peer"], "failed: " + row["error"][:120], "", "", "", "", "", ""])
            continue
        ours = row.get("ours")
        rows.append(
            [
                f"{row['peer']} ({row['note']})",
                f"{row['seconds']:.2f} s",
                f"{row['quantization_error']:.4f} / {row['topographic_error']:.3f}",
                row["setting"],
                row["our_max_iter"] if row["our_max_iter"] is not None else "not reached",
                f"{row['our_seconds']:.3f} s" if ours else "—",
                f"{ours['quantization_error']:.4f} / {ours['topographic_error']:.3f}" if ours else "—",
                _times(row.get("speedup")),
            ]
        )
    ladders = "\n".join(
        f"- {setting}: " + ", ".join(f"{m}: {q['quantization_error']:.4f}" for m, q in ladder.items())
        for setting, ladder in result["ladders"].items()
    )
    return (
        _table(
            [
                "peer",
                "peer's time",
                "peer's QE / TE",
                "fit setting",
                "fit's max_iter to reach it",
                "fit's time",
                "fit's QE / TE",
                "fit is faster by",
            ],
            rows,
        )
        + "\n\nQuantisation error of `KohonenQuantizer.fit` by max_iter (the rungs of the ladder tried):\n\n"
        + ladders
    )


def anatomy_table(result) -> str:
    total = result["total_seconds"]
    rows = [[part, f"{seconds * 1e3:.1f} ms", f"{100 * seconds / total:.0f} %"] for part, seconds in result["parts"].items()]
    rows.append(["whole partial_fit epoch", f"{total * 1e3:.1f} ms", "100 %"])
    return _table(["part of the step (one epoch at the reference shape)", "time", "share"], rows)


def large_map_table(results) -> str:
    rows = []
    for r in results:
        if "refused" in r:
            rows.append([r["kernel"], "refused: " + r["refused"], "", "", "", ""])
            continue
        rows.append(
            [
                r["kernel"],
                f"{r['grid'][0]}×{r['grid'][1]} (K = {r['n_codes']:,}), D = {r['n_features']}",
                f"{r['seconds_per_step'] * 1e3:.0f} ms ({_rate(r['samples_per_s'])} samples/s)",
                "yes" if r["dense_matrix"] else "no",
                f"{r['max_rss_bytes'] / 2**20:,.0f} MiB",
                f"{(r['max_rss_bytes'] - r['max_rss_before_bytes']) / 2**20:,.0f} MiB",
            ]
        )
    return _table(
        ["neighbourhood", "map", "partial_fit step (batch 1024)", "K×K matrix", "peak resident memory (process)", "of which training added"],
        rows,
    )


def layers_table(result) -> str:
    if "skipped" in result:
        return result["skipped"]
    rows = [
        [
            name,
            _rate(r["vectors_per_s"]),
            f"{r['ms_per_step']:.2f} ms",
            "—" if name.startswith("vector-quantize") else _times(r["speedup_vs_vqp"]),
            f"{100 * r['same_codes']:.2f} %",
        ]
        for name, r in result["rows"].items()
    ]
    return (
        f"K = {result['K']}, D = {result['D']}, {result['vectors']:,} vectors a batch (an input needing a gradient), "
        f"train mode, float32, on {result['device']} (torch threads: {result['torch_threads']}); medians of "
        f"{result['rounds']} rounds × {result['steps']} steps, each round from the same codebook; every ratio is "
        "the median over rounds of the per-round time ratio.\n\n"
        + _table(
            ["layer", "vectors/s (median)", "time a step", "faster than VectorQuantize by", "same codes as EMAVQ (first step)"],
            rows,
        )
        + f"\n\nEMAVQ's step takes {result['ema_over_floor']:.2f}× the plain-torch floor's. KohonenVQ's step takes "
        f"{result['kohonen_over_ema']:.3f}× EMAVQ's: "
        + result.get(
            "kohonen_attribution",
            f"P(t) and its spread, timed alone, take {100 * result['kohonen_own_share']:.1f} % of an EMAVQ step",
        )
        + (
            f"; a second EMAVQ, doing identical work, timed {result['twin_over_ema']:.3f}× the first: the "
            "timing noise of such a ratio here."
            if "twin_over_ema" in result
            else "."
        )
        + (
            f"  In process CPU time (what the step computed, without the waits for a core on a shared "
            f"machine): KohonenVQ {result['kohonen_over_ema_cpu']:.3f}× EMAVQ, the twin "
            f"{result['twin_over_ema_cpu']:.3f}×."
            if "kohonen_over_ema_cpu" in result
            else ""
        )
    )


# ----------------------------------------------------------------- targets


def _own(rows, name, value):
    """The same figure with each library's own thread count, when measured."""
    if not rows or not rows.get(name) or rows[name]["error"]:
        return ""
    return f" (own threads: {value(rows[name]):.2f}×)"


def targets(results) -> list:
    """(target, measured, met, what limits it) for each target of the issue."""
    out = []
    streaming = results.get("streaming") or []
    anatomy = results.get("anatomy")
    if streaming:
        spec = streaming[0]["rows"]
        own = (results.get("streaming_own_threads") or [{}])[0].get("rows")
        ours = spec[OURS]["share_of_bound"]
        for peer, factor in REFERENCE_TARGETS.items():
            row = spec.get(peer, {})
            value = row.get("speedup_of_ours")
            limit = ""
            if value and value < factor and row.get("share_of_bound"):
                limit = (
                    f"partial_fit runs at {100 * ours:.0f} % of the GEMM bound and {peer} at "
                    f"{100 * row['share_of_bound']:.1f} %: {factor:g}× would need "
                    f"{100 * factor * row['share_of_bound']:.0f} %"
                )
                own_value = (own or {}).get(peer, {}).get("speedup_of_ours")
                if own_value and own_value >= factor:
                    limit += (
                        f"; with each library's own threads it is met ({own_value:.2f}×: partial_fit's GEMM "
                        "uses every core, the peer's Python overhead does not)"
                    )
            out.append(
                (
                    f"partial_fit ≥ {factor:g}× {peer} (reference shape)",
                    (_times(value) if value else "failed") + _own(own, peer, lambda r: r["speedup_of_ours"]),
                    bool(value and value >= factor),
                    limit,
                )
            )
        ratio = 1 / ours
        limit = ""
        if ratio > BOUND_FACTOR and anatomy:
            parts = anatomy["parts"]
            beyond = {k: v for k, v in parts.items() if k != "distance GEMM"}
            limit = "beyond the GEMM the step spends " + ", ".join(
                f"{k} {100 * v / anatomy['total_seconds']:.0f} %" for k, v in beyond.items()
            )
        out.append(
            (
                f"partial_fit within {BOUND_FACTOR:g}× the distance GEMM alone (reference shape)",
                f"{ratio:.2f}×" + _own(own, OURS, lambda r: 1 / r["share_of_bound"]),
                ratio <= BOUND_FACTOR,
                limit,
            )
        )
    gpu_streaming = results.get("gpu")
    if isinstance(gpu_streaming, list) and gpu_streaming:
        spec = gpu_streaming[0]["rows"]
        if spec[OURS]["samples_per_s"] and spec[BOUND]["samples_per_s"]:
            ratio = spec[BOUND]["samples_per_s"] / spec[OURS]["samples_per_s"]
            out.append((f"GPU: partial_fit within {BOUND_FACTOR:g}× the GPU's distance GEMM alone (reference shape)",
                        f"{ratio:.2f}×", ratio <= BOUND_FACTOR,
                        "" if ratio <= BOUND_FACTOR else "kernel launches and host round trips of a 1024-row step"))  # fmt: skip
    batch = results.get("batch")
    if batch:
        for row in batch["rows"]:
            if row["peer"] != "MiniSom.train_batch" or "error" in row:
                continue
            value = row.get("speedup")
            limit = ""
            if not (value and value >= FIT_SPEEDUP):
                ladder = batch["ladders"][row["setting"]]
                if row["our_max_iter"]:
                    limit = (
                        f"each iteration (or epoch) is a pass over all {batch['n_samples']:,} vectors, and fit "
                        f"needs {row['our_max_iter']} of them to match the error of MiniSom's single online pass"
                    )
                else:
                    # More iterations would not help: the error has levelled off.
                    limit = (
                        f"fit's error levels off at {min(q['quantization_error'] for q in ladder.values()):.4f} (best of max_iter up to "
                        f"{max(int(m) for m in ladder)}), above MiniSom's {row['quantization_error']:.4f}: "
                        "this setting ends on a wider neighbourhood, which keeps more order and costs error"
                    )
            out.append(
                (
                    f"fit ({row['setting']}) reaches MiniSom's train_batch error ≥ {FIT_SPEEDUP:g}× faster",
                    _times(value) if value else "not reached",
                    bool(value and value >= FIT_SPEEDUP),
                    limit,
                )
            )
    for r in results.get("large_map") or []:
        if "max_rss_bytes" in r and r["kernel"] in ("gaussian", "hard"):
            out.append(
                (
                    f"{r['grid'][0]}×{r['grid'][1]} map ('{r['kernel']}') partial_fit under 2 GB",
                    f"{r['max_rss_bytes'] / 1e9:.2f} GB",
                    r["max_rss_bytes"] < LARGE_MAP_BYTES and not r["dense_matrix"],
                    "",
                )
            )
    for target in (results.get("quality") or {}).get("targets", []):
        out.append(tuple(target))
    layers = results.get("layers") or {}
    for target in layers.get("targets", []):
        out.append(tuple(target))
    return out


def targets_table(results) -> str:
    rows = [[t, m, "met" if ok else "**missed**", limit] for t, m, ok, limit in targets(results)]
    return _table(["target", "measured", "", "what limits it"], rows)


def _provenance(results) -> str:
    """Which run wrote the report, or (after ``--update``) which run wrote each section."""
    def one(run):
        commit = f", commit {run['commit']}" if run.get("commit") else ""
        return f"`{run['command']}` ({run['plan']} plan) on {run['date']}{commit}, in {run['wall_seconds'] / 60:.1f} minutes"

    runs = results.get("section_runs")
    if not runs:
        return f"Written by {one(results)}."
    return "Sections written by separate runs of the same plan (`--update`): " + "; ".join(
        f"{section}: {one(run)}" for section, run in runs.items()
    ) + "."


def markdown(results) -> str:
    machine = results["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
    load = results.get("load_average", {})
    sections = [
        "# Speed of sklearn-ksom, side by side with the tools users would pick instead",
        "",
        _provenance(results),
        "Every contender ran in the same process, on the same data, taking turns within each round; "
        f"figures are medians of rounds ({_rounds(results)}); ratios compare medians, except for time to equal "
        "quality and the torch layers: there, the median over rounds of the per-round ratio.",
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, {machine['system']}, Python {machine['python']}",
        f"- BLAS: {machine['blas']}; torch threads: {machine['torch_threads']}",
        f"- Packages: {packages}",
        f"- Load average (1, 5, 15 min) at start {_load(load.get('start'))} and end {_load(load.get('end'))}: the machine is shared, "
        "so absolute rates move from run to run; the ratios are the result.",
        f"- Data: {results['data']}, float32.",
        "",
        "## Targets",
        "",
        targets_table(results),
    ]
    if results.get("quality"):
        sections += ["", "## Time to equal quality (the headline)", "", quality.markdown(results["quality"])]
    if results.get("streaming"):
        sections += [
            "",
            "## Streaming: one epoch of mini-batch training",
            "",
            "`partial_fit` on every batch of the epoch for the estimators (default parameters: Gaussian "
            "neighbourhood, float32), MiniSom's `train_random` (one sample a step), torchsom's `fit` "
            "(one epoch), and the bound: the distance GEMM alone (batch × codebookᵀ), the least any "
            "nearest-code search computes.  \"Share of the GEMM bound\" is the GEMM's time over the contender's.",
            "",
            streaming_tables(results["streaming"]),
        ]
    if results.get("streaming_own_threads"):
        own = results["own_threads"]
        sections += [
            "",
            f"**The reference shape again, each library with its own thread count** (BLAS: {own['blas']}; "
            f"torch threads: {own['torch_threads']}), right after the run above:",
            "",
            streaming_tables(results["streaming_own_threads"]),
        ]
    if results.get("anatomy"):
        sections += ["", "### Where a partial_fit step's time goes", "", anatomy_table(results["anatomy"])]
    if results.get("batch"):
        b = results["batch"]
        sections += [
            "",
            "## Batch training to the same quantisation error",
            "",
            f"{b['n_samples']:,} × {b['n_features']}, map {b['grid'][0]}×{b['grid'][1]}.  Each peer trains with its "
            "defaults (MiniSom: sigma 1, learning rate 0.5, PCA start; torchsom: its defaults with batch 1024); "
            "`KohonenQuantizer.fit` (PCA start) with its defaults (batch algorithm), with its end width set "
            "to MiniSom's (1/3), and as mini-batch EMA epochs with that end width (batch 256, decay 0.95; "
            "max_iter counts epochs), is then timed at the smallest `max_iter` whose quantisation error "
            "(QE: mean distance to the best code, MiniSom's definition) is at most the peer's.  "
            "TE = topographic error.",
            "",
            batch_table(b),
        ]
    if results.get("layers"):
        sections += ["", "## Torch layers against vector-quantize-pytorch", "", layers_table(results["layers"])]
    if results.get("scaling"):
        sections += [
            "",
            "## Scaling",
            "",
            "Median time and peak working memory (NumPy allocations, traced) of one `partial_fit` epoch "
            "(batch 1024) and of `fit` as N, K and D grow (Gaussian blobs for D above 784).",
            "",
            "![scaling](scaling.png)",
        ]
    if results.get("large_map"):
        rows, cols = results["large_grid"]
        sections += [
            "",
            f"## A {rows}×{cols} map (K = {rows * cols:,})",
            "",
            "`partial_fit` (batch 1024, D = 64, random normal data) in a fresh process per neighbourhood; peak "
            "resident memory is the process' whole (interpreter, imports and data included).  The Gaussian and "
            f"hard neighbourhoods factorise over the grid's axes, so P is two {rows}×{rows} factors, never a K×K "
            "matrix; a kernel that does not factorise is refused with an error where its K×K matrix would pass "
            "1 GiB, rather than allocated.",
            "",
            large_map_table(results["large_map"]),
        ]
    if results.get("gpu"):
        sections += [
            "",
            "## GPU mode: streaming with CuPy arrays",
            "",
            "The estimators' `partial_fit` on CuPy arrays (scikit-learn's array-API dispatch), torchsom on CUDA "
            "tensors, and CuPy's distance GEMM; every clock read after the device finished its queued work.",
            "",
            results["gpu"] if isinstance(results["gpu"], str) else streaming_tables(results["gpu"]),
        ]
    return "\n".join(sections) + "\n"
