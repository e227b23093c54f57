"""benchmarks/scale.py (make bench-scale): its derived configs and its section of the doc."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scale():
    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "benchmarks" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_scale"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("size", ["1x", "16x", "meld_scale", "hd720"])
def test_config_for_is_valid_one_epoch_one_seed(scale, size: str) -> None:
    from avemo import params as P
    from avemo.config import validate_config

    cfg = validate_config(scale.config_for(size))
    preset = cfg["synthetic"]["presets"][cfg["synthetic"]["preset"]]
    demo = cfg["synthetic"]["presets"]["demo"]
    if size == "16x":
        assert (preset["train"], preset["dev"], preset["test"]) == (
            16 * demo["train"], 16 * demo["dev"], 16 * demo["test"])
    if size == "meld_scale":
        assert (preset["train"], preset["dev"], preset["test"]) == (9989, 1109, 2610)
        assert "label_counts" in P.synthetic(cfg) and "duration" in P.synthetic(cfg)
    if size == "hd720":
        assert (cfg["synthetic"]["width"], cfg["synthetic"]["height"]) == (1280, 720)
    assert cfg["train"]["seeds"] == [0] and cfg["fusion"]["diagnosis"] is False
    for model in P.configured(cfg, "visual", "audio"):
        assert P.train(cfg, model)["engine"]["epochs"] == 1
    for model in P.configured(cfg, "early_fusion"):
        assert P.fusion(cfg, model)["engine"]["epochs"] == 1
    assert scale.data_targets(cfg) and scale.model_targets(cfg)


def test_stage_of(scale) -> None:
    assert scale.stage_of("frames_dense_train") == "frames"
    assert scale.stage_of("audio_dev") == "audio"
    assert scale.stage_of("train_temporal_video_seed0") == "train temporal_video"
    assert scale.stage_of("fusion_concat_aligned_seed0") == "fusion concat_aligned"
    assert scale.stage_of("synthetic_corpus") == "synthetic_corpus"


def test_section_replaced_in_place_others_kept(scale, tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nintro\n\n## Frames\n\nRun x.\n\n| a |\n\n## Audio\n\nRun y.\n")
    first = f"## {scale.SECTION}\n\nRun 1.\n\nfirst\n"
    scale.write_section(first, doc)
    scale.write_section(first.replace("first", "second"), doc)
    text = doc.read_text()
    assert text.count(f"## {scale.SECTION}") == 1 and "second" in text and "first" not in text
    assert text.startswith("# Benchmarks\n\nintro\n\n## Frames\n\nRun x.\n\n| a |\n\n## Audio\n")


@pytest.fixture(scope="module")
def demo():
    sys.path.insert(0, str(REPO / "benchmarks"))  # demo.py imports its helpers from scale.py
    spec = importlib.util.spec_from_file_location("bench_demo", REPO / "benchmarks" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_stage_keys(demo) -> None:
    assert demo.stage_key("train_cnn5_seed0") == "train"
    assert demo.stage_key("fusion_dx7_aligned_seed2") == "fusion"
    assert demo.stage_key("frames_dense_train") == "frames"
    assert demo.stage_key("evaluate_cnn5") == "evaluate"


@pytest.mark.parametrize("wall_min", [4.0, 9.5])
def test_demo_section_states_what_was_measured(demo, tmp_path: Path, wall_min: float) -> None:
    r = {"wall_s": wall_min * 60, "cores": 2, "jobs": 3, "report_mb": 3.8, "load": (2.0, 1.5),
         "seeds": [0, 1, 2], "when": "2026-11-29",
         "stages": {"train": {"jobs": 2, "s": 300.0, "max_rss": 1200.0},
                    "fusion": {"jobs": 1, "s": 100.0, "max_rss": 800.0}}}
    text = demo.section(r)
    assert f"- wall time: **{wall_min:.1f} min** for 3 jobs\n" in text
    assert "seeds [0, 1, 2]) on --cores 2" in text and "make bench-demo" in text
    # What was measured and how to rerun it; not when, nor how loaded the machine was.
    assert "2026" not in text and "load" not in text and "target" not in text
    assert "| train | 2 | 5.0 | 75% | 1.17 |" in text
    assert "less than 3.3 min (job time / cores)" in text and "start-up" not in text
    with_own = demo.section({**r, "own_s": {"train": 240.0, "fusion": 40.0}})
    # (240 + 40 s inside the functions + 0 s of other stages) / 2 cores
    assert "spend 4.7 of their 6.7 min" in with_own and "at least **2.3 min**" in with_own
    assert "start-ups free (the other stages" in with_own
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n## Other\n\nkept\n")
    demo.write_section(text, out, demo.SECTION)
    doc = out.read_text()
    assert "kept" in doc and doc.count(f"## {demo.SECTION}") == 1


@pytest.fixture(scope="module")
def suite(scale):
    spec = importlib.util.spec_from_file_location("bench_suite", REPO / "benchmarks" / "suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.unit.test_a" name="test_one" time="1.5"/>
<testcase classname="tests.unit.test_a" name="test_two" time="2.5"><failure message="x"/>
</testcase>
<testcase classname="tests.workflow.test_b" name="test_slow[x]" time="300.0"/>
<testcase classname="tests.workflow.test_b" name="test_skip" time="0.0"><skipped/></testcase>
</testsuite></testsuites>"""


@pytest.mark.parametrize(("wall_min", "rc"), [(6.0, 0), (9.0, 0), (6.0, 1)])
def test_suite_section_from_junit(suite, tmp_path: Path, wall_min: float, rc: int) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    tests = suite.read_junit(junit)
    assert [(t["file"], t["outcome"]) for t in tests] == [
        ("tests/unit/test_a.py", "passed"), ("tests/unit/test_a.py", "failed"),
        ("tests/workflow/test_b.py", "passed"), ("tests/workflow/test_b.py", "skipped")]
    r = {"wall_s": wall_min * 60, "rc": rc, "peak_rss_mb": 2048.0, "load": (1.0, 2.0),
         "when": "2026-11-29 21:00 UTC", "cores": 2}
    text = suite.section(r, tests)
    assert f"- wall time: **{wall_min:.1f} min**; pytest exit status {rc}\n" in text
    assert "2026" not in text and "load" not in text and "target" not in text
    assert "1 failed, 2 passed, 1 skipped" in text
    slow, fast = "`tests/workflow/test_b.py` | 2 | 300", "`tests/unit/test_a.py` | 2 | 4"
    assert text.index(slow) < text.index(fast)
    assert "| `tests/workflow/test_b.py::test_slow[x]` | 300 |" in text
    assert "CPU time" not in text  # a run recorded before CPU time was
    text = suite.section({**r, "cpu_s": 1200.0}, tests)
    assert "CPU time: 20.0 min" in text and "less than **10.0 min**" in text
    # The machine's CPU counts what pytest does not wait for: the floor comes from it.
    builds = {"tiny_run": [3.0, 270.0], "exp_run": [280.0, 570.0], "stopped": [10.0]}
    text = suite.section({**r, "cpu_s": 1200.0, "machine_cpu_s": 1500.0, "builds": builds},
                         tests)
    assert "CPU time during the run: 25.0 CPU-min" in text and "less than **12.5 min**" in text
    assert "| `tiny_run` | 0.1 | 4.5 |" in text and "| `exp_run` | 4.7 | 9.5 |" in text
    assert text.index("`tiny_run`") < text.index("`exp_run`") and "`stopped`" not in text


def test_machine_busy_seconds_grow(suite) -> None:
    first = suite.machine_busy_s()
    if first is None:
        pytest.skip("no /proc/stat here")
    sum(i * i for i in range(2_000_000))  # some CPU work
    assert suite.machine_busy_s() > first


def test_models_only_rerun_is_stated_and_needs_an_earlier_run(scale, tmp_path: Path,
                                                               monkeypatch) -> None:
    assert scale.models_note({"started": "x"}) == ""
    note = scale.models_note({"models_started": "2026-11-30 02:00 UTC", "models_load": [1.1, 2.0]})
    assert note == " (model jobs rerun on these data stages)"
    monkeypatch.setattr(scale, "WORK", tmp_path)
    with pytest.raises(SystemExit, match="no earlier run of 4x"):
        scale.rerun_models("4x", 2)


def test_models_only_forces_rules_the_workflow_has(scale) -> None:
    """--models-only names rules to rerun: each must exist (a wrong name fails only at run)."""
    out = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--list-rules"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert set(scale.MODEL_RULES) <= set(out.split())


def _sized(jobs: dict[str, tuple[float, int]]) -> dict:
    n = max(c for _, c in jobs.values())
    return {"jobs": {j: {"s": s, "clips": c, "max_rss": 500.0} for j, (s, c) in jobs.items()},
            "counts": {"files": n, "usable": {"train": n}, "audio_s": 3.0 * n},
            "data_wall_s": 60.0, "train_wall_s": None, "cores": 2, "started": "x",
            "load_start": 0.1, "load_end": 0.2, "width": 96, "height": 96}


def test_marginal_time_per_clip_cancels_start_ups(scale) -> None:
    """A stage that costs 5 s of start-up + 20 ms a clip is linear, though its ms/clip falls
    with size; one that gets dearer per clip at a larger size is not; one with too little
    extra work per step is not judged."""
    def results(frames_ms_at_16x: float) -> dict:
        out = {}
        for size, n in (("1x", 400), ("4x", 1600), ("16x", 6400)):
            ms = frames_ms_at_16x if size == "16x" else 20.0
            out[size] = _sized({"frames_dense_train": (5.0 + ms * n / 1000, n),
                                "fusion_gated_seed0": (4.0 + 0.1 * n / 1000, n)})
        return out

    linear = results(20.0)
    steps = scale.marginal_steps(linear)
    assert steps["frames"]["4x"] == pytest.approx((20.0, 1200))
    assert steps["frames"]["16x"] == pytest.approx((20.0, 4800))
    lines, outside = scale.check(linear)
    text = "\n".join(lines)
    assert "per_clip" in outside  # ms/clip falls with size: the start-ups spread over more clips
    assert "Time per clip against `1x` (bound ±20%)" in text and "not constant" in text
    marginal = next(line for line in lines if line.startswith("- Marginal time per clip"))
    assert ": holds." in marginal and "Too little extra work to judge: fusion gated" in marginal
    assert "for the 2 steps" in marginal, text

    dearer = scale.check(results(30.0))[0]
    marginal = next(line for line in dearer if line.startswith("- Marginal time per clip"))
    # (the slope through 1x and 16x is 30.7 ms: the step to 4x, at 20 ms, is off by -35 %)
    assert "does **not** hold" in marginal and "frames to `4x` 20.0 vs 30.7" in marginal
    table, _ = scale.section(linear)
    assert "| frames | `4x` | 1 | 1,600 | 37.0 | 43.2 | 23.1 | -29% | 20.0 |" in table


def test_bench_run_keeps_sections_without_run_dates() -> None:
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "benchmarks" / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    kept = run.previous_sections("# Benchmarks\n\nhead\n\n## Frames\n\nRun 2026-11-30 05:59 UTC."
                                 "\n\nBenchmark of frames.\n\n| a |\n\n## Scale\n\nRuns sizes.\n")
    assert kept["Frames"] == "## Frames\n\nBenchmark of frames.\n\n| a |\n"
    assert kept["Scale"] == "## Scale\n\nRuns sizes.\n"
