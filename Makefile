# Every set-up path installs torch==2.13.0 FIRST, in its own pip call: it is
# the CPU build on local disk, while an unpinned torch resolves to a
# multi-GB CUDA build.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
TORCH_PIN := torch==2.13.0

.PHONY: install install-docs demo test lint docs bench

install:
	$(PIP) install $(TORCH_PIN)
	$(PIP) install -e ".[dev]"

install-docs:
	$(PIP) install $(TORCH_PIN)
	$(PIP) install -e ".[docs]"

demo: install
	sk-margin demo

test: install lint
	$(PYTHON) -m pytest -q -p no:cacheprovider

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

docs: install-docs
	$(PYTHON) -m sphinx -b html docs docs/_build/html

bench: install
	@for f in benchmarks/*.py; do \
		[ -e "$$f" ] || continue; \
		echo "== $$f"; \
		$(PYTHON) "$$f" || exit 1; \
	done
