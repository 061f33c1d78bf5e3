# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# e3nn 0.4.4 (the version mace-torch pins) loads its constants with torch.load; torch >= 2.6 needs this.
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD := 1

.PHONY: demo test bench clean help

help:
	@echo "make demo   - create $(VENV), install equiv, run the main job (short N-body training)"
	@echo "make test   - create $(VENV), install equiv with test extras, run the whole test suite"
	@echo "make bench  - install benchmark extras (e3nn, mace-torch) and run benchmarks/"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch is pinned to 2.13.0 and installed first: pip takes the CPU wheel from this machine's disk.
$(VENV)/.stamp-base: pyproject.toml | $(PY)
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[atoms,plot,examples]"
	touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp-base
	$(PIP) install -q -e ".[test,atoms,plot,examples]"
	touch $@

$(VENV)/.stamp-bench: $(VENV)/.stamp-test
	$(PIP) install -q -e ".[bench]"
	touch $@

demo: $(VENV)/.stamp-base
	$(PY) -m equiv demo

test: $(VENV)/.stamp-test
	$(PY) -m pytest -q

bench: $(VENV)/.stamp-bench
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info
