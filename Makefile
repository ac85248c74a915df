# Two commands do everything (see README.md): `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# The Node.js example agent's dependencies (pinned by its package-lock.json), when npm is on the machine.
NODE_AGENT_INSTALL = if command -v npm >/dev/null; then npm ci --prefix examples/node-agent --no-audit --no-fund --silent; fi

.PHONY: demo test lint format install bench clean-db

$(INSTALLED): requirements.txt requirements-dev.txt examples/node-agent/package-lock.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(NODE_AGENT_INSTALL)
	touch $(INSTALLED)

install: $(INSTALLED)

## The main job: database, migrations, demo data, an admin user, and the admin at http://127.0.0.1:8000/admin/
## Idempotent: a second run keeps the data and the admin's password (ensure_admin --reset-password sets a new one).
DEMO_PORT ?= 8000
demo: $(INSTALLED)
	PYTHON=$(BIN)/python scripts/check-port 127.0.0.1 $(DEMO_PORT)
	$(BIN)/python manage.py createdb
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py run_maintenance hourly
	$(BIN)/python manage.py ensure_admin
	$(BIN)/python manage.py runserver 127.0.0.1:$(DEMO_PORT)

## The whole test suite, on DATABASE_URL's server if set, else on the embedded PostgreSQL.
test: $(INSTALLED)
	scripts/ensure-chromium
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

## ruff, the released-migrations lock, import layers, mypy (honua/, services, selectors), makemigrations --check.
lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py lock_migrations --check --verbosity 0
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/python manage.py createdb
	$(BIN)/python manage.py makemigrations --check --dry-run

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Stop the embedded PostgreSQL and delete its data.
clean-db: $(INSTALLED)
	$(BIN)/python manage.py dbserver stop
	rm -rf .honua/pgdata
