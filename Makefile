# Two commands do all the set-up (see README):
#   make demo   create .venv, install the pinned stack, run the whole workflow on the demo corpus
#   make test   same stack + test tools, run the whole test suite
# Both are idempotent: a stamp file records what was installed from which requirement files.

PYTHON ?= python3
VENV   ?= .venv
PIP     = $(VENV)/bin/pip
PY      = $(VENV)/bin/python
SNAKE   = $(VENV)/bin/snakemake
CORES  ?= 2
# Rules call the `avemo` CLI: put the venv first on PATH for Snakemake and its jobs.
export PATH := $(abspath $(VENV))/bin:$(PATH)

STAMP   = $(VENV)/.avemo-installed
TSTAMP  = $(VENV)/.avemo-test-installed

.PHONY: setup demo test lint bench bench-demo bench-tests bench-scale planted dry-run clean pull adopt dvc-yaml

$(STAMP): requirements.txt requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torchaudio 2.9 needs the torch 2.9.1 stack: torch + torchvision first, then torchaudio.
	$(PIP) install -c requirements.lock torch==2.9.1 torchvision==0.24.1
	$(PIP) install -c requirements.lock torch==2.9.1 torchaudio==2.9.1
	$(PIP) install -c requirements.lock -r requirements.txt
	$(PIP) install --no-deps -e .
	touch $@

# The error-browser test drives Debian's headless Chromium: installed here when missing (root
# only; otherwise tests/headless_chromium.py tries again and the test is skipped with the reason).
$(TSTAMP): $(STAMP) requirements-test.txt
	$(PIP) install -c requirements.lock -r requirements-test.txt
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver || \
	    echo "apt-get could not install chromium: the error-browser test will be skipped"; \
	  else echo "chromium missing and not root: the error-browser test will be skipped"; fi; \
	fi
	touch $@

setup: $(STAMP)

demo: $(STAMP)
	$(SNAKE) --profile workflow/profiles/default --cores $(CORES)

dry-run: $(STAMP)
	$(SNAKE) --profile workflow/profiles/default -n

test: $(TSTAMP)
	$(PY) -m pytest -q

# dvc.yaml is generated from the Snakemake DAG of config.yaml (avemo.dvcgen); CI (make test)
# fails when the committed file differs from a fresh generation.
# OVERLAY=workflow/presets/meld.yaml: the pipeline of config.yaml + that overlay instead, written
# to workflow/presets/meld/dvc.yaml (docs/dvc.md, "dvc.yaml for an overlay").
OVERLAY ?=
dvc-yaml: $(STAMP)
	$(PY) -m avemo.dvcgen $(foreach o,$(OVERLAY),--overlay $(o))

lint: $(TSTAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) benchmarks/run.py

# Generation, data stages and one epoch per model at 1x, 4x, 16x the demo and at MELD's size
# (synthetic.preset meld_scale), plus a few clips at 1280x720; each size in its own folder under
# results/bench-scale/; writes its section of docs/benchmarks.md (targets: met or MISSED).
# SIZES="1x 4x" for a quick run (the other sizes keep their last figures).
SIZES ?= 1x 4x 16x meld_scale hd720 hd96
bench-scale: $(STAMP)
	$(PY) benchmarks/scale.py --cores $(CORES) --sizes $(SIZES)

# The README's demo from an empty working folder (results/bench-demo/): wall time, job time and
# peak RSS per stage; writes its section of docs/benchmarks.md (target: 5 min on 2 cores).
bench-demo: $(STAMP)
	$(PY) benchmarks/demo.py --cores $(CORES)

# The README's test command once, timed: wall time (target 8 min on 2 cores), time per test file
# and the slowest tests; writes its section of docs/benchmarks.md.
bench-tests: $(TSTAMP)
	$(PY) benchmarks/suite.py

# The simulation check: the demo corpus with each planted cue (event, spread), 3 seeds, the
# fusion diagnosis; writes docs/planted.md (planted vs recovered), fails when a check fails.
planted: $(STAMP)
	$(PY) benchmarks/planted.py --cores $(CORES)

# DVC restores file contents, not mtimes, and Snakemake 9 always compares mtimes: after `dvc pull`
# (or dvc checkout / dvc exp apply) record the restored artefacts as up to date, but only when
# `dvc status` vouches that they match config.yaml and the code.
pull: $(STAMP)
	$(VENV)/bin/dvc pull
	$(MAKE) adopt

adopt: $(STAMP)
	@$(VENV)/bin/dvc status --quiet || { echo "dvc status: workspace differs from dvc.lock; run dvc repro or make demo" >&2; exit 1; }
	$(SNAKE) --profile workflow/profiles/default --touch --forceall --quiet

clean:
	rm -rf results .snakemake
