#!/usr/bin/env bash
# The checks that need a GPU, in one call of under 10 minutes, for a machine
# whose Python already holds PyTorch (CUDA), CuPy, scikit-learn, SciPy, pytest
# and hypothesis (nothing is installed):
#   1. the test suite's CUDA and CuPy cases: tests/test_gpu.py, every `xp`
#      test on CuPy (tests/conftest.py adds it where it runs) and scikit-learn's
#      array-API checks on CuPy / CUDA tensors;
#   2. the speed benchmark's GPU mode (`python -m benchmarks.speed --gpu`).
# Usage: bash benchmarks/gpu_check.sh LOGDIR   (from the repository root)
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_check.sh LOGDIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export SCIPY_ARRAY_API=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
status=0
python - > "$out/environment.txt" 2>&1 <<'PY'
import platform, torch, cupy, sklearn, scipy
print(platform.platform())
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA")
print("cupy", cupy.__version__, "devices", cupy.cuda.runtime.getDeviceCount())
print("scikit-learn", sklearn.__version__, "scipy", scipy.__version__)
PY
if ! python -c "import torch, cupy; assert torch.cuda.is_available() and cupy.cuda.runtime.getDeviceCount() > 0" 2>/dev/null; then
    echo "gpu_check: no CUDA device with PyTorch and CuPy here (see $out/environment.txt); nothing to check." >&2
    exit 3
fi
# Only the GPU cases: the CPU ones run in CI.
timeout 300 python -m pytest tests/test_gpu.py tests/test_core.py tests/test_estimators.py tests/test_metrics.py \
    tests/test_topology.py tests/test_sklearn_checks.py -k "cupy or cuda or gpu" -q -p no:cacheprovider \
    -o addopts="--strict-markers -ra --import-mode=importlib" > "$out/tests.log" 2>&1 || status=1
tail -3 "$out/tests.log"
timeout 240 python -m benchmarks.speed --gpu --out "$out/speed" > "$out/benchmark.log" 2>&1 || status=1
tail -5 "$out/benchmark.log"
exit $status
