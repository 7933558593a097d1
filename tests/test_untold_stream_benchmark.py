"""The untold-stream benchmark's code runs (a few thousand images), so it cannot rot unnoticed.

The figures come from ``python benchmarks/untold_stream.py``, never here.
"""

import pytest

from benchmarks import untold_stream
from benchmarks.speed.data import FASHION_MNIST

# A benchmark program, tested on a small run: `pytest -m "not benchmarks"` runs the library's tests alone.
pytestmark = pytest.mark.benchmarks


@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="Fashion-MNIST is not installed")
def test_a_small_run_writes_one_row_per_stream(tmp_path):
    out = tmp_path / "untold.md"
    untold_stream.main(["--rows", "3000", "--out", str(out)])
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "update steps" not in line]
    assert [row.split(" | ")[0][2:] for row in rows] == [label for label, _, _ in untold_stream.settings(3)]
    steps = [int(row.split(" | ")[1]) for row in rows]
    assert steps == [3, 3, 15, 51, 3, 15]  # 3 batches of 1024 rows a pass
    # Told its length, one pass ends on a narrower neighbourhood than untold: a lower error.
    told, untold = (float(row.split(" | ")[2]) for row in rows[:2])
    assert told < untold
