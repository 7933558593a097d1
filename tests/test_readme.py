"""The README's Python examples run as written."""

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TOOLKIT = ROOT / "docs" / "toolkit.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
# docs/toolkit.md's examples run one after the other, as a reader would.
TOOLKIT_BLOCKS = re.findall(r"```python\n(.*?)```", TOOLKIT.read_text(), flags=re.S)


def stream_of_arrays():
    """The stand-in stream the README's partial_fit example reads from."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        yield rng.normal(size=(256, 8))


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(block):
    exec(compile(block, str(README), "exec"), {"stream_of_arrays": stream_of_arrays})
    close_figures()


def close_figures():
    """Close what an example drew (the examples show figures, never close them)."""
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def test_toolkit_examples_run_in_order():
    import matplotlib

    matplotlib.use("Agg")
    namespace = {}
    for block in TOOLKIT_BLOCKS:
        exec(compile(block, str(TOOLKIT), "exec"), namespace)
    close_figures()
