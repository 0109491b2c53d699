# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tvmdeploy-installed
PYTEST_ARGS ?= --durations=15

.PHONY: setup system-deps demo test test-fast lint clean

setup: $(STAMP)

$(STAMP): requirements.lock requirements-corpus.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -r requirements-corpus.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Cross compiler and qemu for the ARM profile and the emulated board (apt-get; root on Debian/Ubuntu).
system-deps:
	bash tools/install_system_deps.sh

demo: setup
	bash tools/demo.sh

test: setup system-deps lint
	$(PY) -m pytest $(PYTEST_ARGS)

# formatting, pyflakes, pycodestyle errors, import order (pyproject.toml [tool.ruff]); types of the public API and runtime/
# ([tool.mypy]). mypy finds packages by import name: the repository root is `tvmdeploy` (package-dir), so a link
# in the venv names it.
TYPECHECK := $(VENV)/typecheck
lint: setup
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	mkdir -p $(TYPECHECK) && ln -sfn $(CURDIR) $(TYPECHECK)/tvmdeploy
	MYPYPATH=$(TYPECHECK) $(PY) -m mypy -p tvmdeploy.runtime -m tvmdeploy

# Everything but the emulated board and multi-minute suites.
test-fast: setup
	$(PY) -m pytest -m "not rpc and not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
