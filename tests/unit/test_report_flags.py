"""What was skipped and why: the data section's flags (avemo.report.flags)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from avemo.layout import Layout
from avemo.report import flags
from avemo.report.build import data_section


def _manifest(emotions: list[str], ok: list[bool] | None = None) -> pd.DataFrame:
    n = len(emotions)
    sentiment = {"neutral": "neutral", "joy": "positive"}
    return pd.DataFrame({"emotion": emotions,
                         "sentiment": [sentiment.get(e, "negative") for e in emotions],
                         "duration_s": [1.5] * n, "ok": ok if ok is not None else [True] * n})


def _manifests() -> dict[str, pd.DataFrame]:
    """Train has no fear (its only fear row failed QC) and no surprise, dev one usable clip."""
    train = _manifest(["neutral", "joy", "anger", "sadness", "disgust", "fear"],
                      ok=[True] * 5 + [False])
    return {"train": train, "dev": _manifest(["fear", "joy"], ok=[True, False]),
            "test": _manifest(["fear", "surprise", "neutral"])}


def test_absent_class_small_dev_and_small_test_are_flagged() -> None:
    found = flags.data_flags(_manifests(), min_test=30)
    absent = [f["reason"] for f in found if f["step"] == "emotion labels"]
    assert len(absent) == 2 and absent[0].startswith("never predicted: surprise has 0 train clips")
    assert absent[1].startswith("never predicted: fear has 0 train clips")  # label order
    fear = next(f for f in found if "fear" in f["reason"])
    assert "(1 dev, 1 test)" in fear["reason"]
    steps = [f["step"] for f in found]
    assert "sentiment labels" not in steps  # every sentiment has a usable train clip
    assert "selection on dev" in steps and "statistics" in steps
    big = {s: pd.concat([m[m["ok"]]] * 20) for s, m in _manifests().items()}
    big["train"] = pd.concat([big["train"], _manifest(["surprise", "fear"])])
    assert flags.data_flags(big, min_test=30) == []  # nothing to flag: nothing said


def test_stage_flags_are_read_once_each(tmp_path: Path) -> None:
    flag = {"step": "late fusion (weighted)", "reason": "dev has 1 utterance(s)"}
    files = []
    for seed in (0, 1):  # two seeds raise the same flag: listed once
        files.append(tmp_path / f"late{seed}.json")
        files[-1].write_text(json.dumps({"method": "weighted", "flags": [flag]}))
    (tmp_path / "fitted.json").write_text(json.dumps({"flags": []}))
    assert flags.stage_flags([*files, tmp_path / "fitted.json"]) == [flag]


def test_data_section_lists_the_flags_first(tmp_path: Path) -> None:
    stage = [{"step": "late fusion (weighted)", "reason": "dev has 1 utterance(s)"}]
    table = flags.flags_table(stage, flags.data_flags(_manifests(), min_test=30))
    section = data_section(_manifests(), tmp_path, flags=table)
    first = section.paragraphs[0]
    assert first.startswith("**What was skipped and why**"), first
    assert "never predicted: fear has 0 train clips" in first and "late fusion" in first
    assert first.index("never predicted") < first.index("late fusion")  # data first
    assert section.tables[0].name == "flags" and len(section.tables[0].df) == len(table)
    assert Layout("results").report_flags() == "results/report/tables/flags.csv"
    quiet = data_section(_manifests(), tmp_path, flags=flags.flags_table([], []))
    assert quiet.paragraphs[0].startswith("What was skipped and why: nothing")
