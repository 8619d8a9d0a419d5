# make lab | make test | make bench   (each creates .venv when it is missing)
#
# torch is installed first, pinned by TORCH_SPEC: on these machines torch==2.13.0 is a
# local CPU wheel, while an open range would pull a multi-GB CUDA build. Override it with
# e.g. `make test TORCH_SPEC='torch==2.5.1'`. The package's own range stays torch>=2.4.

PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN        := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: lab test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# One stamp per set of extras: editing pyproject.toml reinstalls.
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -e ".[$(subst +,$(comma),$*)]"
	touch $@

comma := ,

lab: $(VENV)/.installed-lab
	$(BIN)/mldl lab

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: lint
	MLDL_CHECKS=1 $(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)

bench: $(VENV)/.installed-bench+lab
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) lab-report .pytest_cache .hypothesis
