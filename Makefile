# The two commands: `make run` (pipeline on the bundled sample) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LUIGI := $(VENV)/bin/luigi
DATABASE ?= data/retail.db

.PHONY: run test install sample clean

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
	@echo "Open it:   $(VENV)/bin/datasette serve $(DATABASE)   (then http://127.0.0.1:8001/)"

## Run the whole test suite.
test: install
	$(PY) -m pytest

## Regenerate the bundled sample (deterministic).
sample: install
	$(PY) -m retail_pipeline.generate data/sample --scale 0.0025 --seed 42

## Remove intermediate files and the published database.
clean:
	rm -rf data/work $(DATABASE)
