# Two entry points, both safe to run on a fresh machine:
#   make demo   install everything (hash-checked) and run Passerelle on its embedded defaults
#   make test   lint, type-check and run the whole test suite
# Everything installs into .venv from requirements.lock; nothing unhashed is ever fetched.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo serve test lint typecheck pytest lock clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	# Bytecode for our own sources too (pip compiles only what it installs), so that start-up
	# does not compile them even where the environment forbids writing bytecode at run time.
	$(BIN)/python -m compileall -q src/passerelle
	touch $(STAMP)

demo: install
	$(BIN)/passerelle demo

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

test: lint typecheck pytest

# Regenerate the lock after changing dependencies in pyproject.toml (needs `pip install uv`).
lock:
	uv pip compile pyproject.toml requirements-build.in --extra dev --generate-hashes \
		--universal --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
