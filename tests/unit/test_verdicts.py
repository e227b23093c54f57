"""The three verdicts (effect / equivalent / inconclusive), paired seeds, collapse as an outcome."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from avemo.evaluation import bootstrap, verdicts
from avemo.evaluation.protocol import DEFAULT_PATH, load
from avemo.evaluation.verdicts import EFFECT, EQUIVALENT, INCONCLUSIVE

REPO = Path(__file__).resolve().parents[2]
K = 7


def _noisy(y: np.ndarray, acc: float, rng: np.random.Generator) -> np.ndarray:
    wrong = (y + rng.integers(1, K, size=y.size)) % K
    return np.where(rng.random(y.size) < acc, y, wrong)


def _decide(y: np.ndarray, a: list[np.ndarray], b: list[np.ndarray], margin: float = 0.02,
            b_resamples: int = 4999, paired: bool = True) -> str:
    """One effect, a family of one: the verdict the compare stage would give."""
    clusters = np.arange(y.size) // 5  # dialogues of five utterances
    s = bootstrap.cluster_bootstrap(y, [a, b], ["weighted_f1"], clusters, b_resamples, 0, K,
                                    paired_seeds=paired)
    d = s[0, 0] - s[1, 0]
    t = bootstrap.paired_test_from_samples(float(np.mean(d)), d, 0.05)
    t["p_tost"] = verdicts.tost_p(d, margin)
    (decided,) = verdicts.family_verdicts([t], 0.05)
    return decided["verdict"]


def _write_preds(path: Path, clips: list[str], y: np.ndarray, emotion_pred: np.ndarray,
                 sentiment: np.ndarray | None = None) -> Path:
    """A predictions_test.parquet whose probabilities are one-hot on the given predictions
    (sentiment: true and predicted neutral unless given)."""
    import pandas as pd

    from avemo.labels import EMOTIONS, SENTIMENTS

    ys = np.zeros(len(clips), int) if sentiment is None else sentiment
    df = pd.DataFrame({"clip_name": clips, "emotion": [EMOTIONS[i] for i in y],
                       "sentiment": [SENTIMENTS[i] for i in ys]})
    for task, labels, pred in (("emotion", EMOTIONS, emotion_pred), ("sentiment", SENTIMENTS, ys)):
        for j, label in enumerate(labels):
            df[f"p_{task}_{label}"] = (np.asarray(pred) == j).astype(float)
    path.parent.mkdir(parents=True)
    df.to_parquet(path)
    return path


def _protocol_file(tmp_path: Path, **resampling: int) -> Path:
    """The repository's protocol with ``resampling`` changed, written under ``tmp_path``."""
    raw = yaml.safe_load((REPO / DEFAULT_PATH).read_text())
    raw["resampling"].update(resampling)
    out = tmp_path / "protocol.yaml"
    out.write_text(yaml.safe_dump(raw))
    return out


def test_identical_predictions_are_equivalent() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, K, 400)
    seeds = [_noisy(y, 0.5, rng) for _ in range(3)]
    assert _decide(y, seeds, [p.copy() for p in seeds]) == EQUIVALENT


def test_a_large_planted_difference_is_an_effect_either_way() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, K, 400)
    good = [_noisy(y, 0.8, rng) for _ in range(3)]
    bad = [_noisy(y, 0.3, rng) for _ in range(3)]
    assert _decide(y, good, bad) == EFFECT
    assert _decide(y, bad, good) == EFFECT


def test_noise_on_a_tiny_test_set_is_inconclusive() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, K, 20)
    a = [_noisy(y, 0.5, rng) for _ in range(3)]
    b = [_noisy(y, 0.5, rng) for _ in range(3)]
    assert _decide(y, a, b) == INCONCLUSIVE


def test_verdict_rule_order_and_too_small() -> None:
    # Significant and on one side: effect, even when the TOST also passes (a small real effect).
    assert verdicts.verdict(0.001, 0.001, 0.01, 0.001, 0.05) == EFFECT
    # Adjusted p below alpha but an interval touching 0 is not an effect.
    assert verdicts.verdict(0.01, 0.0, 0.02, 0.2, 0.05) == INCONCLUSIVE
    assert verdicts.verdict(0.4, -0.01, 0.01, 0.01, 0.05) == EQUIVALENT
    assert verdicts.verdict(0.001, 0.1, 0.2, 0.001, 0.05, too_small=True) == INCONCLUSIVE
    assert verdicts.verdict(None, -1.0, 1.0, None, 0.05) == INCONCLUSIVE


def test_holm_drives_the_verdict_not_the_raw_p() -> None:
    # Alone, p = 0.02 is an effect; in a family of three with larger p-values it is not.
    t = {"p_value": 0.02, "p_tost": 0.9, "ci_low": 0.01, "ci_high": 0.05}
    assert verdicts.family_verdicts([t], 0.05)[0]["verdict"] == EFFECT
    fam = verdicts.family_verdicts([t, {**t, "p_value": 0.03}, {**t, "p_value": 0.04}], 0.05)
    assert [f["verdict"] for f in fam] == [INCONCLUSIVE] * 3
    assert fam[0]["p_holm"] == pytest.approx(0.06)
    # A too-small member stays out of the adjustment and reads inconclusive.
    fam = verdicts.family_verdicts([t, {**t, "too_small": True}, None], 0.05)
    assert [f["verdict"] for f in fam] == [EFFECT, INCONCLUSIVE, INCONCLUSIVE]
    assert fam[1]["p_holm"] is None


def test_tost_p_matches_the_interval_inside_the_margin() -> None:
    rng = np.random.default_rng(3)
    inside = rng.normal(0.0, 0.005, 9999)
    outside = rng.normal(0.0, 0.05, 9999)
    assert verdicts.tost_p(inside, 0.02) < 0.05 < verdicts.tost_p(outside, 0.02)
    # The 90% interval (1 - 2 alpha) inside +-margin  <=>  TOST p < alpha.
    for d in (inside, outside, rng.normal(0.015, 0.005, 9999)):
        lo, hi = bootstrap.percentile_interval(d, 0.10)
        assert (verdicts.tost_p(d, 0.02) < 0.05) == (-0.02 < lo and hi < 0.02)
    with pytest.raises(ValueError):
        verdicts.tost_p(inside, 0.0)


def test_simultaneous_interval_is_wider_than_marginal() -> None:
    d = np.random.default_rng(4).normal(0.1, 0.03, 19999)
    lo, hi = bootstrap.percentile_interval(d, 0.05)
    slo, shi = verdicts.simultaneous_interval(d, 0.05, 15)
    assert slo < lo and shi > hi
    assert verdicts.simultaneous_interval(d, 0.05, 1) == (lo, hi)


def test_paired_seeds_share_one_seed_draw() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, K, 200)
    seeds = [_noisy(y, acc, rng) for acc in (0.2, 0.5, 0.8)]  # seeds differ a lot
    same = [p.copy() for p in seeds]
    paired = bootstrap.cluster_bootstrap(y, [seeds, same], ["weighted_f1"], None, 500, 0, K,
                                         paired_seeds=True)
    assert np.array_equal(paired[0], paired[1])  # a − b is exactly 0 in every replicate
    unpaired = bootstrap.cluster_bootstrap(y, [seeds, same], ["weighted_f1"], None, 500, 0, K)
    assert np.std(unpaired[0, 0] - unpaired[1, 0]) > 0.01  # independent draws add seed noise
    with pytest.raises(ValueError, match="same number of seeds"):
        bootstrap.cluster_bootstrap(y, [seeds, same[:2]], ["weighted_f1"], None, 10, 0, K,
                                    paired_seeds=True)


def test_sign_test_and_its_floor() -> None:
    assert verdicts.sign_test_p([True] * 3, [False] * 3) == pytest.approx(0.25)
    assert verdicts.min_sign_test_p(3) == pytest.approx(0.25)
    assert verdicts.sign_test_p([True] * 6, [False] * 6) == pytest.approx(2 / 64)
    assert verdicts.sign_test_p([True, False], [True, False]) == 1.0  # no discordant seed
    assert verdicts.sign_test_p([True, False, True], [False, True, False]) == 1.0
    with pytest.raises(ValueError):
        verdicts.sign_test_p([True], [True, False])


def _metrics(dev_confusions: dict[str, list[list[int]]]) -> dict:
    return {"seeds": {s: {"dev": {"emotion": {"confusion": c}}, "test": {"emotion": {
        "confusion": [[1, 0], [0, 1]]}}} for s, c in dev_confusions.items()}}


def test_collapse_is_read_from_dev_and_tested_paired_over_seeds() -> None:
    one_class = [[50, 0], [45, 0]]          # every dev clip predicted as class 0
    almost = [[50, 0], [44, 1]]             # 94 of 95 = 98.9% one class: collapsed at 0.95
    healthy = [[40, 10], [20, 25]]
    m_a = _metrics({"0": one_class, "1": almost, "2": one_class})
    m_b = _metrics({"0": healthy, "1": healthy, "2": one_class})
    ca, cb = verdicts.collapsed_seeds(m_a, 0.95), verdicts.collapsed_seeds(m_b, 0.95)
    assert ca == {"0": True, "1": True, "2": True} and cb == {"0": False, "1": False, "2": True}
    assert verdicts.collapsed_seeds(m_a, 0.995)["1"] is False
    # The test split's confusion never decides it.
    assert verdicts.collapsed_seeds(m_b, 0.95, split="test") == {s: False for s in "012"}
    (row,) = verdicts.collapse_effects([{"a": 1.0, "b": -1.0}], {"a": ca, "b": cb}, 0.05)
    assert row == {"n": 3, "a": 3, "b": 1, "p_value": pytest.approx(0.5),
                   "p_holm": pytest.approx(0.5), "verdict": INCONCLUSIVE}
    many = {str(s): True for s in range(8)}
    none = {str(s): False for s in range(8)}
    pair = {"a": 1.0, "b": -1.0}
    (row,) = verdicts.collapse_effects([pair], {"a": many, "b": none}, 0.05)
    assert row["verdict"] == EFFECT and row["p_value"] == pytest.approx(2 / 256)
    # A contrast over four models: per seed (a + c)/2 - (b + d)/2 of the 0/1 outcomes; a seed
    # where the sides tie (one collapse on each) is left out of the sign test.
    half = {"a": .5, "c": .5, "b": -.5, "d": -.5}
    tie = {**none, "0": True}
    (row,) = verdicts.collapse_effects([half], {"a": none, "c": tie, "b": many, "d": tie}, 0.05)
    assert (row["n"], row["a"], row["b"]) == (8, 1, 9)
    assert row["p_value"] == pytest.approx(2 / 256)  # 8 seeds lower on the + side, none higher
    (row,) = verdicts.collapse_effects([half], {"a": tie, "c": none, "b": none, "d": tie}, 0.05)
    assert row["p_value"] == 1.0  # seed 0 ties, every other seed is 0 on both sides


def test_compare_pairs_under_a_protocol_gives_every_family_member_a_verdict(
    tmp_path: Path,
) -> None:
    from avemo.evaluation.compare import compare_pairs

    proto_file = _protocol_file(tmp_path, resamples=1999, max_family=2)
    rng = np.random.default_rng(6)
    n = 300
    y = rng.integers(0, K, n)
    ys = rng.integers(0, 3, n)
    clips = [f"dia{i // 5}_utt{i % 5}" for i in range(n)]
    base = [_noisy(y, 0.5, rng) for _ in range(3)]
    models = {"a": base, "same": [p.copy() for p in base],
              "good": [_noisy(y, 0.9, rng) for _ in range(3)]}
    preds: dict = {}
    for m, per_seed in models.items():
        for s, pe in enumerate(per_seed):
            p = _write_preds(tmp_path / m / f"seed{s}" / "predictions_test.parquet", clips, y,
                             pe, ys)
            preds.setdefault(m, {})[s] = {"test": p}
    out = tmp_path / "compare.json"
    pairs = [["same", "a"], ["good", "a"], ["good", "same"]]
    compare_pairs(pairs, preds, out, primary=[], diagnosis=pairs[:2], protocol=proto_file)
    res = json.loads(out.read_text())
    assert res["protocol"]["hash"] == load(proto_file).hash
    assert res["bootstrap"]["n_resamples"] == 1999 and res["bootstrap"]["paired_seeds"]
    by = {(e["a"], e["b"]): e for e in res["pairs"]}
    assert by["same", "a"]["verdict"] == EQUIVALENT
    assert by["good", "a"]["verdict"] == EFFECT
    assert by["good", "same"]["verdict"] is None  # exploratory: descriptive only
    e = by["good", "a"]
    t = e["tests"]["emotion"]["weighted_f1"]
    assert t["verdict"] == e["verdict"] and e["simultaneous"]["m"] == 2
    assert e["simultaneous"]["low"] <= t["ci_low"] and e["simultaneous"]["high"] >= t["ci_high"]
    # A family larger than the protocol allows is refused.
    from avemo.errors import ConfigError

    with pytest.raises(ConfigError, match="max_family"):
        compare_pairs(pairs, preds, out, primary=[], diagnosis=pairs, protocol=proto_file)


def test_a_family_of_too_small_pairs_has_no_simultaneous_interval(tmp_path: Path) -> None:
    from avemo.evaluation.compare import compare_pairs

    rng = np.random.default_rng(7)
    n = 12  # 3 dialogues: too small
    y = rng.integers(0, K, n)
    clips = [f"dia{i // 4}_utt{i % 4}" for i in range(n)]
    preds = {m: {0: {"test": _write_preds(tmp_path / m / "predictions_test.parquet", clips, y,
                                          _noisy(y, 0.5, rng))}}
             for m in ("a", "b")}
    out = tmp_path / "compare.json"
    compare_pairs([["a", "b"]], preds, out, primary=[], diagnosis=[["a", "b"]],
                  protocol=REPO / DEFAULT_PATH)
    (entry,) = json.loads(out.read_text())["pairs"]
    assert entry["too_small"] and entry["verdict"] == INCONCLUSIVE
    assert entry["simultaneous"] is None and entry["p_holm"] is None


def test_a_too_small_member_gets_no_simultaneous_interval(tmp_path: Path) -> None:
    """A family of one tested pair and one too small: the tested one's interval is at level
    1 - alpha / 1; the small one is not among the intervals that level covers, so it has none."""
    from avemo.evaluation.compare import compare_pairs

    rng = np.random.default_rng(8)
    n = 300
    y = rng.integers(0, K, n)
    clips = [f"dia{i // 5}_utt{i % 5}" for i in range(n)]
    preds: dict = {}
    # "few" scores only 12 clips (3 dialogues): its pair with "a" is too small.
    for m, keep in (("a", n), ("b", n), ("few", 12)):
        pe = _noisy(y, 0.5, rng)
        p = _write_preds(tmp_path / m / "predictions_test.parquet", clips[:keep], y[:keep],
                         pe[:keep])
        preds[m] = {0: {"test": p}}
    out = tmp_path / "compare.json"
    proto_file = _protocol_file(tmp_path, resamples=999, max_family=1)
    pairs = [["b", "a"], ["few", "a"]]
    compare_pairs(pairs, preds, out, primary=[], diagnosis=pairs, protocol=proto_file)
    by = {(e["a"], e["b"]): e for e in json.loads(out.read_text())["pairs"]}
    assert not by["b", "a"]["too_small"] and by["b", "a"]["simultaneous"]["m"] == 1
    assert by["few", "a"]["too_small"] and by["few", "a"]["simultaneous"] is None
