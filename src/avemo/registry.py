"""The model registry: the one owner of every model's name, kind, inputs and defaults.

Config validation, the workflow's rule expansion, the results layout, the report's grouping and
the generated dvc.yaml all ask this module; nothing tests a model's name to learn its kind.
Importing it is cheap (no torch): the Snakefile imports it at parse time, and a model's code is
imported only when the model is built (``ModelEntry.load``).

Adding a model: its module, one ``register(ModelEntry(...))`` line below, and its config block
(``train.models.<name>`` for streams, ``fusion.models.<name>`` for fusion).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from . import diagnosis
from .errors import ConfigError

# What a model is, which decides where its block lives in config.yaml, which rule trains it,
# where its results go and how the report groups it.
KINDS = ("visual", "audio", "early_fusion", "late_fusion", "baseline")
STREAM_KINDS = ("visual", "audio")
FUSION_KINDS = ("early_fusion", "late_fusion")
# The engine's dataset kinds (avemo.training.inputs.build_dataset).
INPUT_KINDS = ("frame", "frame_seq", "audio_vec", "audio_seq")
# What an early-fusion model reads (avemo.fusion.inputs): the video model's utterance
# embedding + the 192-D audio vector, or frame-aligned sequences of both.
FUSION_INPUTS = ("utterance", "aligned")
# Variants of a configured model that get their own runs and metrics: ``<model>@<variant>``.
SINGLE_TASK = "single_task"
ABLATIONS = ("no_audio", "no_video")


@dataclass(frozen=True)
class ModelEntry:
    """One model.

    ``factory``: ``"module:attribute"`` of its constructor (imported lazily).
    ``input_kind``: streams only, the engine's dataset kind.
    ``fusion_inputs``: early fusion only, what it reads.
    ``method``: late fusion only (``weighted`` | ``stacking``).
    ``embeds_clips``: a visual model whose per-clip/per-frame embeddings can feed early fusion
    (``fusion.video_model``).
    ``defaults``: its config block's defaults (the block overrides them).
    ``factors``: early fusion only, its levels of the diagnosis factors (avemo.diagnosis), from
    which its inputs and constructor follow (``fusion_entry``).
    ``diagnostic``: a diagnosis variant: runs when ``fusion.diagnosis`` is on, has no config
    block, and is reported in its own group.
    """

    name: str
    kind: str
    factory: str
    description: str
    input_kind: str | None = None
    fusion_inputs: str | None = None
    method: str | None = None
    embeds_clips: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict)
    factors: Mapping[str, str] = field(default_factory=dict)
    diagnostic: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind {self.kind!r} is not one of {KINDS}")
        if (self.kind in STREAM_KINDS) != (self.input_kind in INPUT_KINDS):
            raise ValueError(f"{self.name}: stream models (only) need an input_kind")
        if (self.kind == "early_fusion") != (self.fusion_inputs in FUSION_INPUTS):
            raise ValueError(f"{self.name}: early-fusion models (only) need fusion_inputs")
        if (self.kind == "late_fusion") != (self.method is not None):
            raise ValueError(f"{self.name}: late-fusion models (only) need a method")
        if (self.kind == "early_fusion") != bool(self.factors):
            raise ValueError(f"{self.name}: early-fusion models (only) need factors")
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        object.__setattr__(self, "factors", MappingProxyType(dict(self.factors)))

    @property
    def config_section(self) -> str | None:
        """Where its block lives in config.yaml (baselines and diagnosis variants have none:
        they run as a whole)."""
        if self.diagnostic:
            return None
        if self.kind in STREAM_KINDS:
            return "train.models"
        if self.kind in FUSION_KINDS:
            return "fusion.models"
        return None

    @property
    def group(self) -> str:
        """The report's group: visual, audio, fusion, diagnosis or baseline."""
        if self.diagnostic:
            return "diagnosis"
        return "fusion" if self.kind in FUSION_KINDS else self.kind

    def load(self) -> Any:
        module, _, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module), attr)


MODELS: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    if entry.name in MODELS:
        raise ValueError(f"model {entry.name!r} is registered twice")
    if "@" in entry.name or not entry.name.isidentifier():
        raise ValueError(f"model name {entry.name!r}: use letters, digits and _ only")
    MODELS[entry.name] = entry
    return entry


def get(name: str) -> ModelEntry:
    """The entry of ``name`` (a variant ``<model>@<variant>`` resolves to its model)."""
    base = name.split("@", 1)[0]
    if base not in MODELS:
        raise ConfigError(f"unknown model {base!r}; registered models: {', '.join(MODELS)}")
    return MODELS[base]


def names(kinds: Iterable[str] = KINDS) -> list[str]:
    wanted = set(kinds)
    return [n for n, e in MODELS.items() if e.kind in wanted]


def of_kind(models: Iterable[str], *kinds: str) -> list[str]:
    """Those of ``models`` (configured names, order kept) whose kind is one of ``kinds``."""
    return [m for m in models if get(m).kind in kinds]


def variant(model: str, name: str) -> str:
    return f"{model}@{name}"


def diagnostic_names() -> list[str]:
    """The diagnosis variants (run when ``fusion.diagnosis`` is on), in build-up order."""
    return [n for n, e in MODELS.items() if e.diagnostic]


def fusion_entry(name: str, description: str, factors: Mapping[str, str],
                 diagnostic: bool = False) -> ModelEntry:
    """An early-fusion entry: its inputs and constructor follow from its factor levels."""
    levels = diagnosis.complete(factors, where=f"registry entry {name}")
    return ModelEntry(name, "early_fusion", diagnosis.factory_of(levels), description,
                      fusion_inputs=diagnosis.inputs_of(levels), factors=levels,
                      diagnostic=diagnostic)


_STUDY = {"frame_set": "study"}
# The fixes as first built: standardised inputs, dense frames with the windows of their times.
_ALIGNED = {"scaling": "on", "video": "dense", "audio": "windowed", "alignment": "aligned"}
for _entry in (
    ModelEntry("cnn5", "visual", "avemo.models.cnn5:CNN5",
               "custom 5-layer CNN on single frames", input_kind="frame", defaults=_STUDY),
    ModelEntry("vgg16", "visual", "avemo.models.vgg16:VGG16",
               "VGG-16 (ImageNet) on single frames, dual FC heads", input_kind="frame",
               defaults=_STUDY),
    ModelEntry("video_branch", "visual", "avemo.models.video_branch:VideoBranch",
               "VGG-16 per-frame features, mean over frames, 100-D fusion embedding",
               input_kind="frame_seq", embeds_clips=True, defaults=_STUDY),
    ModelEntry("temporal_video", "visual", "avemo.models.temporal_video:TemporalVideo",
               "frame encoder + GRU/attention over the clip's frames", input_kind="frame_seq",
               embeds_clips=True, defaults={"frame_set": "dense"}),
    ModelEntry("audio_mlp", "audio", "avemo.models.audio_mlp:AudioMLP",
               "MLP on the utterance audio vector", input_kind="audio_vec",
               defaults={"features": "utterance"}),
    ModelEntry("audio_cnn", "audio", "avemo.models.audio_cnn:AudioCNN",
               "1-D CNN over log-mel/SSL sequences", input_kind="audio_seq",
               defaults={"features": "logmel", "max_len": 256}),
    fusion_entry("concat_misaligned",
                 "the study: sparse-frame video embedding + whole-clip audio vector, "
                 "concatenated unscaled", {}),
    fusion_entry("concat_aligned", "the frames weight the audio windows at their timestamps "
                 "(attention); attended audio and pooled video concatenated", _ALIGNED),
    fusion_entry("cross_attention", "each stream attends to the other over aligned windows",
                 {**_ALIGNED, "architecture": "cross_attention"}),
    fusion_entry("gated", "a learned per-utterance gate between the modalities",
                 {"scaling": "on", "architecture": "gated"}),
    ModelEntry("late", "late_fusion", "avemo.fusion.late:late_fusion",
               "dev-chosen weighted average of the streams' probabilities", method="weighted",
               defaults={"visual": "video_branch", "audio": "audio_mlp"}),
    ModelEntry("late_stacking", "late_fusion", "avemo.fusion.late:late_fusion",
               "logistic regression on the streams' dev probabilities", method="stacking",
               defaults={"visual": "video_branch", "audio": "audio_mlp"}),
    ModelEntry("majority", "baseline", "avemo.evaluation.baselines:majority_predictions",
               "always the training split's most frequent class"),
    ModelEntry("prior", "baseline", "avemo.evaluation.baselines:prior_predictions",
               "random draws from the training split's label distribution"),
):
    register(_entry)

for _v in diagnosis.variants():
    register(fusion_entry(_v.name, _v.description, _v.factors, diagnostic=True))
