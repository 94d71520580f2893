# `make run` and `make test` are the README's two commands; both set up .venv first.
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup chromium run test test-fast lint bench gate clean
setup:
	@scripts/bootstrap

chromium:
	@scripts/install-chromium

run: setup
	$(BIN)/evalkit run $(ARGS)

test: setup chromium
	$(BIN)/python -m pytest -q $(ARGS)

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
	rm -rf $(VENV) out .pytest_cache
