# Developer entry points. Each target creates .venv and installs what it needs on first use.
VENV ?= .venv
PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
# Without a CUDA GPU pip should take PyTorch's CPU build. Where no local CPU wheel is on pip's
# find-links, point this at PyTorch's CPU wheel index (https://download.pytorch.org/whl/cpu).
TORCH_INDEX_URL ?=

PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run samples audit test lint typecheck pytest bench-quality toy-build clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@if ! command -v nvidia-smi >/dev/null 2>&1 && [ -n "$(TORCH_INDEX_URL)" ]; then \
	  echo "no CUDA GPU: installing the CPU build of torch $(TORCH_VERSION)"; \
	  $(PY) -m pip install --quiet "torch==$(TORCH_VERSION)" --index-url "$(TORCH_INDEX_URL)"; \
	else \
	  $(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"; \
	fi
	$(PY) -m pip install --quiet -c constraints.txt -e ".[ml,dev]"
	touch $@

## run: the service with no settings (the embedded default) on http://127.0.0.1:8000; see the README.
run: $(STAMP)
	$(VENV)/bin/unlearn serve

## samples: the shipped toy model's sample grid in samples.png (rows shapes, columns colours).
samples: $(STAMP)
	$(VENV)/bin/unlearn toy sample --out samples.png

## test: lint, type-check, then the whole test suite (what CI runs).
test: lint typecheck pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## bench-quality: JSON of how often the toy model draws the prompted shape (about 2 min on 2 cores).
bench-quality: $(STAMP)
	$(PY) bench/toy_quality.py

## toy-build: retrain models/toy-shapes from its seed (about 30 min on 2 CPU cores).
toy-build: $(STAMP)
	$(VENV)/bin/unlearn toy build

## audit: known vulnerabilities in the pinned dependencies (needs PyPI's JSON API or osv.dev).
audit: $(STAMP)
	$(VENV)/bin/pip-audit --strict --no-deps --disable-pip -r constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache samples.png .unlearn
