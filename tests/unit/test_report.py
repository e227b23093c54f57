"""The report: built from a small fake results tree (fake predictions -> evaluate_model ->
metrics -> compare_pairs -> build_report); every number in its tables traced to the JSONs.
Paths come from ``Layout``; the report gets every file through its ``inputs`` mapping."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from avemo import registry
from avemo.errors import ConfigError, DataStageError
from avemo.evaluation import baselines
from avemo.evaluation.compare import audio_subsets_from_clips, compare_pairs
from avemo.evaluation.evaluate import evaluate_model
from avemo.evaluation.metrics import prob_columns
from avemo.evaluation.protocol import default_path
from avemo.evaluation.refs import group_members, referenced_models
from avemo.labels import EMOTIONS, SENTIMENTS, SPLITS
from avemo.layout import BASELINE_SEED, Layout
from avemo.manifest import MANIFEST_COLUMNS
from avemo.report import findings, reference, sections, spec
from avemo.report.build import build_report
from avemo.report.inputs import ReportModels

N = {"train": 40, "dev": 30, "test": 60}
SEEDS = (0, 1)
BOOT = {"n_resamples": 60, "seed": 0, "alpha": 0.05}
# Accuracy of each fake model on (dev, test); ablations are weaker copies of their model.
ACC = {
    "cnn5": (0.35, 0.35),
    "vgg16": (0.45, 0.40),
    "audio_mlp": (0.30, 0.30),
    "concat_misaligned": (0.25, 0.25),
    "gated": (0.6, 0.6),
    "late": (0.4, 0.45),
    "gated@single_task": (0.5, 0.5),
}
CFG: dict[str, Any] = {
    "dataset": "synthetic",
    "synthetic": {"preset": "tiny", "seed": 1},
    "train": {
        "seeds": list(SEEDS),
        "models": {
            "cnn5": {"frame_set": "study"},
            "vgg16": {"frame_set": "study"},
            "audio_mlp": {"features": "utterance"},
        },
    },
    "fusion": {
        "models": {
            "concat_misaligned": {},
            "gated": {},
            "late": {"visual": "cnn5", "audio": "audio_mlp"},
        },
        "single_task": "gated",
    },
    "evaluation": dict(BOOT),
}
MISSING_AUDIO = [f"dia{i}_utt0" for i in range(8)]  # test clips without usable audio


def _truth(split: str) -> pd.DataFrame:
    rng = np.random.default_rng({"train": 1, "dev": 2, "test": 3}[split])
    n = N[split]
    emo = rng.choice(len(EMOTIONS), n, p=[0.45, 0.2, 0.1, 0.1, 0.07, 0.04, 0.04])
    return pd.DataFrame(
        {
            "clip_name": [f"dia{i}_utt0" for i in range(n)],
            "emotion": [EMOTIONS[i] for i in emo],
            "sentiment": [SENTIMENTS[i % 3] for i in rng.integers(0, 3, n)],
        }
    )


def _predict(truth: pd.DataFrame, acc: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = truth.copy()
    for task, labels in (("emotion", EMOTIONS), ("sentiment", SENTIMENTS)):
        y = truth[task].map({v: i for i, v in enumerate(labels)}).to_numpy()
        wrong = (y + rng.integers(1, len(labels), y.size)) % len(labels)
        pred = np.where(rng.random(y.size) < acc, y, wrong)
        p = rng.random((y.size, len(labels))) * 0.3
        p[np.arange(y.size), pred] += 1.0
        p /= p.sum(axis=1, keepdims=True)
        out[prob_columns(task)] = p
    return out


def _manifest(split: str) -> pd.DataFrame:
    t = _truth(split)
    df = pd.DataFrame({c: [0] * len(t) for c in MANIFEST_COLUMNS})
    df[["clip_name", "emotion", "sentiment"]] = t[["clip_name", "emotion", "sentiment"]]
    return df.assign(
        split=split, ok=True, qc_reason="", duration_s=2.0, speaker="s", utterance="u", clip_path=""
    )


def _speech(split: str) -> pd.DataFrame:
    """A speech table (avemo.audio.speech_share.COLUMNS): shares 0.10, 0.20, ... cycling;
    clips without audio (MISSING_AUDIO) get NaN."""
    t = _truth(split)
    n = len(t)
    share = np.round(0.1 * (1 + np.arange(n) % 9), 3)
    r = np.round(np.linspace(-0.2, 0.6, n), 3)
    gone = t["clip_name"].isin(MISSING_AUDIO).to_numpy() & (split == "test")
    return pd.DataFrame({
        "split": split, "clip_name": t["clip_name"], "audio_s": 2.0,
        "speech_share": np.where(gone, np.nan, share), "mean_prob": 0.5, "n_frames": 8,
        "activity_speech_r": np.where(gone, np.nan, r), "reason": np.where(gone, "no_audio", ""),
    })


def _with_parent(path: str) -> Path:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return Path(path)


def make_tree(root: Path, cfg: dict[str, Any] = CFG) -> Path:
    """A results tree with manifests, QC, predictions, logs, summaries, metrics, compare.json."""
    lay = Layout(str(root))
    for split in SPLITS:
        _manifest(split).to_parquet(_with_parent(lay.manifest(split)))
    pd.DataFrame(columns=["split", "clip_name", "stage", "reason", "detail"]).to_csv(
        _with_parent(lay.manifest_qc()), index=False
    )
    qc = pd.concat([_truth(s).assign(split=s) for s in SPLITS])
    qc.assign(decoded_ok=True, frames_ok=True, audio_ok=True, n_frames=2, face_ratio=0.0)[
        ["split", "clip_name", "decoded_ok", "frames_ok", "audio_ok", "n_frames", "face_ratio"]
    ].to_csv(_with_parent(lay.qc_clips()), index=False)
    for split in SPLITS:
        _speech(split).to_parquet(_with_parent(lay.speech(split)))
    clips = _truth("test")[["clip_name"]].assign(mask=lambda d: ~d["clip_name"].isin(MISSING_AUDIO))
    subsets = audio_subsets_from_clips(clips)
    preds: dict[str, dict[int, dict[str, str]]] = {}
    for model, (acc_dev, acc_test) in ACC.items():
        paths: dict[int, dict[str, Path]] = {}
        for seed in SEEDS:
            _with_parent(lay.summary(model, seed))  # the run folder
            splits = {"dev": acc_dev, "test": acc_test}
            if model in ("concat_misaligned", "gated"):
                splits |= {"test_no_audio": acc_test * 0.6, "test_no_video": acc_test * 0.9}
            for i, (split, acc) in enumerate(splits.items()):
                truth = _truth(split.split("_")[0])
                path = Path(lay.predictions(model, seed, split))
                _predict(truth, acc, seed * 100 + i).to_parquet(path)
                paths.setdefault(seed, {})[split] = path
            if not model.startswith("late"):
                history = {
                    "train_loss": [2.0, 1.5, 1.2],
                    "dev_loss": [2.1, 1.8, 1.9],
                    "dev_emotion_wf1": [0.2, 0.3, 0.28],
                    "dev_sentiment_wf1": [0.3, 0.4, 0.4],
                    "lr": [1e-3] * 3,
                    "seconds": [1.0] * 3,
                }
                for metric, path in lay.training_curves(model, seed).items():  # DVCLive's format
                    _with_parent(path)
                    pd.DataFrame({"step": [1, 2, 3], metric: history[metric]}).to_csv(
                        path, sep="\t", index=False)
                Path(lay.summary(model, seed)).write_text(
                    json.dumps(
                        {
                            "best_epoch": 2,
                            "device": "cpu",
                            "seconds": 3.0,
                            "weights_used": "none" if model == "vgg16" else None,
                        }
                    )
                )
        # As wired: the model's dev/test in metrics/<model>.json, each modality ablation scored
        # as the test split of metrics/<model>@no_audio.json / @no_video.json.
        main = {s: {k: v for k, v in sp.items() if k in ("dev", "test")} for s, sp in paths.items()}
        evaluate_model(model, main, _with_parent(lay.metrics(model)), subsets=subsets, **BOOT)
        for what in ("no_audio", "no_video"):
            if f"test_{what}" in paths[0]:
                ablation = {s: {"test": sp[f"test_{what}"]} for s, sp in paths.items()}
                evaluate_model(f"{model}@{what}", ablation, lay.metrics(f"{model}@{what}"), **BOOT)
        preds[model] = {s: {k: str(v) for k, v in sp.items()} for s, sp in paths.items()}
    train, test = _truth("train"), {s: _truth(s) for s in ("dev", "test")}
    for kind in ("majority", "prior"):
        seed = BASELINE_SEED
        for split, t in test.items():
            fn = (
                baselines.majority_predictions
                if kind == "majority"
                else baselines.prior_predictions
            )
            fn(train, t).to_parquet(_with_parent(lay.predictions(kind, seed, split)))
        preds[kind] = {seed: {s: lay.predictions(kind, seed, s) for s in test}}
        evaluate_model(kind, preds[kind], lay.metrics(kind), **BOOT)
    # As the compare rule passes them: the referenced models' files (through a JSON) and the
    # metrics of every model a best:* pair may choose from.
    params = spec.compare_params(cfg)
    groups = params["groups"]
    need = referenced_models(params["pairs"], groups)
    given = {m: {s: {k: preds[m][s][k] for k in need[m]} for s in preds[m]} for m in need}
    members = {m for g in ("visual", "audio", "fusion") for m in group_members(groups, g)}
    metrics = {m: lay.metrics(m) for m in members}
    compare_pairs(
        params.pop("pairs"),
        json.loads(json.dumps(given)),
        lay.compare(),
        metrics=metrics,
        **params,
    )
    return root


def report_inputs(root: Path, cfg: dict[str, Any] = CFG) -> dict[str, Any]:
    """The report rule's ``inputs`` for the configured models of ``cfg`` under ``root``."""
    lay = Layout(str(root))
    models = ReportModels.from_params(**{
        k: spec.report_params(cfg)[k] for k in ("groups", "single_task", "baselines", "ablations")
    })
    trained = [*models.visual, *models.audio, *models.fusion, *models.variants]
    engine_trained = [m for m in trained if registry.get(m).kind != "late_fusion"]
    seeds = [str(s) for s in cfg["train"]["seeds"]]
    return {
        "manifests": lay.manifests(),
        "manifest_qc": lay.manifest_qc(),
        "qc": lay.qc_clips(),
        "metrics": {m: lay.metrics(m) for m in models.all},
        "compare": lay.compare() if spec.report_params(cfg)["compare"] else None,
        "summaries": {m: {s: lay.summary(m, s) for s in seeds} for m in engine_trained},
        "training_logs": {m: {s: lay.training_curves(m, s) for s in seeds}
                          for m in engine_trained},
        "benchmarks": lay.benchmarks_dir(),
        "predictions": {m: {s: {sp: lay.predictions(m, s, sp) for sp in ("dev", "test")}
                            for s in (seeds if m not in models.baselines else ["0"])}
                        for m in [*trained, *models.baselines]},
        "frames": {},  # no frame stores: the error browser shows no thumbnails
        "corpus": [],
        "speech": {s: lay.speech(s) for s in SPLITS},
        "protocol": str(default_path()),
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    root = make_tree(tmp_path_factory.mktemp("results"))
    out = root / "report"
    summary = build_report(report_inputs(root), out, config_hash="cafe", **spec.report_params(CFG))
    return root, out, summary


def _metrics(root: Path, model: str) -> dict[str, Any]:
    return json.loads((root / "metrics" / f"{model}.json").read_text())


def test_sections_tables_and_figures_exist(built: tuple[Path, Path, dict]) -> None:
    root, out, summary = built
    md = (out / "report.md").read_text()
    for title in (
        "About these numbers",
        "Method",
        "1. Data",
        "2. Data quality",
        "3. Visual stream",
        "4. Audio stream",
        "5. Fusion",
        "6a. Ablation: one modality removed",
        "6b. Ablation: clips with missing audio",
        "6c. Ablation: multi-task vs single-task",
        "7. Baselines and reference numbers",
        "8. Per-class results",
        "Provenance",
    ):
        assert f"## {title}" in md, title
    assert "SYNTHETIC" in md and "uses the dev split only" in md
    assert "Not configured" not in md  # everything is configured here
    for name in summary["tables"]:
        assert (out / "tables" / f"{name}.csv").is_file(), name
        assert f"tables/{name}.csv" in md
    for name in (
        "visual_models",
        "visual_claim",
        "audio_models",
        "fusion_models",
        "fusion_pairs",
        "ablation_modality",
        "ablation_missing_audio",
        "ablation_single_task",
        "baselines",
        "vs_majority",
        "study_vs_measured",
        "meld_published_baselines",
        "always_neutral",
        "per_class_f1",
        "stage_totals",
    ):
        assert name in summary["tables"], name
    for fig in (
        "confusion_best.png",
        "per_class_f1.png",
        "learning_curves_visual.png",
        "learning_curves_audio.png",
        "learning_curves_fusion.png",
    ):
        path = out / "figures" / fig
        assert path.is_file() and path.read_bytes()[:4] == b"\x89PNG", fig
    assert "VGG-16 ran from scratch" in md
    assert "`late`" in md and "No training log" in md  # late fusion: no epoch log


def test_speech_share_table_traces_to_the_speech_files(built: tuple[Path, Path, dict]) -> None:
    root, out, _ = built
    table = pd.read_csv(out / "tables" / "speech_share.csv").set_index("split")
    assert list(table.index) == [*SPLITS, "all"]
    for split in SPLITS:
        df = pd.read_parquet(Layout(str(root)).speech(split))
        row = table.loc[split]
        assert row["clips"] == len(df) and row["with_audio"] == df["speech_share"].notna().sum()
        assert row["speech_share_median"] == pytest.approx(df["speech_share"].median())
        assert row["speech_share_q1"] == pytest.approx(df["speech_share"].quantile(0.25))
        assert row["activity_speech_r_median"] == pytest.approx(
            df["activity_speech_r"].median())
    assert table.loc["test", "with_audio"] == N["test"] - len(MISSING_AUDIO)
    data = _section((out / "report.md").read_text(), "1. Data", "2. Data quality")
    assert "Speech share per clip" in data and "Median speech share" in data
    # Synthetic data: the VAD misses most of the generated voice, so no world is read.
    assert "VAD hears the generated voice only in part" in data
    assert "`event` world" not in data and "can matter" not in data


def test_speech_sentences_follow_the_fixed_cutoffs() -> None:
    def words(share: float, r: float) -> str:
        table = pd.DataFrame([{"split": "all", "speech_share_median": share,
                               "activity_speech_r_median": r}])
        return " ".join(sections.speech_sentences(table))

    assert "`spread` world" in words(sections.SPREAD_SHARE, 0.0)
    assert "barely co-varies" in words(0.9, sections.WEAK_R / 2)
    assert "`event` world" in words(sections.EVENT_SHARE, 0.3)
    assert "co-varies with speech over time (median r +0.300)" in words(0.3, 0.3)
    middle = words((sections.SPREAD_SHARE + sections.EVENT_SHARE) / 2, float("nan"))
    assert "most, but not all" in middle and "could not be compared" in middle
    assert "not measured" in words(float("nan"), float("nan"))
    # The fake shares' median is 0.5: "at most half", the event world's wording.
    meld_format = findings.Data(findings.MELD_FORMAT, {"test": 60})
    table = sections.speech_table({s: _speech(s) for s in SPLITS})
    assert "`event` world" in " ".join(sections.speech_sentences(table, meld_format))


def test_html_is_self_contained(built: tuple[Path, Path, dict]) -> None:
    _, out, summary = built
    html = (out / "report.html").read_text()
    page = re.sub(r"<script.*?</script>", "", html, flags=re.S)  # the browser's code, data
    srcs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', page)
    # Figures inline; the only links are to this page's own sections (the summary's links
    # down) and its error browser (no network).
    assert srcs and all(s.startswith(("data:image/png;base64,", "report.html#", "#"))
                        for s in srcs)
    for target in re.findall(r'href="#([^"]+)"', page):  # every section link lands on a heading
        assert f'<h2 id="{target}">' in page, target
    assert page.count("<img") == len(summary["figures"])
    assert "<link" not in html
    # The error browser's only scripts: its inline data and code (no src=).
    assert re.findall(r"<script[^>]*>", html) == [
        '<script type="application/json" id="eb-data">', "<script>"]


def test_model_tables_trace_to_metrics_json(built: tuple[Path, Path, dict]) -> None:
    root, out, _ = built
    for table in ("visual_models", "audio_models", "fusion_models", "baselines"):
        df = pd.read_csv(out / "tables" / f"{table}.csv")
        assert len(df)
        for row in df.to_dict("records"):
            m = _metrics(root, row["model"])
            assert row["seeds"] == len(m["seeds"])
            for metric in ("weighted_f1", "macro_f1", "accuracy"):
                agg = m["aggregate"]["test"]["emotion"][metric]
                ci = m["ci"]["test"]["mean_over_seeds"]["emotion"][metric]
                assert row[f"test_{metric}_mean"] == pytest.approx(agg["mean"], abs=1e-12)
                std = float("nan") if agg["std"] is None else agg["std"]  # one seed: no std
                assert row[f"test_{metric}_std"] == pytest.approx(std, abs=1e-12, nan_ok=True)
                assert row[f"test_{metric}_ci_low"] == pytest.approx(ci["low"], abs=1e-12)
                assert row[f"test_{metric}_ci_high"] == pytest.approx(ci["high"], abs=1e-12)
            dev = m["aggregate"]["dev"]["emotion"]["weighted_f1"]["mean"]
            assert row["dev_weighted_f1_mean"] == pytest.approx(dev, abs=1e-12)
    # The rendered Markdown shows the same numbers (3 decimals).
    md = (out / "report.md").read_text()
    vgg = _metrics(root, "vgg16")["aggregate"]["test"]["emotion"]["weighted_f1"]
    assert f"{vgg['mean']:.3f} ± {vgg['std']:.3f}" in md
    per_class = pd.read_csv(out / "tables" / "per_class_f1.csv")
    assert list(per_class.columns) == ["model", *EMOTIONS, "dataset"]
    for row in per_class.to_dict("records"):
        block = _metrics(root, row["model"])["aggregate"]["test"]["emotion"]["per_class_f1"]
        for label in EMOTIONS:
            assert row[label] == pytest.approx(block[label]["mean"], abs=1e-12)


def test_pair_tables_trace_to_compare_json(built: tuple[Path, Path, dict]) -> None:
    root, out, _ = built
    cmp = json.loads((root / "metrics" / "compare.json").read_text())
    by_pair = {(e["a"], e["b"]): e for e in cmp["pairs"]}
    checked = 0
    for table in ("visual_pairs", "fusion_pairs", "vs_majority"):
        for row in pd.read_csv(out / "tables" / f"{table}.csv").to_dict("records"):
            t = by_pair[(row["a"], row["b"])]["tests"][row["task"]][row["metric"]]
            for key in ("delta", "ci_low", "ci_high", "p_value"):
                assert row[key] == pytest.approx(t[key], abs=1e-12)
            checked += 1
    assert checked >= 9
    claim = pd.read_csv(out / "tables" / "visual_claim.csv").iloc[0]
    t = by_pair[("vgg16", "cnn5")]["tests"]["emotion"]["weighted_f1"]
    assert claim["quoted"] == 0.08 and claim["measured_delta"] == pytest.approx(t["delta"])
    single = pd.read_csv(out / "tables" / "ablation_single_task.csv").iloc[0]
    t = by_pair[("gated", "gated@single_task")]["tests"]["emotion"]["weighted_f1"]
    assert single["delta"] == pytest.approx(t["delta"]) and single["p_value"] == t["p_value"]


def test_best_models_chosen_on_dev_and_verdict_computed(built: tuple[Path, Path, dict]) -> None:
    root, out, _ = built
    cmp = json.loads((root / "metrics" / "compare.json").read_text())
    dev = {
        m: _metrics(root, m)["aggregate"]["dev"]["emotion"]["weighted_f1"]["mean"]
        for m in ("cnn5", "vgg16", "audio_mlp")
    }
    assert cmp["selection"]["single_stream"]["model"] == max(dev, key=dev.get)
    md = (out / "report.md").read_text()
    best = cmp["selection"]["single_stream"]["model"]
    entry = next(e for e in cmp["pairs"] if (e["a"], e["b"]) == (best, "concat_misaligned"))
    t = entry["tests"]["emotion"]["weighted_f1"]
    flipped = {**t, "delta": -t["delta"], "ci_low": -t["ci_high"], "ci_high": -t["ci_low"]}
    expected = {  # synthetic data: a finding "holds", it is never "reproduced"
        findings.BELOW: "holds",
        findings.ABOVE: "does NOT hold",
        findings.SAME: "is not confirmed",
    }[findings.relation(flipped, 0.05)]
    assert f"best single stream {expected}" in md
    assert "On the synthetic demo corpus, best fusion model vs best single stream" in md
    assert "the fixes" in md


def test_ablation_tables(built: tuple[Path, Path, dict]) -> None:
    root, out, _ = built
    modality = pd.read_csv(out / "tables" / "ablation_modality.csv")
    assert set(modality["model"]) == {"concat_misaligned", "gated"}  # late has no ablations
    for what in ("no_audio", "no_video"):
        g = _metrics(root, f"gated@{what}")["aggregate"]["test"]["emotion"]["weighted_f1"]
        row = modality.set_index("model").loc["gated"]
        assert row[f"{what}_mean"] == pytest.approx(g["mean"], abs=1e-12)
    assert (modality["drop_no_audio"] > 0).all()  # audio removal hurts in the fake data
    missing = pd.read_csv(out / "tables" / "ablation_missing_audio.csv")
    sub = missing[(missing["model"] == "gated") & (missing["subset"] == "audio_missing")].iloc[0]
    assert sub["n"] == len(MISSING_AUDIO)
    m = _metrics(root, "gated")["subsets"]["audio_missing"]["test"]
    assert sub["mean"] == pytest.approx(m["aggregate"]["test"]["emotion"]["weighted_f1"]["mean"])
    assert (
        f"{len(MISSING_AUDIO)} test clips have no usable audio" in (out / "report.md").read_text()
    )


def test_not_configured_sections(tmp_path: Path, built: tuple[Path, Path, dict]) -> None:
    root, _, _ = built
    cfg = {**CFG, "fusion": {"models": {}}}
    cfg["train"] = {**CFG["train"], "models": {"cnn5": {}}}
    out = tmp_path / "report"
    # compare.json of the full tree chose its best models among more candidates: not used here.
    build_report(report_inputs(root, cfg), out, **{**spec.report_params(cfg), "compare": False})
    md = (out / "report.md").read_text()
    assert "## 4. Audio stream\n\nNot configured" in md
    assert "## 5. Fusion\n\nNot configured" in md
    assert "## 6a. Ablation: one modality removed\n\nNot configured" in md
    assert "## 6c. Ablation: multi-task vs single-task\n\nNot configured" in md
    assert not (out / "figures" / "learning_curves_fusion.png").exists()


def test_missing_metrics_file_is_an_error_naming_it(
    tmp_path: Path, built: tuple[Path, Path, dict]
) -> None:
    root, _, _ = built
    copy = tmp_path / "results"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("report"))
    inputs = report_inputs(copy)
    # A configured model the rule does not give: an error naming the model.
    without = {**inputs, "metrics": {k: v for k, v in inputs["metrics"].items() if k != "vgg16"}}
    with pytest.raises(DataStageError, match="'vgg16'"):
        build_report(without, copy / "report", **spec.report_params(CFG))
    with pytest.raises(DataStageError, match="compare.json"):
        build_report({**inputs, "compare": None}, copy / "report", **spec.report_params(CFG))
    with pytest.raises(DataStageError, match="missing keys \\['benchmarks'\\]"):
        build_report({k: v for k, v in inputs.items() if k != "benchmarks"}, copy / "report",
                     **spec.report_params(CFG))
    # A given file that is missing: an error naming the file.
    for name in ("gated@no_video", "gated"):
        Path(inputs["metrics"][name]).unlink()
        with pytest.raises(DataStageError, match=re.escape(inputs["metrics"][name])):
            build_report(inputs, copy / "report", **spec.report_params(CFG))
    Path(inputs["compare"]).unlink()
    cfg = {**CFG, "fusion": {"models": {}}}
    with pytest.raises(DataStageError, match="compare.json"):
        build_report(report_inputs(copy, cfg), copy / "report", **spec.report_params(cfg))


def test_reference_numbers_are_quoted_with_sources() -> None:
    ref = reference.load_reference()
    table = reference.meld_baselines_table(ref)
    values = dict(zip(table["what"], table["weighted_f1"], strict=True))
    assert values["bcLSTM, audio only, emotion weighted F1"] == 0.3908
    assert values["DialogueRNN, audio only, emotion weighted F1"] == 0.4179
    assert (table["status"] == reference.QUOTED).all() and table["source"].str.contains(
        "2019"
    ).all()
    study = {n["key"]: n["value"] for n in reference.study_numbers(ref)}
    assert study == {
        "vgg16_weighted_f1": 0.355,
        "fusion_weighted_f1": 0.217,
        "vgg16_over_cnn5": 0.08,
    }


def test_always_neutral_weighted_f1_matches_quoted() -> None:
    row = reference.always_neutral_row(reference.load_reference())
    p = 1256 / 2610
    assert row["weighted_f1"] == pytest.approx(p * 2 * p / (1 + p))
    assert round(row["weighted_f1"], 3) == row["quoted_weighted_f1"] == 0.313
    # Same number as the majority baseline's analytic formula.
    exp = baselines.expected_baseline_metrics(np.array([1.0, 0.0]), np.array([p, 1 - p]))
    assert exp["majority"]["weighted_f1"] == pytest.approx(row["weighted_f1"])
    with pytest.raises(ValueError):
        reference.always_neutral_weighted_f1(0, 10)


def test_relation_and_verdict_words() -> None:
    above = {"a": 0.5, "b": 0.3, "delta": 0.2, "ci_low": 0.1, "ci_high": 0.3, "p_value": 0.001,
             "p_holm": 0.003}
    same = {**above, "ci_low": -0.05, "p_value": 0.2, "p_holm": 0.4}
    below = {**above, "delta": -0.2, "ci_low": -0.3, "ci_high": -0.1}
    assert findings.relation(above, 0.05) == findings.ABOVE
    assert findings.relation(same, 0.05) == findings.SAME
    assert findings.relation(below, 0.05) == findings.BELOW
    # The Holm-adjusted p decides, never the raw one; a pair in no family is never significant.
    assert findings.relation({**above, "p_holm": 0.06}, 0.05) == findings.SAME
    assert findings.relation({k: v for k, v in above.items() if k != "p_holm"},
                             0.05) == findings.SAME
    # The protocol's verdict, when compare.json has one, is what the words say.
    assert findings.relation({**same, "verdict": "equivalent"}, 0.05) == findings.EQUIVALENT
    assert findings.relation({**below, "verdict": "effect"}, 0.05) == findings.BELOW
    assert "p (Holm) = 0.003" in findings.describe(above, "x", "y", 0.05)
    assert "exploratory, unadjusted" in findings.describe(
        {k: v for k, v in above.items() if k != "p_holm"}, "x", "y", 0.05)

    def entry(t: dict, a: str, b: str) -> dict:
        return {"a": a, "b": b, "tests": {"emotion": {"weighted_f1": t}}}

    text = " ".join(
        findings.fusion_verdict(
            entry(below, "concat_misaligned", "vgg16"), entry(same, "gated", "vgg16"), 0.05
        )
    )
    # Inconclusive after the fixes: the gap is not said to be closed.
    assert "is reproduced" in text and "whether the fixes close the gap is undecided" in text
    assert "close the gap without reversing it" not in text
    text = " ".join(findings.fusion_verdict(
        entry(below, "concat_misaligned", "vgg16"),
        entry({**same, "verdict": "equivalent"}, "gated", "vgg16"), 0.05))
    assert "close the gap without reversing it" in text and "equivalent within" in text
    text = " ".join(findings.fusion_verdict(None, entry(above, "gated", "vgg16"), 0.05))
    assert "not tested" in text and "the fixes reverse the finding" in text


def test_spec_groups_pairs_and_config_errors() -> None:
    groups = spec.model_groups(CFG)
    assert groups == {
        "visual": ["cnn5", "vgg16"],
        "audio": ["audio_mlp"],
        "fusion": ["concat_misaligned", "gated", "late"],
    }
    pairs = spec.comparison_pairs(CFG)
    for p in (
        ["vgg16", "cnn5"],
        ["best:single_stream", "concat_misaligned"],
        ["gated", "concat_misaligned"],
        ["best:fusion", "best:single_stream"],
        ["gated", "gated@single_task"],
        ["gated", "gated:test_no_audio"],
        ["late", "majority"],
    ):
        assert p in pairs, p
    assert ["late", "late:test_no_audio"] not in pairs
    assert len(pairs) == len({tuple(p) for p in pairs})
    with pytest.raises(ConfigError, match=r"evaluation.compare\[0\]"):
        spec.comparison_pairs({**CFG, "evaluation": {"compare": [["cnn5", "resnet"]]}})
    with pytest.raises(ConfigError, match="fusion.single_task"):
        spec.single_task_models({**CFG, "fusion": {"models": {"gated": {}}, "single_task": ["x"]}})
    params = spec.report_params(CFG)
    assert params["single_task"] == ["gated"] and params["compare"] is True
    assert params["ablations"] == ["concat_misaligned", "gated"]  # not late
    assert json.dumps(params)  # passes through --params JSON


# --- every finding names its data ------------------------------------------------------------

MELD_DESCRIPTION = {"dataset": "meld", "root": "/data/meld"}


def _section(md: str, start: str, end: str) -> str:
    return md[md.index(f"## {start}") : md.index(f"## {end}")]


def test_synthetic_report_is_a_mechanism_check_never_a_reproduction(
    built: tuple[Path, Path, dict],
) -> None:
    _, out, _ = built
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    for text in (md, html):
        assert "reproduc" not in text.lower()
    assert md.splitlines()[0].endswith("on the synthetic demo corpus")
    assert "<title>" in html and "on the synthetic demo corpus</title>" in html
    assert "on MELD" not in md.splitlines()[0]
    fusion = _section(md, "5. Fusion", "6a.")
    assert "On the synthetic demo corpus, the study's finding" in fusion
    assert fusion.count(": a check of the mechanism, not evidence about MELD.") >= 2
    visual = _section(md, "3. Visual stream", "4. Audio")
    assert "On the synthetic demo corpus, `vgg16`" in visual


def test_split_sizes_alone_never_make_meld() -> None:
    """MELD's split sizes with labels that are not MELD's: a MELD-format corpus (the decision
    by content is tested in test_meld_release)."""
    sizes = reference.meld_split_sizes(reference.load_reference())
    assert sizes == {"train": 9989, "dev": 1109, "test": 2610}
    assert "Poria" in reference.source(reference.load_reference(), "meld_split_sizes")
    rows = {s: pd.DataFrame({"dialogue_id": range(n), "utterance_id": 0, "emotion": "neutral",
                             "sentiment": "neutral", "exists": True}) for s, n in sizes.items()}
    same_sizes = findings.identify(MELD_DESCRIPTION, rows)
    assert same_sizes.kind == findings.MELD_FORMAT and not same_sizes.test_too_small
    assert same_sizes.name == "a MELD-format corpus of 13,708 utterances"
    small = findings.identify(MELD_DESCRIPTION, {s: m.head(n) for (s, m), n
                                                 in zip(rows.items(), (4, 1, 1), strict=True)})
    assert small.kind == findings.MELD_FORMAT
    assert small.name == "a MELD-format corpus of 6 utterances" and small.test_too_small
    synthetic = findings.identify({"dataset": "synthetic"}, rows)
    assert synthetic.kind == findings.SYNTHETIC


def _meld_format_copy(root: Path, tmp_path: Path, test_rows: int | None = None) -> Path:
    copy = tmp_path / "results"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("report"))
    if test_rows is not None:
        path = Layout(str(copy)).manifest("test")
        pd.read_parquet(path).head(test_rows).to_parquet(path)
    return copy


def test_meld_format_corpus_is_not_called_real_meld(
    tmp_path: Path, built: tuple[Path, Path, dict]
) -> None:
    root, _, _ = built
    copy = _meld_format_copy(root, tmp_path)
    out = copy / "report"
    params = {**spec.report_params(CFG), "description": MELD_DESCRIPTION}
    build_report(report_inputs(copy), out, **params)
    md = (out / "report.md").read_text()
    total = sum(N.values())
    assert f"a MELD-format corpus of {total} utterances" in md
    assert "real MELD corpus" not in md and "NOT the MELD corpus" in md
    assert not md.splitlines()[0].startswith("# Audio-visual emotion recognition on MELD")
    assert "reproduc" not in _section(md, "5. Fusion", "6a.")
    assert "not evidence about the full MELD corpus" in md
    visual = pd.read_csv(out / "tables" / "visual_models.csv")
    assert (visual["dataset"] == f"MELD-format corpus ({total} utterances)").all()


def test_tiny_test_split_warns_and_gives_no_verdict(
    tmp_path: Path, built: tuple[Path, Path, dict]
) -> None:
    root, _, _ = built
    copy = _meld_format_copy(root, tmp_path, test_rows=1)
    out = copy / "report"
    params = {**spec.report_params(CFG), "description": MELD_DESCRIPTION}
    # The cut manifest no longer holds the predicted clips (the per-example table would stop).
    build_report({**report_inputs(copy), "predictions": {}}, out, **params)
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "only 1 utterance(s)" in md and "support no statistics" in md
    assert '<p class="banner"><b>WARNING: the test split has only 1' in html
    findings_text = "\n".join(
        line
        for line in md.split("## 3. Visual stream", 1)[1].splitlines()
        if not line.startswith("|") and not line.startswith("**")
    )
    for words in ("significant", "better than", "reproduc"):
        assert words not in findings_text.lower(), words
    pairs = pd.read_csv(out / "tables" / "visual_pairs.csv")
    assert pairs["too_small"].all() and pairs["significant"].isna().all()
    assert "none: too few utterances" in md


def test_too_small_field_in_metrics_suppresses_verdicts(
    tmp_path: Path, built: tuple[Path, Path, dict]
) -> None:
    root, _, _ = built
    copy = _meld_format_copy(root, tmp_path)
    for path in (copy / "metrics").glob("*.json"):
        if path.name != "compare.json":
            m = json.loads(path.read_text())
            path.write_text(json.dumps({**m, "too_small": {"dev": False, "test": True}}))
    out = copy / "report"
    build_report(report_inputs(copy), out, **spec.report_params(CFG))
    md = (out / "report.md").read_text()
    fusion = _section(md, "5. Fusion", "6a.")
    assert "NO verdict: too few test utterances" in fusion
    assert "Too few test utterances for statistics" in fusion
    prose = "\n".join(
        line for line in md.split("## 3. Visual stream", 1)[1].splitlines()
        if not line.startswith("|")
    )
    assert "significantly" not in prose and "better than" not in prose
    assert "WARNING: too few test utterances for statistics" in md
    # Absent field: verdicts as usual.
    assert not findings.too_small({"seeds": [0]}, None)
    assert findings.too_small({"too_small": True}) and findings.too_small({"too_small": ["test"]})
    assert not findings.too_small({"too_small": {"dev": True, "test": False}})


def test_every_table_csv_and_figure_caption_names_the_data(
    built: tuple[Path, Path, dict],
) -> None:
    _, out, summary = built
    for name in summary["tables"]:
        df = pd.read_csv(out / "tables" / f"{name}.csv")
        assert "dataset" in df.columns, name
        expected = (
            "MELD (quoted, not measured here)"
            if name == "meld_published_baselines"
            else "synthetic demo corpus"
        )
        assert (df["dataset"] == expected).all() or df.empty, name
    md = (out / "report.md").read_text()
    captions = re.findall(r"^\*([^*].*)\*$", md, flags=re.M)
    assert len(captions) == len(summary["figures"])
    assert all(c.endswith("data: synthetic demo corpus") for c in captions), captions


def test_study_fusion_is_set_against_always_neutral_from_the_reference_file(
    tmp_path: Path, built: tuple[Path, Path, dict]
) -> None:
    root, out, _ = built
    md = (out / "report.md").read_text()
    baselines_part = _section(md, "7. Baselines", "8. Per-class")
    assert "study's naive fusion score (emotion weighted F1 0.217, quoted) is below" in (
        baselines_part
    )
    assert "always-neutral baseline on MELD test (0.313" in baselines_part
    # Both numbers come from the reference file, not the prose.
    ref = reference.load_reference()
    for n in ref["study"]["numbers"]:
        if n["key"] == "fusion_weighted_f1":
            n["value"] = 0.401
    ref["meld_test_distribution"]["quoted_always_neutral_weighted_f1"] = 0.399
    path = tmp_path / "ref.yaml"
    path.write_text(__import__("yaml").safe_dump(ref))
    text = reference.fusion_vs_always_neutral(reference.load_reference(path))
    assert "0.401" in text and "0.399" in text and "is not below" in text


def test_weights_used_shown_truthfully(tmp_path: Path, built: tuple[Path, Path, dict]) -> None:
    from avemo.report.sections import weights_label

    assert weights_label("none (scratch: IMAGENET1K_V1 unavailable)") == (
        "scratch (ImageNet weights missing)"
    )
    assert weights_label("IMAGENET1K_V1").startswith("ImageNet")
    assert weights_label(None) == "n/a"
    root, _, _ = built
    copy = _meld_format_copy(root, tmp_path)
    lay = Layout(str(copy))
    for seed in SEEDS:
        path = Path(lay.summary("vgg16", seed))
        s = json.loads(path.read_text())
        path.write_text(
            json.dumps({**s, "weights_used": "none (scratch: IMAGENET1K_V1 unavailable)"})
        )
    out = copy / "report"
    build_report(report_inputs(copy), out, **spec.report_params(CFG))
    md = (out / "report.md").read_text()
    assert "pretrained" not in md
    assert "VGG-16 ran from scratch: ImageNet weights missing" in md
    visual = pd.read_csv(out / "tables" / "visual_models.csv").set_index("model")
    assert visual.loc["vgg16", "weights_used"] == "scratch (ImageNet weights missing)"


def _dx_row(kind: str, factor: str, a: str, b: str, delta: float, lo: float, hi: float,
            verdict: str, a_collapsed: int, b_collapsed: int, seeds: int = 3
            ) -> dict[str, Any]:
    return {"effect": f"{kind}: {factor}", "kind": kind, "factor": factor,
            "change": f"{factor} change", "a": a, "b": b, "runs": 16,
            "delta": delta, "ci_low": lo, "ci_high": hi, "sim_low": lo - 0.05,
            "sim_high": hi + 0.05, "sim_level": 0.9967, "p_holm": 0.9, "p_tost_holm": 0.9,
            "verdict": verdict, "tested": True, "too_small": False,
            "a_collapsed": a_collapsed, "a_seeds": seeds, "b_collapsed": b_collapsed,
            "b_seeds": seeds, "collapse_p": 1.0, "collapse_p_holm": 1.0,
            "collapse_verdict": "inconclusive"}


def test_diagnosis_starts_from_the_collapse_and_keeps_every_row() -> None:
    from avemo.report import diagnosis as section

    df = pd.DataFrame([
        _dx_row("main", "embeddings", "8 runs at embeddings=cross_fitted",
                "8 runs at embeddings=in_sample", 0.0, 0.0, 0.0, "inconclusive", 12, 12, 24),
        _dx_row("main", "scaling", "8 runs at scaling=on", "8 runs at scaling=off", 0.1,
                0.05, 0.15, "effect", 0, 20, 24),
        _dx_row("step", "alignment", "dx7_aligned", "dx6_activity", 0.01, -0.01, 0.015,
                "equivalent", 0, 3)])
    text = section.why(df, 0.05, 0.95, (3, 3))
    assert text[0].startswith("the study's fusion (`concat_misaligned`) collapsed, predicting "
                              "one class for at least 95% of the dev clips, in 3 of 3 seeds")
    assert ("over the design's 16 runs, scaling change lowered it from 20 of 24 run-seeds to 0 "
            "of 24") in text[0]
    assert "+0.100 [+0.050, +0.150] (marginal)" in text[0] and "**effect**" in text[0]
    assert "embeddings change lowered" not in text[0]  # it did not lower the collapse
    # 3 seeds, 3 effects: 3 x 0.25, no collapse verdict
    assert any("smallest possible adjusted p is 0.75" in t for t in text)
    assert any(t.startswith("equivalent within the margin") for t in text)
    assert any("main effect over the design's 16 runs" in t for t in text)
    shown = section._display(df, 0.05)
    # No row is dropped or relabelled: the collapsed pair keeps its own verdict.
    assert shown["verdict"].tolist() == ["inconclusive", "effect", "equivalent"]
    col = "collapsed on dev: a / b (seeds, over each side's runs)"
    assert shown[col].tolist()[0] == "12 of 24 / 12 of 24"
    assert shown["a − b"].tolist()[2] == "`dx7_aligned` − `dx6_activity`"
    assert "[simultaneous 99.67%]" in shown.columns
    assert section.why(df, 0.05, 0.95, (0, 3))[0].startswith(
        "the study's fusion (`concat_misaligned`) did not collapse")


def test_collapse_floor_is_the_holm_adjusted_one() -> None:
    """6 seeds: raw sign-test floor 2/64 < 0.05, but over 10 effects Holm's floor is 0.3125:
    no collapse verdict is reachable, and the report must say so."""
    from avemo.report import diagnosis as section

    rows = [_dx_row("interaction", f"f{i}×g", "a", "b", 0.0, -0.1, 0.1, "inconclusive", 0, 6,
                    6) for i in range(10)]
    df = pd.DataFrame(rows)
    text = section.why(df, 0.05, 0.95, (6, 6))
    assert any("Holm-adjusted over 10 effects" in t and "adjusted p is 0.312" in t
               for t in text), text
    assert any(t.startswith("10 of 10 factor effects are inconclusive") for t in text), text


def test_no_dev_confusion_is_not_read_as_no_collapse() -> None:
    from avemo.report import diagnosis as section

    df = pd.DataFrame([_dx_row("main", "scaling", "a", "b", 0.1, 0.05, 0.15, "effect", 0, 0,
                               0)])
    text = section.why(df, 0.05, 0.95, (0, 0))
    assert "collapsed is not measured" in text[0]
    assert not any("did not collapse" in t for t in text)


def test_collapse_effects_are_the_design_contrasts() -> None:
    """The study collapses in every seed, every other run in none: each main effect's side at
    the study's level holds it (one run of 8 collapsed in every seed: all 6 seeds move down),
    each interaction's same-level side too (up); the nested pairs do not involve it. Holm
    adjusts over every effect of the family."""
    from types import SimpleNamespace

    from avemo import diagnosis as dx
    from avemo.evaluation.protocol import load
    from avemo.report import diagnosis as section

    one_class = [[5, 0], [5, 0]]
    spread = [[5, 0], [0, 5]]

    def metrics(conf: list) -> dict:
        return {"aggregate": {"test": {"emotion": {"weighted_f1": {"mean": 0.5, "n": 6}}}},
                "seeds": {str(s): {"dev": {"emotion": {"confusion": conf}}} for s in range(6)}}

    effects = dx.effects()
    names = {m for e in effects for m in e.models}
    inp = SimpleNamespace(
        effect=lambda name, pair: None,
        metrics={m: metrics(one_class if m == dx.STUDY_MODEL else spread) for m in names},
        models=SimpleNamespace(diagnosis=sorted(names - {dx.STUDY_MODEL})))
    df = section.effects_table(inp, load()).set_index("effect")
    p = 2 / 2**6  # 6 of 6 seeds move one way
    assert df.loc["main: scaling", "b_collapsed"] == 6 and df.loc["main: scaling",
                                                                   "a_collapsed"] == 0
    assert df["collapse_p"].tolist() == pytest.approx([p] * 15 + [1.0] * 5)
    assert df["collapse_p_holm"].min() == pytest.approx(len(effects) * p)
    assert section.study_collapse(inp, load()) == (6, 6)


def test_report_opens_with_its_summary(built: tuple[Path, Path, dict]) -> None:
    from avemo.evaluation.protocol import load

    root, out, _ = built
    md = (out / "report.md").read_text()
    first = md.split("\n## ", 2)[1]
    assert first.startswith("Summary\n") and md.index("## Summary") < md.index("## 1. Data")
    assert "**Data: the synthetic demo corpus.**" in first
    assert f"protocol `{load().hash}`" in first
    cmp = json.loads((root / "metrics" / "compare.json").read_text())
    best = cmp["selection"]["single_stream"]["model"]
    wf1 = _metrics(root, best)["ci"]["test"]["mean_over_seeds"]["emotion"]["weighted_f1"]
    assert f"Best single stream (chosen on dev): `{best}`" in first
    assert f"[{wf1['low']:.3f}, {wf1['high']:.3f}]" in first  # its interval, from the file
    assert "Best fusion (chosen on dev):" in first
    assert "[5. Fusion](#5-fusion)" in first and "[Provenance](#provenance)" in first
