# cad2real — the two commands a user needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONHASHSEED := 0
export PYTHONDONTWRITEBYTECODE := 1
# dvc.yaml's commands run `python`: the project's venv first on PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: run compare smoke test setup system lint gallery bench clean-data

run: setup ## set everything up, then run the main pipeline on the embedded default
	$(PY) -m flows.pipeline

compare: setup ## every method of train.methods (the DVC matrix), then RESULTS.md
	$(PY) -m flows.pipeline --all
	$(PY) -m flows.cli results

smoke: setup ## the main job on the small profile (profiles/small.yaml) in .smoke/: a quick end-to-end check
	$(PY) -m flows.smoke

test: setup ## set everything up, then run the test suite
	$(PY) -m pytest -q -ra

setup: system $(STAMP) .dvc/config

system:
	@bash scripts/setup_system.sh

# The venv is rebuilt only when the pins change.
$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip==25.3"
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -r requirements.lock
	# pyrender pins PyOpenGL 3.1.0, which lacks OSMesaCreateContextAttribs: 3.1.10 after it.
	$(PY) -m pip install -q --no-deps "PyOpenGL==3.1.10"
	$(PY) -m pip install -q --no-deps -e ".[dev]"
	touch $(STAMP)

# DVC needs a git repository: a clone has one; `dvc init` only if .dvc is missing.
.dvc/config:
	@git rev-parse --git-dir >/dev/null 2>&1 || git init -q
	$(VENV)/bin/dvc init -q
	$(VENV)/bin/dvc config core.analytics false

lint: setup ## the import-layer contract
	$(VENV)/bin/lint-imports

gallery: setup ## docs/gallery.jpg from the current renders and composites
	$(PY) -m flows.cli gallery

bench: setup ## render and composite throughput (see BENCHMARKS.md)
	$(PY) benchmarks/render_throughput.py
	$(PY) benchmarks/composite_throughput.py

clean-data: ## remove pipeline outputs (DVC cache stays)
	rm -rf data
