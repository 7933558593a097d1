# Set-up, tests and the demo from nothing: `make test`, `make demo`;
# the speed comparison against the peers: `make bench` (`make bench-quick`).
# The virtual environment is built on first use and rebuilt when
# pyproject.toml or this file changes.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# PyTorch's version. Which build pip takes depends on where it looks: a
# local CPU wheel where one is at hand, the CUDA build (about 2 GB) from
# plain PyPI. For the CPU build from PyTorch's index:
#   make test TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"
# Another version: `make test TORCH=torch`.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.installed

export SCIPY_ARRAY_API := 1

.PHONY: install test test-fast demo demo-estimators bench bench-quick clean

install: $(STAMP)

# The peers of the speed benchmark (MiniSom, torchsom, vector-quantize-pytorch)
# come from the `bench` extra, installed here (the tests run the benchmark's
# code paths against them) and never by the library itself.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_INDEX) "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test,torch,vqvae,dask,bench]"
	touch $(STAMP)

test: install
	$(PY) -m pytest tests sklearn_ksom torch_adapter

test-fast: install
	$(PY) -m pytest tests sklearn_ksom torch_adapter -m "not slow and not benchmarks" -x

# Trains a KSOM and an EMA-VQ VQ-VAE on the bundled photo patches (a few
# minutes on 2 cores, one torch thread) and writes runs/demo/report.md; the
# README's demo figures come from it.
demo: install
	$(PY) -m torch_adapter demo --out runs/demo

# The estimators alone on scikit-learn's digits (seconds).
demo-estimators: install
	$(PY) -m sklearn_ksom

# One thread per library by default: on a machine shared with other jobs a
# thread pool waits for a core a neighbour holds (`make bench BENCH_ARGS=`
# leaves each library its own choice).
BENCH_ARGS ?= --threads 1

bench: install
	$(PY) -m benchmarks.speed $(BENCH_ARGS)

bench-quick: install
	$(PY) -m benchmarks.speed --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
