"""Everything the model sections read: metrics JSONs, compare.json, summaries, training logs.

The report reads only the files its rule declares, given as one mapping (``INPUT_KEYS``)::

    {"manifests": {split: path}, "manifest_qc": path, "qc": path,
     "metrics": {name: path},                   # every metrics JSON read (``ReportModels.all``)
     "compare": path | None,                    # compare.json (required when pairs are tested)
     "summaries": {model: {seed: path}},        # summary.json per trained seed
     "training_logs": {model: {seed: {metric: path}}},  # DVCLive epoch histories (live/plots/
                                                # metrics/*.tsv; late fusion, baselines: none)
     "benchmarks": path,                        # the benchmark folder (provenance timings)
     "predictions": {name: {seed: {split: path}}},  # dev/test predictions (per-example table)
     "frames": {set: {split: path}},            # frame stores (the error browser's thumbnails)
     "corpus": [path],                          # the clips (browser audio, via manifest paths)
     "speech": {split: path},                   # speech share per clip (avemo.audio.speech_share)
     "protocol": path,                          # the diagnosis protocol (verdict rule, hash)
     "planted": path | None,                    # what it detected on planted worlds
                                                # (avemo.evaluation.sensitivity)
     "flags": [path]}                           # stage JSONs with a "flags" list (late.json)

Which models the report covers comes from ``ReportModels`` (built from config by
``spec.report_params``). A group with no configured model is "not configured"; a configured
model whose metrics file is not given is an error naming the model, a given file that is missing
an error naming the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DataStageError
from ..evaluation.compare import read_metrics, select_best
from ..evaluation.refs import variant_name

PathLike = str | os.PathLike[str]
ABLATIONS: tuple[str, ...] = ("no_audio", "no_video")  # metrics/<model>@<ablation>.json
INPUT_KEYS: tuple[str, ...] = (
    "manifests", "manifest_qc", "qc", "metrics", "compare", "summaries", "training_logs",
    "benchmarks", "predictions", "frames", "corpus", "protocol", "flags", "speech", "planted",
)
# Keys a caller may leave out (read as empty): what stages skipped (avemo.report.flags), the
# planted check's record.
OPTIONAL_KEYS: tuple[str, ...] = ("flags", "planted")
# {model: {seed (str): path}}: per-seed files of a run (summary.json).
SeedFiles = Mapping[str, Mapping[str, PathLike]]
# {model: {seed (str): {metric: path}}}: a run's DVCLive epoch histories.
CurveFiles = Mapping[str, Mapping[str, Mapping[str, PathLike]]]


def read_epoch_log(curves: Mapping[str, PathLike]) -> pd.DataFrame:
    """One row per epoch (``epoch`` + one column per metric) from DVCLive's per-metric history
    files (``{metric: path}``, step = epoch), the engine's epoch log (avemo.training.live)."""
    frames = []
    for metric, path in curves.items():
        if not Path(path).is_file():
            raise DataStageError(f"report input {path} does not exist: rerun its training job")
        frames.append(pd.read_csv(path, sep="\t", index_col="step")[[metric]])
    return pd.concat(frames, axis=1).rename_axis("epoch").reset_index()


@dataclass
class ReportModels:
    """The configured models, by group (config order), and their variants."""

    visual: list[str] = field(default_factory=list)
    audio: list[str] = field(default_factory=list)
    fusion: list[str] = field(default_factory=list)
    diagnosis: list[str] = field(default_factory=list)  # avemo.diagnosis variants (own section)
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
        unknown = set(groups) - {"visual", "audio", "fusion", "diagnosis"}
        if unknown:
            raise DataStageError(f"unknown report model groups {sorted(unknown)}")
        return cls(
            visual=list(groups.get("visual", [])),
            audio=list(groups.get("audio", [])),
            fusion=list(groups.get("fusion", [])),
            diagnosis=list(groups.get("diagnosis", [])),
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
            *self.diagnosis,
            *self.variants,
            *self.ablation_names,
            *self.baselines,
        ]


@dataclass
class ReportInputs:
    models: ReportModels
    metrics: dict[str, dict[str, Any]]
    compare: dict[str, Any] | None
    best: dict[str, dict[str, Any] | None]  # group -> select_best(...) (dev only)
    summary_files: SeedFiles = field(default_factory=dict)
    log_files: CurveFiles = field(default_factory=dict)

    def seeds(self, name: str) -> list[str]:
        return sorted(self.metrics[name]["seeds"], key=int)

    def _given(self, files: SeedFiles, name: str) -> dict[str, Path]:
        """``{seed: path}`` of ``name``'s evaluated seeds among the given files."""
        per_seed = {str(s): Path(p) for s, p in files.get(name, {}).items()}
        out = {s: per_seed[s] for s in self.seeds(name) if s in per_seed}
        for path in out.values():
            if not path.is_file():
                raise DataStageError(f"report input {path} does not exist: rerun its job")
        return out

    def summaries(self, name: str) -> dict[str, dict[str, Any]]:
        """``{seed: summary.json}`` for the seeds that have one."""
        return {
            seed: json.loads(path.read_text(encoding="utf-8"))
            for seed, path in self._given(self.summary_files, name).items()
        }

    def logs(self, name: str) -> dict[str, pd.DataFrame]:
        """``{seed: epoch log}`` (:func:`read_epoch_log`) for the seeds that have one (late
        fusion is not trained)."""
        given = {str(s): c for s, c in self.log_files.get(name, {}).items()}
        return {s: read_epoch_log(given[s]) for s in self.seeds(name) if s in given}

    def pair(self, a: str, b: str) -> dict[str, Any] | None:
        """The comparison of ``a`` with ``b`` from compare.json, oriented as a − b."""
        for entry in (self.compare or {}).get("pairs", []):
            if (entry["a"], entry["b"]) == (a, b):
                return entry
            if (entry["a"], entry["b"]) == (b, a):
                return _flip(entry)
        return None


    def effect(self, name: str, pair: tuple[str, str] | None) -> dict[str, Any] | None:
        """A diagnosis effect from compare.json: its pair (oriented as a − b) or, for a
        contrast over several models, the contrast named ``name``."""
        if pair is not None:
            return self.pair(*pair)
        return next((e for e in (self.compare or {}).get("contrasts", []) if e["name"] == name),
                    None)


def _flip(entry: dict[str, Any]) -> dict[str, Any]:
    def flip_sim(sim: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if not sim else {**sim, "low": -sim["high"], "high": -sim["low"]}

    def flip_test(t: dict[str, Any]) -> dict[str, Any]:
        out = {
            **t,
            "a": t["b"],
            "b": t["a"],
            "delta": -t["delta"],
            "ci_low": -t["ci_high"],
            "ci_high": -t["ci_low"],
        }
        if "simultaneous" in t:
            out["simultaneous"] = flip_sim(t["simultaneous"])
        return out

    tests = {
        task: {m: flip_test(t) for m, t in block.items()} for task, block in entry["tests"].items()
    }
    flipped = {**entry, "a": entry["b"], "b": entry["a"], "spec": entry["spec"][::-1],
               "tests": tests}
    if "simultaneous" in entry:
        flipped["simultaneous"] = flip_sim(entry["simultaneous"])
    return flipped


def check_keys(inputs: Mapping[str, Any]) -> None:
    """The report's inputs mapping holds exactly ``INPUT_KEYS`` (``OPTIONAL_KEYS`` may be
    left out)."""
    missing = [k for k in INPUT_KEYS if k not in inputs and k not in OPTIONAL_KEYS]
    unknown = sorted(set(inputs) - set(INPUT_KEYS))
    if missing or unknown:
        raise DataStageError(
            f"report inputs: missing keys {missing}, unknown keys {unknown}; expected exactly "
            f"{list(INPUT_KEYS)} (fix the report rule)"
        )


def load_inputs(inputs: Mapping[str, Any], models: ReportModels, compare: bool) -> ReportInputs:
    """Read every configured model's metrics (error naming a model without a given file, or a
    given file that is missing) and compare.json (required when ``compare``); select the best
    model of each group on dev. ``inputs``: the report's inputs mapping (module docstring)."""
    files: Mapping[str, PathLike] = inputs.get("metrics") or {}
    lacking = [m for m in models.all if m not in files]
    if lacking:
        raise DataStageError(
            f"no metrics file given to the report for configured model(s) {lacking}: the report "
            "rule must list metrics/<name>.json of every configured model and variant (or "
            "remove the model from config.yaml)"
        )
    metrics = {m: read_metrics(files[m]) for m in models.all}
    cmp, path = None, None
    if compare:
        if inputs.get("compare") is None:
            raise DataStageError(
                "no comparison file given to the report although paired tests are configured: "
                "the report rule must list metrics/compare.json"
            )
        path = Path(inputs["compare"])
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
                f"{path} chose {chosen['model']} as best {group} "
                f"but the metrics files say {mine['model']}: rerun the compare stage"
            )
    return ReportInputs(
        models=models,
        metrics=metrics,
        compare=cmp,
        best=best,
        summary_files=inputs.get("summaries") or {},
        log_files=inputs.get("training_logs") or {},
    )
