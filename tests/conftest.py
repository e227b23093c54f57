"""Shared fixtures: the repository root, and running the real workflow on a tiny config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool_env() -> dict[str, str]:
    """Environment whose PATH finds this interpreter's `avemo` and `snakemake`."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def deep_update(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


TINY: dict[str, Any] = {
    "synthetic": {"preset": "tiny", "width": 48, "height": 48},
    "frames": {"size": 32},
    "audio": {"egemaps": True},
    "train": {
        "seeds": [0],
        "engine": {"epochs": 2, "patience": 0},
        "models": {"video_branch": {"engine": {"epochs": 2}}},
    },
    "evaluation": {"n_resamples": 200},
    # The fusion diagnosis (13 more fusion runs + cross-fitting) runs in the main tiny workflow
    # test only (tests/workflow/test_workflow_tiny.py).
    "fusion": {"diagnosis": False},
}


def write_config(workdir: Path, overrides: dict[str, Any] | None = None) -> Path:
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    deep_update(cfg, TINY)
    deep_update(cfg, overrides or {})
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """Run the real workflow (this repository's Snakefile) with `workdir` as working directory."""
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--profile", str(REPO / "workflow" / "profiles" / "default"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=tool_env())


@pytest.fixture
def repo() -> Path:
    return REPO


def overfit_losses(model: Any, batch: dict[str, Any], lr: float, steps: int = 40) -> list[float]:
    """Train ``model`` on one batch with both heads' cross-entropy; the loss per step."""
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        out = model(batch)
        loss = torch.nn.functional.cross_entropy(out["emotion"], batch["emotion"])
        loss = loss + torch.nn.functional.cross_entropy(out["sentiment"], batch["sentiment"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
