# `make run` and `make test` are the README's two commands; both set up .venv first.
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup run test lint bench clean
setup:
	@scripts/bootstrap

run: setup
	$(BIN)/evalkit run $(ARGS)

test: setup
	$(BIN)/python -m pytest -q $(ARGS)

lint: setup
	$(BIN)/ruff check evalkit tests benchmarks scripts
	$(BIN)/mypy evalkit

bench: setup
	$(BIN)/python -m pytest benchmarks -q --benchmark-columns=min,mean,rounds $(ARGS)

clean:
	rm -rf $(VENV) out .pytest_cache
