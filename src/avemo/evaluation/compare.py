"""Paired comparisons between configured models, model selection on dev, clip subsets.

``compare_pairs`` is the stage behind ``metrics/compare.json``: one paired utterance bootstrap
(``evaluate.compare_models``) per configured pair. A pair names two *references*:

- ``<model>``: the model's ``test`` predictions (``cnn5``, ``gated``, ``gated@single_task``);
- ``<model>:<split>``: another test-like split of it, e.g. ``gated:test_no_audio`` (the
  modality ablation scored against the full model on the same utterances);
- ``best:<group>``: the model of ``<group>`` (visual, audio, fusion, single_stream = visual +
  audio) with the highest mean DEV emotion weighted F1 over seeds (``select_best``). The test
  split is never looked at to choose.

``compare.json`` layout::

    {"schema_version": 2,
     "selection": {group: {"model", "metric", "split", "candidates": {model: value}}},
     "pairs": [{"spec": [ref_a, ref_b], "a": ref, "b": ref,   # refs with best:* resolved
                "models": [..], "n", "n_dialogues", "too_small", "seeds", "dropped",
                "tests", "per_seed",
                "family": "primary" | "diagnosis" | "exploratory",
                "p_holm": float | null}, ...],
                # n: utterances scored by every file of the pair (the others are "dropped",
                # counted per "<ref> seed <n>"; no file path is stored)
                # tests/per_seed: as evaluate.compare_models (delta = a - b; dialogue x seed
                # bootstrap; "significant" null when too_small)
                # p_holm: Holm-adjusted p of the primary endpoint (emotion weighted F1) over
                # the pair's family (primary, or the diagnosis' factor effects); null for
                # exploratory and too_small pairs; p_tost_holm: the same for the equivalence
                # test (TOST, the protocol's margin); verdict: effect | equivalent |
                # inconclusive (avemo.evaluation.verdicts; null for exploratory pairs);
                # simultaneous: {low, high, m, level}, the endpoint's Bonferroni interval
                # over the family (ci_low/ci_high are marginal); paired_seeds: one seed draw
                # served both models; all four also stored in tests.emotion.weighted_f1;
                # per_seed tests (descriptive) use n_resamples, the seed-mean tests the
                # protocol's resamples
     "contrasts": [{"name", "weights": {model: c}, "models", "n", "n_dialogues",
                    "too_small", "seeds", "dropped", "tests", "paired_seeds",
                    "family": "diagnosis", "p_holm", "p_tost_holm", "verdict",
                    "simultaneous"}, ...],
                # the design's effects over several models (avemo.evaluation.contrast:
                # sum_m c_m seed-mean(m), one paired resampling for all its models), in the
                # diagnosis family with its pairs
     "multiplicity": {"method": "holm", "endpoint": {"task", "metric"}, "alpha",
                      "primary": [[a, b], ...],      # resolved pairs in the family
                      "diagnosis": [[a, b] | name, ...],  # the diagnosis' pairs and
                                                     # contrasts (own Holm family)
                      "not_tested": [[ref_a, ref_b], ...],   # primary specs with no pair
                      "intervals": {...}, "verdicts": "..."},  # what they mean, in words
     "protocol": {"hash", "version", "alpha", "resamples", "margin", ...} | null,
     "bootstrap": {...}}

The primary family (``primary``, config ``evaluation.primary``; null = ``default_primary``)
is the study's claims; the ``diagnosis`` family (avemo.diagnosis: the design's contrasts and
the nested pairs) is adjusted on its own; every other pair is exploratory: its unadjusted p is
descriptive.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from avemo.atomic import write_json
from avemo.errors import DataStageError
from avemo.evaluation.contrast import contrast_comparison
from avemo.evaluation.evaluate import (
    MIN_DIALOGUES,
    MIN_UTTERANCES,
    SCHEMA_VERSION,
    _bootstrap_meta,
    paired_comparison,
)
from avemo.evaluation.protocol import Protocol
from avemo.evaluation.protocol import load as load_protocol
from avemo.evaluation.refs import (  # re-exported: the comparison's names live there
    BEST_PREFIX,
    default_primary,
    group_members,
    split_ref,
)
from avemo.evaluation.verdicts import family_verdicts, simultaneous_interval

PathLike = str | os.PathLike[str]
SELECTION_SPLIT = "dev"
SELECTION_TASK = "emotion"
SELECTION_METRIC = "weighted_f1"
# The one test per pair that the primary family adjusts.
PRIMARY_ENDPOINT: tuple[str, str] = ("emotion", "weighted_f1")


def dev_score(metrics: Mapping[str, Any]) -> float:
    """The model-selection score: mean over seeds of DEV emotion weighted F1."""
    try:
        agg = metrics["aggregate"][SELECTION_SPLIT][SELECTION_TASK][SELECTION_METRIC]
    except KeyError as exc:
        raise DataStageError(
            f"metrics of {metrics.get('model', '?')} have no {SELECTION_SPLIT} "
            f"{SELECTION_TASK} {SELECTION_METRIC}: evaluate its predictions_dev.parquet too"
        ) from exc
    return float(agg["mean"])


def select_best(metrics_by_model: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """The model with the best DEV score (first in the given order on ties); None when empty.

    Returns ``{model, metric, split, candidates: {model: dev score}}``.
    """
    if not metrics_by_model:
        return None
    scores = {m: dev_score(v) for m, v in metrics_by_model.items()}
    best = max(scores, key=lambda m: (scores[m], -list(scores).index(m)))
    return {
        "model": best,
        "metric": f"{SELECTION_TASK} {SELECTION_METRIC} (mean over seeds)",
        "split": SELECTION_SPLIT,
        "candidates": scores,
    }


def read_metrics(path: PathLike) -> dict[str, Any]:
    """Read one ``metrics/{model}.json``; DataStageError naming the file when absent or bad."""
    path = Path(path)
    if not path.is_file():
        raise DataStageError(
            f"metrics file {path} does not exist: run the evaluate stage for this model "
            "(or remove the model from config.yaml)"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataStageError(f"metrics file {path} is not valid JSON ({exc}); rerun it") from exc


def _resolve(ref: str, selection: dict[str, Any]) -> str:
    if not ref.startswith(BEST_PREFIX):
        return ref
    group = ref[len(BEST_PREFIX) :]
    if selection.get(group) is None:
        raise DataStageError(f"pair names {ref} but no {group} model is configured")
    return str(selection[group]["model"])


def _paths_of(
    ref: str, predictions: Mapping[str, Mapping[Any, Mapping[str, PathLike]]]
) -> dict[int, PathLike]:
    model, split = split_ref(ref)
    if model not in predictions:
        raise DataStageError(
            f"no prediction files given for {model!r} (pair member {ref!r}); "
            f"known: {sorted(predictions)}"
        )
    out = {int(s): sp[split] for s, sp in predictions[model].items() if split in sp}
    if not out:
        raise DataStageError(f"no predictions_{split}.parquet given for {model!r} ({ref!r})")
    return out


def compare_pairs(
    pairs: Sequence[Sequence[str]],
    predictions: Mapping[str, Mapping[Any, Mapping[str, PathLike]]],
    out_json: PathLike,
    metrics: Mapping[str, PathLike] | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    primary: Sequence[Sequence[str]] | None = None,
    min_utterances: int = MIN_UTTERANCES,
    min_dialogues: int = MIN_DIALOGUES,
    diagnosis: Sequence[Sequence[str]] = (),
    protocol: PathLike | Protocol | None = None,
    contrasts: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Stage: paired bootstrap tests for every pair; writes ``out_json`` (``compare.json``).

    ``pairs``: ``[[ref_a, ref_b], ...]`` (module docstring); ``predictions``: ``{model: {seed:
    {split: predictions_{split}.parquet}}}`` (seed keys: ints or digit strings, as from a JSON);
    ``metrics``: ``{model: metrics/{model}.json}`` and ``groups``: ``{group: [models]}``, both
    needed only to resolve ``best:<group>`` (on dev). Every file is used as given (nothing is
    derived from a path). Pairs that resolve to an already tested pair (either order) or to one
    model twice are skipped. ``primary``: the pairs (same syntax; None = ``default_primary``)
    whose primary-endpoint p-values are Holm-adjusted together; ``diagnosis``: the factor
    effects' pairs, a second family adjusted on its own (a pair in both counts as primary); the
    others are exploratory. Pairs under ``min_utterances``/``min_dialogues`` are
    ``too_small``: no p_holm, verdict inconclusive.
    ``protocol``: the diagnosis protocol (``avemo.evaluation.protocol``; a path or a loaded
    one): its resamples, seed and alpha replace ``n_resamples``/``seed``/``alpha``, seeds are
    paired, and every family member gets its TOST p against the protocol's margin and a
    verdict (``avemo.evaluation.verdicts``). Without one, no equivalence is tested.
    ``contrasts``: the design's effects over several models, ``[{"name", "weights": {model:
    c}}, ...]`` (avemo.evaluation.contrast), in the diagnosis family with its pairs.
    Returns ``{"n_pairs", "n_contrasts", "selection": {group: model}}``.
    """
    groups = groups or {}
    if primary is None:
        primary = default_primary(groups)
    proto: Protocol | None = None
    # Seed-against-seed tests are descriptive (no verdict reads them): evaluation.n_resamples.
    per_seed_resamples = n_resamples
    if protocol is not None:
        proto = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
        n_resamples, seed, alpha = proto.resamples, proto.resampling_seed, proto.alpha
    margin = proto.margin if proto else None
    paired_seeds = bool(proto and proto.paired_seeds)
    boot = _bootstrap_meta(n_resamples, seed, alpha, min_utterances, min_dialogues)
    needed = {r[len(BEST_PREFIX) :] for p in pairs for r in p if r.startswith(BEST_PREFIX)}
    selection: dict[str, Any] = {}
    for group in sorted(needed):
        members = group_members(groups, group)
        if metrics is None or any(m not in metrics for m in members):
            lacking = [m for m in members if metrics is None or m not in metrics]
            raise DataStageError(f"best:{group} needs the metrics files of {lacking}")
        selection[group] = select_best({m: read_metrics(metrics[m]) for m in members})
    results = []
    endpoint_deltas: list[Any] = []
    done: set[frozenset[str]] = set()
    for pair in pairs:
        if len(pair) != 2:
            raise DataStageError(f"a comparison pair needs exactly two names, got {list(pair)}")
        a, b = (_resolve(r, selection) for r in pair)
        # best:visual may resolve to the same model as best:single_stream: test it once.
        if frozenset((a, b)) in done or a == b:
            continue
        done.add(frozenset((a, b)))
        entry, deltas = paired_comparison(
            _paths_of(a, predictions),
            _paths_of(b, predictions),
            (a, b),
            n_resamples=n_resamples,
            seed=seed,
            alpha=alpha,
            common_only=True,
            min_utterances=min_utterances,
            min_dialogues=min_dialogues,
            margin=margin,
            paired_seeds=paired_seeds,
            per_seed_resamples=per_seed_resamples,
        )
        entry.pop("schema_version", None)
        paired = entry.pop("bootstrap").get("paired_seeds", False)
        results.append({"spec": list(pair), "a": a, "b": b, **entry, "paired_seeds": paired})
        endpoint_deltas.append(deltas[PRIMARY_ENDPOINT[0]][PRIMARY_ENDPOINT[1]])
    contrast_results = []
    for spec in contrasts:
        weights = {str(m): float(c) for m, c in spec["weights"].items()}
        entry, deltas = contrast_comparison(
            {m: _paths_of(m, predictions) for m in weights}, weights, str(spec["name"]),
            n_resamples=n_resamples, seed=seed, alpha=alpha, common_only=True,
            min_utterances=min_utterances, min_dialogues=min_dialogues, margin=margin,
            paired_seeds=paired_seeds)
        contrast_results.append(entry)
        endpoint_deltas.append(deltas[PRIMARY_ENDPOINT[0]][PRIMARY_ENDPOINT[1]])
    family, not_tested = _primary_family(primary, selection, done)
    dx_family, _ = _primary_family(diagnosis, selection, done)
    task, metric = PRIMARY_ENDPOINT
    keys = [frozenset((e["a"], e["b"])) for e in results]
    families = ["primary" if k in family else "diagnosis" if k in dx_family else "exploratory"
                for k in keys]
    # Contrasts follow the pairs (in results, families and endpoint_deltas alike).
    n_pairs = len(results)
    results += contrast_results
    families += ["diagnosis"] * len(contrast_results)
    for name in ("primary", "diagnosis"):
        members = [i for i, f in enumerate(families) if f == name]
        tests = [{**results[i]["tests"][task][metric], "too_small": results[i]["too_small"]}
                 for i in members]
        m = sum(1 for t in tests if not t["too_small"])
        if proto is not None:
            proto.check_family(m, f"the {name} family of compare.json")
        for i, decided in zip(members, family_verdicts(tests, alpha), strict=True):
            results[i].update(decided)
            # Simultaneous over the family's tested members (Bonferroni), beside the marginal;
            # none for a member too small to test: it is not one of the m the level covers.
            if results[i]["too_small"]:
                results[i]["simultaneous"] = None
                continue
            low, high = simultaneous_interval(endpoint_deltas[i], alpha, m)
            results[i]["simultaneous"] = {"low": low, "high": high, "m": m,
                                          "level": 1.0 - alpha / m}
    for e, f in zip(results, families, strict=True):
        e["family"] = f
        for k in ("p_holm", "p_tost_holm", "verdict", "simultaneous"):
            e.setdefault(k, None)  # exploratory: descriptive, no verdict
            e["tests"][task][metric][k] = e[k]
    in_family = [f == "primary" for f in families]
    write_json(
        out_json,
        {
            "schema_version": SCHEMA_VERSION,
            "selection": selection,
            "pairs": results[:n_pairs],
            "contrasts": results[n_pairs:],
            "multiplicity": {
                "method": "holm",
                "endpoint": {"task": task, "metric": metric},
                "alpha": float(alpha),
                "primary": [[e["a"], e["b"]] for e, f in zip(results, in_family, strict=True)
                            if f],
                "diagnosis": [[e["a"], e["b"]] if "a" in e else e["name"]
                              for e, f in zip(results, families, strict=True)
                              if f == "diagnosis"],
                "not_tested": not_tested,
                "intervals": {"ci_low/ci_high": f"marginal {1 - alpha:.0%}",
                              "simultaneous": "Bonferroni over the family's tested pairs"},
                "verdicts": "effect: Holm p < alpha and the interval on one side of 0; "
                            "equivalent: Holm-adjusted TOST p < alpha (inside the margin); "
                            "else inconclusive",
            },
            "protocol": proto.summary() if proto else None,
            "bootstrap": {**boot, "paired_seeds": paired_seeds,
                          **({"margin": margin} if margin else {})},
        },
    )
    return {"n_pairs": n_pairs, "n_contrasts": len(contrast_results),
            "selection": {g: v["model"] for g, v in selection.items()}}


def _primary_family(
    primary: Sequence[Sequence[str]],
    selection: Mapping[str, Any],
    tested: set[frozenset[str]],
) -> tuple[set[frozenset[str]], list[list[str]]]:
    """Resolved primary pairs that were tested, and the primary specs that were not."""
    family: set[frozenset[str]] = set()
    not_tested: list[list[str]] = []
    for i, pair in enumerate(primary):
        if len(pair) != 2:
            raise DataStageError(f"evaluation.primary[{i}] = {list(pair)}: a pair needs two names")
        try:
            key = frozenset(_resolve(r, selection) for r in pair)
        except DataStageError:
            key = frozenset()
        if key in tested:
            family.add(key)
        else:
            not_tested.append([str(r) for r in pair])
    return family, not_tested


def audio_subsets_from_clips(clips: Any) -> dict[str, list[str]]:
    """``{"audio_missing": [...], "audio_present": [...]}`` from an audio ``clips`` table
    (``mask`` False = no usable audio, its features are zeros)."""
    mask = clips["mask"].astype(bool)
    names = clips["clip_name"].astype(str)
    return {"audio_missing": names[~mask].tolist(), "audio_present": names[mask].tolist()}


def audio_subsets(audio_dir: PathLike) -> dict[str, list[str]]:
    """The missing-modality subsets of one split from ``audio/{split}/`` (AudioStore)."""
    from avemo.audio.store import AudioStore  # the audio stage's reader (docs/formats.md 4)

    return audio_subsets_from_clips(AudioStore(audio_dir).clips)
