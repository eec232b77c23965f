PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: venv browser test test-fast demo bench gpu-check studio clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# Debian's Chromium for the browser tests (report, studio): installed when root and missing, waiting up
# to 5 minutes for another package manager's lock (an update that meets a busy package list goes on
# with the lists there are); else they skip (under CI=true they fail instead).
APT_WAIT := -o DPkg::Lock::Timeout=300
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		{ apt-get $(APT_WAIT) update -qq || echo "note: apt-get update failed: installing from the package lists there are"; } && \
		DEBIAN_FRONTEND=noninteractive apt-get $(APT_WAIT) install -y -qq chromium >/dev/null; } || \
		echo "note: Chromium could not be installed: the browser tests will be skipped (fail under CI=true)"

# The whole suite (under 5 minutes on 2 idle cores), then its 15 slowest tests.
test: venv browser
	$(PY) -m pytest -q --durations=15 tests

# The edit-run loop: everything but the tests that start launchers and subprocesses (well under a minute).
test-fast: venv
	$(PY) -m pytest -q -m "not slow" tests

# On a GPU machine, with its own PyTorch (no venv, nothing installed): make gpu-check OUT=DIR [QUICK=1] [PY=python]
OUT ?= gpu_check_results
gpu-check: PY = python3
gpu-check:
	$(PY) -m benchmarks.gpu_check --out $(OUT) $(if $(QUICK),--quick,)

# Resumable: an interrupted run goes on from its saved training state. DEMO_ITERATIONS=300: a shorter run.
DEMO_ITERATIONS ?= 1800
demo: venv
	$(PY) -m demo.run_demo --iterations $(DEMO_ITERATIONS)

# The studio on the demo's model and videos (make demo first when its checkpoint is missing).
STUDIO_FLAGS ?=
studio: venv
	test -f demo_output/checkpoints/demo.pth || $(MAKE) demo
	$(PY) -m studio --checkpoint demo_output/checkpoints/demo.pth --videos data/demo/DAVIS/2017/trainval/JPEGImages/480p \
		--workspace studio_workspace $(STUDIO_FLAGS)

bench: venv
	$(PY) -m pip install --quiet -r benchmarks/requirements.txt
	$(PY) -m benchmarks.run_all

clean:
	rm -rf demo_output data/demo benchmarks/results gpu_check_results
