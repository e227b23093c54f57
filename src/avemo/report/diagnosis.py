"""The report's "Why the fusion failed" section: the factor effects of avemo.diagnosis.

Every number is a paired comparison from compare.json (family ``diagnosis``: Holm-adjusted on
its own, verdicts by the frozen protocol, avemo.evaluation.verdicts) or a metrics JSON; the
study's own explanation is quoted from the reference file. Collapse (one class for at least the
protocol's share of a model's DEV predictions, per seed) is an outcome shown beside every
effect and tested paired over seeds; no row is dropped or relabelled because of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .. import diagnosis, registry
from ..evaluation import sensitivity, verdicts
from ..evaluation.protocol import Protocol
from . import figures
from .findings import Data
from .inputs import ReportInputs
from .render import Figure, Section, Table
from .tables import NAN, fmt, fmt_p, fmt_stats, stats

TITLE = "Why the fusion failed"
KIND_LABEL = {"alone": "switched alone", "step": "build-up step", "control": "control"}


def _num(x: Any) -> float:
    return NAN if x is None else float(x)


def collapse_of(inp: ReportInputs, proto: Protocol) -> dict[str, dict[str, bool]]:
    """``{model: {seed: collapsed}}`` for the study and every diagnosis variant, from each
    model's DEV confusion matrices (the protocol's rule; test is never read for it)."""
    return {m: verdicts.collapsed_seeds(inp.metrics[m], proto.collapse_share,
                                        proto.collapse_split, proto.collapse_task)
            for m in [diagnosis.STUDY_MODEL, *inp.models.diagnosis] if m in inp.metrics}


def _row(inp: ReportInputs, effect: diagnosis.Effect, proto: Protocol,
         collapse: dict[str, dict[str, bool]]) -> dict[str, Any]:
    entry = inp.pair(effect.a, effect.b)
    test = entry["tests"]["emotion"]["weighted_f1"] if entry else None
    too_small = bool(entry and entry.get("too_small"))
    verdict = test.get("verdict") if test else None
    if test and verdict is None:  # a compare.json made without a protocol: no equivalence
        verdict = verdicts.verdict(test.get("p_holm"), test["ci_low"], test["ci_high"], None,
                                   proto.alpha, too_small)
    sim = (test or {}).get("simultaneous") or {}
    ca, cb = collapse.get(effect.a, {}), collapse.get(effect.b, {})
    return {
        "kind": effect.kind,
        "factor": effect.factor,
        "change": effect.label,
        "a": effect.a,
        "b": effect.b,
        "a_wf1": stats(inp.metrics[effect.a], "emotion", "weighted_f1")["mean"],
        "b_wf1": stats(inp.metrics[effect.b], "emotion", "weighted_f1")["mean"],
        "delta": test["delta"] if test else NAN,
        "ci_low": test["ci_low"] if test else NAN,      # marginal
        "ci_high": test["ci_high"] if test else NAN,
        "sim_low": _num(sim.get("low")),                 # simultaneous over the family
        "sim_high": _num(sim.get("high")),
        "sim_level": _num(sim.get("level")),
        "p": test["p_value"] if test else NAN,
        "p_holm": _num((test or {}).get("p_holm")),
        "p_tost_holm": _num((test or {}).get("p_tost_holm")),
        "n_seeds": len((entry or {}).get("seeds", {}).get("a", [])) if entry else 0,
        "too_small": too_small,
        "verdict": verdict or verdicts.INCONCLUSIVE,
        "tested": test is not None,
        "a_collapsed": sum(ca.values()),
        "a_seeds": len(ca),
        "b_collapsed": sum(cb.values()),
        "b_seeds": len(cb),
        # Seeds where b collapsed and a did not (the same seed: variants are paired).
        "a_prevented": sum(1 for seed, c in cb.items() if c and not ca.get(seed, True)),
    }


def effects_table(inp: ReportInputs, proto: Protocol) -> pd.DataFrame:
    """One row per effect of avemo.diagnosis.effects (none dropped), with its collapse test."""
    collapse = collapse_of(inp, proto)
    effects = diagnosis.effects()
    df = pd.DataFrame([_row(inp, e, proto, collapse) for e in effects])
    # Holm over distinct pairs, as compare.json's family: a pair shown twice (the first
    # build-up step is also a switch alone) is one test, not two.
    pairs = list(dict.fromkeys((e.a, e.b) for e in effects))
    tested = dict(zip(pairs, verdicts.collapse_effects(
        [(collapse.get(a, {}), collapse.get(b, {})) for a, b in pairs], proto.alpha),
        strict=True))
    df["collapse_p"] = [_num(tested[(e.a, e.b)]["p_value"]) for e in effects]
    df["collapse_p_holm"] = [_num(tested[(e.a, e.b)]["p_holm"]) for e in effects]
    df["collapse_verdict"] = [tested[(e.a, e.b)]["verdict"] for e in effects]
    df["protocol"] = proto.hash
    return df


def collapse_levels(inp: ReportInputs, proto: Protocol) -> pd.DataFrame:
    """Collapse rate per factor level, pooled over the study and every variant at that level
    (descriptive: in the one-at-a-time design the levels differ in other factors too)."""
    collapse = collapse_of(inp, proto)
    rows = []
    for factor, levels in diagnosis.FACTORS.items():
        for level in levels:
            models = [m for m in collapse if registry.get(m).factors.get(factor) == level]
            if not models:
                continue
            k = sum(sum(collapse[m].values()) for m in models)
            n = sum(len(collapse[m]) for m in models)
            rows.append({"factor": factor, "level": level, "models": len(models),
                         "collapsed_seeds": k, "seeds": n,
                         "rate": k / n if n else NAN})
    return pd.DataFrame(rows, columns=["factor", "level", "models", "collapsed_seeds", "seeds",
                                       "rate"])


def _interval(lo: float, hi: float) -> str:
    return f"[{fmt(lo, True)}, {fmt(hi, True)}]"


def _display(df: pd.DataFrame, alpha: float) -> pd.DataFrame:
    level = f"{1 - alpha:.0%}"
    sim = df["sim_level"].dropna()
    sim_label = f"{sim.iloc[0]:.2%}" if len(sim) else "n/a"
    return pd.DataFrame({
        "": [KIND_LABEL[k] for k in df["kind"]],
        "change": df["change"],
        "a − b": [f"`{a}` − `{b}`" for a, b in zip(df["a"], df["b"], strict=True)],
        f"Δ test wF1 [marginal {level}]": [
            f"{fmt(d, True)} {_interval(lo, hi)}"
            for d, lo, hi in zip(df["delta"], df["ci_low"], df["ci_high"], strict=True)],
        f"[simultaneous {sim_label}]": [
            _interval(lo, hi) for lo, hi in zip(df["sim_low"], df["sim_high"], strict=True)],
        "p (Holm)": [fmt_p(p) for p in df["p_holm"]],
        "TOST p (Holm)": [fmt_p(p) for p in df["p_tost_holm"]],
        "verdict": [v + ("" if t else " (not tested: no pair in compare.json)")
                    + (" (too few test utterances)" if s else "")
                    for v, t, s in zip(df["verdict"], df["tested"], df["too_small"],
                                       strict=True)],
        "collapsed on dev: a / b (seeds)": [
            f"{ka} / {kb} of {max(na, nb)}" for ka, kb, na, nb in
            zip(df["a_collapsed"], df["b_collapsed"], df["a_seeds"], df["b_seeds"],
                strict=True)],
        "collapse: p (Holm), verdict": [
            f"{fmt_p(p)}, {v}" for p, v in
            zip(df["collapse_p_holm"], df["collapse_verdict"], strict=True)],
    })


def _row_of(df: pd.DataFrame, kind: str, factor: str) -> pd.Series | None:
    rows = df[(df["kind"] == kind) & (df["factor"] == factor)]
    return None if rows.empty else rows.iloc[0]


def _effect_text(r: pd.Series) -> str:
    return (f"{fmt(r['delta'], True)} {_interval(r['ci_low'], r['ci_high'])} (marginal), "
            f"p (Holm) {fmt_p(r['p_holm'])}, verdict **{r['verdict']}**")


def why(df: pd.DataFrame, alpha: float, share: float) -> list[str]:
    """What happened, first: the study's collapse, what alone prevented it and at what gain;
    then the effects by verdict. Sentences without the data frame (callers add it)."""
    study = diagnosis.STUDY_MODEL
    alone = df[df["kind"] == "alone"]
    out = []
    if alone.empty:
        return out
    k, n = int(alone.iloc[0]["b_collapsed"]), int(alone.iloc[0]["b_seeds"])
    what = f"one class for at least {share:.0%} of the dev clips"
    if k:
        head = (f"the study's fusion (`{study}`) collapsed, predicting {what}, in {k} of {n} "
                "seeds")
        fixes = [(int(r["a_prevented"]), r) for _, r in alone.iterrows()
                 if int(r["a_prevented"]) > 0]
        fixes.sort(key=lambda x: (-x[0], -x[1]["delta"]))
        if fixes:
            head += "; " + "; ".join(
                f"{r['change']} alone (`{r['a']}`) prevented that in {m} of those {k} seeds "
                f"and changed test weighted F1 by {_effect_text(r)}" for m, r in fixes)
        else:
            head += "; no factor switched alone prevented it"
        out.append(head)
        # The verdict reads the Holm-adjusted p: its floor is m times the raw one.
        m = max(len(df.loc[df["collapse_p"].notna(), ["a", "b"]].drop_duplicates()), 1)
        floor = min(1.0, m * verdicts.min_sign_test_p(n))
        if floor >= alpha:
            out.append(f"whether a factor changes the collapse is tested paired over seeds (exact "
                       f"sign test, Holm-adjusted over {m} effects); with {n} seeds its smallest "
                       f"possible adjusted p is {floor:.3g}, so no collapse difference can reach "
                       "a verdict: it needs more seeds")
    elif n == 0:  # no seed has a dev confusion matrix: nothing is known about collapse
        out.append(f"whether the study's fusion (`{study}`) collapsed is not measured: no "
                   "seed has a dev confusion matrix")
    else:
        out.append(f"the study's fusion (`{study}`) did not collapse ({what} in 0 of {n} "
                   "seeds)")
    main = df[df["kind"] != "control"]
    for v, words in ((verdicts.EFFECT, "effects (Holm-adjusted p < alpha, interval on one "
                      "side of 0)"),
                     (verdicts.EQUIVALENT, "equivalent within the margin (TOST, Holm-adjusted)")):
        rows = main[main["verdict"] == v]
        if len(rows):
            out.append(f"{words}: " + "; ".join(
                f"{r['change']} ({KIND_LABEL[r['kind']]}, {fmt(r['delta'], True)})"
                for _, r in rows.iterrows()))
    distinct = main.drop_duplicates(["a", "b"])  # a pair shown twice is one effect
    n_inc = int((distinct["verdict"] == verdicts.INCONCLUSIVE).sum())
    out.append(f"{n_inc} of {len(distinct)} factor effects are inconclusive (neither an effect "
               "nor equivalent: not evidence that the factor does not matter)")
    step = _row_of(df, "step", "alignment")
    controls = df[df["kind"] == "control"]
    if step is not None and len(controls) == 2:
        proper = controls[controls["a"] == step["a"]]
        control = controls[controls["a"] != step["a"]]
        if len(proper) and len(control):
            p, c = proper.iloc[0], control.iloc[0]
            out.append(
                f"aligned windows against the same windows time-shuffled within the clip: "
                f"{_effect_text(p)}; the shuffled control against the pooled inputs: "
                f"{_effect_text(c)}. Temporal alignment itself matters only when the first "
                "is an effect and the second is not")
    emb = _row_of(df, "alone", "embeddings")
    if emb is not None:
        out.append(
            f"training the study's fusion on cross-fitted instead of in-sample train "
            f"embeddings changes test weighted F1 by {_effect_text(emb)}; collapsed on dev in "
            f"{int(emb['a_collapsed'])} (cross-fitted) vs {int(emb['b_collapsed'])} (in-sample) "
            f"of {int(emb['a_seeds'])} seeds")
    return out


def summary(df: pd.DataFrame, alpha: float, share: float) -> list[str]:
    """The report's opening answer: the first sentences of ``why`` (collapse and what
    prevented it, the effects by verdict)."""
    return why(df, alpha, share)[:4]


def diagnosis_section(inp: ReportInputs, fig_dir: Path, ref: dict[str, Any], data: Data,
                      proto: Protocol, planted: Mapping[str, Any] | None = None
                      ) -> Section | None:
    """The section, or None when the diagnosis is not configured. ``planted``: the planted
    check's record (avemo.evaluation.sensitivity): what this protocol detects where the cause
    is known, said beside this data's verdicts."""
    if not inp.models.diagnosis or diagnosis.STUDY_MODEL not in inp.models.fusion:
        return None
    alpha = proto.alpha
    section = Section(TITLE)
    df = effects_table(inp, proto)
    section.paragraphs += [data.finding(s) for s in why(df, alpha, proto.collapse_share)]
    section.paragraphs.append(sensitivity.paragraph(planted, proto.hash))
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
        "paired test of a − b on the same test utterances over every seed (one draw of "
        "dialogues and seeds serves both models). Under the diagnosis protocol "
        f"`{proto.hash}` (docs/diagnosis.md), fixed before the run: p is Holm-adjusted over "
        "the rows of this table (their own family); a row reads **effect** when the adjusted "
        "p is below "
        f"{alpha:g} and the interval lies on one side of 0, **equivalent** when the "
        f"Holm-adjusted equivalence test (TOST) puts the difference inside ±{proto.margin:g} "
        "weighted F1, otherwise **inconclusive**. The first interval is marginal "
        f"({1 - alpha:.0%}), the second simultaneous over the family (Bonferroni). A model "
        f"collapsed in a seed when one class took at least {proto.collapse_share:.0%} of its "
        "dev predictions (decided on dev, before test is read); collapse is an outcome: every "
        "row is kept, and a factor's effect on it is an exact sign test over the paired seeds, "
        "Holm-adjusted over the rows.")
    section.tables.append(Table("fusion_factors",
                                "Factor effects on test emotion weighted F1 (a − b, paired), "
                                "with collapse on dev", df, _display(df, alpha)))
    levels_df = collapse_levels(inp, proto)
    section.tables.append(Table(
        "fusion_collapse_levels",
        f"Collapse rate per factor level (one class for ≥ {proto.collapse_share:.0%} of dev "
        "clips), pooled over the study and the variants at that level: descriptive",
        levels_df,
        levels_df.assign(rate=[fmt(r) for r in levels_df["rate"]])))
    variants = [diagnosis.STUDY_MODEL, *inp.models.diagnosis]
    collapse = collapse_of(inp, proto)
    levels = pd.DataFrame([
        {"model": m, "test_wf1": fmt_stats(stats(inp.metrics[m], "emotion", "weighted_f1")),
         "collapsed_dev_seeds": f"{sum(collapse.get(m, {}).values())} of "
                                f"{len(collapse.get(m, {}))}",
         **_levels(m)} for m in variants])
    section.tables.append(Table("fusion_variants",
                                "The diagnosis variants: factor levels, test emotion "
                                "weighted F1 (mean ± std over seeds [CI]) and seeds "
                                "collapsed on dev", levels))
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
        path, "Waterfall from the study's fusion to the last build-up step (one path of many: "
        "the verdicts are in the table): each bar is one factor's paired effect (test emotion "
        f"weighted F1, mean over seeds) with its marginal {1 - alpha:.0%} interval; dashed "
        "lines are reference levels"))
    return section


def _levels(model: str) -> dict[str, str]:
    return dict(registry.get(model).factors)
