# Two commands on a fresh machine: `make run` (the whole system) and `make test` (all tests).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON_VERSION ?= 3.12
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help install infra run test test-unit lint format stop clean bench chaos

help:
	@echo "make run    - install what is missing, start the whole system in the foreground (Ctrl-C stops it)"
	@echo "make test   - install what is missing, start Postgres + Kafka, run all tests"
	@echo "make lint   - ruff (lint + format check), mypy --strict, actionlint (GitHub workflow)"
	@echo "make stop   - stop Postgres and Kafka started by run/test"
	@echo "make bench  - run the benchmarks in bench/"
	@echo "make chaos  - the fault-injection run, big (CHAOS_COMMANDS=20000), with its figures"

# The virtualenv is rebuilt when pyproject.toml changes; a no-op otherwise.
install: $(STAMP)
$(STAMP): pyproject.toml
	@infra/python.sh $(PYTHON_VERSION) $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

infra: install
	infra/postgres.sh start
	infra/kafka.sh start

run: install
	infra/run.sh

# The end-to-end test runs the whole system as `make run` does, in Debian's Chromium.
test: infra
	infra/go-tools.sh install
	infra/nginx.sh install
	infra/smtp-sink.sh install
	infra/browser.sh install
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	infra/go-tools.sh install
	.data/go/bin/actionlint

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

stop:
	-infra/kafka.sh stop
	-infra/postgres.sh stop

bench: infra
	infra/go-tools.sh install
	infra/bench-tools.sh install
	$(PY) bench/bench_commands.py
	$(PY) bench/bench_read_side.py
	$(PY) bench/bench_freshness.py
	$(PY) bench/bench_stream.py --seconds 15
	$(PY) bench/bench_digest.py
	$(PY) bench/bench_login_flood.py
	$(PY) bench/bench_command_replicas.py

# Kills and a broker outage under load, then every acknowledged command checked (tests/support/chaos.py).
chaos: infra
	CHAOS_COMMANDS=$${CHAOS_COMMANDS:-20000} $(PY) -m tests.support.chaos

clean: stop
	rm -rf .data
