# vtrust developer entry points. `make demo` and `make test` each set up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch on this project's machines; any torch >= 2.2 works. A torch that
# is already in $(VENV) is kept.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.vtrust-installed
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: setup demo test bench lint clean reproduce reproduce-check

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(PIP) "$(TORCH_SPEC)"
	$(PIP) -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/vtrust demo --out demo-out

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks --benchmark-enable --benchmark-only

reproduce: $(STAMP)
	$(BIN)/python experiments/reproduce.py

reproduce-check: $(STAMP)
	$(BIN)/python experiments/reproduce.py --check

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) demo-out .pytest_cache .benchmarks
