"""Adding a model is one module + one registry entry + its config block: nothing else.

A copy of the project gets a toy audio model (its module and one `register(...)` line), a
config block naming it, and nothing more; the real workflow then trains and scores it, and
`make dvc-yaml` gives it its own stages.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from conftest import seed_data_stages
from dvc_helpers import make_project, resolved_stages, run

TOY = '''"""A toy audio model: one linear layer on the utterance vector, the shared dual head."""

from torch import nn

from avemo.models.heads import DualHead


class Toy(nn.Module):
    input_kind = "audio_vec"

    def __init__(self, in_dim: int = 192, hidden: int = 16) -> None:
        super().__init__()
        self.body = nn.Linear(in_dim, hidden)
        self.head = DualHead(hidden, hidden, 0.0)

    def forward(self, batch):
        return self.head(self.body(batch["x"]))
'''
ENTRY = '''
register(ModelEntry("toy", "audio", "avemo.models.toy:Toy", "a toy linear audio model",
                    input_kind="audio_vec", defaults={"features": "utterance"}))
'''


@pytest.mark.slow
def test_a_registered_toy_model_runs_through_the_workflow(tmp_path: Path, tiny_run: Path) -> None:
    repo = make_project(tmp_path / "repo", overrides={"train": {"seeds": [0]}})
    # The corpus, frames and audio of the session's tiny run (same data settings; the data
    # stages do not import the registry): the models are trained here.
    seed_data_stages(tiny_run, repo)
    (repo / "src" / "avemo" / "models" / "toy.py").write_text(TOY)
    with open(repo / "src" / "avemo" / "registry.py", "a") as fh:
        fh.write(ENTRY)
    cfg_path = repo / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["train"]["models"] = {"video_branch": cfg["train"]["models"]["video_branch"],
                              "toy": {"params": {"hidden": 8}}}
    cfg["fusion"]["models"] = {"late": {"visual": "video_branch", "audio": "toy"}}
    cfg["fusion"]["single_task"] = None
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))

    run(repo, sys.executable, "-m", "avemo.dvcgen")
    stages = resolved_stages(repo)
    assert {"train_audio-toy@0", "evaluate-toy", "late_fusion-late@0"} <= set(stages)
    assert "src/avemo/models/toy.py" in stages["train_audio-toy@0"]["deps"]
    assert "src/avemo/models/toy.py" not in stages["train_visual-video_branch@0"]["deps"]

    proc = run(repo, str(Path(sys.executable).parent / "snakemake"), "--profile",
               "workflow/profiles/default", "results/metrics/toy.json", "results/metrics/late.json")
    ran = set(re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, flags=re.M))
    assert {"train_audio", "train_visual", "late_fusion", "evaluate"} <= ran, ran
    metrics = json.loads((repo / "results" / "metrics" / "toy.json").read_text())
    f1 = metrics["aggregate"]["test"]["emotion"]["weighted_f1"]["mean"]
    assert 0.0 <= f1 <= 1.0
    summary = json.loads((repo / "results/models/toy/seed0/summary.json").read_text())
    assert summary["model"] == "toy"
