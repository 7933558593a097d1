"""Copy the paper sweep's raw logs into the repository, and read them back.

``collect`` copies, from each sweep folder (``paper_sweep.py --out``), every
run's ``config.json`` and ``metrics.jsonl`` (gzipped, with mtime 0 so the
same log gives the same bytes), a failed run's ``failed.txt``, each data
folder's ``timing.json`` and the folder's ``sweep.json``, keeping the folder
structure under ``LOGS/<name of the sweep folder>/``.  Checkpoints are not
copied.  ``paper_report.py`` builds RESULTS.md from these copies.

    PYTHONPATH=. python benchmarks/paper/paper_logs.py runs/paper runs/paper-long \\
        --logs benchmarks/paper/logs
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_sweep import FAILED_FILE, SWEEP_FILE, TIMING_FILE  # noqa: E402

METRICS, CONFIG = "metrics.jsonl", "config.json"
METRICS_GZ = METRICS + ".gz"
# Every name collect writes; a refreshed copy drops only files of these names.
COLLECTED = (METRICS_GZ, CONFIG, FAILED_FILE, TIMING_FILE, SWEEP_FILE)


def run_folders(out) -> list[Path]:
    """Run folders ``out/<data>/<cell>/seed<k>/`` (those with a config.json)."""
    return sorted(p.parent for p in Path(out).glob(f"*/*/seed*/{CONFIG}"))


def read_metrics(run_dir) -> list[dict]:
    """The metrics lines of a run folder, from ``metrics.jsonl`` or its gzipped copy ([] if neither)."""
    run_dir = Path(run_dir)
    if (run_dir / METRICS).is_file():
        text = (run_dir / METRICS).read_text()
    elif (run_dir / METRICS_GZ).is_file():
        text = gzip.decompress((run_dir / METRICS_GZ).read_bytes()).decode()
    else:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip: no file name, mtime 0, level 9."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def collect(sources, logs) -> list[Path]:
    """Copy the logs of each sweep folder in ``sources`` to ``logs/<its name>/``; returns the files written.

    Raises ValueError when two sources share a name or a source holds no run.
    """
    sources = [Path(s) for s in sources]
    names = [s.resolve().name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"sources must have distinct folder names (they name the copies); got {names}.")
    plans = []  # (target, {path: bytes}) of every source, all read before anything is written
    for source, name in zip(sources, names):
        runs = run_folders(source)
        if not runs:
            raise ValueError(f"{source} holds no run folder (<data>/<cell>/seed<k>/config.json); "
                             "pass the sweep's --out folder.")
        target = Path(logs) / name
        copies = {}
        if (source / SWEEP_FILE).is_file():
            copies[target / SWEEP_FILE] = (source / SWEEP_FILE).read_bytes()
        for timing in sorted(source.glob(f"*/{TIMING_FILE}")):
            copies[target / timing.relative_to(source)] = timing.read_bytes()
        for run in runs:
            relative = target / run.relative_to(source)
            copies[relative / CONFIG] = (run / CONFIG).read_bytes()
            if (run / METRICS).is_file():
                copies[relative / METRICS_GZ] = gzip_bytes((run / METRICS).read_bytes())
            if (run / FAILED_FILE).is_file():
                copies[relative / FAILED_FILE] = (run / FAILED_FILE).read_bytes()
        plans.append((target, copies))
    written = []
    for target, copies in plans:
        if target.is_dir():  # a refreshed copy: drop what the source no longer has
            for stale in [p for p in target.rglob("*") if p.is_file() and p.name in COLLECTED]:
                if stale not in copies:
                    stale.unlink()
        for path, data in copies.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written.append(path)
    return written


def unfinished(out) -> list[str]:
    """Run folders of the sweep folder ``out`` (or its copy) whose log stops before the configured steps, or failed."""
    found = []
    for run in run_folders(out):
        steps = json.loads((run / CONFIG).read_text())["steps"]
        lines = read_metrics(run)
        if (run / FAILED_FILE).is_file() or not lines or lines[-1]["step"] < steps:
            found.append(f"{run} (last step {lines[-1]['step'] if lines else 0} of {steps})")
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", type=Path, help="sweep folders (paper_sweep.py --out)")
    parser.add_argument("--logs", type=Path, default=Path("benchmarks/paper/logs"), help="where the copies go")
    args = parser.parse_args(argv)
    try:
        written = collect(args.sources, args.logs)
    except ValueError as error:
        parser.error(str(error))
    size = sum(p.stat().st_size for p in written)
    print(f"{len(written)} files, {size / 2**20:.2f} MiB, under {args.logs}")
    for source in args.sources:
        for run in unfinished(args.logs / source.resolve().name):
            print(f"unfinished: {run}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
