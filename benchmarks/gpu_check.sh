#!/usr/bin/env bash
# The checks that need a GPU, in one call of under 10 minutes, for a machine
# whose Python already holds PyTorch (CUDA), CuPy, scikit-learn, SciPy, pytest
# and hypothesis (nothing is installed here; extra packages such as
# array-api-compat, array-api-strict and the benchmark's peers come on
# PYTHONPATH, which this script keeps):
#   1. the test suite's CUDA and CuPy cases: tests/test_gpu.py, every `xp`
#      test on CuPy (tests/conftest.py adds it where it runs) and scikit-learn's
#      array-API checks on CuPy / CUDA tensors, in every test file but the
#      benchmark programs' (junit.xml keeps each case's outcome);
#   2. the speed benchmark's GPU mode (`python -m benchmarks.speed --gpu`),
#      on Fashion-MNIST where /usr/share/datasets/fashion-mnist holds it.
# Usage: bash benchmarks/gpu_check.sh LOGDIR   (from the repository root)
#
# On the lent GPU machine of this workplace (nothing can be fetched there):
# download the missing pure-Python packages for its Python 3.12 into .whl/
# (git-ignored) - array-api-compat, array-api-strict, scikit-learn (to match
# CI), minisom (built here with `pip wheel`), torchsom, vector-quantize-pytorch
# and their needs einx, frozendict, loguru, torch-einops-utils, pydantic,
# pydantic-core, annotated-types, typing-inspection, hdbscan - copy
# /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz into .gpudata/
# (excluded in .git/info/exclude), then run with carry [".whl", ".gpudata"]:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
#       --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit
#   mkdir -p /usr/share/datasets/fashion-mnist && cp .gpudata/*.gz /usr/share/datasets/fashion-mnist/
#   TEST_SECONDS=230 BENCH_SECONDS=200 bash benchmarks/gpu_check.sh $OUT/gpu
# Environment: PYTHON (default python3), TEST_SECONDS (240), BENCH_SECONDS (200).
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_check.sh LOGDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
export SCIPY_ARRAY_API=1 PYTHONUNBUFFERED=1 PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
status=0
"$python" - > "$out/environment.txt" 2>&1 <<'PY'
import platform, torch, cupy, sklearn, scipy, numpy
print(platform.platform())
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA")
print("cupy", cupy.__version__, "devices", cupy.cuda.runtime.getDeviceCount())
print("numpy", numpy.__version__, "scikit-learn", sklearn.__version__, "scipy", scipy.__version__)
PY
cat "$out/environment.txt"
if ! "$python" -c "import torch, cupy; assert torch.cuda.is_available() and cupy.cuda.runtime.getDeviceCount() > 0" 2>/dev/null; then
    echo "gpu_check: no CUDA device with PyTorch and CuPy here (see $out/environment.txt); nothing to check." >&2
    exit 3
fi
per_test=()
"$python" -c "import pytest_timeout" 2>/dev/null && per_test=(--timeout=90)
# Only the GPU cases: the CPU ones run in CI.
timeout "${TEST_SECONDS:-240}" "$python" -m pytest tests -m "not benchmarks" -k "cupy or cuda or gpu" \
    --continue-on-collection-errors "${per_test[@]}" -q -p no:cacheprovider --junitxml="$out/junit.xml" \
    -o addopts="--strict-markers -ra --import-mode=importlib" --tb=short > "$out/tests.log" 2>&1 || status=1
tail -25 "$out/tests.log"
timeout "${BENCH_SECONDS:-200}" "$python" -m benchmarks.speed --gpu --out "$out/speed" > "$out/benchmark.log" 2>&1 || status=1
tail -30 "$out/benchmark.log"
exit $status
