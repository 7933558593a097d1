"""The GPU mode: the same comparisons with CuPy arrays and CUDA tensors.

The estimators take CuPy arrays through scikit-learn's array-API dispatch;
the peers that run on a GPU (torchsom, and vector-quantize-pytorch in the
layer comparison) get CUDA tensors; the bound is CuPy's GEMM.  Every clock
is read after the device has finished its queued work.  On a machine
without a CUDA device the mode says so and runs nothing.
"""

from __future__ import annotations

from . import contenders as c
from .comparisons import _shape_result, _log_rates
from .measure import time_side_by_side


def availability() -> dict:
    """What of the GPU mode can run here: {'cupy': reason or None, 'torch': ...}.

    A value of None means available; otherwise it says why not.
    """
    missing = {}
    try:
        import cupy

        missing["cupy"] = None if cupy.cuda.runtime.getDeviceCount() > 0 else "CuPy finds no CUDA device"
    except Exception as error:  # not installed, or no driver
        missing["cupy"] = f"CuPy unavailable ({type(error).__name__}: {error})"
    try:
        import torch

        missing["torch"] = None if torch.cuda.is_available() else "torch.cuda.is_available() is False"
    except ImportError as error:
        missing["torch"] = f"PyTorch unavailable ({error})"
    return missing


def skip_message(missing: dict) -> str | None:
    """The line printed when nothing of the GPU mode can run, else None."""
    if all(reason is not None for reason in missing.values()):
        return "GPU mode skipped: no CUDA device here (" + "; ".join(missing.values()) + ")."
    return None


def synchronise():
    """Wait for all queued CUDA work of CuPy and PyTorch."""
    try:
        import cupy

        cupy.cuda.Device().synchronize()
    except Exception:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
    except ImportError:
        pass


def streaming(data, plan, *, xp, torch_device=None, log=print) -> list:
    """Streaming epochs with the estimators' data in ``xp`` arrays.

    ``xp`` is CuPy on a GPU (NumPy runs the same path on a CPU, as the
    tests do); torchsom joins on ``torch_device`` when one is given.  The
    estimators take the arrays through scikit-learn's array-API dispatch.
    """
    import sklearn

    results = []
    for grid_shape, n_features in plan.streaming_shapes:
        host = data.vectors(plan.n_samples, n_features)
        X = xp.asarray(host)
        batch = plan.batch_size
        log(f"{xp.__name__} streaming: {X.shape[0]} x {n_features}, map {grid_shape[0]}x{grid_shape[1]}, batch {batch}")
        contenders = [
            c.kohonen_partial_fit(X, grid_shape, batch),
            c.ema_partial_fit(X, grid_shape, batch),
            c.distance_gemm(X, grid_shape, batch, xp=xp),
        ]
        if torch_device is not None:
            contenders.insert(2, c.torchsom_fit(host, grid_shape, batch, device=torch_device))
        with sklearn.config_context(array_api_dispatch=True):
            timings = time_side_by_side(contenders, plan.repeats, sync=synchronise)
        results.append(_shape_result(grid_shape, n_features, X.shape[0], batch, timings))
        _log_rates(results[-1], log)
    return results
