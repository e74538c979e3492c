# Everything runs in a virtual environment bootstrapped from nothing.
# torch is installed first, pinned (constraints.txt), so pip never fetches another build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
STAMP := $(VENV)/.installed

.PHONY: install lint test test-slow demo bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -c constraints.txt torch==2.13.0
	$(PIP) install -c constraints.txt -e ".[all,test]"
	# schnetpack pins sympy<=1.12, which torch 2.13 cannot use: its real needs came with [schnetpack] above.
	$(PIP) install -c constraints.txt --no-deps schnetpack==2.1.1
	touch $@

install: $(STAMP)

# Formatting, lint and the import contracts (the architecture, docs/architecture.md) before the tests.
lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

demo: $(STAMP)
	$(BIN)/mlpotential run examples/quickstart.in --results results-quickstart --overwrite

bench: $(STAMP)
	$(BIN)/python benchmarks/pipe_overhead.py

clean:
	rm -rf $(VENV) results-quickstart .pytest_cache
