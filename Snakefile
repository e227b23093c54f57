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
from avemo.params import as_json, parent  # noqa: E402
from avemo.config import config_errors, config_hash  # noqa: E402
from avemo.labels import LABEL_FILES, SPLITS  # noqa: E402
from avemo.report import spec as RS  # noqa: E402


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

R = str(P.results(config))
CORPUS = str(P.corpus_root(config))
LOGS = f"{R}/logs"
BENCH = f"{R}/benchmarks"
CONFIG_HASH = config_hash(config)
FRAME_SETS = list(config["frames"]["sets"])
STUDY_SET = "study"


include: "workflow/rules/data.smk"
include: "workflow/rules/frames.smk"
include: "workflow/rules/audio.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/fusion.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        f"{R}/report/report.md",
