"""The model sections of the report: visual, audio, fusion, ablations, baselines and reference
numbers, per-class results. Every number comes from ``ReportInputs`` (metrics JSONs,
compare.json, summary.json, DVCLive epoch logs) or from the quoted-numbers file, labelled as quoted.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DataStageError
from ..evaluation.refs import SPLIT_SEP, VARIANT_SEP, variant_name
from ..labels import EMOTIONS, SPLITS
from . import figures, findings, reference, tables
from .findings import Data
from .inputs import ReportInputs
from .render import Figure, Section, Table
from .tables import NAN, fmt, fmt_p, fmt_stats, stats

STUDY_FUSION = "concat_misaligned"
NOT_CONFIGURED = "Not configured"


def alpha_of(inp: ReportInputs) -> float:
    for m in inp.metrics.values():
        return float(m.get("bootstrap", {}).get("alpha", 0.05))
    return 0.05


def level(inp: ReportInputs) -> str:
    return f"{100 * (1 - alpha_of(inp)):.0f}%"


def method_section(inp: ReportInputs) -> Section:
    boot = next(iter(inp.metrics.values()), {}).get("bootstrap", {})
    return Section(
        "Method: selection and uncertainty",
        paragraphs=[
            "**Model selection uses the dev split only.** Each model's checkpoint is its best "
            'epoch by dev emotion weighted F1 (early stopping); every "best" model named below '
            "(best visual, audio, fusion, single stream) is the one with the highest mean dev "
            "emotion weighted F1 over seeds. The test split is only scored, never used to choose.",
            f"Test numbers are mean ± std over training seeds, with the {level(inp)} percentile "
            f"bootstrap interval of the seed-mean over test utterances "
            f"({boot.get('n_resamples', '?')} resamples, seed {boot.get('seed', '?')}). "
            + _tests_sentence(inp),
        ],
    )


def _tests_sentence(inp: ReportInputs) -> str:
    """How paired tests are decided: the protocol block compare.json was made under."""
    proto = (inp.compare or {}).get("protocol")
    boot = (inp.compare or {}).get("bootstrap") or {}
    if not proto:
        return ("Differences between two models are paired bootstrap tests on the same "
                f"utterances (a − b, marginal {level(inp)} interval, two-sided p); a pair "
                "reads as significant only when its Holm-adjusted p is below alpha and the "
                "interval excludes 0.")
    return (
        "Differences between two models are paired bootstrap tests on the same utterances "
        f"(a − b; one draw of test dialogues and training seeds serves both models; "
        f"{boot.get('n_resamples', '?')} resamples), decided under the diagnosis protocol "
        f"`{proto['hash']}` (docs/diagnosis.md): the study's claims (primary family) and the "
        "diagnosis' factor effects (its own family) each get one verdict on test emotion "
        "weighted F1 from Holm-adjusted p-values: **effect** (adjusted p < "
        f"{proto['alpha']:g} and the interval on one side of 0), **equivalent** (adjusted "
        f"equivalence test inside ±{proto['margin']:g}) or **inconclusive**. Every other "
        "pair is exploratory: its p is descriptive. Intervals are marginal unless labelled "
        "simultaneous.")


# --- helpers ---------------------------------------------------------------------------------


def weights_label(value: Any) -> str:
    """``summary.json`` ``weights_used`` as the report shows it: ImageNet, or scratch and why."""
    if value is None or str(value) in ("n/a", ""):
        return "n/a"
    v = str(value)
    if v.startswith("none (scratch"):
        return "scratch (ImageNet weights missing)"
    if v in ("none", "None", "null"):
        return "scratch (no pretrained weights configured)"
    if v.upper().startswith("IMAGENET"):
        return f"ImageNet ({v})"
    return v


def _summary_extras(inp: ReportInputs, name: str) -> dict[str, Any]:
    sums = inp.summaries(name)
    if not sums:
        return {"weights_used": "n/a", "best_epoch": "n/a", "device": "n/a", "train_s": NAN}

    def joined(key: str) -> str:
        return ", ".join(str(s.get(key, "n/a")) for s in sums.values())

    def distinct(key: str) -> str:
        # None: the field does not apply to the model (no pretrained backbone to load).
        return ", ".join(
            sorted({"n/a" if s.get(key) is None else str(s[key]) for s in sums.values()})
        )

    seconds = [s["seconds"] for s in sums.values() if isinstance(s.get("seconds"), int | float)]
    return {
        "weights_used": ", ".join(
            sorted({weights_label(s.get("weights_used")) for s in sums.values()})
        ),
        "best_epoch": joined("best_epoch"),
        "device": distinct("device"),
        "train_s": float(sum(seconds)) if seconds else NAN,
    }


def small(inp: ReportInputs, data: Data | None, *names: str, entry: Any = None) -> bool:
    """Too few test utterances for statistics: the test split is under the minimum, or a
    metrics JSON / compare entry involved says ``too_small``."""
    if data is not None and data.test_too_small:
        return True
    return findings.too_small(entry, *(inp.metrics.get(n) for n in names))


def _vs_majority(inp: ReportInputs, names: list[str]) -> dict[str, Any] | None:
    if "majority" not in inp.models.baselines or inp.compare is None:
        return None
    return {m: inp.pair(m, "majority") for m in names}


def _model_table(
    inp: ReportInputs,
    names: list[str],
    table: str,
    caption: str,
    extras: bool = True,
    task: str = "emotion",
    vs: bool = True,
) -> Table:
    extra = {m: _summary_extras(inp, m) for m in names} if extras else None
    csv, shown = tables.model_rows(
        names, inp.metrics, task=task, extra=extra, vs=_vs_majority(inp, names) if vs else None
    )
    return Table(table, caption, csv, shown)


def _entries(inp: ReportInputs, keep: Any) -> list[dict[str, Any]]:
    return [e for e in (inp.compare or {}).get("pairs", []) if keep(e["a"], e["b"])]


def _pairs_table(
    inp: ReportInputs,
    entries: list[dict[str, Any]],
    name: str,
    caption: str,
    data: Data | None = None,
) -> Table | None:
    if not entries:
        return None
    csv, shown = tables.pair_rows(entries, alpha_of(inp))
    tiny = [small(inp, data, e["a"], e["b"], entry=e) for e in entries]
    if any(tiny):
        # No verdict for results on too few utterances: neither in the CSV nor on the page.
        per_csv = len(csv) // len(entries)
        per_shown = len(shown) // len(entries)
        csv["significant"] = csv["significant"].astype(object)
        for i, t in enumerate(tiny):
            if t:
                csv.loc[i * per_csv : (i + 1) * per_csv - 1, "significant"] = None
                shown.loc[i * per_shown : (i + 1) * per_shown - 1, "verdict"] = (
                    "none: too few utterances"
                )
        csv["too_small"] = [t for t in tiny for _ in range(per_csv)]
        caption += " — WARNING: too few test utterances for statistics, no verdict"
    return Table(name, caption, csv, shown)


def _plain(name: str) -> bool:
    return SPLIT_SEP not in name and VARIANT_SEP not in name


def _best_sentence(inp: ReportInputs, group: str, label: str) -> str:
    sel = inp.best[group]
    scores = ", ".join(f"`{m}` {fmt(v)}" for m, v in sel["candidates"].items())
    return f"Best {label} model on dev: **`{sel['model']}`** (dev emotion weighted F1: {scores})."


def _curves(
    inp: ReportInputs, names: list[str], fig_dir: Path, group: str, data: Data | None = None
) -> tuple[list[Figure], list[str]]:
    logs = {m: inp.logs(m) for m in names}
    have = {m: v for m, v in logs.items() if v}
    notes = []
    lacking = [m for m, v in logs.items() if not v]
    if lacking:
        notes.append(
            "No training log (DVCLive `live/`) for "
            + ", ".join(f"`{m}`" for m in lacking)
            + ": not trained by the engine (e.g. late fusion fits on dev predictions)."
        )
    if not have:
        return [], notes
    path = fig_dir / f"learning_curves_{group}.png"
    figures.learning_curves(have, path, data=data.label if data else "")
    return [
        Figure(
            path,
            f"Learning curves of the {group} models (DVCLive epoch log: train/dev loss, "
            "dev emotion weighted F1 per epoch; one line per seed)",
        )
    ], notes


def _stream_section(
    inp: ReportInputs, group: str, title: str, fig_dir: Path, what: str, data: Data | None = None
) -> Section:
    names = inp.models.group(group)
    if not names:
        return Section(title, paragraphs=[f"{NOT_CONFIGURED}: no {what} model in config.yaml."])
    section = Section(title)
    section.tables.append(
        _model_table(
            inp,
            names,
            f"{group}_models",
            f"{group.capitalize()} models, test emotion: mean ± std over seeds [{level(inp)} CI]",
        )
    )
    section.paragraphs.append(_best_sentence(inp, group, group))
    pairs = _pairs_table(
        inp,
        _entries(inp, lambda a, b: a in names and b in names),
        f"{group}_pairs",
        f"Paired tests between {group} models (a − b)",
        data,
    )
    if pairs:
        section.tables.append(pairs)
    figs, notes = _curves(inp, names, fig_dir, group, data)
    section.figures += figs
    section.paragraphs += notes
    return section


# --- sections --------------------------------------------------------------------------------


def _weights_sentence(inp: ReportInputs, name: str) -> str:
    """What VGG-16 actually started from, per seed, from ``summary.json`` ``weights_used``."""
    sums = inp.summaries(name)
    raw = sorted({str(s.get("weights_used")) for s in sums.values()}) if sums else []
    labels = sorted({weights_label(s.get("weights_used")) for s in sums.values()}) if sums else []
    if not labels or labels == ["n/a"]:
        return "VGG-16's starting weights are not recorded (no `weights_used` in `summary.json`)."
    if all(lab.startswith("scratch") for lab in labels):
        how = "from scratch: " + "; ".join(lab[len("scratch (") : -1] for lab in labels)
    elif all(lab.startswith("ImageNet") for lab in labels):
        how = "from ImageNet weights"
    else:
        how = "from different starting weights across seeds: " + ", ".join(labels)
    return f"VGG-16 ran {how} (`summary.json` field `weights_used`: {', '.join(raw)})."


def visual_section(
    inp: ReportInputs, fig_dir: Path, ref: dict[str, Any], data: Data | None = None
) -> Section:
    section = _stream_section(
        inp, "visual", "3. Visual stream", fig_dir, "frame (visual)", data
    )
    if not inp.models.visual:
        return section
    if "vgg16" in inp.models.visual:
        section.paragraphs.append(_weights_sentence(inp, "vgg16"))
    claim = next(n for n in reference.study_numbers(ref) if n["key"] == "vgg16_over_cnn5")
    entry = inp.pair("vgg16", "cnn5") if {"vgg16", "cnn5"} <= set(inp.models.visual) else None
    t = entry["tests"]["emotion"]["weighted_f1"] if entry else None
    csv = pd.DataFrame(
        [
            {
                "claim": claim["what"],
                "quoted": float(claim["value"]),
                "quoted_status": reference.QUOTED,
                "measured_delta": t["delta"] if t else NAN,
                "ci_low": t["ci_low"] if t else NAN,
                "ci_high": t["ci_high"] if t else NAN,
                "p_value": t["p_value"] if t else NAN,
            }
        ]
    )
    shown = pd.DataFrame(
        [
            {
                "claim": claim["what"],
                "study (quoted)": f"{fmt(float(claim['value']), True)}",
                "measured here: vgg16 − cnn5 [CI]": (
                    f"{fmt(t['delta'], True)} [{fmt(t['ci_low'], True)}, {fmt(t['ci_high'], True)}]"
                    if t
                    else "not measured (vgg16 and cnn5 not both configured and compared)"
                ),
                "p (paired bootstrap)": fmt_p(t["p_value"]) if t else "n/a",
            }
        ]
    )
    section.tables.insert(
        1,
        Table(
            "visual_claim", 'The study\'s "+8 points for VGG-16 over CNN5", measured', csv, shown
        ),
    )
    if t:
        tiny = small(inp, data, "vgg16", "cnn5", entry=entry)
        text = findings.describe(t, "vgg16", "cnn5", alpha_of(inp), small=tiny)
        section.paragraphs.append(data.finding(text) if data else text + ".")
    return section


def audio_section(inp: ReportInputs, fig_dir: Path, data: Data | None = None) -> Section:
    return _stream_section(inp, "audio", "4. Audio stream", fig_dir, "audio", data)


def fusion_section(inp: ReportInputs, fig_dir: Path, data: Data | None = None) -> Section:
    title = "5. Fusion"
    fusion = inp.models.fusion
    if not fusion:
        return Section(
            title, paragraphs=[f"{NOT_CONFIGURED}: no fusion model in config.yaml (fusion.models)."]
        )
    section = Section(title)
    refs = []
    for group in ("visual", "audio"):
        if inp.best[group] and inp.best[group]["model"] not in refs:
            refs.append(inp.best[group]["model"])
    names = [*fusion, *refs]
    table = _model_table(
        inp,
        names,
        "fusion_models",
        f"Fusion models next to the best single streams (chosen on dev), test "
        f"emotion: mean ± std over seeds [{level(inp)} CI]",
    )
    best_single = inp.best["single_stream"]["model"] if inp.best["single_stream"] else None
    roles = {m: "fusion" for m in fusion}
    for group in ("visual", "audio"):
        if inp.best[group]:
            m = inp.best[group]["model"]
            roles[m] = f"best {group} (dev)" + (" = best single stream" if m == best_single else "")
    table.df.insert(1, "role", [roles[m] for m in names])
    table.shown.insert(1, "role", [roles[m] for m in names])
    section.tables.append(table)
    section.paragraphs.append(_best_sentence(inp, "fusion", "fusion"))
    if best_single:
        section.paragraphs.append(_best_sentence(inp, "single_stream", "single-stream"))
    entries = _entries(
        inp,
        lambda a, b: (
            (a in fusion or b in fusion)
            and _plain(a)
            and _plain(b)
            and b not in inp.models.baselines
        ),
    )
    pairs = _pairs_table(
        inp, entries, "fusion_pairs", "Paired tests involving fusion models (a − b)", data
    )
    if pairs:
        section.tables.append(pairs)
    study = inp.pair(STUDY_FUSION, best_single) if STUDY_FUSION in fusion and best_single else None
    best_fusion = inp.best["fusion"]["model"]
    best = inp.pair(best_fusion, best_single) if best_single else None
    if STUDY_FUSION in fusion and best_single and study is None:
        section.paragraphs.append(
            f"compare.json holds no `{STUDY_FUSION}` vs `{best_single}` "
            "pair: add it to evaluation.compare."
        )
    tiny = any(
        small(inp, data, p["a"], p["b"], entry=p) for p in (study, best) if p is not None
    )
    section.paragraphs += findings.fusion_verdict(study, best, alpha_of(inp), data, tiny)
    figs, notes = _curves(inp, fusion, fig_dir, "fusion", data)
    section.figures += figs
    section.paragraphs += notes
    return section


def _ablation_stats(inp: ReportInputs, model: str, what: str) -> dict[str, float]:
    """Test emotion wF1 of ``model`` with modality ``what`` removed: ``metrics/<model>@<what>
    .json``, or the ``test_<what>`` split of the model's own metrics file."""
    name = variant_name(model, what)
    if name in inp.metrics:
        return stats(inp.metrics[name], "emotion", "weighted_f1")
    return stats(inp.metrics[model], "emotion", "weighted_f1", f"test_{what}")


def _modality_ablation(inp: ReportInputs) -> tuple[list[str], list[Table]]:
    if not inp.models.fusion:
        return [f"{NOT_CONFIGURED}: no fusion model in config.yaml."], []
    have = inp.models.ablations
    if not have:
        return [
            "No fusion model with ablation predictions is configured "
            "(late fusion combines the streams' outputs: without audio it is the visual stream)."
        ], []
    rows, shown = [], []
    for m in have:
        full = stats(inp.metrics[m], "emotion", "weighted_f1")
        row: dict[str, Any] = {
            "model": m,
            "full_mean": full["mean"],
            "full_ci_low": full["ci_low"],
            "full_ci_high": full["ci_high"],
        }
        disp: dict[str, Any] = {"model": m, "audio + video": fmt_stats(full)}
        for what in ("no_audio", "no_video"):
            s = _ablation_stats(inp, m, what)
            entry = inp.pair(m, f"{m}{SPLIT_SEP}test_{what}")
            t = entry["tests"]["emotion"]["weighted_f1"] if entry else None
            row |= {
                f"{what}_mean": s["mean"],
                f"{what}_ci_low": s["ci_low"],
                f"{what}_ci_high": s["ci_high"],
                f"drop_{what}": t["delta"] if t else full["mean"] - s["mean"],
                f"drop_{what}_p": t["p_value"] if t else NAN,
            }
            label = "audio removed" if what == "no_audio" else "video removed"
            disp[label] = fmt_stats(s)
            disp[f"full − {label} (p)"] = (
                f"{fmt(row[f'drop_{what}'], True)} (p={fmt_p(row[f'drop_{what}_p'])})"
            )
        rows.append(row)
        shown.append(disp)
    return [], [
        Table(
            "ablation_modality",
            "Modality ablation: test emotion weighted F1 of each fusion model with one modality "
            "masked for every clip (mean ± std over seeds [CI]); the drop is a paired test",
            pd.DataFrame(rows),
            pd.DataFrame(shown),
        )
    ]


def _missing_modality(inp: ReportInputs) -> tuple[list[str], list[Table]]:
    names = [
        m
        for m in [*inp.models.visual, *inp.models.audio, *inp.models.fusion]
        if "subsets" in inp.metrics[m]
    ]
    if not names:
        return [
            "Not computed: the evaluate stage ran without the audio "
            "subsets of `audio/test/clips.parquet` (`--subsets-audio`)."
        ], []
    rows, shown = [], []
    for m in names:
        for subset in ("audio_present", "audio_missing"):
            block = inp.metrics[m]["subsets"].get(subset, {}).get("test", {"n": 0})
            s = stats(block, "emotion", "weighted_f1") if block["n"] else None
            rows.append(
                {
                    "model": m,
                    "subset": subset,
                    "n": block["n"],
                    **(
                        {k: s[k] for k in ("mean", "std", "ci_low", "ci_high")}
                        if s
                        else {"mean": NAN, "std": NAN, "ci_low": NAN, "ci_high": NAN}
                    ),
                }
            )
            shown.append(
                {
                    "model": m,
                    "test clips": subset.replace("_", " "),
                    "n": block["n"],
                    "emotion wF1": fmt_stats(s) if s else "no clip",
                }
            )
    n_missing = max(r["n"] for r in rows if r["subset"] == "audio_missing")
    note = (
        f"{n_missing} test clips have no usable audio (audio stage `mask` "
        "False); they are scored separately from the clips with audio."
        if n_missing
        else "No test clip lacks audio in this corpus, so "
        "there is nothing to score separately (the audio_missing rows are empty)."
    )
    return [note], [
        Table(
            "ablation_missing_audio",
            "Test emotion weighted F1 on clips with and without usable audio",
            pd.DataFrame(rows),
            pd.DataFrame(shown),
        )
    ]


def _single_task(inp: ReportInputs) -> tuple[list[str], list[Table]]:
    if not inp.models.single_task:
        return [f"{NOT_CONFIGURED}: no `<model>@single_task` run (fusion.single_task)."], []
    rows, shown = [], []
    for m in inp.models.single_task:
        v = variant_name(m, "single_task")
        multi, single = (stats(inp.metrics[x], "emotion", "weighted_f1") for x in (m, v))
        entry = inp.pair(m, v)
        t = entry["tests"]["emotion"]["weighted_f1"] if entry else None
        rows.append(
            {
                "model": m,
                "multi_task_mean": multi["mean"],
                "multi_task_std": multi["std"],
                "single_task_mean": single["mean"],
                "single_task_std": single["std"],
                "delta": t["delta"] if t else multi["mean"] - single["mean"],
                "ci_low": t["ci_low"] if t else NAN,
                "ci_high": t["ci_high"] if t else NAN,
                "p_value": t["p_value"] if t else NAN,
            }
        )
        shown.append(
            {
                "model": m,
                "multi-task (emotion + sentiment)": fmt_stats(multi),
                "single-task (w_sentiment = 0)": fmt_stats(single),
                "multi − single [CI] (p)": (
                    f"{fmt(t['delta'], True)} [{fmt(t['ci_low'], True)}, "
                    f"{fmt(t['ci_high'], True)}] (p={fmt_p(t['p_value'])})"
                    if t
                    else "n/a"
                ),
            }
        )
    return [], [
        Table(
            "ablation_single_task",
            "Multi-task vs single-task training, test emotion weighted F1",
            pd.DataFrame(rows),
            pd.DataFrame(shown),
        )
    ]


def ablation_sections(inp: ReportInputs) -> list[Section]:
    """6a modality removed, 6b missing audio, 6c multi- vs single-task (one subsection each, so
    each note sits next to its table)."""
    out = []
    for title, part in (
        ("6a. Ablation: one modality removed", _modality_ablation),
        ("6b. Ablation: clips with missing audio", _missing_modality),
        ("6c. Ablation: multi-task vs single-task", _single_task),
    ):
        notes, tabs = part(inp)
        out.append(Section(title, paragraphs=notes, tables=tabs))
    return out


def _study_vs_measured(inp: ReportInputs, ref: dict[str, Any]) -> Table:
    rows, shown = [], []
    for n in reference.study_numbers(ref):
        how = n["measured_as"]
        measured = low = high = p = NAN
        if "delta" in how:
            a, b = how["delta"]
            entry = inp.pair(a, b) if a in inp.metrics and b in inp.metrics else None
            if entry:
                t = entry["tests"][how["task"]][how["metric"]]
                measured, low, high, p = t["delta"], t["ci_low"], t["ci_high"], t["p_value"]
            label = f"{a} − {b}"
        else:
            label = how["model"]
            if label in inp.metrics:
                s = stats(inp.metrics[label], how["task"], how["metric"])
                measured, low, high = s["mean"], s["ci_low"], s["ci_high"]
        rows.append(
            {
                "claim": n["what"],
                "quoted": float(n["value"]),
                "status": reference.QUOTED,
                "measured_as": label,
                "measured": measured,
                "ci_low": low,
                "ci_high": high,
                "p_value": p,
            }
        )
        shown.append(
            {
                "study claim": n["what"],
                "quoted (NOT measured here)": fmt(float(n["value"])),
                "measured here as": f"`{label}`",
                "measured [CI]": (
                    "not configured"
                    if math.isnan(measured)
                    else f"{fmt(measured)} [{fmt(low)}, {fmt(high)}]"
                    + ("" if math.isnan(p) else f" (p={fmt_p(p)})")
                ),
            }
        )
    return Table(
        "study_vs_measured",
        "The study's numbers (quoted, NOT measured here) next to "
        f"this run's measurements. Source: {reference.source(ref, 'study')}",
        pd.DataFrame(rows),
        pd.DataFrame(shown),
    )


def baselines_section(
    inp: ReportInputs, ref: dict[str, Any], description: dict[str, Any], data: Data | None = None
) -> Section:
    section = Section("7. Baselines and reference numbers")
    if inp.models.baselines:
        section.tables.append(
            _model_table(
                inp,
                inp.models.baselines,
                "baselines",
                "Computed baselines (this run's data): "
                "majority = always the most frequent train class; prior = a class drawn from the "
                "train label prior",
                extras=False,
                vs=False,
            )
        )
    vs_maj = _entries(inp, lambda a, b: b == "majority" and a != "majority")
    pairs = _pairs_table(
        inp,
        vs_maj,
        "vs_majority",
        "Every model vs the majority baseline (paired tests, a − majority)",
        data,
    )
    if pairs:
        section.tables.append(pairs)
    models = [
        *inp.models.visual,
        *inp.models.audio,
        *inp.models.fusion,
        *inp.models.variants,
        *inp.models.baselines,
    ]
    if models:
        section.tables.append(
            _model_table(
                inp,
                models,
                "sentiment_models",
                f"Sentiment (3 classes), test: mean ± std over seeds [{level(inp)} CI]",
                extras=False,
                task="sentiment",
                vs=False,
            )
        )
    if data is not None and data.kind != findings.MELD:
        section.paragraphs.append(
            f"**The quoted numbers below are on MELD; this run's numbers are on {data.name}: "
            "put side by side only to show the layout, not to compare.**"
        )
    elif data is None and description.get("dataset") != "meld":
        section.paragraphs.append(
            "**The quoted numbers below are on real MELD; this run's numbers are on the "
            "synthetic demo corpus: put side by side only to show the layout, not to compare.**"
        )
    section.paragraphs.append(
        'Every number marked "quoted, NOT measured here" comes from the one reference file '
        "`avemo/data/reference_numbers.yaml`, with its source; none is computed by this pipeline."
    )
    section.tables.append(_study_vs_measured(inp, ref))
    section.paragraphs.append(reference.fusion_vs_always_neutral(ref))
    meld = reference.meld_baselines_table(ref)
    section.tables.append(
        Table(
            "meld_published_baselines",
            "MELD's published emotion baselines (quoted, NOT measured "
            f"here). Source: {reference.source(ref, 'meld_baselines')}",
            meld,
            meld.drop(columns=["source"]),
            dataset="MELD (quoted, not measured here)",
        )
    )
    neutral = reference.always_neutral_row(ref)
    maj = (
        stats(inp.metrics["majority"], "emotion", "weighted_f1")["mean"]
        if "majority" in inp.metrics
        else NAN
    )
    row = {**neutral, "this_run_majority_weighted_f1": maj}
    df = pd.DataFrame([row])
    section.tables.append(
        Table(
            "always_neutral",
            "Always-neutral weighted F1 on real MELD test, computed from the quoted "
            "label counts as p · 2p/(1+p), next to the quoted value and this run's measured "
            "majority baseline. Source of the counts: "
            + reference.source(ref, "meld_test_distribution"),
            df,
            df.drop(columns=["source"]),
        )
    )
    return section


def per_class_section(inp: ReportInputs, fig_dir: Path, data: Data | None = None) -> Section:
    section = Section("8. Per-class results")
    names = [
        *inp.models.visual,
        *inp.models.audio,
        *inp.models.fusion,
        *inp.models.variants,
        *inp.models.baselines,
    ]
    if not names:
        section.paragraphs.append(f"{NOT_CONFIGURED}: no model.")
        return section
    table = tables.per_class_f1(names, inp.metrics)
    section.tables.append(
        Table("per_class_f1", "Test per-class F1 (emotion, mean over seeds)", table)
    )
    bars = fig_dir / "per_class_f1.png"
    figures.per_class_bars(table, list(EMOTIONS), bars, data=data.label if data else "")
    section.figures.append(Figure(bars, "Test per-class emotion F1 across models"))
    panels = []
    for group in ("visual", "audio", "fusion"):
        sel = inp.best[group]
        if sel:
            m = sel["model"]
            matrix = inp.metrics[m]["aggregate"]["test"]["emotion"]["confusion_normalized_mean"]
            panels.append((f"best {group} (dev): {m}", matrix, list(EMOTIONS)))
    if panels:
        path = fig_dir / "confusion_best.png"
        figures.confusion_matrices(panels, path, data=data.label if data else "")
        section.figures.append(
            Figure(
                path,
                "Row-normalised test confusion matrices (emotion, "
                "mean over seeds) of the best models chosen on dev",
            )
        )
    return section


# -- speech share (avemo.audio.speech_share) ------------------------------------------------------
# Wording cut-offs, fixed before any corpus is read: a median share of at least SPREAD_SHARE is
# "speech fills the clip" (the synthetic spread world), at most EVENT_SHARE "speech in part of
# the clip" (the event world); |median r| below WEAK_R is "activity barely follows speech".
SPREAD_SHARE, EVENT_SHARE, WEAK_R = 0.8, 0.5, 0.1


def _quartiles(x: pd.Series) -> dict[str, float]:
    x = x.dropna()
    if x.empty:
        return {"q1": NAN, "median": NAN, "q3": NAN}
    q = x.quantile([0.25, 0.5, 0.75]).to_numpy()
    return {"q1": float(q[0]), "median": float(q[1]), "q3": float(q[2])}


def speech_table(speech: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per split (and all splits together): clips measured, quartiles of the speech share and
    of the activity-speech correlation (clips where it is defined)."""
    rows = []
    for split, df in [*speech.items(), ("all", pd.concat(list(speech.values())))]:
        share, r = _quartiles(df["speech_share"]), _quartiles(df["activity_speech_r"])
        rows.append({
            "split": split, "clips": len(df), "with_audio": int(df["speech_share"].notna().sum()),
            **{f"speech_share_{k}": v for k, v in share.items()},
            "clips_with_r": int(df["activity_speech_r"].notna().sum()),
            **{f"activity_speech_r_{k}": v for k, v in r.items()},
        })
    return pd.DataFrame(rows)


def read_speech(speech_files: Any) -> dict[str, pd.DataFrame]:
    """Each split's speech table (``{split: path}``, avemo.audio.speech_share)."""
    out = {}
    for split in SPLITS:
        path = (speech_files or {}).get(split)
        if path is None or not Path(path).is_file():
            raise DataStageError(f"report input {path or 'speech/' + split + '.parquet'}: no "
                                 f"speech table for split {split}; rerun the speech_share stage")
        out[split] = pd.read_parquet(path)
    return out


def add_speech(sections_: list[Section], speech_files: Any, data: Data | None = None) -> None:
    """Append the speech-share sentences and table to the data section ("1. Data")."""
    table = speech_table(read_speech(speech_files))
    section = next(s for s in sections_ if s.title == "1. Data")
    section.paragraphs.extend(speech_sentences(table, data))
    section.tables.append(Table(
        "speech_share",
        "Speech share per clip (share of 32-ms frames the Silero VAD calls speech) and the "
        "per-clip correlation r between the VAD's speech probability and visual activity at "
        "the aligned frames: quartiles over clips",
        table, display=table.round(3)))


def speech_sentences(table: pd.DataFrame, data: Data | None = None) -> list[str]:
    """What the speech share implies for alignment, in words (the ``all`` row)."""
    row = table.set_index("split").loc["all"]
    share, r = row["speech_share_median"], row["activity_speech_r_median"]
    if math.isnan(share):
        return ["No clip with usable audio: the speech share is not measured."]
    if share >= SPREAD_SHARE:
        world = ("speech fills most of a typical clip, as in the synthetic `spread` world: a "
                 "window aligned to a frame hears nearly what the whole clip holds, so "
                 "alignment can matter little here")
    elif share <= EVENT_SHARE:
        world = ("speech covers at most half of a typical clip, as in the synthetic `event` "
                 "world: windows aligned to the frames can isolate when someone speaks, so "
                 "alignment can matter")
    else:
        world = ("speech covers most, but not all, of a typical clip: alignment can matter "
                 "only in the clips' silent parts")
    if data is not None and data.kind == findings.SYNTHETIC:
        # Measured against the truth file: the VAD misses most of the generated voice, so the
        # share reads no world here.
        world = ("on the synthetic corpus the VAD hears the generated voice only in part "
                 "(docs/corpus.md, \"Speech share\"), so these shares understate the planted "
                 "speech, most of all in the `spread` world, and do not tell the two worlds "
                 "apart")
    out = [f"Median speech share {fmt(share)} (Silero VAD; quartiles per split below): "
           f"{world}."]
    if math.isnan(r):
        out.append("Visual activity and speech could not be compared over time (too few "
                   "frames per clip, or constant series).")
    elif abs(r) < WEAK_R:
        out.append(f"Visual activity barely co-varies with speech over time (median r "
                   f"{fmt(r, signed=True)}): the frames tell an aligned model little about "
                   "which window holds speech.")
    else:
        out.append(f"Visual activity co-varies with speech over time (median r "
                   f"{fmt(r, signed=True)}): the frames carry a sign of when someone speaks.")
    return out
