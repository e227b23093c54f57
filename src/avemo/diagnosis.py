"""Why the study's fusion failed: its setup as factors, each switched alone and then built up.

The study concatenated a sparse-frame video embedding (exported by the model just fitted on
the same clips) with a 192-D whole-clip audio vector, unscaled, with a smaller training budget
than the streams, and blamed temporal misalignment. Each of those choices is a factor here,
with the study's level first. An early-fusion model *is* a set of factor levels (its registry
entry carries them), so the diagnosis variants are ordinary registry entries trained for every
seed, and the report's effects are paired comparisons between variants that differ in exactly
one factor (``effects``).

- ``embeddings``: train-split video embeddings from the model fitted on those clips
  (``in_sample``, the study) or out of fold (``cross_fitted``, ``fusion.cross_fit_folds``
  folds grouped by dialogue); dev/test always come from the full model.
- ``scaling``: per-modality standardisation with train statistics (``on``) or raw (``off``).
- ``budget``: the fusion engine (``fusion.engine``, the study's shorter budget) or the video
  model's own (``stream``).
- ``video``: the video model's embedding over the sparse (1 frame / 3 s) or the dense frames.
- ``audio``: the whole-clip 192-D vector (``clip``) or the log-mel windows centred on the dense
  frames, pooled over the clip (mean and max) when not aligned.
- ``activity``: the video model's embedding of each dense frame alone (``off``) or with the
  frame's activity beside it (``on``: what moves within the clip, avemo.video.activity;
  pooled like the windows when not aligned). An emotion-trained embedding may not encode who
  is speaking *when*, which is what an aligned model needs to pick the right audio window:
  the aligned concatenation scores its attention over the windows from the activity alone.
- ``alignment``: ``pooled`` (each modality summarised over the clip, then concatenated),
  ``aligned`` (frame and window of the same timestamp side by side, per step) or ``shuffled``
  (the negative control: the same windows with their order shuffled within the clip).
- ``architecture``: ``concat``, ``cross_attention`` (aligned inputs) or ``gated`` (pooled).

Torch-free: the registry and the workflow import it at parse time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ConfigError

FACTORS: dict[str, tuple[str, ...]] = {
    "embeddings": ("in_sample", "cross_fitted"),
    "scaling": ("off", "on"),
    "budget": ("fusion", "stream"),
    "video": ("sparse", "dense"),
    "audio": ("clip", "windowed"),
    "activity": ("off", "on"),
    "alignment": ("pooled", "aligned", "shuffled"),
    "architecture": ("concat", "cross_attention", "gated"),
}
STUDY: dict[str, str] = {f: levels[0] for f, levels in FACTORS.items()}
STUDY_MODEL = "concat_misaligned"  # the registry entry with exactly the study's levels

# The build-up from the study to the best model, one factor per step, in this order.
CHAIN: tuple[tuple[str, str], ...] = (
    ("embeddings", "cross_fitted"),
    ("scaling", "on"),
    ("budget", "stream"),
    ("video", "dense"),
    ("audio", "windowed"),
    ("activity", "on"),
    ("alignment", "aligned"),
    ("architecture", "cross_attention"),
)
# Factors also switched alone from the study (activity, alignment and architecture need the
# dense, windowed inputs, so they appear only in the build-up).
ALONE: tuple[str, ...] = ("embeddings", "scaling", "budget", "video", "audio")
# The negative control replaces the alignment step: same windows, time shuffled in the clip.
CONTROL: tuple[str, str] = ("alignment", "shuffled")

# Short names of the levels, for the variants' registry names.
TAGS: dict[tuple[str, str], str] = {
    ("embeddings", "cross_fitted"): "crossfit",
    ("scaling", "on"): "scaled",
    ("budget", "stream"): "budget",
    ("video", "dense"): "dense",
    ("audio", "windowed"): "windowed",
    ("activity", "on"): "activity",
    ("alignment", "aligned"): "aligned",
    ("alignment", "shuffled"): "shuffled",
    ("architecture", "cross_attention"): "xattn",
}

LABELS: dict[str, str] = {
    "embeddings": "train embeddings in-sample → cross-fitted",
    "scaling": "per-modality scaling off → on",
    "budget": "fusion budget → the video stream's budget",
    "video": "video frames sparse (1 / 3 s) → dense",
    "audio": "audio whole-clip 192-D → windowed log-mel",
    "activity": "video per frame: embedding → embedding + frame activity",
    "alignment": "pooled → time-aligned windows",
    "architecture": "concatenation → cross-attention",
}

_FACTORIES = {
    ("utterance", "concat"): "avemo.fusion.models:ConcatMisaligned",
    ("utterance", "gated"): "avemo.fusion.models:Gated",
    ("aligned", "concat"): "avemo.fusion.models:ConcatAligned",
    ("aligned", "cross_attention"): "avemo.fusion.models:CrossAttention",
}


def complete(factors: Mapping[str, str], where: str = "fusion model") -> dict[str, str]:
    """The study's levels overridden by ``factors``; a ConfigError names what is invalid."""
    unknown = sorted(set(factors) - set(FACTORS))
    if unknown:
        raise ConfigError(f"{where}: unknown fusion factor(s) {unknown}; known: {list(FACTORS)}")
    out = {**STUDY, **factors}
    for f, level in out.items():
        if level not in FACTORS[f]:
            raise ConfigError(f"{where}: {f}={level!r}; use one of {FACTORS[f]}")
    if out["alignment"] != "pooled" and (out["video"], out["audio"]) != ("dense", "windowed"):
        raise ConfigError(f"{where}: alignment={out['alignment']} needs video=dense and "
                          "audio=windowed (frames and windows of the same timestamps)")
    if out["activity"] == "on" and out["video"] != "dense":
        raise ConfigError(f"{where}: activity=on needs video=dense (activity is per frame)")
    if (inputs_of(out), out["architecture"]) not in _FACTORIES:
        raise ConfigError(f"{where}: architecture={out['architecture']} does not take "
                          f"alignment={out['alignment']} inputs")
    return out


def inputs_of(factors: Mapping[str, str]) -> str:
    """What the model reads (avemo.fusion.inputs): per-clip vectors or aligned sequences."""
    return "utterance" if factors["alignment"] == "pooled" else "aligned"


def factory_of(factors: Mapping[str, str]) -> str:
    return _FACTORIES[(inputs_of(factors), factors["architecture"])]


@dataclass(frozen=True)
class Variant:
    """One diagnosis model: its registry name and its factor levels."""

    name: str
    factors: dict[str, str]
    description: str


@dataclass(frozen=True)
class Effect:
    """One row of the report's factor table: ``a`` - ``b`` differ in ``factor`` only.

    ``kind``: ``alone`` (switched alone from the study), ``step`` (one step of the build-up)
    or ``control`` (the time-shuffled negative control, and alignment against it).
    """

    a: str
    b: str
    factor: str
    kind: str
    label: str


def _name(i: int | None, tag: str) -> str:
    return f"dx{i}_{tag}" if i is not None else f"dx_{tag}_only"


def variants() -> list[Variant]:
    """Every diagnosis variant (the study itself is ``STUDY_MODEL``, a named model)."""
    out: list[Variant] = []
    levels: dict[str, str] = {}
    chain_names: dict[str, str] = {}
    for i, (factor, level) in enumerate(CHAIN, start=1):
        levels = {**levels, factor: level}
        name = _name(i, TAGS[factor, level])
        chain_names[factor] = name
        out.append(Variant(name, complete(levels), f"build-up step {i}: + {LABELS[factor]}"))
        if factor == CONTROL[0]:
            control = {**levels, CONTROL[0]: CONTROL[1]}
            out.append(Variant(_name(i, TAGS[CONTROL]), complete(control),
                               f"negative control of step {i}: the same windows, time "
                               "shuffled within the clip"))
    first = CHAIN[0][0]
    for factor in ALONE:
        if factor == first:  # step 1 is already this factor alone
            continue
        level = dict(CHAIN)[factor]
        out.append(Variant(_name(None, TAGS[factor, level]), complete({factor: level}),
                           f"the study with only {LABELS[factor]}"))
    return out


def variant_names() -> list[str]:
    return [v.name for v in variants()]


def effects() -> list[Effect]:
    """The factor table's rows, each a pair of models that differ in exactly one factor."""
    by_levels = {tuple(sorted(v.factors.items())): v.name for v in variants()}
    by_levels[tuple(sorted(STUDY.items()))] = STUDY_MODEL

    def name_of(levels: Mapping[str, str]) -> str:
        return by_levels[tuple(sorted(complete(levels).items()))]

    out: list[Effect] = []
    for factor in ALONE:
        level = dict(CHAIN)[factor]
        out.append(Effect(name_of({factor: level}), STUDY_MODEL, factor, "alone", LABELS[factor]))
    levels: dict[str, str] = {}
    for factor, level in CHAIN:
        before = dict(levels)
        levels[factor] = level
        out.append(Effect(name_of(levels), name_of(before), factor, "step", LABELS[factor]))
        if factor == CONTROL[0]:
            shuffled = {**levels, CONTROL[0]: CONTROL[1]}
            out.append(Effect(name_of(shuffled), name_of(before), factor, "control",
                              "pooled → the same windows, time shuffled (negative control)"))
            out.append(Effect(name_of(levels), name_of(shuffled), factor, "control",
                              "time-shuffled windows → aligned windows"))
    return out


def chain_models() -> list[str]:
    """The build-up in order, from the study to the last step (the waterfall's bars)."""
    return [STUDY_MODEL, *(e.a for e in effects() if e.kind == "step")]


def control_model() -> str:
    """The negative control's variant (the alignment step with shuffled windows)."""
    return next(v.name for v in variants() if v.factors["alignment"] == CONTROL[1])
