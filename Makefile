# Two commands do all the set-up (see README):
#   make demo   create .venv, install the pinned stack, run the whole workflow on the demo corpus
#   make test   same stack + test tools, run the whole test suite (what CI runs)
# Both are idempotent: a stamp file records what was installed from which requirement files.
# `make help` lists every target: the `## ` comment after a target's prerequisites describes it.

PYTHON ?= python3
VENV   ?= .venv
PIP     = $(VENV)/bin/pip
PY      = $(VENV)/bin/python
SNAKE   = $(VENV)/bin/snakemake
CORES  ?= 2
# Rules call the `avemo` CLI: put the venv first on PATH for Snakemake and its jobs.
export PATH := $(abspath $(VENV))/bin:$(PATH)

STAMP   = $(VENV)/.avemo-installed
FSTAMP  = $(VENV)/.avemo-test-tools-installed
TSTAMP  = $(VENV)/.avemo-test-installed

.PHONY: help setup demo test test-fast lint readme-table bench bench-demo bench-tests bench-scale planted dry-run clean pull adopt dvc-yaml weights gpu-check

$(STAMP): requirements.txt requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torchaudio 2.9 needs the torch 2.9.1 stack: torch + torchvision first, then torchaudio.
	$(PIP) install -c requirements.lock torch==2.9.1 torchvision==0.24.1
	$(PIP) install -c requirements.lock torch==2.9.1 torchaudio==2.9.1
	$(PIP) install -c requirements.lock -r requirements.txt
	$(PIP) install --no-deps -e .
	touch $@

# The test tools (pip only: what `make test-fast` needs).
$(FSTAMP): $(STAMP) requirements-test.txt
	$(PIP) install -c requirements.lock -r requirements-test.txt
	touch $@

# The error-browser test drives Debian's headless Chromium: installed here when missing (root
# only; otherwise tests/headless_chromium.py tries again and the test is skipped with the reason).
$(TSTAMP): $(FSTAMP)
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver || \
	    echo "apt-get could not install chromium: the error-browser test will be skipped"; \
	  else echo "chromium missing and not root: the error-browser test will be skipped"; fi; \
	fi
	touch $@

help:  ## this list
	@awk -F':' '/^[a-zA-Z][a-zA-Z0-9_-]*:([^=]|$$)/ { \
	  d = ""; if (match($$0, /## .*/)) d = substr($$0, RSTART + 3); \
	  printf "  make %-13s %s\n", $$1, d }' $(MAKEFILE_LIST)

setup: $(STAMP)  ## create .venv and install the pinned stack (demo and test do it too)

demo: $(STAMP)  ## the whole workflow on the demo corpus -> results/report/report.html
	$(SNAKE) --profile workflow/profiles/default --cores $(CORES)

dry-run: $(STAMP)  ## show the jobs a run would do
	$(SNAKE) --profile workflow/profiles/default -n

test: $(TSTAMP)  ## the full test suite: unit + workflow, DVC, SLURM, browser (what CI runs)
	$(PY) -m pytest -q

# The unit tests only: pip-installed tools, no apt-get, no workflow run, no cluster; tests
# marked slow wait for `make test`.
test-fast: $(FSTAMP)  ## the unit tests only (a couple of minutes; no system packages, no services)
	$(PY) -m pytest tests/unit -q -m "not slow"

# dvc.yaml is generated from the Snakemake DAG of config.yaml (avemo.dvcgen); CI (make test)
# fails when the committed file differs from a fresh generation.
# OVERLAY=workflow/presets/meld.yaml: the pipeline of config.yaml + that overlay instead, written
# to workflow/presets/meld/dvc.yaml (docs/dvc.md, "dvc.yaml for an overlay").
OVERLAY ?=
dvc-yaml: $(STAMP)  ## regenerate dvc.yaml from the Snakemake DAG (commit it)
	$(PY) -m avemo.dvcgen $(foreach o,$(OVERLAY),--overlay $(o))

lint: $(FSTAMP)  ## ruff check
	$(VENV)/bin/ruff check .

bench: $(STAMP)  ## frames, audio, training, fusion benchmarks -> docs/benchmarks.md
	$(PY) benchmarks/run.py

# Generation, data stages and one epoch per model at 1x, 4x, 16x the demo and at MELD's size
# (synthetic.preset meld_scale), plus a few clips at 1280x720; each size in its own folder under
# results/bench-scale/; writes its section of docs/benchmarks.md.
# SIZES="1x 4x" for a quick run (the other sizes keep their last figures).
SIZES ?= 1x 4x 16x meld_scale hd720 hd96
bench-scale: $(STAMP)  ## data stages and one epoch at 1x-16x the demo and MELD size
	$(PY) benchmarks/scale.py --cores $(CORES) --sizes $(SIZES)

# The README's demo from an empty working folder (results/bench-demo/): wall time, job time and
# peak RSS per stage; writes its section of docs/benchmarks.md.
bench-demo: $(STAMP)  ## time the demo from an empty folder -> docs/benchmarks.md
	$(PY) benchmarks/demo.py --cores $(CORES)

# The README's test command once, timed: wall time, CPU time, time per test file
# and the slowest tests; writes its section of docs/benchmarks.md.
bench-tests: $(TSTAMP)  ## time the test suite -> docs/benchmarks.md
	$(PY) benchmarks/suite.py

# On the login node (it has internet; compute nodes often have none), before the first GPU job
# is queued: VGG-16's ImageNet weights into the torch hub cache the jobs read (docs/gpu.md).
weights: $(STAMP)  ## ImageNet weights into the torch hub cache (login node, before GPU jobs)
	$(PY) -m avemo.models.vgg_backbone

# On a GPU node: VGG-16 at 224 px for one epoch on a MELD-sized generated frame set, twice
# (images/s, peak memory, AMP dtype, bit-identical?); writes its section of docs/benchmarks.md.
gpu-check: $(STAMP)  ## the CUDA training path, measured on a GPU node -> docs/benchmarks.md
	$(PY) benchmarks/gpu_check.py

# The README's headline table, from the report that `make demo` wrote (results/report/tables/).
readme-table: $(STAMP)  ## write the README's headline table from the demo's report
	$(PY) benchmarks/readme_table.py

# The simulation study: the frozen diagnosis protocol in every planted world (event, spread,
# event at the clip's start / end, event lengths free of the dense count, a mouth_motion sweep)
# on a corpus seed and 5 training seeds derived from the protocol's hash; writes
# docs/planted.md, fails when a world does not give the verdict it implies. A smoke run of the
# same code: .venv/bin/python benchmarks/planted.py --smoke (tiny preset, results/planted-smoke).
planted: $(STAMP)  ## does the diagnosis recover planted causes -> docs/planted.md
	$(PY) benchmarks/planted.py --cores $(CORES)

# DVC restores file contents, not mtimes, and Snakemake 9 always compares mtimes: after `dvc pull`
# (or dvc checkout / dvc exp apply) record the restored artefacts as up to date, but only when
# `dvc status` vouches that they match config.yaml and the code. OVERLAY=...: the overlay's
# pipeline and config instead (docs/dvc.md, "dvc.yaml for an overlay").
PIPELINE = $(if $(OVERLAY),$(basename $(lastword $(OVERLAY)))/dvc.yaml,dvc.yaml)
pull: $(STAMP)  ## dvc pull, then mark the pulled artefacts up to date
	$(VENV)/bin/dvc pull $(PIPELINE)
	$(MAKE) adopt

adopt: $(STAMP)  ## mark artefacts restored by DVC as up to date
	@$(VENV)/bin/dvc status --quiet $(PIPELINE) || { echo "dvc status: workspace differs from $(patsubst %.yaml,%.lock,$(PIPELINE)); run dvc repro or make demo" >&2; exit 1; }
	$(SNAKE) --profile workflow/profiles/default $(if $(OVERLAY),--configfile $(OVERLAY)) --touch --forceall --quiet

clean:  ## remove results/ and .snakemake/
	rm -rf results .snakemake
