"""benchmarks/planted.py (make planted): seeds from the protocol hash, the verdicts each world
implies, the refusal of runs made under another protocol, and a page that claims no result it
does not have."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def planted():
    path = REPO / "benchmarks" / "planted.py"
    spec = importlib.util.spec_from_file_location("bench_planted", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_planted"] = module
    spec.loader.exec_module(module)
    return module


def test_seeds_derived_from_the_hash_never_the_development_ones(planted) -> None:
    corpus, train = planted.derive_seeds("0123456789ab", n_train=5)
    assert (corpus, train) == planted.derive_seeds("0123456789ab", n_train=5)  # deterministic
    assert len(corpus) == 1 and len(train) == 5 and len(set(train)) == 5
    assert not set(corpus) & planted.DEVELOPMENT_CORPUS_SEEDS
    assert not set(train) & planted.DEVELOPMENT_TRAIN_SEEDS
    assert all(10 <= s < 1_000_000 for s in corpus + train)
    other = planted.derive_seeds("0123456789ac", n_train=5)
    assert other != (corpus, train)  # a new protocol gets new seeds
    # More replicates or seeds extend the same draws' order (corpus seeds are drawn first).
    assert planted.derive_seeds("0123456789ab", n_train=7)[1][:5] == train
    with pytest.raises(ValueError, match="hexadecimal"):
        planted.derive_seeds("not-a-hash")


def test_the_seed_derivation_skips_development_seeds(planted, monkeypatch) -> None:
    """A draw that hits a development seed is skipped, not kept."""
    draws = iter([1234, 55, 3, 3, 77, 0, 88, 99, 11, 12])

    class Fake:
        def integers(self, lo: int, hi: int) -> int:
            return next(draws)

    monkeypatch.setattr(planted.np.random, "default_rng", lambda seed: Fake())
    corpus, train = planted.derive_seeds("ab", n_train=5)
    assert corpus == [55] and train == [77, 88, 99, 11, 12]


def test_expected_verdicts_per_world(planted) -> None:
    worlds = {w.name: w for w in (*planted.WORLDS, *planted.SWEEP)}
    assert {"event", "spread", "event_start", "event_end", "event_free_length"} <= set(worlds)
    assert [w.settings["mouth_motion"] for w in planted.SWEEP] == [1.0, 2.0, 3.0]
    assert all("voice_strength" not in w.settings for w in planted.SWEEP)  # config's own
    for name, w in worlds.items():
        rules = {x.label.split(":")[0]: x.rule for x in planted.expected(w)}
        assert rules["alignment"] == ("equivalent" if name == "spread" else "effect+")
        assert rules["cross-fitting"] == "not effect-"
        assert rules["unplanted (negative control)"] == "not effect"
    free = worlds["event_free_length"].settings
    assert free["event_length_s"] == planted.FREE_LENGTH_S and free["cue"] == "event"


@pytest.mark.parametrize(("rule", "verdict", "delta", "ok"), [
    ("effect+", "effect", 0.1, True),
    ("effect+", "effect", -0.1, False),
    ("effect+", "inconclusive", 0.1, False),
    ("equivalent", "equivalent", 0.01, True),
    ("equivalent", "inconclusive", 0.0, False),
    ("not effect-", "effect", -0.05, False),
    ("not effect-", "effect", 0.05, True),
    ("not effect-", "inconclusive", -0.05, True),
    ("not effect", "effect", 0.05, False),
    ("not effect", "equivalent", 0.0, True),
])
def test_meets(planted, rule: str, verdict: str, delta: float, ok: bool) -> None:
    assert planted.meets(rule, verdict, delta) is ok


def _entry(verdict: str | None, p_holm: float | None, delta: float) -> dict[str, Any]:
    t = {"delta": delta, "ci_low": delta - 0.05, "ci_high": delta + 0.05}
    return {"p_holm": p_holm, "verdict": verdict, "too_small": False,
            "tests": {"emotion": {"weighted_f1": t}}}


def _cmp(planted, hash_: str | None, verdict: str | None = "effect") -> dict[str, Any]:
    """A compare.json holding the whole family: alignment (``verdict``), the unplanted control
    stored as b − a (read flipped), a negative cross-fitting main effect, the rest
    inconclusive, and one exploratory pair."""
    from avemo import diagnosis

    pairs = [{"a": planted.ALIGNED, "b": planted.SHUFFLED, **_entry(verdict, 0.001, 0.1)},
             {"a": planted.POOLED, "b": planted.SHUFFLED, **_entry("inconclusive", 1.0, -0.1)}]
    contrasts = []
    for e in diagnosis.effects():
        if e.pair is None:
            cross = e.name == planted.CROSSFIT
            contrasts.append({"name": e.name, **_entry("effect" if cross else "inconclusive",
                                                        0.01 if cross else 1.0,
                                                        -0.1 if cross else 0.0)})
        elif set(e.pair) not in ({planted.ALIGNED, planted.SHUFFLED},
                                 {planted.POOLED, planted.SHUFFLED}):
            pairs.append({"a": e.pair[0], "b": e.pair[1], **_entry("inconclusive", 1.0, 0.0)})
    pairs.append({"a": "x", "b": "y", **_entry(None, None, 0.1)})  # exploratory
    return {"protocol": None if hash_ is None else {"hash": hash_}, "pairs": pairs,
            "contrasts": contrasts}


def _crossfit(cmp: dict[str, Any], planted) -> dict[str, Any]:
    return next(c for c in cmp["contrasts"] if c["name"] == planted.CROSSFIT)


def test_runs_under_another_protocol_are_refused(planted) -> None:
    good = _cmp(planted, "aaaaaaaaaaaa")
    planted.check_run({"protocol_hash": "aaaaaaaaaaaa"}, good, "aaaaaaaaaaaa", "run")
    with pytest.raises(planted.ProtocolMismatch, match="not the current bbbbbbbbbbbb"):
        planted.check_run({"protocol_hash": "aaaaaaaaaaaa"}, good, "bbbbbbbbbbbb", "run")
    with pytest.raises(planted.ProtocolMismatch):  # compare.json made without a protocol
        planted.check_run({"protocol_hash": "aaaaaaaaaaaa"}, _cmp(planted, None),
                          "aaaaaaaaaaaa", "run")
    with pytest.raises(planted.ProtocolMismatch):  # no run record
        planted.check_run(None, good, "aaaaaaaaaaaa", "run")


def test_load_run_refuses_a_stale_folder(planted, tmp_path: Path) -> None:
    import json

    work = tmp_path / "w"
    (work / "results" / "metrics").mkdir(parents=True)
    (work / "results" / "metrics" / "compare.json").write_text(
        json.dumps(_cmp(planted, "aaaaaaaaaaaa")))
    (work / planted.RUN_RECORD).write_text(json.dumps({"protocol_hash": "aaaaaaaaaaaa"}))
    assert planted.load_run(work, "aaaaaaaaaaaa")["pairs"]
    with pytest.raises(planted.ProtocolMismatch):
        planted.load_run(work, "cccccccccccc")
    (work / planted.RUN_RECORD).write_text(json.dumps(
        {"protocol_hash": "aaaaaaaaaaaa", "train_seeds": [5, 6], "preset": "tiny"}))
    assert planted.load_run(work, "aaaaaaaaaaaa", [5, 6], "tiny")["pairs"]
    with pytest.raises(planted.ProtocolMismatch, match="train_seeds"):
        planted.load_run(work, "aaaaaaaaaaaa", [5, 6, 7], "tiny")
    with pytest.raises(planted.ProtocolMismatch, match="preset"):
        planted.load_run(work, "aaaaaaaaaaaa", [5, 6], "planted")


def test_effect_of_reads_pairs_in_either_order_and_contrasts(planted) -> None:
    from avemo import diagnosis

    cmp = _cmp(planted, "a")
    e = planted.effect_of(cmp, planted.ALIGNMENT)
    assert (e["delta"], e["verdict"], e["p_holm"]) == (0.1, "effect", 0.001)
    flipped = planted.effect_of(cmp, planted.UNPLANTED)  # stored pooled − shuffled
    assert flipped["delta"] == 0.1 and flipped["ci_low"] == pytest.approx(0.05)
    cross = planted.effect_of(cmp, planted.CROSSFIT)
    assert (cross["delta"], cross["verdict"]) == (-0.1, "effect")
    with pytest.raises(planted.ProtocolMismatch, match="no verdict"):
        planted.effect_of(_cmp(planted, "a", verdict=None), planted.ALIGNMENT)
    with pytest.raises(ValueError, match="unknown diagnosis effect"):
        planted.effect_of(cmp, "nope")
    with pytest.raises(planted.ProtocolMismatch, match="no contrast"):
        planted.effect_of({**cmp, "contrasts": []}, planted.CROSSFIT)
    rows = planted.family_rows(cmp, "emotion", "weighted_f1")
    assert [r["name"] for r in rows] == [e.name for e in diagnosis.effects()]
    assert all(len(r["a"]) == 8 for r in rows if r["name"].startswith("main"))


def _protocol() -> SimpleNamespace:
    return SimpleNamespace(path="workflow/protocol/diagnosis.yaml", hash="abcdef012345",
                           endpoint={"task": "emotion", "metric": "weighted_f1"},
                           resamples=19999, alpha=0.05, margin=0.02)


def test_page_without_runs_claims_nothing(planted) -> None:
    text, ok = planted.page(_protocol(), [11], [1, 2, 3, 4, 5], "planted",
                            list(planted.WORLDS), {}, {}, {})
    assert "abcdef012345" in text and "No confirmation run has been made" in text
    assert "Overall" not in text and "| yes |" not in text
    for section in ("## Aims", "## Data-generating mechanisms", "## Estimands", "## Methods",
                    "## Performance measures", "## Results"):
        assert section in text
    # The history of what was tuned, and on which seeds, is always there.
    assert "corpus seed 1234" in text and "0, 1 and 2" in text and "relabelled" in text


def test_page_marks_a_world_that_misses_its_verdict(planted) -> None:
    worlds = [w for w in planted.WORLDS if w.name in ("event", "spread")]
    cmp = _cmp(planted, "abcdef012345")
    results = {(11, "event"): cmp, (11, "spread"): cmp}
    extras = {k: {"oracle": 0.6, "all": 0.5, "auc": None, "no_frame": None} for k in results}
    text, ok = planted.page(_protocol(), [11], [1, 2, 3, 4, 5], "planted", worlds, results,
                            extras, {})
    # spread's alignment reads "effect" where "equivalent" is implied; cross-fitting reads a
    # negative effect: both fail, and the page says so.
    assert not ok and "**no**" in text and "did NOT give" in text
    assert text.count("| `x` − `y`") == 0  # exploratory pairs are not family rows
    assert "main: embeddings (8 − 8 runs)" in text


@pytest.mark.parametrize("name", ["event", "spread", "event_start", "event_end",
                                  "event_free_length", "sweep_mouth1"])
def test_config_for_each_world_is_valid(planted, name: str) -> None:
    from avemo import params as P
    from avemo.config import validate_config

    world = {w.name: w for w in (*planted.WORLDS, *planted.SWEEP)}[name]
    cfg = validate_config(planted.config_for(world, 4242, [11, 12, 13, 14, 15], "planted"))
    job = P.synthetic(cfg)
    assert job["seed"] == 4242 and cfg["train"]["seeds"] == [11, 12, 13, 14, 15]
    assert job["cue"] == world.settings["cue"]
    assert job["mouth_motion"] == world.settings["mouth_motion"]
    assert job["align_k"] == cfg["frames"]["sets"]["dense"]["uniform_k"]
    assert (job["n_train"], job["n_test"]) == (560, 360)
    assert cfg["fusion"]["diagnosis"] is True


def test_sweep_says_where_detection_starts(planted) -> None:
    def cmp(verdict: str) -> dict[str, Any]:
        c = _cmp(planted, "h")
        c["pairs"][0]["verdict"] = verdict
        return c

    sweep = list(planted.SWEEP)
    results = {(1, "sweep_mouth1"): cmp("inconclusive"), (1, "sweep_mouth2"): cmp("effect"),
               (1, "sweep_mouth3"): cmp("effect")}
    line = planted.sweep_line(sweep, [1], results, "emotion", "weighted_f1")
    assert "1: not detected, 2: detected, 3: detected" in line
    assert "starts at mouth_motion 2" in line
    results[1, "sweep_mouth3"] = cmp("inconclusive")
    line = planted.sweep_line(sweep, [1], results, "emotion", "weighted_f1")
    assert "cannot detect" in line


def test_job_minutes_groups_the_benchmark_files(planted, tmp_path: Path) -> None:
    import json

    bench = tmp_path / "benchmarks"
    bench.mkdir()
    for name, secs in [("synthetic_corpus", 60), ("frames_dense_train", 30), ("audio_dev", 30),
                       ("train_audio_mlp_seed1", 120), ("fusion_dx7_aligned_seed1", 240),
                       ("compare", 60)]:
        (bench / f"{name}.tsv").write_text(f"s\th:m:s\n{secs}\t0:00:00\n")
    seed = tmp_path / "fusion" / "dx7_aligned" / "seed1"
    seed.mkdir(parents=True)
    (seed / "summary.json").write_text(json.dumps({"seconds": 180}))
    m = planted.job_minutes(tmp_path)
    assert m["corpus"] == 1 and m["decode (manifest, frames, audio)"] == 1
    assert m["stream models"] == 2 and m["fusion variants"] == 4
    assert m["evaluate, compare, report"] == 1 and m["total"] == 9
    assert m["fusion: training in process"] == 3


def test_a_missed_detection_in_the_sweep_is_its_result_not_a_failed_check(planted) -> None:
    cmp = _cmp(planted, "abcdef012345", verdict="inconclusive")  # alignment not detected
    _crossfit(cmp, planted)["verdict"] = "inconclusive"  # cross-fitting: not worse
    extras = {"oracle": 0.6, "all": 0.5, "auc": None, "no_frame": None}

    def ok_for(name: str) -> bool:
        world = [w for w in (*planted.WORLDS, *planted.SWEEP) if w.name == name]
        _, ok = planted.page(_protocol(), [11], [1, 2, 3, 4, 5], "planted", world,
                             {(11, name): cmp}, {(11, name): extras}, {})
        return ok

    assert ok_for("sweep_mouth1")  # where detection starts is what the sweep measures
    assert not ok_for("event")  # in a confirmation world the same miss fails the check
    cmp["pairs"][1]["verdict"] = "effect"  # an unplanted factor read as an effect
    assert not ok_for("sweep_mouth1")  # specificity counts in the sweep too


def test_work_minutes_replaces_training_jobs_by_their_in_process_time(planted,
                                                                     tmp_path: Path) -> None:
    import json

    run = tmp_path / "results"
    bench = run / "benchmarks"
    bench.mkdir(parents=True)
    for name, secs in [("synthetic_corpus", 60), ("train_video_branch_seed1", 120),
                       ("fusion_dx7_aligned_seed1", 240), ("compare", 60)]:
        (bench / f"{name}.tsv").write_text(f"s\tmax_rss\n{secs}\t1\n")
    for folder, model, secs in [("models", "video_branch", 60), ("fusion", "dx7_aligned", 180)]:
        seed = run / folder / model / "seed1"
        seed.mkdir(parents=True)
        (seed / "summary.json").write_text(json.dumps({"seconds": secs}))
    # corpus and compare count whole (2 min); the training jobs by their own 1 + 3 min
    assert planted.work_minutes(run) == pytest.approx(6.0)


def test_cost_section_states_the_floor_against_the_budget(planted) -> None:
    run = {"total": 100.0, "work": 90.0, "wall": 55.0, "fusion variants": 30.0}
    text = planted.cost_section("abcdef012345", "planted", [1, 2, 3, 4, 5], 2,
                                {(11, "event"): run, (11, "spread"): run})
    assert "| all | 110.0 | 200.0 | 180.0 | 20.0 | 60.0 |" in text
    assert "at least 90 min wall on 2 cores" in text and "below that floor" in text
    small = {(11, "event"): {**run, "work": 60.0}}
    assert "above that floor" in planted.cost_section("abcdef012345", "planted", [1], 2, small)


def test_record_holds_each_check_as_the_page_reads_it(planted) -> None:
    from avemo.evaluation import sensitivity

    cmp = _cmp(planted, "abcdef012345")
    world = [w for w in planted.WORLDS if w.name == "event"]
    rec = planted.record("abcdef012345", [11], [1, 2, 3, 4, 5], "planted", world,
                         {(11, "event"): cmp},
                         {(11, "event"): {"oracle": 0.6, "all": 0.5, "auc": 0.9}}, _protocol())
    (w,) = rec["worlds"]
    assert rec["protocol_hash"] == "abcdef012345" and w["timing_auc"] == 0.9
    assert w["headroom"] == pytest.approx(0.1)
    align = next(c for c in w["checks"] if c["key"] == sensitivity.ALIGNMENT)
    assert align["verdict"] == "effect" and align["as_implied"] is True
    text = " ".join(sensitivity.sentences(rec, "abcdef012345"))
    assert "positive effect in 1 of 1 worlds" in text


def test_only_runs_with_identical_audio_are_counted_as_sharable(planted,
                                                               tmp_path: Path) -> None:
    import numpy as np

    def run(name: str, values: list[float]) -> Path:
        r = tmp_path / name / "results"
        (r / "audio" / "train").mkdir(parents=True)
        (r / "benchmarks").mkdir()
        np.save(r / "audio" / "train" / "utterance.npy", np.array(values))
        (r / "benchmarks" / "audio_train.tsv").write_text("s\tmax_rss\n60\t1\n")
        (r / "benchmarks" / "train_audio_mlp_seed1.tsv").write_text("s\tmax_rss\n30\t1\n")
        (r / "benchmarks" / "fusion_x_seed1.tsv").write_text("s\tmax_rss\n600\t1\n")
        return r

    costs = {}
    for name, values in [("sweep_mouth1", [1.0, 2.0]), ("sweep_mouth2", [1.0, 2.0]),
                         ("event", [3.0, 4.0])]:
        minutes, digest = planted.audio_cost(run(name, values))
        assert minutes == pytest.approx(1.5)  # the fusion job is not audio work
        costs[11, name] = {"audio": minutes, "audio_digest": digest}
    line = planted.shared_audio_line(costs)
    assert "`sweep_mouth1`, `sweep_mouth2`" in line and "at most 1.5 job-minutes" in line
    assert "`event`" not in line
    del costs[11, "sweep_mouth2"]
    assert planted.shared_audio_line(costs).startswith("No two runs")


def test_collapse_counts_apply_the_protocol_rule_to_dev_predictions(planted,
                                                                     tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    def seed(model: str, n: int, top: int) -> None:
        d = tmp_path / "fusion" / model / f"seed{n}"
        d.mkdir(parents=True)
        probs = np.full((20, 3), 0.1)
        probs[np.arange(20), [0] * top + [1] * (20 - top)] = 0.8  # `top` clips go to class 0
        pd.DataFrame(probs, columns=[f"p_emotion_{c}" for c in "abc"]).to_parquet(
            d / "predictions_dev.parquet")

    seed("study", 1, 20)  # all one class: collapsed
    seed("study", 2, 19)  # 95 %: collapsed (at least the share)
    seed("scaled", 1, 18)  # 90 %: not
    assert planted.collapse_counts(tmp_path, 0.95) == {"scaled": (0, 1), "study": (2, 2)}


def test_detectable_size_grows_with_the_interval_and_the_family(planted) -> None:
    from statistics import NormalDist

    z = NormalDist().inv_cdf
    t = {"ci_low": -0.0392, "ci_high": 0.0392, "family_size": 1}  # a standard error of 0.02
    assert planted.detectable(t, 0.05) == pytest.approx((z(0.975) + z(0.8)) * 0.02, rel=1e-3)
    assert planted.detectable({**t, "family_size": 14}, 0.05) > planted.detectable(t, 0.05)
    assert planted.detectable({**t, "ci_low": -0.0784}, 0.05) > planted.detectable(t, 0.05)
    assert planted.detectable({**t, "family_size": None}, 0.05) is None


def test_a_resumed_world_adds_its_time_and_another_run_starts_afresh(planted, tmp_path: Path,
                                                                    monkeypatch) -> None:
    import json

    calls: list[list[str]] = []
    monkeypatch.setattr(planted.subprocess, "run", lambda argv, **kw: calls.append(argv))
    clock = iter([0.0, 100.0, 200.0, 230.0, 300.0, 310.0])
    monkeypatch.setattr(planted.time, "perf_counter", lambda: next(clock))
    world = planted.WORLDS[0]
    assert planted.run_world(tmp_path, world, 11, [1, 2], "tiny", 2, "abc") == 100.0
    # resumed: the same world, protocol, seeds and preset
    assert planted.run_world(tmp_path, world, 11, [1, 2], "tiny", 2, "abc") == 130.0
    assert json.loads((tmp_path / "wall_seconds.json").read_text())["seconds"] == 130.0
    # other seeds: a new run
    assert planted.run_world(tmp_path, world, 11, [1, 3], "tiny", 2, "abc") == 10.0
    assert len(calls) == 3


def test_a_sweep_with_points_not_run_draws_no_conclusion(planted) -> None:
    c = _cmp(planted, "h", verdict="inconclusive")
    line = planted.sweep_line(list(planted.SWEEP), [1], {(1, "sweep_mouth1"): c},
                              "emotion", "weighted_f1")
    assert "1: not detected; not run yet: 2, 3" in line
    assert "cannot detect" not in line and "starts at" not in line
