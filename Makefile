# The two Quick start commands: `make run` (the whole system) and `make test` (the suite).
# Both create .venv and install the project from the lock file first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

# pytest-xdist workers: most of the suite waits on processes, servers and timers, not the CPU,
# so more workers than the 2 cores of the reference machine pay. A module's tests stay on one
# worker, and the e2e modules are handed out first (tests/conftest.py).
WORKERS ?= 3
PYTEST_PARALLEL := -n $(WORKERS) --dist loadscope --no-loadscope-reorder

.PHONY: install run test test-fast lint typecheck clean browser compose-check

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/taskrelay run

test: $(STAMP) browser
	$(BIN)/ruff check shared services harness tests bench
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_PARALLEL)

# The fast lane a developer runs on every change: unit and integration tests (no processes, no
# browser, no faults); about 40 s here. `make test` is the whole suite, before a push.
test-fast: $(STAMP)
	$(BIN)/ruff check shared services harness tests bench
	$(BIN)/pytest $(PYTEST_PARALLEL) -q tests/unit tests/integration

# The browser test drives Debian's Chromium (Playwright's own browser download is not used);
# a CJK font lets it draw the Chinese task page (and its screenshots) with real glyphs.
browser:
	@if [ ! -x $(CHROMIUM) ] || [ -z "$$(fc-list :lang=zh 2>/dev/null)" ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium and a CJK font for the browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; \
	  else \
	    echo "warning: $(CHROMIUM) is missing; the browser test will be skipped (apt-get install chromium)"; \
	  fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check shared services harness tests bench
	$(BIN)/ruff format --check shared services harness tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# compose.yaml against the Compose Specification's schema, without a Docker daemon (needs npm).
compose-check:
	npx --yes dclint@3.1.0 compose.yaml --disable-rule service-keys-order \
		--disable-rule services-alphabetical-order --disable-rule top-level-properties-order

clean:
	rm -rf $(VENV)
