# The two quick-start commands of README.md: `make serve` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install runtime-deps system-deps serve test bench

# Debian packages the service needs: the DejaVu fonts (regular, bold, italic) for texts,
# espeak-ng for speech in video.create, and LAME (libmp3lame0) for MP3 (docs/audio.md).
runtime-deps:
	@ls /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf /usr/share/fonts/truetype/dejavu/DejaVuSans-Oblique.ttf \
	  /usr/lib/*/libmp3lame.so.0 >/dev/null 2>&1 && command -v espeak-ng >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    fonts-dejavu-core fonts-dejavu-extra espeak-ng libmp3lame0; }

# And those the tests need: Chromium and its WebDriver for the dashboard test; PostgreSQL
# for the journal tests (a throwaway cluster per run, not the package's service).
system-deps: runtime-deps
	@command -v chromedriver >/dev/null && command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql; }

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

serve: install runtime-deps
	$(VENV)/bin/dragon serve

# The full run (no PYTEST_ARGS) runs the API-level suites a second time with the services'
# journal on PostgreSQL.
PG_SUITES ?= tests/test_tasks_api.py tests/test_requests_and_auth.py tests/test_callbacks.py tests/test_faults.py tests/test_storage.py
PYTEST_RUNS = "$(PYTEST_ARGS)" $(if $(PYTEST_ARGS),,"--journal=postgres $(PG_SUITES)")

# pytest exits 5 when it collected nothing: that is a failure here, not a pass.
test: install system-deps
	@for run in $(PYTEST_RUNS); do \
	  echo "== pytest $$run"; $(PY) -m pytest $$run; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; \
	  if [ $$rc -ne 0 ]; then exit $$rc; fi; \
	done

bench: install
	$(PY) benchmarks/api.py
