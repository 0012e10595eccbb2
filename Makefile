# cern-spawner: `make demo` runs the hub on a local sandbox cluster; `make test` runs every test.
# Prerequisites (see README): Python >= 3.11, Go >= 1.25, Node.js >= 18 with npm, iproute2, root.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SHELL := /bin/bash

.PHONY: demo test unit integration lint sandbox-up down clean deps

deps: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

sandbox-up: deps
	$(PY) -m sandbox up

demo: sandbox-up
	@echo
	@echo "JupyterHub: http://127.0.0.1:8000  (Ctrl-C stops the hub; 'make down' stops the sandbox)"
	@echo "  log in through CERN SSO (the sandbox's Keycloak), password: cern-demo"
	@echo "    alice  no role"
	@echo "    bob    gpu-users   (offered the dedicated GPU profile)"
	@echo "    carol  hub-admins  (hub admin)"
	@echo
	$(VENV)/bin/jupyterhub -f jupyterhub_config.py

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

unit: deps
	$(PY) -m pytest -m unit

integration: deps
	$(PY) -m pytest -m integration

# The integration tests start the sandbox themselves (or reuse a running one) and fail if it cannot start.
test: lint
	$(PY) -m pytest

down:
	$(PY) -m sandbox down

clean: down
	rm -rf $(VENV) node_modules build
