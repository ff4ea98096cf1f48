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

test: lint typecheck clients pytest

# The real AI command-line clients that tests/clients drives through the gateway (Claude Code,
# Codex, Gemini CLI from package-lock.json with its integrity hashes; aider in a virtualenv of its
# own from its hashed lock, never in .venv). Nothing is cached outside the repository; aider's
# modules are compiled when first imported rather than all at install time (20 s less).
# Claude Code declares Node >= 22 but runs on 20: its package only copies a native binary, the one
# install script that package.json's allowScripts lets run (Gemini CLI's optional keychain and
# terminal modules stay unbuilt; it works without them).
CLIENTS     := tests/clients
AIDER_VENV  := $(CLIENTS)/.aider-venv
NPM_STAMP   := $(CLIENTS)/node_modules/.installed
AIDER_STAMP := $(AIDER_VENV)/.installed

.PHONY: clients clients-lock clean-clients

clients: $(NPM_STAMP) $(AIDER_STAMP)

$(NPM_STAMP): $(CLIENTS)/package.json $(CLIENTS)/package-lock.json
	cd $(CLIENTS) && npm ci --cache .npm-cache --no-audit --no-fund --loglevel=error
	touch $@

$(AIDER_STAMP): $(CLIENTS)/aider-requirements.txt
	test -x $(AIDER_VENV)/bin/python || $(PYTHON) -m venv $(AIDER_VENV)
	$(AIDER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir \
		--no-compile --require-hashes -r $(CLIENTS)/aider-requirements.txt
	touch $@

# Regenerate the clients' locks after changing package.json or aider-requirements.in (needs uv).
clients-lock:
	cd $(CLIENTS) && npm install --package-lock-only --omit-lockfile-registry-resolved \
		--cache .npm-cache --no-audit --no-fund
	cd $(CLIENTS) && uv pip compile aider-requirements.in --generate-hashes --universal \
		--python-version 3.11 -o aider-requirements.txt

clean-clients:
	rm -rf $(CLIENTS)/node_modules $(CLIENTS)/.npm-cache $(AIDER_VENV)

# Regenerate the lock after changing dependencies in pyproject.toml (needs `pip install uv`).
lock:
	uv pip compile pyproject.toml requirements-build.in --extra dev --generate-hashes \
		--universal --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
