# The project's one entry point for people and CI: make run, make test, make lint, make bench.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed
CHARTER_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
export CHARTER_TEST_POSTGRES_URL

.PHONY: run test lint typecheck audit browser dovecot test-sqlite test-postgres bench clean

$(BIN)/python:
	@echo "Creating the virtual environment in $(VENV)…"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade -c constraints.txt pip

$(RUN_STAMP): $(BIN)/python pyproject.toml constraints.txt
	@echo "Installing Charter and its pinned dependencies…"
	$(BIN)/pip install --progress-bar on -c constraints.txt -e .
	touch $@

$(DEV_STAMP): $(RUN_STAMP) pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

run: $(RUN_STAMP)
	$(BIN)/charter init
	$(BIN)/charter serve

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

# Known vulnerabilities in the pinned packages fail it; an advisory database out of reach
# (offline, or an index that serves no advisories) is reported as skipped and passes.
audit: $(DEV_STAMP)
	$(BIN)/python tools/dependency_audit.py constraints.txt

# The browser tests (tests/web/test_docs_pages.py) drive Debian's chromium; Playwright never
# downloads a browser of its own.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "Installing Debian's chromium for the browser tests…"; \
		sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$sudo apt-get update -qq && \
		$$sudo env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends chromium; \
	fi

# The mail intake tests (tests/requests/test_mail_intake.py) read from a real IMAP server:
# Debian's dovecot, started by the tests as an unprivileged process on a private port with a
# configuration of its own. The system's dovecot service is neither configured nor needed.
dovecot:
	@if [ ! -x /usr/sbin/dovecot ] || [ ! -x /usr/lib/dovecot/imap ]; then \
		echo "Installing Debian's dovecot-imapd for the mail intake tests…"; \
		sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$sudo apt-get update -qq && \
		$$sudo env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends dovecot-imapd; \
	fi

test-sqlite: $(DEV_STAMP) browser dovecot
	CHARTER_TEST_DATABASE=sqlite $(BIN)/pytest -n auto

# The whole suite again on PostgreSQL. Under CI (CI=true) PostgreSQL is required.
test-postgres: $(DEV_STAMP) browser dovecot
	@if $(BIN)/python -m tests.postgres_ready; then \
		CHARTER_TEST_DATABASE=postgres $(BIN)/pytest -n auto; \
	elif [ "$$CI" = "true" ]; then \
		echo "PostgreSQL is required under CI and does not answer"; exit 1; \
	else \
		echo "PostgreSQL does not answer: the PostgreSQL run is skipped (CI requires it)"; \
	fi

test: lint typecheck audit test-sqlite test-postgres

bench: $(DEV_STAMP)
	$(BIN)/python -m bench $(if $(BENCH),--only $(BENCH),)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
