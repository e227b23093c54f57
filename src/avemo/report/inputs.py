"""Everything the model sections read: metrics JSONs, compare.json, summaries, training logs.

Which models the report covers comes from ``ReportModels`` (built from config by
``spec.report_params``). A group with no configured model is "not configured"; a configured
model whose metrics file is missing is an error naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DataStageError
from ..evaluation.compare import base_model, read_metrics, select_best, variant_name

ABLATIONS: tuple[str, ...] = ("no_audio", "no_video")  # metrics/<model>@<ablation>.json


@dataclass
class ReportModels:
    """The configured models, by group (config order), and their variants."""

    visual: list[str] = field(default_factory=list)
    audio: list[str] = field(default_factory=list)
    fusion: list[str] = field(default_factory=list)
    single_task: list[str] = field(default_factory=list)  # fusion models with a @single_task run
    ablations: list[str] = field(default_factory=list)  # fusion models with @no_audio/@no_video
    baselines: list[str] = field(default_factory=lambda: ["majority", "prior"])

    @classmethod
    def from_params(
        cls,
        groups: dict[str, list[str]] | None,
        single_task: list[str] | None,
        baselines: list[str] | None,
        ablations: list[str] | None = None,
    ) -> ReportModels:
        groups = groups or {}
        unknown = set(groups) - {"visual", "audio", "fusion"}
        if unknown:
            raise DataStageError(f"unknown report model groups {sorted(unknown)}")
        return cls(
            visual=list(groups.get("visual", [])),
            audio=list(groups.get("audio", [])),
            fusion=list(groups.get("fusion", [])),
            single_task=list(single_task or []),
            ablations=list(ablations or []),
            baselines=list(["majority", "prior"] if baselines is None else baselines),
        )

    def group(self, name: str) -> list[str]:
        return list(getattr(self, name))

    @property
    def groups(self) -> dict[str, list[str]]:
        return {"visual": self.visual, "audio": self.audio, "fusion": self.fusion}

    @property
    def variants(self) -> list[str]:
        return [variant_name(m, "single_task") for m in self.single_task]

    @property
    def ablation_names(self) -> list[str]:
        return [variant_name(m, a) for m in self.ablations for a in ABLATIONS]

    @property
    def all(self) -> list[str]:
        """Every name whose ``metrics/<name>.json`` the report reads."""
        return [
            *self.visual,
            *self.audio,
            *self.fusion,
            *self.variants,
            *self.ablation_names,
            *self.baselines,
        ]


@dataclass
class ReportInputs:
    results: Path
    models: ReportModels
    metrics: dict[str, dict[str, Any]]
    compare: dict[str, Any] | None
    best: dict[str, dict[str, Any] | None]  # group -> select_best(...) (dev only)

    def model_dir(self, name: str) -> Path:
        """``fusion/<name>`` for fusion models and their variants, else ``models/<name>``."""
        top = "fusion" if base_model(name) in self.models.fusion else "models"
        return self.results / top / name

    def seeds(self, name: str) -> list[str]:
        return sorted(self.metrics[name]["seeds"], key=int)

    def summaries(self, name: str) -> dict[str, dict[str, Any]]:
        """``{seed: summary.json}`` for the seeds that have one."""
        out = {}
        for seed in self.seeds(name):
            path = self.model_dir(name) / f"seed{seed}" / "summary.json"
            if path.is_file():
                out[seed] = json.loads(path.read_text(encoding="utf-8"))
        return out

    def logs(self, name: str) -> dict[str, pd.DataFrame]:
        """``{seed: log.csv}`` for the seeds that have one (late fusion is not trained)."""
        out = {}
        for seed in self.seeds(name):
            path = self.model_dir(name) / f"seed{seed}" / "log.csv"
            if path.is_file():
                out[seed] = pd.read_csv(path)
        return out

    def pair(self, a: str, b: str) -> dict[str, Any] | None:
        """The comparison of ``a`` with ``b`` from compare.json, oriented as a − b."""
        for entry in (self.compare or {}).get("pairs", []):
            if (entry["a"], entry["b"]) == (a, b):
                return entry
            if (entry["a"], entry["b"]) == (b, a):
                return _flip(entry)
        return None


def _flip(entry: dict[str, Any]) -> dict[str, Any]:
    def flip_test(t: dict[str, float]) -> dict[str, float]:
        return {
            **t,
            "a": t["b"],
            "b": t["a"],
            "delta": -t["delta"],
            "ci_low": -t["ci_high"],
            "ci_high": -t["ci_low"],
        }

    tests = {
        task: {m: flip_test(t) for m, t in block.items()} for task, block in entry["tests"].items()
    }
    return {**entry, "a": entry["b"], "b": entry["a"], "spec": entry["spec"][::-1], "tests": tests}


def load_inputs(results: Path, models: ReportModels, compare: bool) -> ReportInputs:
    """Read every configured model's metrics (error naming a missing file) and compare.json
    (required when ``compare``); select the best model of each group on dev."""
    metrics = {m: read_metrics(results / "metrics" / f"{m}.json") for m in models.all}
    cmp = None
    if compare:
        path = results / "metrics" / "compare.json"
        if not path.is_file():
            raise DataStageError(
                f"comparison file {path} does not exist: run the compare stage (paired tests "
                "are configured)"
            )
        cmp = json.loads(path.read_text(encoding="utf-8"))
    best = {g: select_best({m: metrics[m] for m in models.group(g)}) for g in models.groups}
    best["single_stream"] = select_best({m: metrics[m] for m in [*models.visual, *models.audio]})
    # compare.json chose its best:* models from the same dev numbers; disagreement means one of
    # the two files is stale.
    for group, chosen in ((cmp or {}).get("selection") or {}).items():
        mine = best.get(group)
        if chosen and mine and chosen["model"] != mine["model"]:
            raise DataStageError(
                f"{results / 'metrics' / 'compare.json'} chose {chosen['model']} as best {group} "
                f"but the metrics files say {mine['model']}: rerun the compare stage"
            )
    return ReportInputs(results=results, models=models, metrics=metrics, compare=cmp, best=best)
