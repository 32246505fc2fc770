# Two commands on a fresh machine: `make run` serves the issuer, `make test` proves it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install bench clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

# Schema, first signing key and demo accounts when absent, then gunicorn on AUTHSVC_BIND.
run: install
	$(PY) -m authsvc.demo
	$(PY) -m authsvc serve

test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

# Loopback servers, wrk and node-oidc-provider from npm; one table, and benchmarks/results/latest.json.
# Options through BENCH_ARGS, e.g. make bench BENCH_ARGS="--only token --algs ES256".
bench: install
	$(PY) benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) instance .pytest_cache test-artifacts
