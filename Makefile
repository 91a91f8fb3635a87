# `make demo` and `make test` do all the set-up: each creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch/torchvision are whatever pip resolves within pyproject's bounds (torch>=2.1);
# override e.g. `make test TORCH="torch==2.9.1 torchvision==0.24.1"` on aarch64.
TORCH ?=

.PHONY: demo test lint typecheck unit bench clean

$(VENV)/.installed-dev: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip >/dev/null
	if [ -n "$(TORCH)" ]; then $(PY) -m pip install -q $(TORCH); fi
	$(PY) -m pip install -q -e ".[dev]"
	touch $@ $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	if [ -n "$(TORCH)" ]; then $(PY) -m pip install -q $(TORCH); fi
	$(PY) -m pip install -q -e ".[fast,eval,progress,examples]"
	touch $@

demo: $(VENV)/.installed
	$(PY) examples/demo.py $(ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check ango_torch tests benchmarks examples
	$(VENV)/bin/ruff format --check ango_torch tests benchmarks examples

typecheck: $(VENV)/.installed-dev
	$(VENV)/bin/mypy

unit: $(VENV)/.installed-dev
	$(PY) -m pytest

test: lint typecheck unit

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/index.py
	$(PY) benchmarks/fetch.py
	$(PY) benchmarks/dataset.py
	$(PY) benchmarks/raster.py
	$(PY) benchmarks/evaluate.py
	$(PY) benchmarks/gpu_train.py  # meaningful on a CUDA machine only

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info
