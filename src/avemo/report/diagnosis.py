"""The report's "Why the fusion failed" section: the effects of avemo.diagnosis' design.

Every number is an effect from compare.json (family ``diagnosis``: the fraction's main effects
and interactions as contrasts over its runs, the nested steps and the control as pairs;
Holm-adjusted on its own, verdicts by the frozen protocol, avemo.evaluation.verdicts) or a
metrics JSON; the study's own explanation is quoted from the reference file. Collapse (one
class for at least the protocol's share of a model's DEV predictions, per seed) is an outcome
shown beside every effect and tested with the same contrast, paired over seeds; no row is
dropped or relabelled because of it. The waterfall draws the build-up (one path of many) from
its exploratory pairs.
"""

from __future__ import annotations

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
KIND_LABEL = {"main": "main effect", "interaction": "interaction",
              "step": "nested step", "control": "control"}


def _num(x: Any) -> float:
    return NAN if x is None else float(x)


def collapse_of(inp: ReportInputs, proto: Protocol) -> dict[str, dict[str, bool]]:
    """``{model: {seed: collapsed}}`` for the study and every diagnosis variant, from each
    model's DEV confusion matrices (the protocol's rule; test is never read for it)."""
    return {m: verdicts.collapsed_seeds(inp.metrics[m], proto.collapse_share,
                                        proto.collapse_split, proto.collapse_task)
            for m in [diagnosis.STUDY_MODEL, *inp.models.diagnosis] if m in inp.metrics}


def _mean_wf1(inp: ReportInputs, models: list[str]) -> float:
    """Mean over ``models`` of each one's seed-mean test emotion weighted F1 (a side of a
    contrast: the runs at one level)."""
    vals = [stats(inp.metrics[m], "emotion", "weighted_f1")["mean"] for m in models
            if m in inp.metrics]
    return float(sum(vals) / len(vals)) if vals and len(vals) == len(models) else NAN


def _sides(effect: diagnosis.Effect) -> tuple[str, str]:
    """What the effect compares, in words: two models, or the fraction's two halves."""
    if effect.pair is not None:
        return effect.pair
    plus, minus = len(effect.half(1)), len(effect.half(-1))
    if effect.kind == "main":
        second, first = diagnosis.FACTORS[effect.factor][1], diagnosis.STUDY[effect.factor]
        return (f"{plus} runs at {effect.factor}={second}",
                f"{minus} runs at {effect.factor}={first}")
    f, g = effect.factor.split("×")
    return (f"{plus} runs with {f} and {g} both at the study's level or both not",
            f"{minus} runs with one of them switched")


def _row(inp: ReportInputs, effect: diagnosis.Effect, proto: Protocol,
         collapse: dict[str, dict[str, bool]]) -> dict[str, Any]:
    entry = inp.effect(effect.name, effect.pair)
    test = entry["tests"]["emotion"]["weighted_f1"] if entry else None
    too_small = bool(entry and entry.get("too_small"))
    verdict = test.get("verdict") if test else None
    if test and verdict is None:  # a compare.json made without a protocol: no equivalence
        verdict = verdicts.verdict(test.get("p_holm"), test["ci_low"], test["ci_high"], None,
                                   proto.alpha, too_small)
    sim = (test or {}).get("simultaneous") or {}
    plus, minus = effect.half(1), effect.half(-1)
    a, b = _sides(effect)
    seeds = (entry or {}).get("seeds") or {}
    return {
        "effect": effect.name,
        "kind": effect.kind,
        "factor": effect.factor,
        "change": effect.label,
        "a": a,
        "b": b,
        "runs": len(effect.weights),
        "a_wf1": _mean_wf1(inp, plus),
        "b_wf1": _mean_wf1(inp, minus),
        "delta": test["delta"] if test else NAN,
        "ci_low": test["ci_low"] if test else NAN,      # marginal
        "ci_high": test["ci_high"] if test else NAN,
        "sim_low": _num(sim.get("low")),                 # simultaneous over the family
        "sim_high": _num(sim.get("high")),
        "sim_level": _num(sim.get("level")),
        "p": test["p_value"] if test else NAN,
        "p_holm": _num((test or {}).get("p_holm")),
        "p_tost_holm": _num((test or {}).get("p_tost_holm")),
        "n_seeds": len(seeds.get("a", []) if isinstance(seeds, dict) else seeds),
        "too_small": too_small,
        "verdict": verdict or verdicts.INCONCLUSIVE,
        "tested": test is not None,
        # Seeds collapsed on dev, summed over each side's runs (one model for a pair).
        "a_collapsed": sum(sum(collapse.get(m, {}).values()) for m in plus),
        "a_seeds": sum(len(collapse.get(m, {})) for m in plus),
        "b_collapsed": sum(sum(collapse.get(m, {}).values()) for m in minus),
        "b_seeds": sum(len(collapse.get(m, {})) for m in minus),
    }


def study_collapse(inp: ReportInputs, proto: Protocol) -> tuple[int, int]:
    """(seeds in which the study's fusion collapsed on dev, seeds with a dev confusion)."""
    c = collapse_of(inp, proto).get(diagnosis.STUDY_MODEL, {})
    return sum(c.values()), len(c)


def effects_table(inp: ReportInputs, proto: Protocol) -> pd.DataFrame:
    """One row per effect of avemo.diagnosis.effects (none dropped), with its collapse test."""
    collapse = collapse_of(inp, proto)
    effects = diagnosis.effects()
    df = pd.DataFrame([_row(inp, e, proto, collapse) for e in effects])
    tested = verdicts.collapse_effects([dict(e.weights) for e in effects], collapse,
                                       proto.alpha)
    df["collapse_p"] = [_num(t["p_value"]) for t in tested]
    df["collapse_p_holm"] = [_num(t["p_holm"]) for t in tested]
    df["collapse_verdict"] = [t["verdict"] for t in tested]
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
        "a − b": [f"`{a}` − `{b}`" if k in ("step", "control") else f"{a} − {b}"
                  for a, b, k in zip(df["a"], df["b"], df["kind"], strict=True)],
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
        "collapsed on dev: a / b (seeds, over each side's runs)": [
            f"{ka} of {na} / {kb} of {nb}" for ka, kb, na, nb in
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


def _named(r: pd.Series) -> str:
    """An effect's label with its kind (a contrast's label already names it)."""
    if r["kind"] in ("main", "interaction"):
        return str(r["change"])
    return f"{r['change']} ({KIND_LABEL[r['kind']]})"


def _rate(k: int, n: int) -> float:
    return k / n if n else NAN


def why(df: pd.DataFrame, alpha: float, share: float, study: tuple[int, int]) -> list[str]:
    """What happened, first: the study's collapse (``study``: seeds collapsed, seeds), which
    factors' main effects lowered it and at what gain; then the effects by verdict. Sentences
    without the data frame (callers add it)."""
    name = diagnosis.STUDY_MODEL
    out = []
    if df.empty:
        return out
    k, n = study
    what = f"one class for at least {share:.0%} of the dev clips"
    mains = df[df["kind"] == "main"]
    runs = int(mains["runs"].max()) if len(mains) else 0
    if k:
        head = f"the study's fusion (`{name}`) collapsed, predicting {what}, in {k} of {n} seeds"
        fixes = [r for _, r in mains.iterrows()
                 if _rate(r["a_collapsed"], r["a_seeds"]) < _rate(r["b_collapsed"], r["b_seeds"])]
        fixes.sort(key=lambda r: (_rate(r["a_collapsed"], r["a_seeds"])
                                  - _rate(r["b_collapsed"], r["b_seeds"]), -r["delta"]))
        if fixes:
            head += f"; over the design's {runs} runs, " + "; ".join(
                f"{r['change']} lowered it from {int(r['b_collapsed'])} of {int(r['b_seeds'])} "
                f"run-seeds to {int(r['a_collapsed'])} of {int(r['a_seeds'])} (sign test over "
                f"seeds, p (Holm) {fmt_p(r['collapse_p_holm'])}: {r['collapse_verdict']}) and "
                f"changed test weighted F1 by {_effect_text(r)}" for r in fixes)
        else:
            head += "; no factor's main effect over the design's runs lowered it"
        out.append(head)
        # The verdict reads the Holm-adjusted p: its floor is m times the raw one.
        m = max(int(df["collapse_p"].notna().sum()), 1)
        floor = min(1.0, m * verdicts.min_sign_test_p(n))
        if floor >= alpha:
            out.append(f"whether a factor changes the collapse is tested paired over seeds (exact "
                       f"sign test, Holm-adjusted over {m} effects); with {n} seeds its smallest "
                       f"possible adjusted p is {floor:.3g}, so no collapse difference can reach "
                       "a verdict: it needs more seeds")
    elif n == 0:  # no seed has a dev confusion matrix: nothing is known about collapse
        out.append(f"whether the study's fusion (`{name}`) collapsed is not measured: no "
                   "seed has a dev confusion matrix")
    else:
        out.append(f"the study's fusion (`{name}`) did not collapse ({what} in 0 of {n} "
                   "seeds)")
    main = df[df["kind"] != "control"]
    for v, words in ((verdicts.EFFECT, "effects (Holm-adjusted p < alpha, interval on one "
                      "side of 0)"),
                     (verdicts.EQUIVALENT, "equivalent within the margin (TOST, Holm-adjusted)")):
        rows = main[main["verdict"] == v]
        if len(rows):
            out.append(f"{words}: " + "; ".join(
                f"{_named(r)}, {fmt(r['delta'], True)}" for _, r in rows.iterrows()))
    n_inc = int((main["verdict"] == verdicts.INCONCLUSIVE).sum())
    out.append(f"{n_inc} of {len(main)} factor effects are inconclusive (neither an effect "
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
    emb = _row_of(df, "main", "embeddings")
    if emb is not None:
        out.append(
            f"cross-fitted instead of in-sample train embeddings (main effect over the "
            f"design's {runs} runs) change test weighted F1 by {_effect_text(emb)}; collapsed "
            f"on dev in {int(emb['a_collapsed'])} of {int(emb['a_seeds'])} run-seeds "
            f"(cross-fitted) vs {int(emb['b_collapsed'])} of {int(emb['b_seeds'])} (in-sample)")
    return out


def summary(df: pd.DataFrame, alpha: float, share: float, study: tuple[int, int]
            ) -> list[str]:
    """The report's opening answer: the first sentences of ``why`` (collapse and what
    lowered it, the effects by verdict)."""
    return why(df, alpha, share, study)[:4]


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
    section.paragraphs += [data.finding(s) for s in why(df, alpha, proto.collapse_share,
                                                        study_collapse(inp, proto))]
    section.paragraphs.append(sensitivity.paragraph(planted, proto.hash))
    explanation = (ref.get("study") or {}).get("explanation")
    if explanation:
        section.paragraphs.append(f"**The study's explanation (quoted, not measured here):** "
                                  f"{' '.join(str(explanation).split())}")
    section.paragraphs.append(
        "Measured here: the study's setup (`concat_misaligned`: in-sample train embeddings, "
        "unscaled, the fusion budget, sparse frames, the whole-clip audio vector, "
        "concatenation) and its five independent factors crossed in the 16 runs of a 2^(5−1) "
        "fractional factorial (the study among them; resolution V): each **main effect** is "
        "the mean over the 8 runs at the factor's second level minus the mean over the 8 at "
        "the study's, each **interaction** the mean over the runs where the two factors are "
        "both switched or both not minus the mean where one is, so no effect depends on an "
        "order of switching. The nested factors (frame activity, time-aligned windows, "
        "cross-attention exist only with dense frames and windowed audio) are paired steps "
        "within that parent level, with a negative control (the same windows with their order "
        "shuffled within each clip). Cross-fitted train embeddings come from one model per "
        "fold, mapped into the full model's embedding coordinates (an affine map fitted on the "
        "clips each fold model trained on); the activity step puts each dense frame's activity "
        "(what moves within the clip) beside its embedding. Every effect is evaluated on the "
        "same test utterances over every seed, one draw of dialogues and seeds serving all its "
        "models. Under the diagnosis protocol "
        f"`{proto.hash}` (docs/diagnosis.md), fixed before the run: p is Holm-adjusted over "
        "the rows of this table (their own family); a row reads **effect** when the adjusted "
        "p is below "
        f"{alpha:g} and the interval lies on one side of 0, **equivalent** when the "
        f"Holm-adjusted equivalence test (TOST) puts the difference inside ±{proto.margin:g} "
        "weighted F1, otherwise **inconclusive**. The first interval is marginal "
        f"({1 - alpha:.0%}), the second simultaneous over the family (Bonferroni). A model "
        f"collapsed in a seed when one class took at least {proto.collapse_share:.0%} of its "
        "dev predictions (decided on dev, before test is read); collapse is an outcome: every "
        "row is kept, and an effect on it is the row's contrast of the seeds' 0/1 collapse, "
        "tested with an exact sign test over the paired seeds, Holm-adjusted over the rows.")
    section.tables.append(Table("fusion_factors",
                                "Factor effects on test emotion weighted F1 (a − b on the same "
                                "resamples), with collapse on dev", df, _display(df, alpha)))
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
    start = (diagnosis.STUDY_MODEL,
             stats(inp.metrics[diagnosis.STUDY_MODEL], "emotion", "weighted_f1")["mean"])
    bars = []
    for step in diagnosis.chain():
        entry = inp.pair(*step.pair)  # type: ignore[misc]
        if entry is None:
            continue
        t = entry["tests"]["emotion"]["weighted_f1"]
        bars.append((f"+ {step.factor}", float(t["delta"]), float(t["ci_low"]),
                     float(t["ci_high"])))
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
        path, "Waterfall from the study's fusion to the last build-up step (one path of many, "
        "shown, not decided on: the verdicts come from the design, in the table): each bar is "
        "one factor's paired step (test emotion "
        f"weighted F1, mean over seeds) with its marginal {1 - alpha:.0%} interval; dashed "
        "lines are reference levels"))
    return section


def _levels(model: str) -> dict[str, str]:
    return dict(registry.get(model).factors)
