# The two commands: `make run` (pipeline on the bundled sample) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LUIGI := $(VENV)/bin/luigi
DATABASE ?= data/retail.db
PORT ?= 8001

.PHONY: run test install sample serve scheduler scheduler-stop clean bench

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

## Run the whole pipeline on the bundled sample, check the result, say where it is.
run: install
	$(LUIGI) --module tasks RunAll --local-scheduler
	$(PY) verify_results.py --database $(DATABASE)
	@echo
	@echo "Published: $(abspath $(DATABASE))"
	@echo "Browse it: make serve   (then http://127.0.0.1:$(PORT)/ and http://127.0.0.1:$(PORT)/-/dashboards/retail)"

## Run the whole test suite.
test: install
	$(PY) -m pytest

## Browse the database in Datasette (read-only, with the metadata, queries and dashboard of datasette/).
serve: install
	$(PY) scripts/serve.py --port $(PORT) --database $(DATABASE)

## Start Luigi's central scheduler on 127.0.0.1:8082 (visualiser at http://127.0.0.1:8082/); state in var/luigid/.
scheduler: install
	scripts/scheduler.sh start

scheduler-stop:
	scripts/scheduler.sh stop

## Regenerate the bundled sample (deterministic).
sample: install
	$(PY) -m retail_pipeline.generate data/sample --scale 0.0025 --seed 42

## Time the pipeline on the full-scale synthetic dataset against issue 5's targets (data/bench/results.md).
bench: install
	$(PY) scripts/benchmark.py

## Remove intermediate files and the published database.
clean:
	rm -rf data/work $(DATABASE)
