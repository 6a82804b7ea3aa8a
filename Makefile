# One environment recipe for the README, the tests and CI: a virtual environment in .venv,
# created on first use and re-synced only when its inputs change.
#   make demo   run the package's main job: the demo with its default settings
#   make test   run the whole test suite (what .ci/run calls)
# CUDA users: make TORCH_SPEC='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128'
PYTHON ?= python3
VENV := .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_TAG := $(shell printf '%s' '$(TORCH_SPEC)' | md5sum | cut -c1-8)
STAMP := $(VENV)/.synced-$(TORCH_TAG)
PYTEST_ARGS ?=

.PHONY: venv demo test lint clean

venv: $(STAMP)

$(STAMP): requirements.txt setup.py setup.cfg package.xml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check $(TORCH_SPEC) -r requirements.txt
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.synced-*
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/stereo-derain demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest test $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build install log
