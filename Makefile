# The two quick-start commands of README.md: `make serve` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Every pip install here takes the versions of constraints.txt (`make lock` refreshes it).
PIP_INSTALL = $(PY) -m pip install --quiet -c constraints.txt

.PHONY: install install-test runtime-deps system-deps serve lint test bench lock

# Debian packages: those the service needs are listed once, in deploy/system-packages.txt
# (also installed by deploy/Dockerfile and cluster.yaml); the tests add Chromium and its
# WebDriver (the dashboard test) and PostgreSQL (a throwaway cluster per run).
RUNTIME_PACKAGES := $(strip $(shell sed 's/\#.*//' deploy/system-packages.txt))
TEST_PACKAGES := chromium chromium-driver postgresql

# Installs the Debian packages named in $(1) that are not installed yet.
define apt_install
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
endef

runtime-deps:
	$(call apt_install,$(RUNTIME_PACKAGES))

system-deps: runtime-deps
	$(call apt_install,$(TEST_PACKAGES))

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# `make serve` installs what serving needs; `make test` adds the test tools.
$(VENV)/.installed-server: pyproject.toml constraints.txt | $(PY)
	$(PIP_INSTALL) -e '.[server]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-server
	$(PIP_INSTALL) -e '.[server,test]'
	touch $@

install: $(VENV)/.installed-server
install-test: $(VENV)/.installed-test

serve: install runtime-deps
	$(VENV)/bin/dragon serve

# The full run (no PYTEST_ARGS) runs the API-level suites a second time with the services'
# journal on PostgreSQL.
PG_SUITES ?= tests/test_tasks_api.py tests/test_requests_and_auth.py tests/test_callbacks.py tests/test_faults.py tests/test_storage.py
PYTEST_RUNS = "$(PYTEST_ARGS)" $(if $(PYTEST_ARGS),,"--journal=postgres $(PG_SUITES)")

# Lint, format and types first (settings in pyproject.toml): seconds, and a change that
# breaks them fails before the suite's minutes.
LINTED := dragon tests benchmarks tools deploy docs/make_tasks.py examples
lint: install-test
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy

# pytest exits 5 when it collected nothing: that is a failure here, not a pass.
test: install-test system-deps lint
	@for run in $(PYTEST_RUNS); do \
	  echo "== pytest $$run"; $(PY) -m pytest $$run; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; \
	  if [ $$rc -ne 0 ]; then exit $$rc; fi; \
	done

bench: install-test
	$(PY) benchmarks/api.py

# Re-resolve constraints.txt from pyproject.toml's ranges (newest versions that fit), then
# run `make test` before committing it (README.md, "Dependencies").
lock: | $(PY)
	$(PY) deploy/lock.py
