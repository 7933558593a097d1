"""The precision-cost benchmark's code runs, so it cannot rot unnoticed.

The figures come from ``python benchmarks/precision_cost.py``, never here.
"""

import numpy as np
import pytest

from benchmarks import precision_cost
from sklearn_ksom import core

pytestmark = pytest.mark.benchmarks


def test_a_small_run_writes_one_row_per_shape_and_restores_the_core(tmp_path, monkeypatch):
    monkeypatch.setattr(precision_cost, "SHAPES", (((4, 4), 3), ((8, 8), 2)))
    monkeypatch.setattr(precision_cost, "data", lambda n_features, n_samples: np.random.default_rng(0).normal(
        size=(3000, n_features)).astype(np.float32))
    out = tmp_path / "cost.md"
    precision_cost.main(["--rounds", "1", "--steps", "2", "--out", str(out)])
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "map" not in line]
    assert [row.split(" | ")[0] for row in rows] == ["| 4x4", "| 8x8"]
    assert core._doubtful.__name__ == "_doubtful" and core._imprecise.__name__ == "_imprecise"
