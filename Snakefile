# avemo: audio-visual emotion recognition on MELD, rebuilt end to end.
#   snakemake --profile workflow/profiles/default            (local)
#   snakemake --profile workflow/profiles/slurm              (SLURM cluster)
# Every rule is thin: it calls `avemo <stage>` with paths and the stage's params.
import os
import re
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from avemo import params as P  # noqa: E402
from avemo import pretrained  # noqa: E402
from avemo import registry  # noqa: E402
from avemo import run_guard  # noqa: E402
from avemo.labels import SPLITS  # noqa: E402
from avemo.layout import BASELINE_SEED  # noqa: E402
from avemo.workflow_glue import (  # noqa: E402
    all_outputs,
    code,
    hashed,
    inputs,
    job_params,
    out_dir,
    paths_json,
)


# Before `configfile:`: config.yaml, each --configfile overlay and --config are checked here, so
# a YAML or schema problem names its file and line; results_dir is checked too, and jobs find
# this interpreter's `avemo` even when snakemake was started by its full path (run_guard).
run_guard.before_config(workflow, "config.yaml")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


# Snakemake's own validation fills in the schema's defaults (run_guard reported any problem).
validate(config, "workflow/schemas/config.schema.yaml")


onstart:
    # Main process of a real run only (not dry-runs, not jobs re-running snakemake on a node):
    # lock results_dir until snakemake exits, remove temp files that killed jobs left.
    run_guard.on_start(config)
    # Pretrained weights into the torch hub cache here, on the submitting (login) node, before
    # any job is queued on compute nodes that may be offline; a no-op when no model wants them.
    with run_guard.snakemake_errors():
        pretrained.prefetch(config)


onerror:
    # A job failed: if the results disk is full, say so here (the job's log is on that disk).
    run_guard.on_error(config)


L = P.layout(config)


include: "workflow/rules/data.smk"
include: "workflow/rules/frames.smk"
include: "workflow/rules/audio.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/fusion.smk"
include: "workflow/rules/report.smk"


# Every output of every job, the report among them: Snakemake rebuilds a deleted intermediate
# file only when it is a target.
rule all:
    default_target: True
    input:
        all_outputs(rules, config),
