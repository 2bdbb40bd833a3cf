# One entry point for people and CI. DAGSTER_HOME is always explicit, never a throwaway folder.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/dagster_home
STAMP := $(VENV)/.installed

.PHONY: venv test lint demo ui reports bench bench-store bench-pipeline bench-distributed workers clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found; set PY=/path/to/python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check engine pipeline tests benchmarks
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check engine pipeline tests benchmarks

demo: $(STAMP)
	$(BIN)/python -m pipeline.demo

LINEAGE_URL := http://127.0.0.1:3000/asset-groups?expanded=global%40global%3Amarket_data%2Cglobal%40global%3Aresearch%2Cglobal%40global%3Abacktests%2Cglobal%40global%3Aregistry%2Cglobal%40global%3Asweeps%2Cglobal%40global%3Apaper

ui: $(STAMP)
	@echo "Dagster UI: http://127.0.0.1:3000  (lineage with every area open: $(LINEAGE_URL))"
	@echo "Reports (HTML reports and the plots the UI shows): http://127.0.0.1:3001"
	@trap 'kill 0' EXIT INT TERM; \
	$(BIN)/python -m pipeline.reports serve --port 3001 & \
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

reports: $(STAMP)
	$(BIN)/python -m pipeline.reports serve --port 3001

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_walk_forward.py

bench-store: $(STAMP)
	$(BIN)/python benchmarks/bench_store.py

bench-pipeline: $(STAMP)
	$(BIN)/python benchmarks/bench_pipeline.py

# needs PostgreSQL and Redis on this machine (it starts its own code server, daemon and workers)
bench-distributed: $(STAMP)
	$(BIN)/python benchmarks/bench_distributed.py

# Production profile: N Celery worker processes for one queue (ingest or research); see docs/deploy.md.
# Needs CRYPTO4H_CELERY_BROKER_URL, CRYPTO4H_DB_URL (PostgreSQL) and the instance variables (DAGSTER_PG_*).
QUEUE ?= research
N ?= 1
workers: $(STAMP)
	$(BIN)/python -m pipeline.scaleout.workers --queue $(QUEUE) --concurrency $(N)

clean:
	rm -rf $(VENV) .pytest_cache
