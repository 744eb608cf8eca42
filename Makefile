# DIS: set-up, demo, tests, benchmarks. `make setup demo` on a fresh machine; `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.dis-installed
MANIFEST ?= manifests/demo.csv
OUT    ?= runs/demo

.PHONY: setup model samples browser demo test test-all test-slurm test-container container bench submit clean help

help:
	@echo "make setup    - create $(VENV), install DIS + dev tools, fetch the model and sample data"
	@echo "make demo     - extract the sample videos, render a 6-person phantom cohort and run the pipeline on it, into $(OUT)"
	@echo "make test     - the test suite (real model, real video; slow tests excluded)"
	@echo "make test-all - every test, slow ones included"
	@echo "make bench    - benchmarks under bench/ (print figures)"
	@echo "make submit MANIFEST=cohort.csv OUT=runs/x [SLURM_CONFIG=slurm.toml] - the pipeline on SLURM"
	@echo "make test-slurm - start a local single-node SLURM and run the SLURM tests"
	@echo "make container - build containers/dis.sif (Apptainer); make test-container runs a stage and a SLURM array in it"

$(STAMP): pyproject.toml requirements/mediapipe.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	# mediapipe without its opencv-contrib dependency (it fights opencv-python-headless)
	$(BIN)/python -m pip install -q --no-deps -r requirements/mediapipe.txt
	$(BIN)/python -c "import mediapipe, cv2, torch, nflows, h5py; print('imports ok: mediapipe', mediapipe.__version__, 'opencv', cv2.__version__, 'torch', torch.__version__)"
	touch $(STAMP)

model: $(STAMP)
	$(BIN)/dis fetch-model

samples: $(STAMP)
	$(BIN)/dis fetch-samples --dest manifests/samples

# Debian's chromium opens the HTML report in the browser test; installed when we may (root, apt),
# otherwise the test is skipped with its reason (and fails under CI, whose .ci/run installs it).
browser:
	@command -v chromium >/dev/null && echo "chromium: $$(command -v chromium)" || \
	{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else echo "chromium not installed (apt-get install chromium as root): the browser test will be skipped"; fi; }

setup: $(STAMP) model samples browser

demo: setup
	$(BIN)/dis extract --manifest $(MANIFEST) --out $(OUT)/samples --landmark-workbook
	$(BIN)/dis phantom --out $(OUT)/phantom-videos --participants 6 --sessions 2 --duration 20 --fps 15
	$(BIN)/dis run --manifest $(OUT)/phantom-videos/manifest.csv --out $(OUT)/phantom

test: $(STAMP) model samples  # downloads first: one failure up front, not a fixture error mid-suite
	$(BIN)/python -m pytest -q -m "not slow and not apptainer"

# a cluster's login node needs the environment and the model, not the demo's videos nor a browser
submit: model
	$(BIN)/dis submit --manifest $(MANIFEST) --out $(OUT) $(if $(SLURM_CONFIG),--config $(SLURM_CONFIG))

test-slurm: $(STAMP) model samples
	bash tests/slurm/start.sh
	$(BIN)/python -m pytest -q -m slurm

container: setup
	bash containers/build.sh

test-container: container
	$(BIN)/python -m pytest -q -m apptainer

test-all: $(STAMP) model samples
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/phantom.py
	$(BIN)/python bench/flows.py
	$(BIN)/python bench/dyads.py
	$(BIN)/python bench/scale.py --sizes 100,300 --sample 300:2
	$(BIN)/python bench/cohort.py --sizes 100,300
	$(BIN)/python bench/report.py --sizes 100,300

clean:
	rm -rf runs .pytest_cache
