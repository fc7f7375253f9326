# Two commands set everything up on a fresh machine:
#   make demo   - simulate tidal on a bundled real-trace excerpt (no network, no cluster)
#   make test   - install everything and run every test
# Each target (re)creates the virtualenv in .venv when pyproject.toml or constraints.txt change.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --constraint constraints.txt
STAMP  := $(VENV)/.installed

# e2e: the operator against the real cluster KUBECONFIG names (kind, k3d...); see docs/operator.md.
.PHONY: demo test test-repeat e2e crds check-crds tools bench bench-forecast bench-sim bench-functions bench-operator bench-decision bench-policies bench-fairshare bench-activator bench-kv-ttl bench-keepalive-pareto bench-placement clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned to the CPU build (constraints.txt) before anything can pull a CUDA build.
	$(PIP) --quiet torch==2.13.0
	$(PIP) --quiet -e '.[sim,train,test,bench]'
	touch $(STAMP)

tools: $(STAMP)
	PYTHON=$(BIN)/python bash scripts/install_tools.sh

# The main job on the embedded default: run the example ModelDeployment through tidal's decision core
# (the operator's entry point) on the bundled 12-minute excerpt of the Azure LLM conversation trace.
demo: $(STAMP)
	$(BIN)/tidal simulate -f examples/modeldeployment-unified.yaml -f examples/accelerator-classes.yaml \
		--trace demo --report reports/demo-report.html

test: $(STAMP) tools
	$(BIN)/tidal crds --check
	$(BIN)/python -m pytest

# Flakiness check: tests/operator and tests/kubeapi three times under nice with two CPUs kept busy
# (scripts/test_repeat.sh starts the busy loops and always stops them).
test-repeat: $(STAMP) tools
	PYTHON=$(BIN)/python bash scripts/test_repeat.sh

e2e: $(STAMP)
	$(BIN)/python -m pytest -m e2e tests/e2e

crds: $(STAMP)
	$(BIN)/tidal crds

bench: bench-forecast bench-sim bench-functions bench-operator bench-decision bench-policies bench-fairshare bench-activator bench-kv-ttl bench-placement

bench-forecast: $(STAMP)
	$(BIN)/python bench/forecast.py

bench-sim: $(STAMP)
	$(BIN)/python bench/simulator.py

bench-activator: $(STAMP)
	$(BIN)/python bench/activator.py

bench-functions: $(STAMP)
	$(BIN)/python bench/functions.py

bench-operator: $(STAMP)
	$(BIN)/python bench/operator_fleet.py

bench-decision: $(STAMP)
	$(BIN)/python bench/decision.py

# KV-cache TTL: tidal's ttl: auto against LRU, fixed TTLs and the oracle (docs/bench.md, "KV-cache TTL").
bench-kv-ttl: $(STAMP)
	$(BIN)/python bench/kv_ttl.py

# Keep-alive Pareto fronts, tidal's auto against the hybrid histogram policy (docs/bench.md); ~30 min.
bench-keepalive-pareto: $(STAMP)
	$(BIN)/python bench/keepalive_pareto.py --out reports/keepalive-pareto

# Every policy against static-peak and the clairvoyant oracle on the real traces (docs/bench.md);
# tables, CSVs and bench.html land in reports/bench. `tidal bench` with no --suites also runs the
# KV-cache TTL, placement, fair-share and keep-alive suites (the bench-* targets below run them alone).
bench-policies: $(STAMP)
	$(BIN)/tidal bench --suites policies --out reports/bench

# Fair share: weighted tenants of ServeGen m-mid clients on a pool at 60 % of their peak (docs/bench.md).
bench-fairshare: $(STAMP)
	$(BIN)/python bench/fairshare.py

# Placement across accelerator classes: a mixed cluster against H100-only, cheapest-only and the
# hourly-cost order on the Azure conv and code traces (docs/bench.md); ~1 minute.
bench-placement: $(STAMP)
	$(BIN)/python bench/placement.py

clean:
	rm -rf $(VENV) .tools .pytest_cache .hypothesis reports
