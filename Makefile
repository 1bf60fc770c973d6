# `make demo` and `make test` each build .venv from nothing when it is missing, then run.
# torch is installed first and pinned, so a CPU machine takes its CPU wheel.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH  ?= torch==2.13.0
export PATH := $(abspath $(BIN)):$(PATH)
export PUBMEDLM_DATA_MIRROR ?= $(abspath ../shared/data)

.PHONY: demo test test-fast lint bench clean-outputs system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# One local Ray for the whole `dvc repro` (infra/ray/with-ray.sh): every Ray stage connects to it
# instead of starting and stopping its own.
demo: $(STAMP)
	pubmedlm remote
	infra/ray/with-ray.sh dvc repro
	@echo
	@echo "Metrics:   $(CURDIR)/metrics/  (dvc metrics show)"
	@echo "Registry:  $(CURDIR)/metrics/register.json  (aliases candidate / champion)"
	@echo "Report:    $(CURDIR)/reports/report/index.html"
	@echo "MLflow UI: $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db  -> http://127.0.0.1:5000"

lint: $(STAMP)
	ruff check .

# Debian packages the tests drive for real: chromium (the report page's screenshot test) and
# postgresql (the MLflow server stack test).
SYSTEM_PACKAGES := chromium postgresql
system-deps:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "missing Debian packages: $$missing (apt-get install $(SYSTEM_PACKAGES) as root)"; fi; fi

# Two test processes, each module whole on one (module fixtures, one Ray per stage process): the
# suite waits on servers, Ray start-up and subprocesses about half the time.
PYTEST_WORKERS ?= 2

test: $(STAMP) system-deps
	ruff check .
	pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=15

# The hermetic tier alone (about a minute): no data mirror, servers, Ray cluster or dvc. Tests that
# need one are marked `integration` automatically (tests/conftest.py) and left out; the rest read
# the committed fixtures (tests/fixtures/) and see PUBMEDLM_DATA_MIRROR as an empty folder.
test-fast: $(STAMP)
	ruff check .
	env -u PUBMEDLM_DATA_MIRROR pytest -m "not integration" -n $(PYTEST_WORKERS) --dist loadfile --durations=10

bench: $(STAMP)
	python pipelines/bench/corpus_ingest.py

clean-outputs:
	rm -rf data metrics reports mlflow.db mlartifacts
