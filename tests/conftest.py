"""Shared fixtures: the array namespaces every generic test runs on.

SCIPY_ARRAY_API must be set before SciPy is first imported, or
scikit-learn's array-API checks are silently skipped.
"""

import os

os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

settings.register_profile("dev", max_examples=40, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def _namespaces():
    import array_api_strict
    import torch
    from array_api_compat import array_namespace

    namespaces = {
        "numpy": np,
        "array_api_strict": array_api_strict,
        "torch": array_namespace(torch.zeros(1)),
    }
    try:  # on a GPU machine (benchmarks/gpu_check.sh) every xp test runs on CuPy too
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            namespaces["cupy"] = array_namespace(cupy.zeros(1))
    except Exception:  # not installed, or no driver
        pass
    return namespaces


NAMESPACES = _namespaces()


@pytest.fixture(params=list(NAMESPACES))
def xp(request):
    """An array namespace: NumPy, array_api_strict, torch (CPU), and CuPy where it runs."""
    return NAMESPACES[request.param]


def to_xp(xp, array, dtype=None):
    """NumPy data -> ``xp`` array (float64 unless ``dtype`` says otherwise)."""
    array = np.asarray(array)
    out = xp.asarray(array)
    return out if dtype is None else xp.astype(out, dtype)


# ------------------------------------------------ state before and after a call


def fitted_state(estimator):
    """Every attribute, arrays copied, for before/after comparisons."""
    state = {}
    for key, value in vars(estimator).items():
        if isinstance(value, np.ndarray):
            state[key] = value.copy()
        elif isinstance(value, np.random.RandomState):
            state[key] = value.get_state()[1].copy()
        else:
            state[key] = value
    return state


def assert_same_state(before, after):
    assert before.keys() == after.keys()
    for key in before:
        if isinstance(before[key], np.ndarray):
            np.testing.assert_array_equal(before[key], after[key], err_msg=key)
        else:
            assert before[key] is after[key] or before[key] == after[key], key
