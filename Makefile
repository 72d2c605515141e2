# panelbrain: `make demo` answers a question end to end; `make test` runs every check CI runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# SAM CLI and checkov pin dependencies of their own: each lives in a venv of its own.
TOOLS  := .tools
SAM    := $(TOOLS)/sam/bin/sam
CHECKOV := $(TOOLS)/checkov/bin/checkov
SAM_VERSION := 1.170.0
CHECKOV_VERSION := 3.3.30
# uv resolves the lock (`make lock`); installing needs only pip.
UV := $(TOOLS)/uv/bin/uv
UV_VERSION := 0.13.8
PACKAGING_VERSION := 26.4
LOCK := requirements/dev.lock
# Debian's Chromium, for the reviewer-page browser test (Playwright drives it by path).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: install lock demo test lint typecheck validate build unit clean

install: $(STAMP)

# Exactly the locked versions (hashes checked), then panelbrain itself without resolving anything
# again. Re-installs only when the lock changes; a dependency added to pyproject.toml and not
# locked fails tests/unit/test_layers.py. pip-sync semantics are not needed: the venv is new.
$(STAMP): $(LOCK) pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "panelbrain needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

$(UV):
	$(PYTHON) -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/python -m pip install --quiet uv==$(UV_VERSION) packaging==$(PACKAGING_VERSION)

# One resolution for everything: requirements/dev.lock (the development environment, any Python
# from 3.11) and each layer's requirements.txt (Lambda's python3.13 on x86_64 Linux) constrained by
# it. Commit the files it writes; `make install` and `sam build` install exactly them.
# It runs from the uv tool's venv, so a pyproject.toml the current lock no longer fits still locks.
lock: $(UV)
	PYTHONPATH=src $(TOOLS)/uv/bin/python -m panelbrain.ops.lock --uv $(UV)

# Runs only while Chromium is missing (apt-get update only if the package is not found without it).
# Playwright's wheel carries no browser and `playwright install` is never run: it drives this one.
$(CHROMIUM):
	@if [ "$$PANELBRAIN_SKIP_BROWSER" = 1 ]; then echo "PANELBRAIN_SKIP_BROWSER=1: not installing chromium"; exit 0; fi; \
	command -v apt-get >/dev/null || { echo "error: the browser test needs Chromium at $(CHROMIUM) (Debian package chromium): install it, or set PANELBRAIN_SKIP_BROWSER=1"; exit 2; }; \
	echo "Installing Debian's chromium for the reviewer-page browser test"; \
	install="$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium"; \
	$$install || { $(SUDO) apt-get update -q && $$install; } \
	  || { echo "error: could not install Debian's chromium (needs root or sudo, and the Debian archive): run 'apt-get install chromium' as root, or set PANELBRAIN_SKIP_BROWSER=1 to skip the browser test"; exit 2; }; \
	test -x $(CHROMIUM) || { echo "error: chromium is installed but not at $(CHROMIUM) (set CHROMIUM and PANELBRAIN_CHROMIUM to where it is)"; exit 2; }

demo: install
	$(BIN)/panelbrain ask "What share support a ban on abortion by province?"

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: install
	$(BIN)/mypy

$(SAM):
	$(PYTHON) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/python -m pip install --quiet aws-sam-cli==$(SAM_VERSION)

$(CHECKOV):
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)

# The template and state machines, offline (cfn-lint does not read ASL files; statelint does).
# checkov: every skipped check carries its justification in the resource's Metadata.
validate: install $(SAM) $(CHECKOV)
	AWS_DEFAULT_REGION=us-east-1 $(BIN)/cfn-lint template.yaml
	AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 $(SAM) validate --lint
	$(BIN)/statelint --ignore=URI statemachines/query_pipeline.asl.json statemachines/human_review.asl.json
	$(CHECKOV) -f template.yaml --framework cloudformation --skip-download --compact --quiet

# sam build (no container) needs the runtime's Python on PATH: pyenv's 3.13 on this kind of machine.
PY313 ?= $(or $(shell pyenv prefix 3.13.0 2>/dev/null),$(HOME)/.pyenv/versions/3.13.0)/bin
build: install $(SAM)
	@test -x "$(PY313)/python3.13" || { echo "sam build needs python3.13 (set PY313=/path/to/its/bin)"; exit 1; }
	PATH="$(PY313):$$PATH" AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 $(SAM) build --parallel
	$(BIN)/panelbrain bench size --check

unit: install
	$(BIN)/pytest tests/unit -q

test: lint typecheck validate build $(CHROMIUM)
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache build dist src/*.egg-info
