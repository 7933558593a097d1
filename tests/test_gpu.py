"""CUDA and CuPy: the same results on a GPU as on the host.

Skipped where PyTorch sees no CUDA device or CuPy is missing; run on a GPU
machine by ``benchmarks/gpu_check.sh`` (together with every ``xp`` test,
which then also runs on CuPy: see ``tests/conftest.py``).
"""

import numpy as np
import pytest
import sklearn
import torch

from sklearn_ksom import EMAQuantizer, KohonenQuantizer
from torch_adapter import EMAVQ, KohonenVQ

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="PyTorch sees no CUDA device")


def _cupy():
    try:
        import cupy

        return cupy if cupy.cuda.runtime.getDeviceCount() > 0 else None
    except Exception:  # not installed, or no driver
        return None


cupy = pytest.mark.skipif(_cupy() is None, reason="CuPy with a CUDA device is not available")


@cuda
@pytest.mark.parametrize("layer_class", [KohonenVQ, EMAVQ])
def test_a_layer_trains_on_cuda_as_on_the_cpu(layer_class):
    torch.manual_seed(0)
    init = torch.randn(16, 8)
    batches = [torch.randn(64, 8) for _ in range(5)]
    options = dict(dim=8, init=init, **({"grid_shape": (4, 4)} if layer_class is KohonenVQ else {"n_clusters": 16}))
    host, device = layer_class(**options), layer_class(**options).cuda()
    for x in batches:
        out_host, out_device = host(x), device(x.cuda())
        assert torch.equal(out_host.codes, out_device.codes.cpu())
    for name, value in host.state_dict().items():
        torch.testing.assert_close(device.state_dict()[name].cpu(), value, rtol=1e-5, atol=1e-5)
    estimator = device.to_estimator()
    np.testing.assert_allclose(estimator.cluster_centers_, host.codebook.numpy(), rtol=1e-5, atol=1e-5)


@cupy
@pytest.mark.parametrize("make", [lambda: KohonenQuantizer((4, 4), random_state=0),
                                  lambda: KohonenQuantizer((4, 4), algorithm="ema", random_state=0),
                                  lambda: EMAQuantizer(16, random_state=0)])
def test_an_estimator_fits_cupy_arrays_as_numpy_ones(make):
    cp = _cupy()
    X = np.random.default_rng(0).normal(size=(2000, 6)).astype(np.float32)
    host = make().fit(X)
    with sklearn.config_context(array_api_dispatch=True):
        device = make().fit(cp.asarray(X))
        labels = device.predict(cp.asarray(X))
        streamed = make().partial_fit(cp.asarray(X[:500])).partial_fit(cp.asarray(X[500:1000]))
    assert isinstance(device.cluster_centers_, cp.ndarray) and isinstance(labels, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(device.cluster_centers_), host.cluster_centers_, rtol=1e-3, atol=1e-3)
    assert np.mean(cp.asnumpy(labels) == host.predict(X)) > 0.99
    reference = make().partial_fit(X[:500]).partial_fit(X[500:1000])
    np.testing.assert_allclose(cp.asnumpy(streamed.cluster_centers_), reference.cluster_centers_, rtol=1e-3, atol=1e-3)
