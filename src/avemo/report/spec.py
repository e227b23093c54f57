"""From the validated config to the report and compare stages' parameters.

The Snakefile passes these dicts as ``--params`` JSON, so the rules stay thin and the model
lists (per-stream from ``train.models``, fusion from ``fusion.models``) are read in one place.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..evaluation.compare import (
    BEST_PREFIX,
    GROUPS,
    base_model,
    default_pairs,
    referenced_models,
    split_ref,
    variant_name,
)

BASELINES: tuple[str, ...] = ("majority", "prior")


def model_groups(cfg: dict[str, Any]) -> dict[str, list[str]]:
    """``{"visual", "audio", "fusion": [names]}`` in config order. Per-stream models with a
    ``features`` key read audio; the others read frames."""
    train = cfg.get("train", {}).get("models", {}) or {}
    fusion = (cfg.get("fusion") or {}).get("models") or []
    return {
        "visual": [m for m, spec in train.items() if "features" not in (spec or {})],
        "audio": [m for m, spec in train.items() if "features" in (spec or {})],
        "fusion": list(fusion),
    }


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
    return [m for m in model_groups(cfg)["fusion"] if not m.startswith("late")]


def all_models(cfg: dict[str, Any]) -> list[str]:
    """Every name with a ``metrics/{name}.json``: models, variants, baselines."""
    g = model_groups(cfg)
    variants = [variant_name(m, "single_task") for m in single_task_models(cfg)]
    return [*g["visual"], *g["audio"], *g["fusion"], *variants, *BASELINES]


def comparison_pairs(cfg: dict[str, Any]) -> list[list[str]]:
    """``default_pairs`` for the configured models plus ``evaluation.compare`` (extra pairs),
    without duplicates. An extra pair naming an unknown model is a ConfigError."""
    groups = model_groups(cfg)
    pairs = default_pairs(groups, single_task_models(cfg), ablation_models(cfg))
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
    return {
        "pairs": comparison_pairs(cfg),
        "groups": model_groups(cfg),
        "n_resamples": ev.get("n_resamples", 1000),
        "seed": ev.get("seed", 0),
        "alpha": ev.get("alpha", 0.05),
    }


def compare_inputs(cfg: dict[str, Any], results: str) -> list[str]:
    """Files the compare rule reads: every referenced model's test-like predictions per seed,
    and the metrics JSON of every model a ``best:*`` pair may choose from."""
    groups = model_groups(cfg)
    seeds = list(cfg["train"]["seeds"])
    fusion = set(groups["fusion"])
    files = []
    for model, splits in referenced_models(comparison_pairs(cfg), groups).items():
        top = "fusion" if base_model(model) in fusion else "models"
        for seed in [0] if model in BASELINES else seeds:
            files += [
                f"{results}/{top}/{model}/seed{seed}/predictions_{s}.parquet"
                for s in sorted(splits)
            ]
    members = [*groups["visual"], *groups["audio"], *groups["fusion"]]
    files += [f"{results}/metrics/{m}.json" for m in members]
    return files


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
    }
