"""The far-from-origin benchmark's code runs, so it cannot rot unnoticed.

The figures come from ``python benchmarks/far_from_origin.py``, never here.
"""

import pytest

from benchmarks import far_from_origin

pytestmark = pytest.mark.benchmarks


def test_a_small_run_writes_one_row_per_estimator(tmp_path):
    out = tmp_path / "far.md"
    far_from_origin.main(["--rows", "300", "--out", str(out)])
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "offset" not in line]
    assert [row.split(" | ")[0][2:] for row in rows] == list(far_from_origin.ESTIMATORS)
    assert all(len(row.split(" | ")) == len(far_from_origin.OFFSETS) + 1 for row in rows)
