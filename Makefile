# The two commands: `make run` (pipeline on the bundled sample) and `make test`. `make help` lists
# every target: the `##` line above a target is its help (tests/test_docs.py checks each has one).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LUIGI := $(VENV)/bin/luigi
DATABASE ?= data/retail.db
PORT ?= 8001
# Empty: luigi.cfg's [retail] work_dir / data_dir.
WORK_DIR ?=
DATA_DIR ?=

.DEFAULT_GOAL := help
.PHONY: help run test install sample serve scheduler scheduler-stop clean bench

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

## List the targets, one line each.
help:
	@echo "make TARGET [DATABASE=data/retail.db] [PORT=8001] [WORK_DIR=...] [DATA_DIR=...]"
	@awk '/^## / { doc = substr($$0, 4); next } \
	     /^[a-z][a-z-]*:/ && doc != "" { split($$0, t, ":"); printf "  %-15s %s\n", t[1], doc } \
	     { doc = "" }' $(MAKEFILE_LIST)

## Create .venv and install the pipeline's requirements into it (every target that needs it does this).
install: $(VENV)/.installed

## Run the whole pipeline on the bundled sample into DATABASE, check the result, say where it is.
run: install
	$(LUIGI) --module tasks RunAll --local-scheduler --retail-database $(DATABASE) \
	  $(if $(WORK_DIR),--retail-work-dir $(WORK_DIR)) $(if $(DATA_DIR),--retail-data-dir $(DATA_DIR))
	$(PY) verify_results.py --database $(DATABASE)
	@echo
	@echo "Published: $(abspath $(DATABASE))"
	@echo "Browse it: make serve$(if $(filter-out data/retail.db,$(DATABASE)), DATABASE=$(DATABASE))   (then http://127.0.0.1:$(PORT)/ and http://127.0.0.1:$(PORT)/-/dashboards/retail)"

## Run the whole test suite (what CI runs: .ci/run).
test: install
	$(PY) -m pytest

## Browse DATABASE in Datasette on 127.0.0.1:PORT (read-only; metadata, queries, dashboards of datasette/).
serve: install
	$(PY) scripts/serve.py --port $(PORT) --database $(DATABASE)

## Start Luigi's central scheduler on 127.0.0.1:8082 (visualiser at http://127.0.0.1:8082/); state in var/luigid/.
scheduler: install
	scripts/scheduler.sh start

## Stop the central scheduler started by `make scheduler`.
scheduler-stop:
	scripts/scheduler.sh stop

## Regenerate the bundled sample in data/sample (deterministic).
sample: install
	$(PY) -m retail_pipeline.generate data/sample --scale 0.0025 --seed 42

## Time the pipeline on the synthetic dataset, full scale or SCALE times it (results in data/bench/results[-scale-S].md).
bench: install
	$(PY) scripts/benchmark.py $(if $(SCALE),--scale $(SCALE)) $(BENCH_ARGS)

## Remove the intermediate files (data/work) and the published database.
clean:
	rm -rf data/work $(DATABASE)
