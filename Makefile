# Every set-up path installs torch==2.13.0 FIRST, in its own pip call: it is
# the CPU build on local disk, while an unpinned torch resolves to a
# multi-GB CUDA build.
#
#   make install      once: torch, then the package with its dev and docs extras
#   make demo         torch and the package alone, then the ~1-minute demo
#   make test         the fast tests (all but those marked slow), after lint
#   make test-all     every test but the full soundness suite, after lint
#   make soundness    the independent soundness suite (a few minutes)
#   make test-kernels the tests that compare with recordings or across
#                     processes, again under torch's other CPU kernels
#   make ci           what CI runs (.ci/run): install, lint, every test, those
#                     tests under the other kernels, and the docs without
#                     executing the gallery
#   make lint / format, make docs (gallery executed) / docs-noplot, make bench
#
# The targets that need the package depend on a stamp file, .installed, which
# is remade when the package metadata changes, so `make test` on a fresh clone
# installs everything first and later runs do not reinstall.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
TORCH_PIN := torch==2.13.0
PYTEST := $(PYTHON) -m pytest -q -p no:cacheprovider
SPHINX := $(PYTHON) -m sphinx -b html -W --keep-going

.PHONY: install demo test test-all test-kernels soundness ci lint format docs docs-noplot bench clean

.installed: setup.cfg pyproject.toml
	$(PIP) install $(TORCH_PIN)
	$(PIP) install -e ".[dev,docs]"
	@touch $@

install:
	@rm -f .installed
	@$(MAKE) --no-print-directory .installed

# The demo needs the package and its own dependencies only, not the dev tools.
.installed-core: setup.cfg pyproject.toml
	$(PIP) install $(TORCH_PIN)
	$(PIP) install -e .
	@touch $@

demo: .installed-core
	sk-margin demo

test: .installed lint
	$(PYTEST) -m "not slow and (not soundness or quick)"

test-all: .installed lint
	$(PYTEST) -m "not soundness or quick"

# The independent soundness suite: every certificate against every attack.
soundness: .installed
	$(PYTEST) tests/soundness -m soundness

# Recordings made on one machine must hold on any other: rerun the tests that
# compare with them (and the same-machine determinism tests) under torch's
# scalar and AVX2 kernels, which sum and draw in another order than the
# default ones (AVX-512 where the CPU has it). About 40 s. A CPU without
# AVX2 runs its best kernels instead. The OpenBLAS variables stay as set.
KERNEL_TESTS := tests/test_reference_outputs.py tests/test_persistence.py
CPU_CAPABILITIES := default avx2

test-kernels: .installed
	@for cap in $(CPU_CAPABILITIES); do \
		echo "== ATEN_CPU_CAPABILITY=$$cap:" \
			"$$(ATEN_CPU_CAPABILITY=$$cap $(PYTHON) -c 'import torch; print(torch.backends.cpu.get_cpu_capability())')"; \
		ATEN_CPU_CAPABILITY=$$cap $(PYTEST) $(KERNEL_TESTS) || exit 1; \
	done

ci: install lint test-all test-kernels docs-noplot

lint: .installed
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format: .installed
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .

docs: .installed
	$(SPHINX) docs docs/_build/html

docs-noplot: .installed
	$(SPHINX) -D plot_gallery=0 docs docs/_build/html

bench: .installed
	$(PIP) install -e ".[peers]"
	@for f in benchmarks/bench_*.py; do \
		[ -e "$$f" ] || continue; \
		echo "== $$f"; \
		$(PYTHON) "$$f" || exit 1; \
	done

clean:
	rm -rf .installed .installed-core docs/_build docs/auto_examples docs/generated example_output
