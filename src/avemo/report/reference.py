"""Numbers quoted from publications (``avemo/data/reference_numbers.yaml``), never measured here.

The one data file holds every quoted number with its source; this module reads it and derives
the one number that follows from quoted counts alone (always-neutral weighted F1 on MELD test).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ..errors import DataStageError

QUOTED = "quoted, NOT measured here"


def load_reference(path: str | Path | None = None) -> dict[str, Any]:
    """The reference numbers (the packaged file unless ``path`` is given)."""
    try:
        if path is None:
            text = (resources.files("avemo") / "data" / "reference_numbers.yaml").read_text(
                encoding="utf-8"
            )
        else:
            text = Path(path).read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        where = path or "avemo/data/reference_numbers.yaml"
        raise DataStageError(f"reference numbers file {where} unreadable: {exc}") from exc
    for key in ("study", "meld_baselines", "meld_test_distribution", "meld_split_sizes"):
        if key not in data:
            raise DataStageError(f"reference numbers file lacks the {key!r} block")
    return data


def always_neutral_weighted_f1(n_neutral: int, n_total: int) -> float:
    """Weighted F1 of predicting neutral for every utterance: neutral has precision p and recall
    1, so F1 = 2p/(1+p); every other class scores 0; weighted by support: p · 2p/(1+p)."""
    if not 0 < n_neutral <= n_total:
        raise ValueError(f"need 0 < n_neutral <= n_total, got {n_neutral}, {n_total}")
    p = n_neutral / n_total
    return p * 2.0 * p / (1.0 + p)


def study_numbers(ref: dict[str, Any]) -> list[dict[str, Any]]:
    return list(ref["study"]["numbers"])


def meld_baselines_table(ref: dict[str, Any]) -> pd.DataFrame:
    """MELD's published baselines, each row marked quoted with its source."""
    block = ref["meld_baselines"]
    rows = [
        {
            "what": n["what"],
            "weighted_f1": float(n["value"]),
            "status": QUOTED,
            "source": source(ref, "meld_baselines"),
        }
        for n in block["numbers"]
    ]
    return pd.DataFrame(rows, columns=["what", "weighted_f1", "status", "source"])


def always_neutral_row(ref: dict[str, Any]) -> dict[str, Any]:
    d = ref["meld_test_distribution"]
    return {
        "what": "always-neutral, MELD test (from quoted label counts)",
        "n_neutral": int(d["n_neutral"]),
        "n_test": int(d["n_test"]),
        "weighted_f1": always_neutral_weighted_f1(int(d["n_neutral"]), int(d["n_test"])),
        "quoted_weighted_f1": float(d["quoted_always_neutral_weighted_f1"]),
        "source": source(ref, "meld_test_distribution"),
    }


def source(ref: dict[str, Any], block: str) -> str:
    """One block's source as one line."""
    return " ".join(str(ref[block]["source"]).split())


def meld_split_sizes(ref: dict[str, Any]) -> dict[str, int]:
    """MELD's utterances per split (label CSVs), as published: ``{train, dev, test: n}``."""
    block = ref["meld_split_sizes"]
    return {s: int(block[s]) for s in ("train", "dev", "test")}


def study_number(ref: dict[str, Any], key: str) -> dict[str, Any]:
    for n in study_numbers(ref):
        if n["key"] == key:
            return n
    raise DataStageError(f"reference numbers file lacks the study number {key!r}")


def fusion_vs_always_neutral(ref: dict[str, Any]) -> str:
    """The study's quoted fusion score next to the always-neutral weighted F1 on MELD test (both
    from the reference file): whether the study's fusion beats predicting neutral every time."""
    fusion = float(study_number(ref, "fusion_weighted_f1")["value"])
    row = always_neutral_row(ref)
    neutral = float(row["quoted_weighted_f1"])
    where = "below" if fusion < neutral else "not below"
    return (
        f"**The study's naive fusion score (emotion weighted F1 {fusion:.3f}, quoted) is {where} "
        f"the always-neutral baseline on MELD test ({neutral:.3f}: predicting neutral for every "
        f"utterance, {row['n_neutral']:,} of {row['n_test']:,} test utterances neutral, weighted "
        "F1 = p · 2p/(1+p)).** "
        + (
            "A fusion model that scores below always-neutral has learned less than the label "
            "prior, so that number says little about fusion itself."
            if fusion < neutral
            else ""
        )
    ).rstrip()
