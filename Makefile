PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: venv test demo bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

test: venv
	$(PY) -m pytest -q tests

demo: venv
	$(PY) -m demo.run_demo

bench: venv
	$(PY) -m pip install --quiet -r benchmarks/requirements.txt
	$(PY) -m benchmarks.run_all

clean:
	rm -rf demo_output data/demo benchmarks/results
