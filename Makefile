# `make run` and `make test` are the README's two commands; both set up .venv first.
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup chromium run test test-fast test-latest test-oldest lock lint bench gate clean
# .venv holds the locked set (lock/*.txt, hashes checked): what the README's commands and CI run.
setup:
	@scripts/bootstrap

chromium:
	@scripts/install-chromium

run: setup
	$(BIN)/evalkit run $(ARGS)

test: setup chromium
	$(BIN)/python -m pytest -q $(ARGS)

# The same suite on the newest releases pyproject.toml admits (.venv-latest, no lock) and on every direct
# dependency's lower bound (.venv-oldest): the two ends of the ranges a `pip install evalkit` user may get.
test-latest: chromium
	@scripts/bootstrap latest
	.venv-latest/bin/python -m pytest -q -p no:cacheprovider $(ARGS)

test-oldest: chromium
	@scripts/bootstrap oldest
	.venv-oldest/bin/python -m pytest -q -p no:cacheprovider $(ARGS)

# Re-resolve lock/ to today's newest releases within the ranges; then `make test` and commit lock/.
lock:
	scripts/lock

# Unit tests only (no real model, no Ray, no browser): quick feedback while editing.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

lint: setup
	$(BIN)/ruff check evalkit tests benchmarks scripts
	$(BIN)/ruff format --check evalkit tests benchmarks scripts
	$(BIN)/mypy evalkit

bench: setup
	$(BIN)/python -m pytest benchmarks -q --benchmark-columns=min,mean,rounds $(ARGS)

gate: setup
	scripts/ci-gate

clean:
	rm -rf $(VENV) .venv-latest .venv-oldest out .pytest_cache
