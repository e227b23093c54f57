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

from avemo import codedeps as C  # noqa: E402
from avemo import params as P  # noqa: E402
from avemo import registry  # noqa: E402
from avemo.config import config_errors, config_hash  # noqa: E402
from avemo.labels import SPLITS  # noqa: E402
from avemo.workflow_glue import code, hashed, inputs, job_params, out_dir, paths_json  # noqa: E402


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


# A readable list of every problem first (key, value, fix), then snakemake's own validation,
# which also fills in the schema's defaults.
_problems = config_errors(config)
if _problems:
    raise WorkflowError(
        "config.yaml is invalid:\n" + "\n".join(f"  - {p}" for p in _problems)
    )
validate(config, "workflow/schemas/config.schema.yaml")

L = P.layout(config)
SEEDS = config["train"]["seeds"]


include: "workflow/rules/data.smk"
include: "workflow/rules/frames.smk"
include: "workflow/rules/audio.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/fusion.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        L.report_file("report.md"),
