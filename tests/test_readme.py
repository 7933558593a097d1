"""The README's Python examples run as written."""

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def stream_of_arrays():
    """The stand-in stream the README's partial_fit example reads from."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        yield rng.normal(size=(256, 8))


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(block):
    exec(compile(block, str(README), "exec"), {"stream_of_arrays": stream_of_arrays})
