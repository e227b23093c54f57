"""Why the study's fusion failed: its setup as factors, estimated from a fractional factorial.

The study concatenated a sparse-frame video embedding (exported by the model just fitted on
the same clips) with a 192-D whole-clip audio vector, unscaled, with a smaller training budget
than the streams, and blamed temporal misalignment. Each of those choices is a factor here,
with the study's level first. An early-fusion model *is* a set of factor levels (its registry
entry carries them), so the diagnosis variants are ordinary registry entries trained for every
seed. The five independent factors are crossed in the 16 runs of a 2^(5-1) fraction (the study
among them, ``fraction``): their main effects and two-factor interactions are contrasts over
the runs, none depending on an order of switching. The nested factors (activity, alignment,
architecture need dense frames and windowed audio) are paired differences within that parent
level, the last steps of a build-up from the study (``chain``: the waterfall, one path of many,
shown but not decided on). ``effects`` is the protocol's family.

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
from .evaluation import design

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
# The independent factors (any combination of levels is a model): their effects come from the
# 2^(5-1) fraction (avemo.evaluation.design). The nested ones exist only with dense frames and
# windowed audio: their effects are estimated within that parent level (the build-up's steps).
INDEPENDENT: tuple[str, ...] = design.INDEPENDENT
NESTED: tuple[str, ...] = ("activity", "alignment", "architecture")
# The protocol's ``design`` this code estimates (avemo.evaluation.protocol refuses another).
DESIGN = "fractional_factorial"
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
    """One effect of the diagnosis: a contrast ``sum_m c_m score(m)`` over models' scores.

    ``kind``: ``main`` (an independent factor's main effect over the fraction), ``interaction``
    (two independent factors'), ``step`` (one step of the build-up: a pair that differs in one
    factor), ``control`` (the time-shuffled negative control, and alignment against it).
    ``weights``: ``((model, c), ...)``; a pair ``a - b`` is ``((a, 1.0), (b, -1.0))``.
    ``name``: unique within the diagnosis (compare.json's key for a contrast).
    """

    name: str
    factor: str
    kind: str
    label: str
    weights: tuple[tuple[str, float], ...]

    @property
    def pair(self) -> tuple[str, str] | None:
        """``(a, b)`` when the effect is a paired difference ``a - b``, else None."""
        if len(self.weights) == 2 and self.weights[0][1] == 1.0 and self.weights[1][1] == -1.0:
            return self.weights[0][0], self.weights[1][0]
        return None

    @property
    def models(self) -> list[str]:
        return [m for m, _ in self.weights]

    def half(self, sign: int) -> list[str]:
        """The models with a positive (``sign`` 1) or negative (-1) coefficient."""
        return [m for m, c in self.weights if c * sign > 0]


def _pair(a: str, b: str, factor: str, kind: str, label: str) -> Effect:
    return Effect(f"{a} − {b}", factor, kind, label, ((a, 1.0), (b, -1.0)))


def _name(i: int | None, tag: str) -> str:
    return f"dx{i}_{tag}" if i is not None else f"dx_{tag}_only"


def _chain_variants() -> list[Variant]:
    out: list[Variant] = []
    levels: dict[str, str] = {}
    for i, (factor, level) in enumerate(CHAIN, start=1):
        levels = {**levels, factor: level}
        out.append(Variant(_name(i, TAGS[factor, level]), complete(levels),
                           f"build-up step {i}: + {LABELS[factor]}"))
        if factor == CONTROL[0]:
            control = {**levels, CONTROL[0]: CONTROL[1]}
            out.append(Variant(_name(i, TAGS[CONTROL]), complete(control),
                               f"negative control of step {i}: the same windows, time "
                               "shuffled within the clip"))
    return out


def _key(levels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(complete(levels).items()))


def fraction() -> list[tuple[str, dict[str, str]]]:
    """The 2^(5-1) fraction's 16 runs in design order (``avemo.evaluation.design.runs``), each
    ``(model name, levels)``: the study, build-up steps with the same levels, or ``dxf_<tags>``
    (the levels switched from the study's)."""
    named = {_key(v.factors): v.name for v in _chain_variants()}
    named[_key(STUDY)] = STUDY_MODEL
    x = design.runs(INDEPENDENT)
    out = []
    for levels in design.levels_of(x, INDEPENDENT, FACTORS):
        full = complete(levels)
        switched = [TAGS[f, lv] for f, lv in levels.items() if lv != STUDY[f]]
        out.append((named.get(_key(full), "dxf_" + "_".join(switched)), full))
    return out


def variants() -> list[Variant]:
    """Every diagnosis variant (the study itself is ``STUDY_MODEL``, a named model): the
    build-up and its control, then the fraction's runs that are not build-up steps."""
    out = _chain_variants()
    known = {v.name for v in out} | {STUDY_MODEL}
    for name, levels in fraction():
        if name not in known:
            switched = ", ".join(LABELS[f] for f in INDEPENDENT if levels[f] != STUDY[f])
            out.append(Variant(name, levels, f"a run of the 2^(5-1) fraction: the study with "
                                             f"{switched}"))
    return out


def variant_names() -> list[str]:
    return [v.name for v in variants()]


def chain() -> list[Effect]:
    """The build-up from the study, one factor per step (the waterfall's bars: one path of
    many; the steps of the independent factors are descriptive, the design decides them)."""
    by_levels = {_key(v.factors): v.name for v in variants()}
    by_levels[_key(STUDY)] = STUDY_MODEL
    out: list[Effect] = []
    levels: dict[str, str] = {}
    for factor, level in CHAIN:
        before = dict(levels)
        levels[factor] = level
        out.append(_pair(by_levels[_key(levels)], by_levels[_key(before)], factor, "step",
                         LABELS[factor]))
    return out


def effects() -> list[Effect]:
    """The diagnosis family (protocol ``design: fractional_factorial``): the 5 main effects
    and 10 two-factor interactions of the independent factors over the fraction, then the
    nested factors within their parent level (the build-up's steps after the independent
    factors) with the negative control and alignment against it."""
    runs = fraction()
    names = [n for n, _ in runs]
    out: list[Effect] = []
    for name, c in design.contrasts(design.runs(INDEPENDENT), INDEPENDENT).items():
        weights = tuple((m, float(w)) for m, w in zip(names, c, strict=True))
        if name in FACTORS:
            out.append(Effect(f"main: {name}", name, "main",
                              f"{LABELS[name]} (main effect)", weights))
        else:
            a, b = name.split("×")
            out.append(Effect(f"interaction: {name}", name, "interaction",
                              f"{a} × {b} (interaction)", weights))
    steps = {e.factor: e for e in chain()}
    for factor in NESTED:
        step = steps[factor]
        a, b = step.pair  # type: ignore[misc]
        out.append(step)
        if factor == CONTROL[0]:
            shuffled = control_model()
            out.append(_pair(shuffled, b, factor, "control",
                             "pooled → the same windows, time shuffled (negative control)"))
            out.append(_pair(a, shuffled, factor, "control",
                             "time-shuffled windows → aligned windows"))
    return out


def chain_models() -> list[str]:
    """The build-up in order, from the study to the last step (the waterfall's bars)."""
    return [STUDY_MODEL, *(e.pair[0] for e in chain())]  # type: ignore[index]


def control_model() -> str:
    """The negative control's variant (the alignment step with shuffled windows)."""
    return next(v.name for v in _chain_variants() if v.factors["alignment"] == CONTROL[1])
