"""Small helpers between the array-API core and concrete libraries.

The core never imports NumPy functions for foreign arrays: it asks
:func:`namespace` for the inputs' namespace and works in it.  The only
library-specific code is the per-backend fast paths of the two scatter-adds
behind :func:`sklearn_ksom.core.code_statistics` (:func:`count_labels` and
:func:`scatter_add_rows`), where a one-hot matrix product would cost as much
as the distance GEMM itself.
"""

from __future__ import annotations

import array_api_compat
import numpy as np
from array_api_compat import device as device_of  # noqa: F401  (re-exported)
from array_api_compat import is_dask_array  # noqa: F401  (re-exported; never imports dask)


def namespace(*arrays):
    """The array-API namespace shared by ``arrays`` (None entries ignored)."""
    present = [a for a in arrays if a is not None]
    # The common case answered without the general lookup, which costs
    # microseconds per call and is called a dozen times per training step.
    if present and all(type(a) is np.ndarray for a in present):
        return _NUMPY
    return array_api_compat.array_namespace(*present)


_NUMPY = array_api_compat.array_namespace(np.zeros(0))


def move_to(xp, array, *, dtype=None, device=None):
    """Host (NumPy) data -> an array of namespace ``xp`` on ``device``."""
    out = xp.asarray(array, device=device) if device is not None else xp.asarray(array)
    return out if dtype is None else xp.astype(out, dtype)


def to_numpy(array):
    """Any array -> NumPy, for the few host-side uses (plots, pickling)."""
    if array_api_compat.is_torch_array(array):
        return array.detach().cpu().numpy()
    if array_api_compat.is_cupy_array(array):
        return array.get()
    try:
        return np.asarray(array)
    except RuntimeError:
        # An array on another device (array_api_strict's 'device1') refuses
        # NumPy's conversion; DLPack copies it to the host.
        return np.from_dlpack(array)


def on_accelerator(array) -> bool:
    """Whether ``array`` lives in a GPU's (or other accelerator's) memory."""
    if type(array) is np.ndarray:
        return False
    if array_api_compat.is_cupy_array(array):
        return True
    if array_api_compat.is_torch_array(array):
        return array.device.type != "cpu"
    return "cpu" not in str(device_of(array)).lower()


def is_numpy(xp) -> bool:
    return array_api_compat.is_numpy_namespace(xp)


def count_labels(labels, n_codes, weights=None, *, dtype=None, xp=None):
    """Histogram of ``labels`` over 0..n_codes-1 (weighted), shape (K,)."""
    xp = namespace(labels) if xp is None else xp
    if dtype is None:
        dtype = weights.dtype if weights is not None else xp.float64
    if is_numpy(xp):
        return np.bincount(labels, weights=weights, minlength=n_codes).astype(dtype)
    if array_api_compat.is_torch_namespace(xp) or array_api_compat.is_cupy_namespace(xp):
        counts = xp.bincount(labels, weights=weights, minlength=n_codes)
        return xp.astype(counts, dtype)
    codes = xp.reshape(xp.arange(n_codes, device=device_of(labels)), (1, -1))
    total = xp.zeros((n_codes,), dtype=dtype, device=device_of(labels))
    block = max(1, 2**22 // max(n_codes, 1))
    for start in range(0, labels.shape[0], block):
        stop = min(start + block, labels.shape[0])
        hits = xp.astype(xp.reshape(labels[start:stop], (-1, 1)) == codes, dtype)
        if weights is not None:
            hits = hits * xp.reshape(weights[start:stop], (-1, 1))
        total = total + xp.sum(hits, axis=0)
    return total


def scatter_add_rows(X, units, n_codes, weights=None, *, xp=None):
    """Sum of the (weighted) rows of ``X`` falling in each of ``n_codes``
    bins, shape (K, D): E^T (w Z), the fastest way each backend has.

    ``weights=None`` means all ones, without forming the N x D ``w * X``.
    """
    xp = namespace(X, units) if xp is None else xp
    if is_numpy(xp):
        # A sparse K x N indicator times X is a C loop over N rows: ~5x
        # faster than np.add.at or a one-hot GEMM for K in the hundreds.
        from scipy import sparse

        n_rows = units.shape[0]
        # 32-bit indices where they fit: SciPy takes them as they are instead
        # of checking and narrowing 64-bit ones (half its set-up time).
        index = np.int32 if max(n_rows + 1, n_codes) <= np.iinfo(np.int32).max else np.intp
        data = np.ones(n_rows, dtype=X.dtype) if weights is None else weights
        indicator = sparse.csc_matrix(
            (data, units.astype(index, copy=False), np.arange(n_rows + 1, dtype=index)),
            shape=(n_codes, n_rows),
        )
        return np.asarray(indicator @ X, dtype=X.dtype)
    rows = X if weights is None else X * xp.reshape(weights, (-1, 1))
    if array_api_compat.is_torch_namespace(xp) or array_api_compat.is_cupy_namespace(xp):
        # Scatter-add the rows into K bins on the device.
        sums = xp.zeros((n_codes, X.shape[1]), dtype=X.dtype, device=device_of(X))
        if array_api_compat.is_torch_namespace(xp):
            sums.index_add_(0, units, rows)
        else:
            import cupyx

            cupyx.scatter_add(sums, units, rows)
        return sums
    # Any other namespace: the one-hot product E^T (w * Z).
    onehot = xp.astype(
        xp.reshape(units, (-1, 1)) == xp.reshape(xp.arange(n_codes, device=device_of(X)), (1, -1)),
        X.dtype,
    )
    return xp.matmul(xp.matrix_transpose(onehot), rows)
