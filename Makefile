# Two commands: `make test` and `make bench`. Each builds .venv from nothing when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test bench install clean clean-numba-cache

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: a bare range would let the resolver pull a multi-GB CUDA build. Which build
	# 2.13.0 is depends on the index: set TORCH_INDEX_URL to PyTorch's CPU wheel index for the CPU build.
	$(PY) -m pip install --quiet "torch==2.13.0" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_AUTH_MODE=disabled MPLBACKEND=Agg \
		$(PY) -m pytest -q --timeout=900 tests

bench: $(STAMP)
	RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_AUTH_MODE=disabled MPLBACKEND=Agg \
		$(PY) benchmarks/run_all.py

# numba's cache keys each function on its own file only: a kernel edited in one module leaves stale
# compiled copies in the modules that call it (kernels.py docstring).
clean-numba-cache:
	find schedgym -name '*.nbi' -delete -o -name '*.nbc' -delete

clean: clean-numba-cache
	rm -rf $(VENV) build *.egg-info .pytest_cache
