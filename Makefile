# `make demo` and `make test` each build .venv from nothing when it is missing, then run.
# torch is installed first and pinned, so a CPU machine takes its CPU wheel.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH  ?= torch==2.13.0
export PATH := $(abspath $(BIN)):$(PATH)
export PUBMEDLM_DATA_MIRROR ?= $(abspath ../shared/data)

.PHONY: demo test lint bench clean-outputs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: $(STAMP)
	pubmedlm remote
	dvc repro
	@echo
	@echo "Reports:   $(CURDIR)/reports/  (BLURB: reports/evaluate/blurb.md; vocab: reports/vocab/vocab.md, fragmentation.png)"
	@echo "Metrics:   $(CURDIR)/metrics/  (dvc metrics show)"
	@echo "MLflow UI: $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db  -> http://127.0.0.1:5000"

lint: $(STAMP)
	ruff check .

test: $(STAMP)
	ruff check .
	pytest

bench: $(STAMP)
	python pipelines/bench/corpus_ingest.py

clean-outputs:
	rm -rf data metrics reports mlflow.db mlartifacts
