"""Report tables, each a DataFrame computed from one stage's output files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DataStageError
from ..labels import EMOTIONS, SENTIMENTS, SPLITS


def class_counts(manifests: dict[str, pd.DataFrame], column: str) -> pd.DataFrame:
    """Per-split counts and shares of each label (the imbalance), in label order."""
    labels = EMOTIONS if column == "emotion" else SENTIMENTS
    rows = {}
    for split in SPLITS:
        counts = manifests[split][column].value_counts().reindex(labels, fill_value=0)
        rows[split] = counts
    table = pd.DataFrame(rows).astype(int)
    table.index.name = column
    total = table.sum(axis=0)
    for split in SPLITS:
        table[f"{split}_%"] = (100.0 * table[split] / max(int(total[split]), 1)).round(1)
    return table.reset_index()


def durations(manifests: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Clip duration statistics per split (container durations, seconds)."""
    rows = []
    for split in SPLITS:
        d = manifests[split]["duration_s"].dropna()
        rows.append(
            {
                "split": split,
                "utterances": len(manifests[split]),
                "clips_readable": int(d.size),
                "min_s": round(float(d.min()), 2) if d.size else float("nan"),
                "median_s": round(float(d.median()), 2) if d.size else float("nan"),
                "mean_s": round(float(d.mean()), 2) if d.size else float("nan"),
                "max_s": round(float(d.max()), 2) if d.size else float("nan"),
                "total_h": round(float(d.sum()) / 3600.0, 3),
            }
        )
    return pd.DataFrame(rows)


def qc_summary(qc_files: list[Path]) -> pd.DataFrame:
    """Problems found by the data stages, counted per split, stage and reason."""
    frames = [pd.read_csv(p, keep_default_na=False) for p in qc_files if Path(p).exists()]
    qc = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["split", "clip_name", "stage", "reason", "detail"])
    )
    if qc.empty:
        return pd.DataFrame(columns=["split", "stage", "reason", "clips", "examples"])
    grouped = qc.groupby(["split", "stage", "reason"], sort=True)
    return (
        grouped["clip_name"]
        .agg(clips="count", examples=lambda s: ", ".join(sorted(map(str, s))[:3]))
        .reset_index()
    )


# --- model results (from metrics/{model}.json and compare.json only) -------------------------

HEADLINE = ("weighted_f1", "macro_f1", "accuracy")
NAN = float("nan")
# The one test per pair that carries a verdict (evaluation.compare.PRIMARY_ENDPOINT).
ENDPOINT = ("emotion", "weighted_f1")


def stats(metrics: dict[str, Any], task: str, metric: str, split: str = "test") -> dict[str, float]:
    """``{mean, std, n, ci_low, ci_high}`` of one metric: mean ± std over seeds, and the
    bootstrap CI of the seed-mean (NaN when the seeds scored different utterances)."""
    try:
        agg = metrics["aggregate"][split][task][metric]
    except KeyError as exc:
        raise DataStageError(
            f"metrics of {metrics.get('model')} lack {split}/{task}/{metric}: rerun its evaluate "
            "stage"
        ) from exc
    ci = (metrics.get("ci", {}).get(split) or {}).get("mean_over_seeds")
    low, high = (ci[task][metric]["low"], ci[task][metric]["high"]) if ci else (NAN, NAN)
    std = NAN if agg.get("std") is None else agg["std"]  # null: one seed, no spread
    return {"mean": agg["mean"], "std": std, "n": agg["n"], "ci_low": low, "ci_high": high}


def fmt(x: float, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def fmt_p(p: float) -> str:
    return "n/a" if p is None or math.isnan(p) else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")


def fmt_stats(s: dict[str, float]) -> str:
    """ "0.312 ± 0.010 [0.281, 0.345]" (mean ± std over seeds [bootstrap CI]); with one seed
    (std NaN/None) the mean alone: "0.312 [0.281, 0.345]", never "± 0.000"."""
    ci = "" if math.isnan(s["ci_low"]) else f" [{fmt(s['ci_low'])}, {fmt(s['ci_high'])}]"
    std = s.get("std")
    if std is None or math.isnan(std) or s.get("n", 2) < 2:
        return f"{fmt(s['mean'])}{ci}"
    return f"{fmt(s['mean'])} ± {fmt(std)}{ci}"


def model_rows(
    names: list[str],
    metrics: dict[str, dict[str, Any]],
    task: str = "emotion",
    split: str = "test",
    extra: dict[str, dict[str, Any]] | None = None,
    vs: dict[str, dict[str, Any] | None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per model: (CSV frame with raw numbers, display frame).

    CSV columns: ``model, seeds, dev_weighted_f1_mean`` (the selection score) and, for each
    headline metric ``m`` on ``split``: ``test_m_mean, test_m_std, test_m_ci_low, test_m_ci_high``;
    then ``extra[model]`` columns (e.g. weights_used) and, when ``vs`` gives a comparison per
    model (compare.json entry, a = model), ``delta_vs_<b>_weighted_f1`` and its ``p``.
    """
    rows, shown = [], []
    for name in names:
        m = metrics[name]
        row: dict[str, Any] = {"model": name, "seeds": len(m["seeds"])}
        dev = m["aggregate"].get("dev", {}).get(task, {}).get("weighted_f1")
        row["dev_weighted_f1_mean"] = dev["mean"] if dev else NAN
        disp: dict[str, Any] = {
            "model": name,
            "seeds": row["seeds"],
            "dev wF1 (selection)": fmt(row["dev_weighted_f1_mean"]),
        }
        for metric in HEADLINE:
            s = stats(m, task, metric, split)
            for k in ("mean", "std", "ci_low", "ci_high"):
                row[f"{split}_{metric}_{k}"] = s[k]
            disp[f"{split} {metric.replace('_', ' ')}"] = fmt_stats(s)
        for k, v in (extra or {}).get(name, {}).items():
            row[k] = v
            disp[k.replace("_", " ")] = v
        entry = (vs or {}).get(name)
        if vs is not None:
            t = entry["tests"][task]["weighted_f1"] if entry else None
            other = entry["b"] if entry else "majority"
            row[f"delta_vs_{other}_weighted_f1"] = t["delta"] if t else NAN
            row[f"delta_vs_{other}_p"] = t["p_value"] if t else NAN
            disp[f"Δ wF1 vs {other} (p)"] = (
                f"{fmt(t['delta'], True)} (p={fmt_p(t['p_value'])})" if t else "n/a"
            )
        rows.append(row)
        shown.append(disp)
    return pd.DataFrame(rows), pd.DataFrame(shown)


def pair_rows(
    entries: list[dict[str, Any]],
    alpha: float,
    task: str = "emotion",
    metrics_shown: tuple[str, ...] = ("weighted_f1",),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Paired bootstrap tests (a − b), one row per pair and headline metric (CSV) and the
    ``metrics_shown`` rows for display. The verdict is the pair's protocol verdict (Holm-
    adjusted, compare.json) on the endpoint (emotion weighted F1); every other row, and every
    pair outside a Holm family, is descriptive: ``significant`` is null, never a raw-p call.
    ``ci_low``/``ci_high`` are marginal intervals."""
    rows, shown = [], []
    for e in entries:
        for metric in HEADLINE:
            t = e["tests"][task][metric]
            verdict = t.get("verdict") if (task, metric) == ENDPOINT else None
            sig = None if verdict is None else verdict == "effect"
            rows.append(
                {
                    "a": e["a"],
                    "b": e["b"],
                    "spec": " vs ".join(e["spec"]),
                    "task": task,
                    "metric": metric,
                    "a_value": t["a"],
                    "b_value": t["b"],
                    "delta": t["delta"],
                    "ci_low": t["ci_low"],
                    "ci_high": t["ci_high"],
                    "p_value": t["p_value"],
                    "p_holm": t.get("p_holm") if (task, metric) == ENDPOINT else None,
                    "family": e.get("family"),
                    "verdict": verdict,
                    "n": e["n"],
                    "significant": sig,
                }
            )
            if metric in metrics_shown:
                shown.append(
                    {
                        "comparison (a vs b)": f"{e['a']} vs {e['b']}",
                        "as configured": " vs ".join(e["spec"]),
                        "metric": f"{task} {metric.replace('_', ' ')}",
                        "a": fmt(t["a"]),
                        "b": fmt(t["b"]),
                        "a − b [marginal CI]": f"{fmt(t['delta'], True)} "
                        f"[{fmt(t['ci_low'], True)}, {fmt(t['ci_high'], True)}]",
                        "p": fmt_p(t["p_value"]),
                        "p (Holm)": fmt_p(NAN if t.get("p_holm") is None else t["p_holm"]),
                        "verdict": verdict or f"none ({e.get('family') or 'exploratory'}: "
                        "descriptive)",
                        "utterances": e["n"],
                    }
                )
    cols = [
        "a",
        "b",
        "spec",
        "task",
        "metric",
        "a_value",
        "b_value",
        "delta",
        "ci_low",
        "ci_high",
        "p_value",
        "p_holm",
        "family",
        "verdict",
        "n",
        "significant",
    ]
    return pd.DataFrame(rows, columns=cols), pd.DataFrame(shown)


def per_class_f1(
    names: list[str], metrics: dict[str, dict[str, Any]], task: str = "emotion"
) -> pd.DataFrame:
    """Test per-class F1 (mean over seeds), one row per model, one column per label."""
    labels = EMOTIONS if task == "emotion" else SENTIMENTS  # JSON keys come back sorted
    rows = []
    for name in names:
        block = metrics[name]["aggregate"]["test"][task]["per_class_f1"]
        rows.append({"model": name, **{label: block[label]["mean"] for label in labels}})
    return pd.DataFrame(rows, columns=["model", *labels])
