"""The fusion diagnosis: factor variants, cross-fitting folds, shuffled control, statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_evaluation import _make_split

from avemo import diagnosis, params, registry
from avemo.config import load_config
from avemo.errors import ConfigError, DataStageError
from avemo.evaluation import evaluate
from avemo.evaluation.bootstrap import dialogue_ids
from avemo.folds import dialogue_folds
from avemo.fusion.inputs import pooled_windows, shuffle_windows
from avemo.report.spec import compare_params, comparison_pairs, model_groups

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cfg() -> dict:
    return load_config(REPO / "config.yaml")


def _levels() -> dict[str, dict[str, str]]:
    return {registry.get(n).name: dict(registry.get(n).factors)
            for n in [diagnosis.STUDY_MODEL, *registry.diagnostic_names()]}


def test_every_paired_effect_differs_in_exactly_its_factor() -> None:
    levels = _levels()
    assert levels[diagnosis.STUDY_MODEL] == diagnosis.STUDY
    for e in [*diagnosis.effects(), *diagnosis.chain()]:
        if e.pair is None:
            continue
        a, b = e.pair
        diff = {f for f in diagnosis.FACTORS if levels[a][f] != levels[b][f]}
        assert diff == {e.factor}, e
    # The build-up starts at the study and ends at cross-attention on aligned windows.
    chain = diagnosis.chain_models()
    assert chain[0] == diagnosis.STUDY_MODEL
    assert levels[chain[-1]] == {f: dict(diagnosis.CHAIN)[f] for f in diagnosis.FACTORS}
    assert levels[diagnosis.control_model()]["alignment"] == "shuffled"
    kinds = [e.kind for e in diagnosis.effects()]
    assert list(dict.fromkeys(kinds)) == ["main", "interaction", "step", "control"]
    assert kinds.count("main") == 5 and kinds.count("interaction") == 10


def test_the_fraction_is_sixteen_registered_runs_with_the_study() -> None:
    levels = _levels()
    runs = diagnosis.fraction()
    assert len(runs) == 16 and len({n for n, _ in runs}) == 16
    assert runs[0][0] == diagnosis.STUDY_MODEL
    for name, lv in runs:
        assert levels[name] == lv  # every run is a registry entry with exactly its levels
        switched = sum(lv[f] != diagnosis.STUDY[f] for f in diagnosis.INDEPENDENT)
        assert switched % 2 == 0  # I = -ABCDE: an even number of factors off the study's
        assert all(lv[f] == diagnosis.STUDY[f] for f in diagnosis.NESTED)
    # Build-up steps with the same levels are reused, not trained twice.
    assert {"dx2_scaled", "dx4_dense"} <= {n for n, _ in runs}


def test_a_contrast_weighs_each_level_half_by_half() -> None:
    levels = _levels()
    for e in diagnosis.effects():
        if e.pair is not None:
            continue
        w = dict(e.weights)
        assert sum(w.values()) == pytest.approx(0.0) and len(w) == 16
        assert sum(c for c in w.values() if c > 0) == pytest.approx(1.0)
        if e.kind == "main":  # + side: the factor's second level; - side: the study's
            assert {levels[m][e.factor] for m in e.half(1)} == {diagnosis.FACTORS[e.factor][1]}
            assert {levels[m][e.factor] for m in e.half(-1)} == {diagnosis.STUDY[e.factor]}
        else:  # + side: the two factors at the same level
            f, g = e.factor.split("×")
            assert all((levels[m][f] == diagnosis.STUDY[f]) == (levels[m][g] == diagnosis.STUDY[g])
                       for m in e.half(1))


def test_invalid_factor_levels_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="needs video=dense"):
        diagnosis.complete({"alignment": "aligned"})
    with pytest.raises(ConfigError, match="unknown fusion factor"):
        diagnosis.complete({"colour": "red"})
    with pytest.raises(ConfigError, match="does not take"):
        diagnosis.complete({"architecture": "cross_attention"})


def test_variants_are_registry_entries_in_their_own_group(cfg: dict) -> None:
    names = registry.diagnostic_names()
    assert names and all(registry.get(n).kind == "early_fusion" for n in names)
    assert {registry.get(n).group for n in names} == {"diagnosis"}
    groups = model_groups(cfg)
    assert groups["diagnosis"] == names and not set(names) & set(groups["fusion"])
    assert set(names) <= set(params.configured(cfg, "early_fusion"))
    off = {**cfg, "fusion": {**cfg["fusion"], "diagnosis": False}}
    assert not set(names) & set(params.configured(off, "early_fusion"))
    assert "diagnosis" not in model_groups(off) and not params.cross_fitted(off)


def test_diagnosis_pairs_are_their_own_family(cfg: dict) -> None:
    pairs = comparison_pairs(cfg)
    effects = [list(e.pair) for e in diagnosis.effects() if e.pair is not None]
    steps = [list(e.pair) for e in diagnosis.chain()]
    assert all(p in pairs for p in effects + steps)
    cp = compare_params(cfg)
    assert cp["diagnosis"] == effects  # the build-up's other steps are exploratory
    assert [c["name"] for c in cp["contrasts"]] == [
        e.name for e in diagnosis.effects() if e.pair is None]
    # Not in the study's primary family.
    assert not any(p in (cfg["evaluation"]["primary"] or []) for p in effects)
    # The compare rule reads every run of the fraction.
    need = params.compare_inputs(cfg)["predictions"]
    assert all(m in need for m, _ in diagnosis.fraction())


def test_budget_and_inputs_follow_the_factors(cfg: dict) -> None:
    video = cfg["fusion"]["video_model"]
    study = params.fusion(cfg, "concat_misaligned")["engine"]
    equal = params.fusion(cfg, "dxf_scaled_budget")["engine"]
    assert study["epochs"] == cfg["fusion"]["engine"]["epochs"]
    assert equal["epochs"] == params.train(cfg, video)["engine"]["epochs"] != study["epochs"]
    lay = params.layout(cfg)
    insample = params.fusion_inputs(cfg, "concat_misaligned", 0)
    oof = params.fusion_inputs(cfg, "dx1_crossfit", 0)
    assert insample["video_utt"]["train"] == lay.embeddings(video, 0, "train", "study")
    assert oof["video_utt"]["train"] == lay.crossfit_embeddings(video, 0, "study")
    assert oof["video_dense"]["train"] == lay.crossfit_embeddings(video, 0, "dense")
    for split in ("dev", "test"):  # dev and test are always the full model's
        assert oof["video_utt"][split] == insample["video_utt"][split]
    jobs = params.job_wildcards(cfg)
    assert jobs["crossfit"] == [{"model": video, "seed": str(s)} for s in cfg["train"]["seeds"]]
    assert params.job_params("crossfit", cfg, {"model": video})["folds"] == \
        cfg["fusion"]["cross_fit_folds"]


def test_dialogue_folds_keep_dialogues_whole() -> None:
    names = [f"dia{d}_utt{u}" for d in range(11) for u in range(d % 4 + 1)]
    fold = dialogue_folds(names, 3, seed=5)
    groups = dialogue_ids(names)
    for g in np.unique(groups):
        assert len(set(fold[groups == g])) == 1  # a dialogue never straddles folds
    counts = np.bincount([fold[groups == g][0] for g in np.unique(groups)], minlength=3)
    assert counts.max() - counts.min() <= 1  # dialogues dealt evenly
    assert (dialogue_folds(names, 3, seed=5) == fold).all()
    assert not (dialogue_folds(names, 3, seed=6) == fold).all()
    with pytest.raises(DataStageError, match="lower fusion.cross_fit_folds"):
        dialogue_folds(names[:3], 3, seed=0)


def _aligned(n: int, t: int, d: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    lengths = np.array([t, t - 2, 1][:n])
    mask = np.arange(t)[None, :] < lengths[:, None]
    return {"audio_win": (rng.normal(size=(n, t, d)) * mask[..., None]).astype(np.float32),
            "audio_mask": mask.copy(), "audio_t_s": np.where(mask, np.arange(t) * 0.5, np.nan),
            "lengths": lengths}


def test_shuffled_control_permutes_each_clip_in_time() -> None:
    a = _aligned(3, 8)
    names = ["dia1_utt0", "dia1_utt1", "dia2_utt0"]
    s = shuffle_windows(a, names, seed=0)
    for i, n in enumerate(a["lengths"]):
        before, after = a["audio_win"][i, :n], s["audio_win"][i, :n]
        # the same windows, each still with its own recorded time, in another order
        assert sorted(map(tuple, before.round(6))) == sorted(map(tuple, after.round(6)))
        order = np.argsort(s["audio_t_s"][i, :n])
        np.testing.assert_allclose(after[order], before)
        assert not (a["audio_win"][i, n:]).any() and not s["audio_mask"][i, n:].any()
    assert not np.allclose(s["audio_win"][0], a["audio_win"][0])
    # one fixed permutation per (seed, clip): the same whatever the split or call
    again = shuffle_windows(a, names, seed=0)
    np.testing.assert_array_equal(again["audio_win"], s["audio_win"])
    assert not np.allclose(shuffle_windows(a, names, seed=1)["audio_win"][0], s["audio_win"][0])


def test_pooled_windows_ignore_masked_steps() -> None:
    win = np.array([[[1.0], [3.0], [100.0]], [[0.0], [0.0], [0.0]]], dtype=np.float32)
    mask = np.array([[True, True, False], [False, False, False]])
    x, present = pooled_windows(win, mask)
    np.testing.assert_allclose(x, [[2.0, 3.0], [0.0, 0.0]])
    assert present.tolist() == [True, False]


def test_compare_adjusts_the_diagnosis_family_on_its_own(tmp_path: Path) -> None:
    from avemo.evaluation.compare import compare_pairs

    preds: dict[str, dict[int, dict[str, Path]]] = {}
    for model, acc in {"a": 0.8, "b": 0.5, "c": 0.55, "d": 0.5}.items():
        d = tmp_path / model
        d.mkdir()
        paths = {}
        for split in ("dev", "test"):
            p = d / f"predictions_{split}.parquet"
            _make_split(120, acc, seed=len(model) + ord(model[0]), truth_seed=120).to_parquet(p)
            paths[split] = p
        preds[model] = {0: paths}
        evaluate.evaluate_model(model, {0: paths}, tmp_path / f"{model}.json", n_resamples=20)
    out = tmp_path / "compare.json"
    compare_pairs([["a", "b"], ["c", "d"], ["a", "d"]], preds, out, n_resamples=200,
                  primary=[["a", "b"]], diagnosis=[["c", "d"], ["a", "d"]])
    res = json.loads(out.read_text())
    fam = {(e["a"], e["b"]): e for e in res["pairs"]}
    assert fam["a", "b"]["family"] == "primary"
    assert fam["c", "d"]["family"] == fam["a", "d"]["family"] == "diagnosis"
    assert res["multiplicity"]["diagnosis"] == [["c", "d"], ["a", "d"]]
    # Holm over two p-values: the smaller is doubled, independent of the primary family.
    p = sorted(fam[k]["tests"]["emotion"]["weighted_f1"]["p_value"] for k in [("c", "d"),
                                                                              ("a", "d")])
    adjusted = sorted(fam[k]["p_holm"] for k in [("c", "d"), ("a", "d")])
    assert adjusted[0] == pytest.approx(min(1.0, 2 * p[0]))
    assert fam["a", "b"]["p_holm"] == pytest.approx(
        fam["a", "b"]["tests"]["emotion"]["weighted_f1"]["p_value"])


def test_config_turns_the_diagnosis_on_for_the_demo() -> None:
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    assert raw["fusion"]["diagnosis"] is True and raw["fusion"]["cross_fit_folds"] >= 2


def test_activity_needs_dense_frames_and_precedes_alignment() -> None:
    with pytest.raises(ConfigError, match="activity=on needs video=dense"):
        diagnosis.complete({"activity": "on"})
    chain = [f for f, _ in diagnosis.CHAIN]
    assert chain.index("activity") == chain.index("alignment") - 1
    # The control and the aligned model both see the activity: they differ in time order only.
    ctl = registry.get(diagnosis.control_model()).factors
    step = next(e for e in diagnosis.effects() if e.kind == "step" and e.factor == "alignment")
    assert ctl["activity"] == registry.get(step.pair[0]).factors["activity"] == "on"


def test_a_pair_as_a_contrast_is_the_paired_test_and_joins_the_family(tmp_path: Path) -> None:
    from avemo.evaluation.compare import compare_pairs
    from avemo.evaluation.contrast import contrast_comparison

    preds: dict[str, dict[int, dict[str, Path]]] = {}
    for i, (model, acc) in enumerate({"a": 0.8, "b": 0.5, "c": 0.6, "d": 0.45}.items()):
        preds[model] = {}
        for seed in (3, 4):
            p = tmp_path / f"{model}{seed}.parquet"
            _make_split(120, acc, seed=10 * i + seed, truth_seed=120).to_parquet(p)
            preds[model][seed] = {"test": p}
    test_paths = {m: {s: v["test"] for s, v in per.items()} for m, per in preds.items()}
    pair, _ = evaluate.paired_comparison(test_paths["a"], test_paths["b"], ("a", "b"),
                                         n_resamples=300, seed=1, paired_seeds=True)
    as_contrast, _ = contrast_comparison(test_paths, {"a": 1.0, "b": -1.0}, "a − b",
                                         n_resamples=300, seed=1)
    for key in ("delta", "ci_low", "ci_high", "p_value"):
        assert as_contrast["tests"]["emotion"]["weighted_f1"][key] == pytest.approx(
            pair["tests"]["emotion"]["weighted_f1"][key])
    # A main-effect-like contrast: (a + c)/2 - (b + d)/2, in the diagnosis family with a pair.
    out = tmp_path / "compare.json"
    compare_pairs([["a", "b"]], preds, out, n_resamples=200, primary=[],
                  diagnosis=[["a", "b"]],
                  contrasts=[{"name": "main: x", "weights": {"a": .5, "c": .5, "b": -.5,
                                                             "d": -.5}}])
    res = json.loads(out.read_text())
    (c,) = res["contrasts"]
    t = c["tests"]["emotion"]["weighted_f1"]
    means = {m: np.mean([evaluate.metric_value(
        *evaluate.truth_and_prediction(evaluate.read_predictions(preds[m][s]["test"]), "emotion"),
        "weighted_f1", 7) for s in (3, 4)]) for m in "abcd"}
    assert t["delta"] == pytest.approx((means["a"] + means["c"] - means["b"] - means["d"]) / 2)
    assert c["family"] == "diagnosis" and c["verdict"] in ("effect", "equivalent", "inconclusive")
    assert c["simultaneous"]["m"] == 2 and res["pairs"][0]["simultaneous"]["m"] == 2
    assert res["multiplicity"]["diagnosis"] == [["a", "b"], "main: x"]
    with pytest.raises(DataStageError, match="different seeds"):
        contrast_comparison({**test_paths, "c": {3: test_paths["c"][3]}},
                            {"a": 1.0, "c": -1.0}, "x", n_resamples=50)
