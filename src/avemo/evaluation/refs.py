"""The names that comparisons use: variant runs (``gated@single_task``), references to a
model's split (``gated:test_no_audio``) or to the best model of a group (``best:visual``), and
the default pairs and primary family for whatever models are configured.

Pure naming, no metrics: the workflow imports it to list each rule's inputs (every Snakemake
start, every DVC stage and SLURM job), so it must not pull in scikit-learn or the bootstrap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from avemo.errors import DataStageError

VARIANT_SEP = "@"
SPLIT_SEP = ":"
BEST_PREFIX = "best:"
# The groups a `best:` reference may name; single_stream is visual + audio.
GROUPS: tuple[str, ...] = ("visual", "audio", "fusion", "single_stream")
STUDY_FUSION = "concat_misaligned"


def variant_name(model: str, variant: str) -> str:
    """Name of a variant run of ``model``: ``gated@single_task`` -> ``metrics/gated@single_task
    .json`` and ``fusion/gated@single_task/seed{n}/``."""
    if VARIANT_SEP in model or not variant:
        raise ValueError(f"cannot make a variant of {model!r} named {variant!r}")
    return f"{model}{VARIANT_SEP}{variant}"


def base_model(name: str) -> str:
    """``gated@single_task`` -> ``gated``; a plain name is returned unchanged."""
    return name.split(VARIANT_SEP, 1)[0]


def split_ref(ref: str) -> tuple[str, str]:
    """``"gated:test_no_audio"`` -> ``("gated", "test_no_audio")``; ``"cnn5"`` -> test."""
    model, _, split = ref.partition(SPLIT_SEP)
    return model, split or "test"


def group_members(groups: Mapping[str, Sequence[str]], group: str) -> list[str]:
    if group == "single_stream":
        return [*groups.get("visual", []), *groups.get("audio", [])]
    if group not in GROUPS:
        raise DataStageError(f"unknown model group {group!r} in best:{group}; use one of {GROUPS}")
    return list(groups.get(group, []))


def default_pairs(
    groups: Mapping[str, Sequence[str]],
    single_task: Sequence[str] = (),
    ablation_models: Sequence[str] = (),
    baseline: str | None = "majority",
) -> list[list[str]]:
    """The pairs the report relies on, for whatever subset of models is configured.

    - vgg16 vs cnn5 (the study's "+8 points"), and each other visual model vs cnn5;
    - the study's fusion (``concat_misaligned``) vs the best single stream, the best visual
      model and each fix;
    - the best fusion vs the best single stream (both chosen on dev);
    - each model in ``single_task`` vs its ``@single_task`` run;
    - each model in ``ablation_models`` vs its ``test_no_audio`` / ``test_no_video`` scores;
    - every model vs ``baseline`` (majority) when given.
    """
    visual, audio = list(groups.get("visual", [])), list(groups.get("audio", []))
    fusion = list(groups.get("fusion", []))
    pairs: list[list[str]] = []
    if "cnn5" in visual:
        pairs += [[m, "cnn5"] for m in visual if m != "cnn5"]
    if visual and audio:
        pairs.append(["best:visual", "best:audio"])
    if fusion and (visual or audio):
        study = "concat_misaligned"
        if study in fusion:
            pairs.append(["best:single_stream", study])
            if visual:
                pairs.append(["best:visual", study])
            pairs += [[m, study] for m in fusion if m != study]
        pairs.append(["best:fusion", "best:single_stream"])
    for m in single_task:
        pairs.append([m, variant_name(m, "single_task")])
    for m in ablation_models:
        pairs += [[m, f"{m}{SPLIT_SEP}test_no_audio"], [m, f"{m}{SPLIT_SEP}test_no_video"]]
    if baseline:
        models = [*visual, *audio, *fusion, *(variant_name(m, "single_task") for m in single_task)]
        pairs += [[m, baseline] for m in models]
    return pairs


def default_primary(groups: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """The study's claims, for whatever subset of models is configured (a subset of
    ``default_pairs``): vgg16 vs cnn5; the best single stream vs ``concat_misaligned``; each
    fusion fix vs ``concat_misaligned``."""
    visual, audio = list(groups.get("visual", [])), list(groups.get("audio", []))
    fusion = list(groups.get("fusion", []))
    pairs: list[list[str]] = []
    if "vgg16" in visual and "cnn5" in visual:
        pairs.append(["vgg16", "cnn5"])
    if STUDY_FUSION in fusion and (visual or audio):
        pairs.append(["best:single_stream", STUDY_FUSION])
        pairs += [[m, STUDY_FUSION] for m in fusion if m != STUDY_FUSION]
    return pairs


def referenced_models(
    pairs: Iterable[Sequence[str]], groups: Mapping[str, Sequence[str]]
) -> dict[str, set[str]]:
    """``{model: {splits}}`` whose test-like predictions the pairs need (``best:*`` expands to
    its whole group): what a rule lists as inputs."""
    need: dict[str, set[str]] = {}
    for pair in pairs:
        for ref in pair:
            if ref.startswith(BEST_PREFIX):
                for m in group_members(groups, ref[len(BEST_PREFIX) :]):
                    need.setdefault(m, set()).add("test")
            else:
                model, split = split_ref(ref)
                need.setdefault(model, set()).add(split)
    return need
