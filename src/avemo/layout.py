"""The one owner of every path under ``results_dir`` (docs/formats.md describes the files).

Rules take their inputs and outputs from here, the CLI receives every path from its rule, and
tests and the dvc.yaml generator ask here too: nothing else spells a results path. Methods
accept wildcard patterns (``"{model}"``, ``"{seed}"``) as well as values, so rules and concrete
lookups share one spelling. No output file records an absolute path (metrics name no files; the
manifest stores clip paths relative to itself), so the same run in two folders is
byte-identical.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import registry
from .labels import SPLITS

PREDICTION_SPLITS = ("dev", "test")
# Where each kind's runs go: per-stream models and baselines under models/, fusion under fusion/.
RUN_GROUP = {"visual": "models", "audio": "models", "baseline": "models",
             "early_fusion": "fusion", "late_fusion": "fusion"}
BASELINE_SEED = 0  # baselines are deterministic given the train split: one run
# A trained run's epoch log: DVCLive's folder (avemo.training.live) with one history file per
# metric the engine logs each epoch, named as DVCLive names them, and the last epoch's summary.
LIVE_DIR = "live"
EPOCH_METRICS = ("train_loss", "dev_loss", "dev_emotion_wf1", "dev_sentiment_wf1", "lr",
                 "seconds")


def live_curves(live_dir: str | os.PathLike[str]) -> dict[str, str]:
    """``{metric: path}`` of a DVCLive folder's epoch histories, ``plots/metrics/{metric}.tsv``
    (DVCLive's naming; a unit test holds it to what DVCLive writes)."""
    return {m: os.path.join(live_dir, "plots", "metrics", f"{m}.tsv") for m in EPOCH_METRICS}


def embeddings_name(split: str, frame_set: str | None = None) -> str:
    """A stream model's embeddings file: ``embeddings_{split}[@{frame_set}].npz``."""
    return f"embeddings_{split}{f'@{frame_set}' if frame_set else ''}.npz"


@dataclass(frozen=True)
class Layout:
    root: str  # results_dir as configured (relative to the working directory, or absolute)

    def _p(self, *parts: object) -> str:
        return os.path.join(self.root, *map(str, parts))

    # -- raw corpus, manifest, QC --------------------------------------------------------------
    def synthetic_corpus(self) -> str:
        return self._p("data", "synthetic")

    def manifest(self, split: str) -> str:
        return self._p("manifest", f"{split}.parquet")

    def manifests(self) -> dict[str, str]:
        return {s: self.manifest(s) for s in SPLITS}

    def manifest_qc(self) -> str:
        return self._p("manifest", "qc.csv")

    def qc_clips(self) -> str:
        return self._p("qc", "clips.csv")

    # -- data stages ---------------------------------------------------------------------------
    def frames(self, frame_set: str, split: str) -> str:
        return self._p("frames", frame_set, split)

    def audio(self, split: str) -> str:
        return self._p("audio", split)

    def speech(self, split: str) -> str:
        """Per clip: speech share and activity-speech co-variation (avemo.audio.speech_share)."""
        return self._p("speech", f"{split}.parquet")

    # -- model runs ----------------------------------------------------------------------------
    def run_dir(self, model: str, seed: object, group: str | None = None) -> str:
        """``models|fusion/{model}/seed{n}``; ``group`` given for wildcard patterns."""
        if group is None:
            group = RUN_GROUP[registry.get(model).kind]
        return self._p(group, model, f"seed{seed}")

    def run_file(self, model: str, seed: object, name: str, group: str | None = None) -> str:
        return os.path.join(self.run_dir(model, seed, group), name)

    def predictions(self, model: str, seed: object, split: str,
                    group: str | None = None) -> str:
        """``split``: dev, test, or a test ablation ``test_no_audio`` / ``test_no_video``."""
        return self.run_file(model, seed, f"predictions_{split}.parquet", group)

    def summary(self, model: str, seed: object, group: str | None = None) -> str:
        return self.run_file(model, seed, "summary.json", group)

    def checkpoint(self, model: str, seed: object, which: str, group: str | None = None) -> str:
        """``best.pt`` (selected on dev) or ``last.pt`` (resume point) of a trained run."""
        return self.run_file(model, seed, f"{which}.pt", group)

    def training_live(self, model: str, seed: object, group: str | None = None) -> str:
        """The run's DVCLive folder (written by the engine, avemo.training.live)."""
        return self.run_file(model, seed, LIVE_DIR, group)

    def training_summary(self, model: str, seed: object, group: str | None = None) -> str:
        """DVCLive's ``metrics.json``: the last epoch's metrics and step (a DVC metric)."""
        return os.path.join(self.training_live(model, seed, group), "metrics.json")

    def training_curves(self, model: str, seed: object,
                        group: str | None = None) -> dict[str, str]:
        """``{metric: DVCLive history file}`` of every epoch metric (:func:`live_curves`)."""
        return live_curves(self.training_live(model, seed, group))

    def embeddings(self, model: str, seed: object, split: str, frame_set: str | None = None,
                   group: str | None = None) -> str:
        """A stream model's exported embeddings of ``split`` (visual: on ``frame_set``)."""
        return self.run_file(model, seed, embeddings_name(split, frame_set), group)

    # -- cross-fitting (out-of-fold train embeddings of the video model, avemo.training.crossfit)
    def crossfit_dir(self, model: str, seed: object) -> str:
        return self._p("crossfit", model, f"seed{seed}")

    def crossfit_embeddings(self, model: str, seed: object, frame_set: str) -> str:
        return os.path.join(self.crossfit_dir(model, seed), embeddings_name("train", frame_set))

    def crossfit_summary(self, model: str, seed: object) -> str:
        return os.path.join(self.crossfit_dir(model, seed), "summary.json")

    def late_json(self, model: str, seed: object, group: str | None = None) -> str:
        return self.run_file(model, seed, "late.json", group)

    # -- metrics and report --------------------------------------------------------------------
    def metrics(self, name: str) -> str:
        """``metrics/{name}.json`` (name: a model or a variant ``<model>@<variant>``)."""
        return self._p("metrics", f"{name}.json")

    def confusion(self, name: str) -> str:
        return self._p("metrics", f"{name}.confusion.csv")

    def compare(self) -> str:
        return self._p("metrics", "compare.json")

    def report_file(self, name: str) -> str:
        return self._p("report", name)

    def report_flags(self) -> str:
        """What was skipped and why (avemo.report.flags), one of the report's tables."""
        return os.path.join(self.report_file("tables"), "flags.csv")

    # -- bookkeeping (not artefacts: not versioned by DVC) ---------------------------------------
    def log(self, job: str) -> str:
        return self._p("logs", f"{job}.log")

    def benchmark(self, job: str) -> str:
        return self._p("benchmarks", f"{job}.tsv")

    def benchmarks_dir(self) -> str:
        return self._p("benchmarks")
