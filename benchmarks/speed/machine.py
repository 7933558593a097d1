"""What machine and software a run was measured on."""

from __future__ import annotations

import importlib.metadata
import os
import platform


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib():
    try:
        with open("/proc/meminfo") as handle:
            return int(handle.readline().split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def _blas():
    try:
        from threadpoolctl import threadpool_info

        return "; ".join(
            f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, threads: {i.get('num_threads')})"
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        )
    except Exception:  # threadpoolctl missing or failing: not essential
        return "unknown"


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


PACKAGES = (
    "numpy", "scipy", "scikit-learn", "torch", "minisom", "torchsom", "vector-quantize-pytorch", "cupy-cuda12x", "cupy-cuda13x",
)


def _torch_threads():
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:
        return None


def describe() -> dict:
    return {
        "torch_threads": _torch_threads(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(_memory_gib(), 1),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "blas": _blas(),
        "packages": {name: _version(name) for name in PACKAGES},
    }


def load_average():
    try:
        return list(os.getloadavg())
    except OSError:
        return []
