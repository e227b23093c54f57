"""Evaluation: metrics against hand computations, bootstrap behaviour, baselines, JSON stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from avemo.errors import DataStageError
from avemo.evaluation import baselines, bootstrap, evaluate, metrics
from avemo.labels import EMOTIONS, SENTIMENTS

# 3-class toy: class 2 ("c") is never predicted.
TOY_TRUE = [0, 0, 0, 1, 1, 2]
TOY_PRED = [0, 0, 1, 1, 0, 1]
# By hand: F1_a = 2/3 (P = R = 2/3), F1_b = 2(1/3)(1/2)/(1/3 + 1/2) = 0.4, F1_c = 0.
TOY_F1 = (2 / 3, 0.4, 0.0)
TOY_WF1 = (3 * 2 / 3 + 2 * 0.4 + 1 * 0.0) / 6


def _noisy(y: np.ndarray, acc: float, k: int, rng: np.random.Generator) -> np.ndarray:
    """Predictions equal to ``y`` with probability ``acc``, else a different random class."""
    wrong = (y + rng.integers(1, k, size=y.size)) % k
    return np.where(rng.random(y.size) < acc, y, wrong)


def _predictions_frame(
    clips: list[str], emo: np.ndarray, sen: np.ndarray, emo_pred: np.ndarray, sen_pred: np.ndarray
) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "clip_name": clips,
            "emotion": [EMOTIONS[i] for i in emo],
            "sentiment": [SENTIMENTS[i] for i in sen],
        }
    )
    for task, labels, pred in (
        ("emotion", EMOTIONS, emo_pred),
        ("sentiment", SENTIMENTS, sen_pred),
    ):
        # Soft probabilities whose argmax is the intended prediction.
        p = rng.random((len(clips), len(labels))) * 0.5
        p[np.arange(len(clips)), pred] += 1.0
        p /= p.sum(axis=1, keepdims=True)
        for j, label in enumerate(labels):
            df[f"p_{task}_{label}"] = p[:, j]
    return df


def _make_split(n: int, acc: float, seed: int, truth_seed: int = 123) -> pd.DataFrame:
    truth_rng = np.random.default_rng(truth_seed)
    emo = truth_rng.integers(0, len(EMOTIONS), n)
    sen = truth_rng.integers(0, len(SENTIMENTS), n)
    rng = np.random.default_rng(seed)
    clips = [f"dia{i // 5}_utt{i % 5}" for i in range(n)]
    return _predictions_frame(
        clips,
        emo,
        sen,
        _noisy(emo, acc, len(EMOTIONS), rng),
        _noisy(sen, acc, len(SENTIMENTS), rng),
    )


# --- metrics ---------------------------------------------------------------------------------


def test_task_metrics_hand_computed_toy() -> None:
    m = metrics.task_metrics(TOY_TRUE, TOY_PRED, ("a", "b", "c"))
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(0.5)
    for label, f1 in zip("abc", TOY_F1, strict=True):
        assert m["per_class"][label]["f1"] == pytest.approx(f1)
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["per_class"]["b"]["precision"] == pytest.approx(1 / 3)
    assert m["per_class"]["b"]["recall"] == pytest.approx(0.5)
    assert m["weighted_f1"] == pytest.approx(TOY_WF1)  # 0.4667
    assert m["macro_f1"] == pytest.approx(sum(TOY_F1) / 3)


def test_confusion_layout_rows_are_truth_in_label_order() -> None:
    m = metrics.task_metrics(TOY_TRUE, TOY_PRED, ("a", "b", "c"))
    assert m["confusion"] == [[2, 1, 0], [1, 1, 0], [0, 1, 0]]
    norm = np.array(m["confusion_normalized"])
    np.testing.assert_allclose(norm[0], [2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(norm.sum(axis=1), 1.0)


def test_class_absent_everywhere_counts_zero_in_macro() -> None:
    m = metrics.task_metrics(TOY_TRUE, TOY_PRED, ("a", "b", "c", "d"))
    assert m["per_class"]["d"]["support"] == 0
    assert m["confusion_normalized"][3] == [0.0, 0.0, 0.0, 0.0]  # no NaN row
    assert m["weighted_f1"] == pytest.approx(TOY_WF1)
    # Macro F1 averages over ALL labels: the absent class "d" counts 0 (was sum/3 before).
    assert m["macro_f1"] == pytest.approx(sum(TOY_F1) / 4)
    ref = f1_score(TOY_TRUE, TOY_PRED, labels=range(4), average="macro", zero_division=0)
    assert m["macro_f1"] == pytest.approx(ref)
    # The vectorised bootstrap metric uses the same label set.
    assert bootstrap.metric_value(TOY_TRUE, TOY_PRED, "macro_f1", n_classes=4) == pytest.approx(
        ref
    )


def test_macro_f1_over_all_seven_emotions_on_a_small_split() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])  # only 3 of 7 emotions occur
    p = np.array([0, 1, 1, 1, 2, 0])
    m = metrics.task_metrics(y, p, EMOTIONS)
    expect = f1_score(y, p, labels=range(7), average="macro", zero_division=0)
    assert m["macro_f1"] == pytest.approx(expect)
    assert m["macro_f1"] < f1_score(y, p, average="macro")  # old label set: present classes


def test_vectorised_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 6, 300)
    p = _noisy(y, 0.5, 6, rng)
    p[p == 4] = 0  # a class never predicted
    ref = metrics.task_metrics(y, p, tuple("abcdef"))
    for name in metrics.HEADLINE_METRICS:
        assert bootstrap.metric_value(y, p, name) == pytest.approx(ref[name])
    assert ref["weighted_f1"] == pytest.approx(f1_score(y, p, average="weighted"))


def test_prediction_metrics_uses_argmax(tmp_path: Path) -> None:
    df = _make_split(40, 0.6, seed=1)
    path = tmp_path / "predictions_test.parquet"
    df.to_parquet(path, index=False)
    m = metrics.prediction_metrics(metrics.read_predictions(path))
    y_true = df["emotion"].map({e: i for i, e in enumerate(EMOTIONS)})
    y_pred = df[metrics.prob_columns("emotion")].to_numpy().argmax(axis=1)
    assert m["n"] == 40
    assert m["emotion"]["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert list(m["emotion"]["per_class"]) == list(EMOTIONS)
    assert list(m["sentiment"]["per_class"]) == list(SENTIMENTS)


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = tmp_path / "predictions_dev.parquet"
    _make_split(10, 0.5, seed=0).drop(columns=["p_emotion_fear", "sentiment"]).to_parquet(path)
    with pytest.raises(DataStageError) as err:
        metrics.read_predictions(path)
    assert str(path) in str(err.value)
    assert "p_emotion_fear" in str(err.value) and "'sentiment'" in str(err.value)


def test_unknown_label_is_rejected(tmp_path: Path) -> None:
    df = _make_split(10, 0.5, seed=0)
    df.loc[3, "emotion"] = "contempt"
    path = tmp_path / "p.parquet"
    df.to_parquet(path)
    with pytest.raises(DataStageError, match="contempt"):
        metrics.read_predictions(path)


# --- bootstrap -------------------------------------------------------------------------------


def test_bootstrap_ci_contains_point_and_narrows_with_n() -> None:
    rng = np.random.default_rng(0)
    widths = {}
    for n in (100, 2000):
        y = rng.integers(0, 7, n)
        p = _noisy(y, 0.6, 7, rng)
        point, low, high = bootstrap.bootstrap_ci(y, p, "weighted_f1", n_resamples=500, seed=0)
        assert low <= point <= high
        assert point == pytest.approx(f1_score(y, p, average="weighted"))
        widths[n] = high - low
    # Width shrinks ~ 1/sqrt(n): sqrt(20) ≈ 4.5; demand at least a factor 2.5.
    assert widths[2000] < widths[100] / 2.5


def test_bootstrap_callable_metric_matches_named_metric() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    p = _noisy(y, 0.7, 3, rng)
    named = bootstrap.bootstrap_ci(y, p, "accuracy", n_resamples=200, seed=3)
    fn = bootstrap.bootstrap_ci(y, p, accuracy_score, n_resamples=200, seed=3)
    np.testing.assert_allclose(named, fn)


def test_paired_test_detects_real_difference() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 500)
    good, bad = _noisy(y, 0.8, 3, rng), _noisy(y, 0.6, 3, rng)
    res = bootstrap.paired_bootstrap_test(y, good, bad, "accuracy", n_resamples=1000, seed=0)
    assert res["delta"] == pytest.approx(accuracy_score(y, good) - accuracy_score(y, bad))
    assert res["delta"] > 0.1
    assert res["ci_low"] > 0
    assert res["p_value"] < 0.05


def test_paired_test_accepts_null_difference() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 500)
    a, b = _noisy(y, 0.7, 3, rng), _noisy(y, 0.7, 3, rng)
    res = bootstrap.paired_bootstrap_test(y, a, b, "weighted_f1", n_resamples=1000, seed=0)
    assert res["ci_low"] < 0 < res["ci_high"]
    assert res["p_value"] > 0.05
    same = bootstrap.paired_bootstrap_test(y, a, a, "accuracy", n_resamples=100, seed=0)
    assert same["delta"] == 0 and same["p_value"] == 1.0


def test_seed_summary() -> None:
    s = bootstrap.seed_summary([0.5, 0.6, 0.7])
    assert s["mean"] == pytest.approx(0.6)
    assert s["std"] == pytest.approx(0.1)  # ddof=1
    assert s["n"] == 3
    # One seed says nothing about seed variance: std is null, not 0.0.
    assert bootstrap.seed_summary([0.42]) == {"mean": 0.42, "std": None, "n": 1}
    with pytest.raises(ValueError):
        bootstrap.seed_summary([])


# --- baselines -------------------------------------------------------------------------------


def _label_table(counts: dict[str, int], sentiment: str = "neutral") -> pd.DataFrame:
    emo = [label for label, c in counts.items() for _ in range(c)]
    return pd.DataFrame(
        {
            "clip_name": [f"dia0_utt{i}" for i in range(len(emo))],
            "emotion": emo,
            "sentiment": [sentiment] * len(emo),
        }
    )


def test_majority_baseline_matches_analytic_weighted_f1() -> None:
    train = _label_table({"neutral": 50, "joy": 30, "anger": 20})
    target = _label_table({"neutral": 40, "joy": 35, "sadness": 25})
    preds = baselines.majority_predictions(train, target)
    assert (preds["p_emotion_neutral"] == 1.0).all()
    m = metrics.prediction_metrics(preds)["emotion"]
    p = 0.4  # target share of the majority train class
    assert m["weighted_f1"] == pytest.approx(p * 2 * p / (1 + p))  # 0.2286
    assert m["accuracy"] == pytest.approx(p)
    exp = baselines.expected_baseline_metrics(
        baselines.label_prior(train["emotion"], "emotion"),
        baselines.label_prior(target["emotion"], "emotion"),
    )
    assert exp["majority"]["weighted_f1"] == pytest.approx(m["weighted_f1"])


def test_prior_baseline_is_seeded_and_near_analytic() -> None:
    counts = {"neutral": 9000, "joy": 5000, "anger": 4000, "fear": 2000}
    train = _label_table(counts)
    target = _label_table(counts)
    a = baselines.prior_predictions(train, target, seed=7)
    pd.testing.assert_frame_equal(a, baselines.prior_predictions(train, target, seed=7))
    m = metrics.prediction_metrics(a)["emotion"]
    prior = baselines.label_prior(train["emotion"], "emotion")
    exp = baselines.expected_baseline_metrics(prior, prior)["prior"]
    # Same prior on both sides: weighted F1 = accuracy = sum p^2.
    assert exp["weighted_f1"] == pytest.approx((prior**2).sum())
    assert m["weighted_f1"] == pytest.approx(exp["weighted_f1"], abs=0.015)
    assert m["accuracy"] == pytest.approx(exp["accuracy"], abs=0.015)


def test_baseline_stage_writes_readable_predictions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = _label_table({"neutral": 5, "joy": 3}).assign(ok=True)
    target = _label_table({"joy": 4, "fear": 2}).assign(ok=[True] * 5 + [False])
    train.to_parquet(tmp_path / "train.parquet")
    target.to_parquet(tmp_path / "test.parquet")
    # The manifest reader belongs to another stage; a plain parquet read stands in for it.
    monkeypatch.setattr(baselines, "_read_manifest", pd.read_parquet)
    out = tmp_path / "baselines" / "majority" / "predictions_test.parquet"
    summary = baselines.write_baseline_predictions(
        baselines.majority_predictions, "majority", tmp_path / "train.parquet",
        tmp_path / "test.parquet", out,
    )
    assert summary["n"] == 5
    df = metrics.read_predictions(out)
    assert len(df) == 5 and (df["p_emotion_neutral"] == 1.0).all()


# --- stages ----------------------------------------------------------------------------------


def _strict_json(path: Path) -> dict:
    def no_nan(token: str) -> None:
        raise AssertionError(f"metrics JSON holds {token}")

    return json.loads(path.read_text(), parse_constant=no_nan)


def test_evaluate_model_end_to_end(tmp_path: Path) -> None:
    paths = {}
    for seed, acc in ((0, 0.6), (1, 0.7)):
        paths[seed] = {}
        for split, n in (("dev", 30), ("test", 60)):
            p = tmp_path / f"seed{seed}" / f"predictions_{split}.parquet"
            p.parent.mkdir(exist_ok=True)
            df = _make_split(n, acc, seed=seed * 10 + n, truth_seed=n)
            df.sample(frac=1.0, random_state=seed).to_parquet(p)  # row order must not matter
            paths[seed][split] = p
    out = tmp_path / "metrics" / "cnn5.json"
    summary = evaluate.evaluate_model("cnn5", paths, out, n_resamples=200, seed=0)
    res = _strict_json(out)
    assert res["model"] == "cnn5" and set(res["seeds"]) == {"0", "1"}
    wf1 = [res["seeds"][s]["test"]["emotion"]["weighted_f1"] for s in ("0", "1")]
    agg = res["aggregate"]["test"]["emotion"]["weighted_f1"]
    assert agg["mean"] == pytest.approx(np.mean(wf1))
    assert agg["std"] == pytest.approx(np.std(wf1, ddof=1)) and agg["n"] == 2
    assert summary["test_emotion_weighted_f1_mean"] == pytest.approx(agg["mean"])
    assert set(res["aggregate"]) == {"dev", "test"}
    assert set(res["ci"]) == {"test"}
    for task in ("emotion", "sentiment"):
        for metric in ("weighted_f1", "macro_f1", "accuracy"):
            ci = res["ci"]["test"]["per_seed"]["1"][task][metric]
            assert ci["low"] <= ci["point"] <= ci["high"]
            assert ci["point"] == res["seeds"]["1"]["test"][task][metric]
            pooled = res["ci"]["test"]["mean_over_seeds"][task][metric]
            assert pooled["low"] <= pooled["point"] <= pooled["high"]
    assert len(res["aggregate"]["test"]["emotion"]["confusion_normalized_mean"]) == 7
    # Reruns are deterministic.
    evaluate.evaluate_model("cnn5", paths, tmp_path / "again.json", n_resamples=200, seed=0)
    assert _strict_json(tmp_path / "again.json")["ci"] == res["ci"]


def test_compare_models_and_mismatched_utterances(tmp_path: Path) -> None:
    files = {}
    for name, acc in (("good", 0.85), ("bad", 0.5)):
        for seed in (0, 1):
            p = tmp_path / f"{name}{seed}.parquet"
            _make_split(300, acc, seed=seed + (0 if name == "good" else 5)).to_parquet(p)
            files[(name, seed)] = p
    out = tmp_path / "cmp.json"
    tests = evaluate.compare_models(
        {s: files[("good", s)] for s in (0, 1)},
        {s: files[("bad", s)] for s in (0, 1)},
        ("good", "bad"),
        out,
        n_resamples=300,
        seed=0,
    )
    assert tests["emotion"]["accuracy"]["delta"] > 0.2
    assert tests["emotion"]["accuracy"]["p_value"] < 0.05
    res = _strict_json(out)
    assert set(res["per_seed"]) == {"0", "1"} and res["n"] == 300

    other = tmp_path / "other.parquet"
    _make_split(300, 0.5, seed=1).iloc[:-1].to_parquet(other)
    with pytest.raises(DataStageError, match="different utterances"):
        evaluate.compare_models(
            files[("good", 0)], other, ("good", "short"), tmp_path / "x.json", n_resamples=10
        )


def test_evaluate_model_seeds_on_different_utterances(tmp_path: Path) -> None:
    paths = {}
    for seed, n in ((0, 40), ("1", 39)):  # digit-string seed keys come from YAML/JSON configs
        p = tmp_path / f"s{seed}.parquet"
        _make_split(n, 0.6, seed=int(seed)).to_parquet(p)
        paths[seed] = {"test": p}
    out = tmp_path / "m.json"
    evaluate.evaluate_model("m", paths, out, n_resamples=50)
    res = _strict_json(out)
    assert res["ci"]["test"]["mean_over_seeds"] is None
    assert set(res["ci"]["test"]["per_seed"]) == {"0", "1"}
    assert res["aggregate"]["test"]["sentiment"]["accuracy"]["n"] == 2


# --- ablation splits, subsets, paired comparisons of configured pairs -----------------------


def test_evaluate_model_ablation_splits_and_subsets(tmp_path: Path) -> None:
    from avemo.evaluation.compare import audio_subsets_from_clips

    paths = {}
    for seed in (0, 1):
        paths[seed] = {}
        for split, acc in (("dev", 0.6), ("test", 0.7), ("test_no_audio", 0.4)):
            p = tmp_path / f"s{seed}_{split}.parquet"
            _make_split(50, acc, seed=seed * 7 + len(split), truth_seed=50).to_parquet(p)
            paths[seed][split] = p
    clips = pd.DataFrame({"clip_name": [f"dia{i // 5}_utt{i % 5}" for i in range(60)]})
    clips["mask"] = np.arange(60) >= 12  # 12 clips without audio (10 of them in the files)
    subsets = audio_subsets_from_clips(clips) | {"nobody": ["dia999_utt0"]}
    out = tmp_path / "m.json"
    evaluate.evaluate_model("gated", paths, out, n_resamples=50, subsets=subsets)
    res = _strict_json(out)
    assert set(res["ci"]) == {"test", "test_no_audio"}  # every test-like split gets CIs
    no_audio = res["aggregate"]["test_no_audio"]["emotion"]["weighted_f1"]["mean"]
    assert no_audio < res["aggregate"]["test"]["emotion"]["weighted_f1"]["mean"]
    miss = res["subsets"]["audio_missing"]["test"]
    assert miss["n"] == 12 and res["subsets"]["audio_present"]["test"]["n"] == 38
    # The subset's numbers are the metrics of the file restricted to those clips.
    df = metrics.read_predictions(paths[1]["test"])
    sub = df[df["clip_name"].isin(subsets["audio_missing"])]
    expect = metrics.prediction_metrics(sub)["emotion"]["weighted_f1"]
    assert miss["seeds"]["1"]["test"]["emotion"]["weighted_f1"] == pytest.approx(expect)
    assert set(res["subsets"]["audio_missing"]) == {"test", "test_no_audio"}
    assert res["subsets"]["nobody"]["test"] == {"n": 0}
    assert "dev" not in res["subsets"]["audio_missing"]


def test_compare_pairs_selects_on_dev_and_resolves_refs(tmp_path: Path) -> None:
    from avemo.evaluation.compare import compare_pairs, select_best

    preds: dict[str, dict[int, dict[str, Path]]] = {}
    mets: dict[str, Path] = {}
    # "devstar" is best on dev and worst on test: selection must not look at test.
    for model, (acc_dev, acc_test) in {
        "devstar": (0.9, 0.3),
        "teststar": (0.4, 0.9),
        "gated": (0.6, 0.6),
    }.items():
        paths = {}
        for seed in (0, 1):
            d = tmp_path / "models" / model / f"seed{seed}"
            d.mkdir(parents=True)
            for split, acc in (("dev", acc_dev), ("test", acc_test), ("test_no_audio", 0.2)):
                p = d / f"predictions_{split}.parquet"
                n = 40 if split == "dev" else 80
                df = _make_split(n, acc, seed=seed + len(split), truth_seed=n)
                (df.iloc[:-3] if model == "teststar" and split == "test" else df).to_parquet(p)
                paths.setdefault(seed, {})[split] = p
        m = tmp_path / "metrics" / f"{model}.json"
        evaluate.evaluate_model(model, paths, m, n_resamples=30)
        preds[model], mets[model] = paths, m
    # As the caller passes them: through a JSON (string seed keys, string paths).
    preds = json.loads(json.dumps(preds, default=str))
    out = tmp_path / "metrics" / "compare.json"
    summary = compare_pairs(
        [
            ["best:visual", "gated"],
            ["gated", "gated:test_no_audio"],
            ["teststar", "gated"],
            ["gated", "devstar"],  # = the first pair once best:visual is resolved: skipped
        ],
        preds,
        out,
        metrics=mets,
        groups={"visual": ["devstar", "teststar"]},
        n_resamples=100,
    )
    assert summary == {"n_pairs": 3, "n_contrasts": 0, "selection": {"visual": "devstar"}}
    res = _strict_json(out)
    first, ablation, short = res["pairs"]
    assert first["spec"] == ["best:visual", "gated"] and first["a"] == "devstar"
    assert first["tests"]["emotion"]["accuracy"]["delta"] < 0  # devstar is bad on test
    assert ablation["tests"]["emotion"]["accuracy"]["delta"] > 0.2
    assert ablation["tests"]["emotion"]["accuracy"]["p_value"] < 0.05
    # teststar's test files lack 3 utterances: scored on the common ones, and counted.
    assert short["n"] == 77 and sum(short["dropped"].values()) == 2 * 3
    assert select_best({}) is None
    with pytest.raises(DataStageError, match="best:audio"):
        compare_pairs(
            [["best:audio", "gated"]],
            preds,
            tmp_path / "x.json",
            metrics=mets,
            groups={"visual": ["devstar"]},
            n_resamples=10,
        )
    with pytest.raises(DataStageError, match="nosuch"):
        compare_pairs([["nosuch", "gated"]], preds, tmp_path / "x.json", n_resamples=10)


def _evaluate_under(root: Path) -> dict[str, bytes]:
    """Evaluate two models (one short of 3 test utterances) and compare them under ``root``."""
    from avemo.evaluation.compare import compare_pairs

    preds: dict[str, dict[int, dict[str, Path]]] = {}
    for model, acc in (("cnn5", 0.6), ("vgg16", 0.7)):
        for seed in (0, 1):
            d = root / "models" / model / f"seed{seed}"
            d.mkdir(parents=True)
            for split in ("dev", "test"):
                df = _make_split(40, acc, seed=seed + len(split), truth_seed=len(split))
                p = d / f"predictions_{split}.parquet"
                (df.iloc[:-3] if model == "vgg16" and split == "test" else df).to_parquet(p)
                preds.setdefault(model, {}).setdefault(seed, {})[split] = p
        evaluate.evaluate_model(model, preds[model], root / "metrics" / f"{model}.json",
                                n_resamples=20, subsets={"some": ["dia0_utt0", "dia1_utt1"]})
    evaluate.compare_models(preds["cnn5"][0]["test"], preds["vgg16"][0]["test"], ("cnn5", "vgg16"),
                            root / "metrics" / "pair.json", n_resamples=20, common_only=True)
    compare_pairs([["vgg16", "cnn5"]], preds, root / "metrics" / "compare.json", n_resamples=20)
    return {p.name: p.read_bytes() for p in sorted((root / "metrics").iterdir())}


def test_outputs_are_byte_identical_across_results_folders(tmp_path: Path) -> None:
    """No output stores a path: the same evaluation under two absolute roots gives the same
    bytes (compare.json's dropped counts included)."""
    one, two = (_evaluate_under(tmp_path / name) for name in ("one", "elsewhere"))
    assert list(one) == ["cnn5.json", "compare.json", "pair.json", "vgg16.json"]
    assert one == two
    for data in one.values():
        assert str(tmp_path).encode() not in data and b"parquet" not in data
    cmp = json.loads(one["compare.json"])
    assert cmp["pairs"][0]["dropped"] == {"vgg16 seed 0": 0, "vgg16 seed 1": 0,
                                          "cnn5 seed 0": 3, "cnn5 seed 1": 3}


def test_variant_and_ref_names() -> None:
    from avemo.evaluation.refs import base_model, default_pairs, split_ref, variant_name

    assert variant_name("gated", "single_task") == "gated@single_task"
    assert base_model("gated@single_task") == "gated" and base_model("cnn5") == "cnn5"
    assert split_ref("gated:test_no_video") == ("gated", "test_no_video")
    assert split_ref("gated@single_task") == ("gated@single_task", "test")
    with pytest.raises(ValueError):
        variant_name("gated@single_task", "x")
    assert default_pairs({}) == []
    assert default_pairs({"visual": ["cnn5"]}, baseline=None) == []


# --- dialogue x seed bootstrap, test/interval agreement, Holm, small splits, one seed --------


def _clustered(n_dialogues: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Truth, predictions right or wrong by whole dialogue (errors cluster), clip names."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 7, n_dialogues * size)
    right = np.repeat(rng.random(n_dialogues) < 0.5, size)
    p = np.where(right, y, (y + 1) % 7)
    clips = [f"dia{i // size}_utt{i % size}" for i in range(y.size)]
    return y, p, clips


def test_dialogue_ids_parse_meld_names() -> None:
    ids = bootstrap.dialogue_ids(["dia3_utt0", "dia3_utt1", "dia10_utt0", "odd", "dia3_utt7"])
    assert ids[0] == ids[1] == ids[4] and len({ids[0], ids[2], ids[3]}) == 3


def test_bootstrap_resamples_whole_dialogues() -> None:
    y, p, clips = _clustered(40, 10, seed=0)
    clusters = bootstrap.dialogue_ids(clips)
    # Every replicate takes a dialogue with all its utterances: a callable sees whole blocks.
    seen = []

    def record(t: np.ndarray, q: np.ndarray) -> float:
        seen.append(t.size)
        return float((t == q).mean())

    bootstrap.bootstrap_samples(y, [p], [record], n_resamples=20, seed=0, clusters=clusters)
    assert seen and all(n == 400 for n in seen)
    # Errors clustered in dialogues of 10: the dialogue interval is ~sqrt(10) x the
    # utterance interval (the old utterance bootstrap was far too narrow).
    _, lo_u, hi_u = bootstrap.bootstrap_ci(y, p, "accuracy", n_resamples=1000, n_classes=7)
    _, lo_d, hi_d = bootstrap.bootstrap_ci(
        y, p, "accuracy", n_resamples=1000, n_classes=7, clusters=clusters
    )
    assert hi_d - lo_d > 2.0 * (hi_u - lo_u)
    # Named (matrix product) and callable paths agree on the same dialogue replicates.
    named = bootstrap.bootstrap_samples(y, [p], ["accuracy"], 50, 1, 7, clusters)
    fn = bootstrap.bootstrap_samples(y, [p], [accuracy_score], 50, 1, 7, clusters)
    np.testing.assert_allclose(named, fn)


def test_evaluate_model_ci_is_dialogue_and_seed_bootstrap(tmp_path: Path) -> None:
    y, p_good, clips = _clustered(30, 10, seed=1)
    rng = np.random.default_rng(9)
    p_bad = np.where(rng.random(y.size) < 0.5, p_good, (y + 2) % 7)  # a much worse seed
    sen = np.zeros(y.size, dtype=int)
    paths = {}
    for s, pred in ((0, p_good), (1, p_bad)):
        path = tmp_path / f"s{s}.parquet"
        _predictions_frame(clips, y, sen, pred, sen).to_parquet(path)
        paths[s] = {"test": path}
    out = tmp_path / "m.json"
    evaluate.evaluate_model("m", paths, out, n_resamples=1000)
    res = _strict_json(out)
    ci = res["ci"]["test"]
    assert (ci["n_utterances"], ci["n_dialogues"], ci["too_small"]) == (300, 30, False)
    # Per seed: dialogue bootstrap, wider than an utterance bootstrap of the same file.
    one = ci["per_seed"]["0"]["emotion"]["accuracy"]
    _, lo_u, hi_u = bootstrap.bootstrap_ci(y, p_good, "accuracy", n_resamples=1000, n_classes=7)
    assert one["high"] - one["low"] > 2.0 * (hi_u - lo_u)
    # Seed-mean: seeds resampled with the dialogues, so seed variance widens the interval.
    pooled = ci["mean_over_seeds"]["emotion"]["accuracy"]
    clusters = bootstrap.dialogue_ids(clips)
    fixed = bootstrap.cluster_bootstrap(
        y, [[p_good, p_bad]], ["accuracy"], clusters, 1000, 0, 7, resample_seeds=False
    )[0, 0]
    lo_f, hi_f = bootstrap.percentile_interval(fixed)
    assert pooled["high"] - pooled["low"] > 1.3 * (hi_f - lo_f)
    assert pooled["low"] <= pooled["point"] <= pooled["high"]
    assert res["n_seeds"] == 2 and res["bootstrap"]["unit"] == "dialogue"


def test_bootstrap_is_fast_at_meld_size() -> None:
    import time

    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 2610)
    clusters = np.sort(rng.integers(0, 280, 2610))
    seeds_a = [_noisy(y, 0.6, 7, rng) for _ in range(5)]
    seeds_b = [_noisy(y, 0.5, 7, rng) for _ in range(5)]
    start = time.perf_counter()
    out = bootstrap.cluster_bootstrap(
        y, [seeds_a, seeds_b], metrics.HEADLINE_METRICS, clusters, 1000, 0, 7
    )
    assert out.shape == (2, 3, 1000)
    assert time.perf_counter() - start < 5.0  # ~0.1 s here; generous for shared CI cores


@pytest.mark.parametrize("n,alpha", [(1000, 0.05), (999, 0.05), (200, 0.1), (5000, 0.01)])
def test_interval_and_p_value_always_agree(n: int, alpha: float) -> None:
    for c in range(0, n // 5):  # c resamples at or below 0, the rest above
        deltas = np.concatenate([-np.linspace(0.001, 0.02, c), np.linspace(0.0005, 0.1, n - c)])
        res = bootstrap.paired_test_from_samples(0.05, deltas, alpha)
        assert (res["ci_low"] > 0) == (res["p_value"] < alpha) == res["significant"], c
        mirrored = bootstrap.paired_test_from_samples(-0.05, -deltas, alpha)
        assert (mirrored["ci_high"] < 0) == (mirrored["p_value"] < alpha), c


def test_interval_barely_excluding_zero_is_significant() -> None:
    # B = 1000, alpha = 0.05: 24 of 1000 differences <= 0 -> p = 2 * 25 / 1001 < 0.05 and the
    # interval excludes 0; 25 -> p = 52/1001 > 0.05 and the interval reaches 0 (the old
    # interpolated quantile still excluded 0 there: CI and p disagreed).
    for c, sig in ((24, True), (25, False)):
        deltas = np.concatenate([-np.full(c, 0.01), np.linspace(0.001, 0.2, 1000 - c)])
        res = bootstrap.paired_test_from_samples(0.08, deltas, 0.05)
        assert res["p_value"] == pytest.approx(2 * (c + 1) / 1001)
        assert res["significant"] is sig and (res["ci_low"] > 0) is sig


def test_holm_adjustment() -> None:
    adj = bootstrap.holm([0.01, 0.04, 0.03, None])
    assert adj[:3] == pytest.approx([0.03, 0.06, 0.06]) and adj[3] is None
    assert bootstrap.holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])
    assert bootstrap.holm([]) == []


def _write_model(root: Path, model: str, acc: float, n: int, seeds: tuple[int, ...]) -> dict:
    paths = {}
    for seed in seeds:
        d = root / model / f"seed{seed}"
        d.mkdir(parents=True)
        for split in ("dev", "test"):
            p = d / f"predictions_{split}.parquet"
            _make_split(n, acc, seed=seed * 3 + len(model), truth_seed=n).to_parquet(p)
            paths.setdefault(seed, {})[split] = p
    return paths


def test_compare_pairs_primary_family_holm_and_too_small(tmp_path: Path) -> None:
    from avemo.evaluation.compare import compare_pairs
    from avemo.evaluation.refs import default_primary

    groups = {"visual": ["vgg16", "cnn5", "other"]}
    assert default_primary(groups) == [["vgg16", "cnn5"]]
    assert default_primary(
        {"visual": ["cnn5"], "audio": ["audio_mlp"], "fusion": ["concat_misaligned", "gated"]}
    ) == [["best:single_stream", "concat_misaligned"], ["gated", "concat_misaligned"]]
    preds = {
        m: _write_model(tmp_path / "big", m, acc, 80, (0, 1))
        for m, acc in (("vgg16", 0.8), ("cnn5", 0.5), ("other", 0.55))
    }
    out = tmp_path / "compare.json"
    pairs = [["vgg16", "cnn5"], ["other", "cnn5"]]
    compare_pairs(pairs, preds, out, groups=groups, n_resamples=200)
    res = _strict_json(out)
    first, second = res["pairs"]
    assert first["family"] == "primary" and second["family"] == "exploratory"
    t = first["tests"]["emotion"]["weighted_f1"]
    assert first["p_holm"] == t["p_holm"] == pytest.approx(t["p_value"])  # family of one
    assert second["p_holm"] is None and first["too_small"] is False
    assert res["multiplicity"]["primary"] == [["vgg16", "cnn5"]]
    # An explicit family (either order of a pair matches): Holm over both.
    compare_pairs(pairs, preds, out, groups=groups, n_resamples=200,
                  primary=[["vgg16", "cnn5"], ["cnn5", "other"], ["gated", "cnn5"]])
    res = _strict_json(out)
    raw = [e["tests"]["emotion"]["weighted_f1"]["p_value"] for e in res["pairs"]]
    assert [e["p_holm"] for e in res["pairs"]] == pytest.approx(bootstrap.holm(raw))
    assert {e["family"] for e in res["pairs"]} == {"primary"}
    assert res["multiplicity"]["not_tested"] == [["gated", "cnn5"]]
    # 20 utterances in 4 dialogues: too small, no verdict, no Holm p.
    small = {
        m: _write_model(tmp_path / "small", m, acc, 20, (0,))
        for m, acc in (("vgg16", 0.9), ("cnn5", 0.2))
    }
    compare_pairs([["vgg16", "cnn5"]], small, out, groups=groups, n_resamples=200)
    (entry,) = _strict_json(out)["pairs"]
    assert entry["too_small"] is True and entry["n"] == 20 and entry["n_dialogues"] == 4
    assert entry["family"] == "primary" and entry["p_holm"] is None
    assert entry["tests"]["emotion"]["weighted_f1"]["significant"] is None


def test_one_seed_has_no_spread_and_small_split_is_flagged(tmp_path: Path) -> None:
    from avemo.report.tables import fmt_stats, stats

    paths = _write_model(tmp_path, "cnn5", 0.6, 20, (0,))
    out = tmp_path / "cnn5.json"
    evaluate.evaluate_model("cnn5", paths, out, n_resamples=50, min_utterances=30,
                            min_dialogues=10)
    res = _strict_json(out)
    assert res["n_seeds"] == 1
    agg = res["aggregate"]["test"]["emotion"]["weighted_f1"]
    assert agg["std"] is None and agg["n"] == 1
    shown = fmt_stats(stats(res, "emotion", "weighted_f1"))
    assert "±" not in shown and shown.startswith(f"{agg['mean']:.3f}")
    ci = res["ci"]["test"]
    assert ci["too_small"] is True and (ci["n_utterances"], ci["n_dialogues"]) == (20, 4)
    evaluate.evaluate_model("cnn5", paths, out, n_resamples=50, min_utterances=10,
                            min_dialogues=4)
    assert _strict_json(out)["ci"]["test"]["too_small"] is False
