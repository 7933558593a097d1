"""Timing and memory: medians of interleaved repetitions, peak allocations.

The machine is shared, so every figure is a median over several rounds, and
the contenders of one comparison take turns within each round (a burst of
load from elsewhere then hits all of them, not one): their ratios are what
the benchmark reports.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Contender:
    """One way of doing the work being compared.

    ``prepare()`` builds the model and warms it up, untimed, and returns
    ``run``, the timed call; ``samples`` is how many vectors one ``run``
    processes (a tool too slow for a whole epoch runs on a prefix, and its
    rate is still samples per second).
    """

    name: str
    prepare: Callable[[], Callable[[], object]]
    samples: int
    note: str = ""


@dataclass
class Timing:
    name: str
    samples: int
    seconds: list = field(default_factory=list)
    note: str = ""
    error: str = ""
    result: object = None  # what the last run returned (e.g. a trained codebook)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    @property
    def rate(self) -> float:
        """Median throughput, samples per second."""
        return self.samples / self.median if self.seconds else float("nan")


def time_side_by_side(contenders, repeats: int, sync: Callable[[], None] | None = None) -> dict:
    """Run every contender ``repeats`` times, taking turns; name -> Timing.

    ``sync`` waits for queued device work (CUDA) before a clock is read.  A
    contender that fails to prepare or run is reported with its error
    rather than stopping the comparison.
    """
    sync = sync or (lambda: None)
    runs, timings = {}, {}
    for contender in contenders:
        timings[contender.name] = Timing(contender.name, contender.samples, note=contender.note)
        try:
            runs[contender.name] = contender.prepare()
            sync()
        except Exception as error:  # a peer that is missing or breaks
            timings[contender.name].error = f"{type(error).__name__}: {error}"
    names = list(runs)
    for round_index in range(repeats):
        # Rotate the order each round so no contender always runs first.
        shift = round_index % max(len(names), 1)
        for name in names[shift:] + names[:shift]:
            try:
                sync()
                start = time.perf_counter()
                result = runs[name]()
                sync()
                timings[name].seconds.append(time.perf_counter() - start)
                timings[name].result = result
            except Exception as error:
                timings[name].error = f"{type(error).__name__}: {error}"
                names.remove(name)
    return timings


def traced_peak(function: Callable[[], object]) -> float:
    """Peak bytes allocated through NumPy / Python while ``function`` runs.

    NumPy reports its buffers to ``tracemalloc``, so this is the working
    memory of a NumPy computation over what existed before the call.
    """
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        function()
        return float(tracemalloc.get_traced_memory()[1] - base)
    finally:
        tracemalloc.stop()


def run_child(module: str, *arguments: str, timeout: float = 600) -> dict:
    """Run ``python -m module arguments`` in a fresh process; its JSON answer.

    A child process has its own peak resident memory (``ru_maxrss``), the
    honest measure of what a computation needs, imports included.
    """
    completed = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(arguments)} failed:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])
