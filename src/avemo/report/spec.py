"""From the validated config to the report and compare stages' parameters.

The Snakefile passes these dicts as ``--params`` JSON, so the rules stay thin and the model
lists (per-stream from ``train.models``, fusion from ``fusion.models``) are read in one place.
"""

from __future__ import annotations

from typing import Any

from .. import diagnosis, registry
from ..errors import ConfigError
from ..evaluation.refs import (
    BEST_PREFIX,
    GROUPS,
    default_pairs,
    split_ref,
    variant_name,
)

BASELINES: tuple[str, ...] = tuple(registry.names(["baseline"]))


def model_groups(cfg: dict[str, Any]) -> dict[str, list[str]]:
    """``{"visual", "audio", "fusion": [names]}`` in config order, grouped by registry kind,
    plus ``"diagnosis"`` (the diagnosis variants) when ``fusion.diagnosis`` is on."""
    names = [*(cfg.get("train", {}).get("models") or {}),
             *(cfg.get("fusion", {}).get("models") or {})]
    out = {g: [m for m in names if registry.get(m).group == g]
           for g in ("visual", "audio", "fusion")}
    if (cfg.get("fusion") or {}).get("diagnosis"):
        out["diagnosis"] = registry.diagnostic_names()
    return out


def _diagnosis_on(cfg: dict[str, Any]) -> bool:
    groups = model_groups(cfg)
    return bool(groups.get("diagnosis")) and diagnosis.STUDY_MODEL in groups["fusion"]


def diagnosis_pairs(cfg: dict[str, Any]) -> list[list[str]]:
    """The diagnosis family's paired effects ``[a, b]`` (a − b differ in one nested factor),
    when the diagnosis runs and the study's fusion is configured (the design holds it)."""
    if not _diagnosis_on(cfg):
        return []
    return [list(e.pair) for e in diagnosis.effects() if e.pair is not None]


def diagnosis_contrasts(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The diagnosis family's contrasts over the fraction's runs (main effects and two-factor
    interactions): ``[{"name", "weights": {model: c}}]`` (avemo.evaluation.contrast)."""
    if not _diagnosis_on(cfg):
        return []
    return [{"name": e.name, "weights": dict(e.weights)} for e in diagnosis.effects()
            if e.pair is None]


def chain_pairs(cfg: dict[str, Any]) -> list[list[str]]:
    """The build-up's steps ``[a, b]`` (the waterfall: descriptive, exploratory pairs)."""
    if not _diagnosis_on(cfg):
        return []
    return [list(e.pair) for e in diagnosis.chain()]  # type: ignore[arg-type]


def single_task_models(cfg: dict[str, Any]) -> list[str]:
    """Fusion models that also get a ``<model>@single_task`` run (``fusion.single_task``: one
    name, or a list of names)."""
    chosen = (cfg.get("fusion") or {}).get("single_task") or []
    chosen = [chosen] if isinstance(chosen, str) else list(chosen)
    fusion = model_groups(cfg)["fusion"]
    unknown = [m for m in chosen if m not in fusion]
    if unknown:
        raise ConfigError(
            f"fusion.single_task names {unknown}, which are not in fusion.models "
            f"({fusion}); list only configured fusion models"
        )
    return chosen


def ablation_models(cfg: dict[str, Any]) -> list[str]:
    """Fusion models that write modality-ablation predictions (the trained early-fusion models;
    late fusion combines stream outputs, so it has none). Each has ``metrics/<model>@no_audio
    .json`` and ``metrics/<model>@no_video.json`` (test split only)."""
    return registry.of_kind(model_groups(cfg)["fusion"], "early_fusion")


def all_models(cfg: dict[str, Any]) -> list[str]:
    """Every name with a ``metrics/{name}.json``: models, variants, baselines."""
    g = model_groups(cfg)
    variants = [variant_name(m, "single_task") for m in single_task_models(cfg)]
    return [*g["visual"], *g["audio"], *g["fusion"], *g.get("diagnosis", []), *variants,
            *BASELINES]


def comparison_pairs(cfg: dict[str, Any]) -> list[list[str]]:
    """``default_pairs`` for the configured models plus ``evaluation.compare`` (extra pairs),
    without duplicates. An extra pair naming an unknown model is a ConfigError."""
    groups = model_groups(cfg)
    pairs = default_pairs(groups, single_task_models(cfg), ablation_models(cfg))
    pairs += diagnosis_pairs(cfg) + chain_pairs(cfg)
    known = set(all_models(cfg))
    extra = (cfg.get("evaluation") or {}).get("compare") or []
    for i, pair in enumerate(extra):
        if len(pair) != 2:
            raise ConfigError(f"evaluation.compare[{i}] = {pair}: a pair needs two names")
        for ref in pair:
            if ref.startswith(BEST_PREFIX):
                if ref[len(BEST_PREFIX) :] not in GROUPS:
                    raise ConfigError(
                        f"evaluation.compare[{i}]: {ref} names no group; use "
                        f"best:<{'|'.join(GROUPS)}>"
                    )
            elif split_ref(ref)[0] not in known:
                raise ConfigError(
                    f"evaluation.compare[{i}]: {ref!r} is not a configured model ({sorted(known)})"
                )
        pairs.append([str(r) for r in pair])
    seen, out = set(), []
    for p in pairs:
        if tuple(p) not in seen:
            seen.add(tuple(p))
            out.append(p)
    return out


def compare_params(cfg: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``evaluation.compare.compare_pairs`` (besides files and out)."""
    ev = cfg.get("evaluation") or {}
    # Keys a validated config always has (schema defaults); partial configs keep the stage's.
    keys = ("n_resamples", "seed", "alpha", "primary", "min_utterances", "min_dialogues")
    return {"pairs": comparison_pairs(cfg), "groups": model_groups(cfg),
            "diagnosis": diagnosis_pairs(cfg), "contrasts": diagnosis_contrasts(cfg),
            **{k: ev[k] for k in keys if k in ev}}


def frames_seen(cfg: dict[str, Any], name: str) -> str | None:
    """The frame set whose frames ``name`` saw (the error browser's thumbnails): a visual
    model's own; early fusion's video factor (sparse: the video model's set, dense: the
    aligned set); late fusion's visual stream's; None for audio models and baselines."""
    from ..params import model_config

    entry = registry.get(name)
    if entry.kind == "visual":
        return model_config(cfg, entry.name).get("frame_set")
    if entry.kind == "late_fusion":
        return frames_seen(cfg, model_config(cfg, entry.name)["visual"])
    if entry.kind == "early_fusion":
        if entry.factors.get("video") == "dense":
            return (cfg.get("audio") or {}).get("aligned_frame_set")
        video = (cfg.get("fusion") or {}).get("video_model")
        return frames_seen(cfg, video) if video else None
    return None


def browser_params(cfg: dict[str, Any]) -> dict[str, Any]:
    """``report.browser.BrowserSpec`` of the configured models (partial configs, as in unit
    tests, fall back to the spec's defaults)."""
    audio = cfg.get("audio") or {}
    names = all_models(cfg)
    out: dict[str, Any] = {
        "frame_sets": {n: frames_seen(cfg, n) for n in names},
        "windowed": [n for n in names if registry.get(n).factors.get("audio") == "windowed"],
    }
    cap = ((cfg.get("report") or {}).get("browser") or {}).get("max_clips_per_cell")
    extra = {"max_clips_per_cell": cap, "aligned_frame_set": audio.get("aligned_frame_set"),
             "window_s": audio.get("window_s")}
    return out | {k: v for k, v in extra.items() if v is not None}


def report_params(cfg: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``report.build.build_report`` (besides results, out_dir and the
    config hash, which the Snakefile adds)."""
    from ..params import dataset_description

    return {
        "description": dataset_description(cfg),
        "groups": model_groups(cfg),
        "single_task": single_task_models(cfg),
        "ablations": ablation_models(cfg),
        "baselines": list(BASELINES),
        "compare": bool(comparison_pairs(cfg)),
        "browser_spec": browser_params(cfg),
        **{k: v for k, v in (cfg.get("evaluation") or {}).items() if k == "min_utterances"},
    }
