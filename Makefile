# Two commands set everything up on a fresh machine:
#   make demo   - simulate tidal on a bundled real-trace excerpt (no network, no cluster)
#   make test   - install everything and run every test
# Each target (re)creates the virtualenv in .venv when pyproject.toml or constraints.txt change.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --constraint constraints.txt
STAMP  := $(VENV)/.installed

.PHONY: demo test crds check-crds tools bench bench-forecast bench-sim clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned to the CPU build (constraints.txt) before anything can pull a CUDA build.
	$(PIP) --quiet torch==2.13.0
	$(PIP) --quiet -e '.[test,bench]'
	touch $(STAMP)

tools: $(STAMP)
	PYTHON=$(BIN)/python bash scripts/install_tools.sh

demo: $(STAMP)
	$(BIN)/tidal validate examples/*.yaml
	$(BIN)/tidal crds --check

test: $(STAMP) tools
	$(BIN)/tidal crds --check
	$(BIN)/python -m pytest

crds: $(STAMP)
	$(BIN)/tidal crds

bench: bench-forecast bench-sim

bench-forecast: $(STAMP)
	$(BIN)/python bench/forecast.py

bench-sim: $(STAMP)
	$(BIN)/python bench/simulator.py

clean:
	rm -rf $(VENV) .tools .pytest_cache .hypothesis reports
