"""The report's "Why the fusion failed" section: the factor effects of avemo.diagnosis.

Every number is a paired comparison from compare.json (family ``diagnosis``: Holm-adjusted on
its own) or a metrics JSON; the study's own explanation is quoted from the reference file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from .. import diagnosis, registry
from . import figures
from .findings import Data
from .inputs import ReportInputs
from .render import Figure, Section, Table
from .tables import NAN, fmt, fmt_p, fmt_stats, one_class_seeds, stats

TITLE = "Why the fusion failed"
KIND_LABEL = {"alone": "switched alone", "step": "build-up step", "control": "control"}


def verdict(test: dict[str, Any] | None, p_holm: float | None, alpha: float,
            too_small: bool) -> str:
    """helps / hurts / no significant effect (Holm-adjusted p and the CI must agree)."""
    if test is None:
        return "not tested"
    if too_small:
        return "no verdict (too few utterances)"
    p = NAN if p_holm is None else p_holm
    if p < alpha and test["ci_low"] > 0:
        return "helps"
    if p < alpha and test["ci_high"] < 0:
        return "hurts"
    return "no significant effect"


def _row(inp: ReportInputs, effect: diagnosis.Effect, alpha: float) -> dict[str, Any]:
    entry = inp.pair(effect.a, effect.b)
    test = entry["tests"]["emotion"]["weighted_f1"] if entry else None
    p_holm = test.get("p_holm") if test else None
    return {
        "kind": effect.kind,
        "factor": effect.factor,
        "change": effect.label,
        "a": effect.a,
        "b": effect.b,
        "a_wf1": stats(inp.metrics[effect.a], "emotion", "weighted_f1")["mean"],
        "b_wf1": stats(inp.metrics[effect.b], "emotion", "weighted_f1")["mean"],
        "delta": test["delta"] if test else NAN,
        "ci_low": test["ci_low"] if test else NAN,
        "ci_high": test["ci_high"] if test else NAN,
        "p": test["p_value"] if test else NAN,
        "p_holm": NAN if p_holm is None else p_holm,
        "n_seeds": len(entry.get("seeds", [])) if entry else 0,
        "verdict": verdict(test, p_holm, alpha, bool(entry and entry.get("too_small"))),
        "one_class": "; ".join(
            f"`{m}` in {len(k)} of {len(inp.metrics[m].get('seeds') or {})} seeds"
            for m in (effect.a, effect.b) if (k := one_class_seeds(inp.metrics[m]))),
    }


def effects_table(inp: ReportInputs, alpha: float) -> pd.DataFrame:
    return pd.DataFrame([_row(inp, e, alpha) for e in diagnosis.effects()])


def _display(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "": [KIND_LABEL[k] for k in df["kind"]],
        "change": df["change"],
        "a − b": [f"`{a}` − `{b}`" for a, b in zip(df["a"], df["b"], strict=True)],
        "Δ test wF1 [95% CI]": [
            f"{fmt(d, True)} [{fmt(lo, True)}, {fmt(hi, True)}]"
            for d, lo, hi in zip(df["delta"], df["ci_low"], df["ci_high"], strict=True)],
        "p (Holm)": [fmt_p(p) for p in df["p_holm"]],
        "verdict": [v + (f" (one class for every test clip: {c}: the difference measures "
                         "the collapse, not the factor)" if c else "")
                    for v, c in zip(df["verdict"], df["one_class"], strict=True)],
    })


def _sentence(df: pd.DataFrame, kind: str, factor: str) -> pd.Series | None:
    rows = df[(df["kind"] == kind) & (df["factor"] == factor)]
    return None if rows.empty else rows.iloc[0]


def _findings(df: pd.DataFrame, data: Data) -> list[str]:
    """What the table says about the study's explanation, each sentence naming its data."""
    out = []
    if df["verdict"].str.startswith("no verdict").all():
        return [data.finding("the test split is too small for a verdict on any factor; the "
                             "table shows the mechanism only")]
    helps = [r for _, r in df.iterrows() if r["kind"] != "control" and r["verdict"] == "helps"]
    if helps:
        names = "; ".join(f"{r['change']} ({fmt(r['delta'], True)})"
                          for r in helps)
        out.append(data.finding(f"the changes that significantly raise test weighted F1 are: "
                                f"{names}"))
    else:
        out.append(data.finding("no single change significantly raises test weighted F1"))
    step = _sentence(df, "step", "alignment")
    proper = df[(df["kind"] == "control") & (df["a"] == step["a"])] if step is not None else None
    control = (df[(df["kind"] == "control") & (df["a"] != step["a"])]
               if step is not None else None)
    if proper is not None and not proper.empty and control is not None and not control.empty:
        p, c = proper.iloc[0], control.iloc[0]
        out.append(data.finding(
            f"aligned windows against the same windows time-shuffled within the clip: "
            f"{fmt(p['delta'], True)} [{fmt(p['ci_low'], True)}, {fmt(p['ci_high'], True)}] "
            f"({p['verdict']}); the shuffled control against the pooled inputs: "
            f"{fmt(c['delta'], True)} ({c['verdict']}). Temporal alignment itself matters only "
            "when the first is significant and the control is not"))
    emb = _sentence(df, "alone", "embeddings")
    if emb is not None:
        out.append(data.finding(
            f"training the study's fusion on cross-fitted instead of in-sample train "
            f"embeddings changes test weighted F1 by {fmt(emb['delta'], True)} "
            f"({emb['verdict']}); the study's setup trained on in-sample embeddings"
            + (f". Not informative here: one class predicted for every test clip by "
               f"{emb['one_class']} (a collapsed model scores the majority baseline)"
               if emb["one_class"] else "")))
    return out


def diagnosis_section(inp: ReportInputs, fig_dir: Path, ref: dict[str, Any], data: Data,
                      alpha: float) -> Section | None:
    """The section, or None when the diagnosis is not configured."""
    if not inp.models.diagnosis or diagnosis.STUDY_MODEL not in inp.models.fusion:
        return None
    section = Section(TITLE)
    explanation = (ref.get("study") or {}).get("explanation")
    if explanation:
        section.paragraphs.append(f"**The study's explanation (quoted, not measured here):** "
                                  f"{' '.join(str(explanation).split())}")
    section.paragraphs.append(
        "Measured here: the study's setup (`concat_misaligned`: in-sample train embeddings, "
        "unscaled, the fusion budget, sparse frames, the whole-clip audio vector, "
        "concatenation) with each factor switched alone, then the factors added one per step up "
        "to cross-attention on aligned windows, and a negative control (the same windows with "
        "their order shuffled within each clip). Cross-fitted train embeddings come from one "
        "model per fold, mapped into the full model's embedding coordinates (an affine map "
        "fitted on the clips each fold model trained on); the activity step puts each dense "
        "frame's activity (what moves within the clip) beside its embedding. Each row is a "
        "paired test of a − b on the same "
        f"test utterances over every seed (dialogue × seed bootstrap, {100 * (1 - alpha):.0f}% "
        "interval); p is Holm-adjusted over the rows of this table (their own family). A "
        "verdict needs the adjusted p below alpha and the interval on one side of 0.")
    df = effects_table(inp, alpha)
    section.tables.append(Table("fusion_factors",
                                "Factor effects on test emotion weighted F1 (a − b, paired)",
                                df, _display(df)))
    variants = [diagnosis.STUDY_MODEL, *inp.models.diagnosis]
    levels = pd.DataFrame([
        {"model": m, "test_wf1": fmt_stats(stats(inp.metrics[m], "emotion", "weighted_f1")),
         **_levels(m)} for m in variants])
    section.tables.append(Table("fusion_variants",
                                "The diagnosis variants: factor levels and test emotion "
                                "weighted F1 (mean ± std over seeds [CI])", levels))
    section.paragraphs += _findings(df, data)
    steps = df[df["kind"] == "step"]
    start = (diagnosis.STUDY_MODEL,
             stats(inp.metrics[diagnosis.STUDY_MODEL], "emotion", "weighted_f1")["mean"])
    bars = [(f"+ {r['factor']}", float(r["delta"]), float(r["ci_low"]), float(r["ci_high"]))
            for _, r in steps.iterrows() if not math.isnan(r["delta"])]
    lines = {}
    best = inp.best.get("single_stream")
    if best:
        lines[f"best single stream ({best['model']})"] = stats(
            inp.metrics[best["model"]], "emotion", "weighted_f1")["mean"]
    if "majority" in inp.metrics:
        lines["majority"] = stats(inp.metrics["majority"], "emotion", "weighted_f1")["mean"]
    control = diagnosis.control_model()
    if control in inp.metrics:
        lines["time-shuffled control"] = stats(inp.metrics[control], "emotion",
                                               "weighted_f1")["mean"]
    path = fig_dir / "fusion_waterfall.png"
    figures.waterfall(start, bars, path, lines, data.label, end=diagnosis.chain_models()[-1])
    section.figures.append(Figure(
        path, "Waterfall from the study's fusion to the last build-up step: each bar is one "
        "factor's paired effect (test emotion weighted F1, mean over seeds) with its 95% "
        "interval; dashed lines are reference levels"))
    return section


def _levels(model: str) -> dict[str, str]:
    return dict(registry.get(model).factors)
