"""What was skipped and why: the flags a run on a small or lopsided corpus raises.

A step that needs more data than a split has falls back to a documented default, or is skipped,
instead of stopping the run; each such decision is one flag (``step``, ``reason``). The report's
data section lists them first, and writes them to ``tables/flags.csv``
(``Layout.report_flags``). Two sources:

- stages that fell back record ``"flags": [{"step", "reason"}, ...]`` in the JSON they write
  (late fusion's ``late.json``), given to the report as ``inputs["flags"]``;
- the data themselves, read from the manifests here: a class with no usable train clip (no
  model can learn it), a dev split too small to select on, a test split too small for
  statistics.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from ..errors import DataStageError
from ..labels import EMOTIONS, SENTIMENTS, SPLITS

FLAG_COLUMNS = ["step", "reason"]
MIN_DEV_SELECT = 2  # fewer usable dev clips than this: selection on dev is one utterance's say


def _usable(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["ok"].astype(bool)]


def data_flags(manifests: Mapping[str, pd.DataFrame], min_test: int) -> list[dict[str, str]]:
    """Flags the manifests alone raise (usable clips only: a class whose train clips are all
    missing is as unlearnable as one without rows)."""
    ok = {s: _usable(manifests[s]) for s in SPLITS}
    flags = []
    for task, labels in (("emotion", EMOTIONS), ("sentiment", SENTIMENTS)):
        counts = {s: ok[s][task].value_counts() for s in SPLITS}
        for label in labels:
            if counts["train"].get(label, 0):
                continue
            elsewhere = ", ".join(f"{int(counts[s].get(label, 0))} {s}" for s in ("dev", "test"))
            flags.append({
                "step": f"{task} labels",
                "reason": f"never predicted: {label} has 0 train clips ({elsewhere}); no model "
                          f"can learn it, so its dev and test utterances are all errors",
            })
    n_dev, n_test = len(ok["dev"]), len(ok["test"])
    if n_dev < MIN_DEV_SELECT:
        flags.append({
            "step": "selection on dev",
            "reason": f"dev has {n_dev} usable clip(s): the best epoch, late fusion's weight and "
                      f"the best model of each group rest on so few utterances that they are "
                      f"defaults, not choices",
        })
    if n_test < min_test:
        flags.append({
            "step": "statistics",
            "reason": f"test has {n_test} usable clip(s), fewer than {min_test}: intervals and "
                      f"tests are shown only to check the mechanism; no difference is a finding",
        })
    return flags


def stage_flags(files: Iterable[str | os.PathLike[str]]) -> list[dict[str, str]]:
    """The ``flags`` lists of stage JSON files (late.json), each distinct flag once (seeds of
    one model raise the same flag)."""
    seen: dict[tuple[str, str], dict[str, str]] = {}
    for path in files:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise DataStageError(f"report input {p} does not exist: rerun the job that "
                                 f"writes it") from exc
        except ValueError as exc:
            raise DataStageError(f"report input {p} is not valid JSON ({exc}): delete it and "
                                 f"rerun the job that writes it") from exc
        for flag in data.get("flags") or []:
            key = (str(flag["step"]), str(flag["reason"]))
            seen.setdefault(key, {"step": key[0], "reason": key[1]})
    return list(seen.values())


def flags_table(stage: list[dict[str, str]], data: list[dict[str, str]]) -> pd.DataFrame:
    """Every flag, the data's first (they explain the stages'), as a table."""
    return pd.DataFrame([*data, *stage], columns=FLAG_COLUMNS)


def flag_lines(table: pd.DataFrame) -> list[str]:
    """The data section's opening paragraphs: what was skipped and why (or that nothing was)."""
    if table.empty:
        return ["What was skipped and why: nothing; every step had the data it needs."]
    items = "; ".join(f"**{r.step}**: {r.reason}" for r in table.itertuples(index=False))
    return [f"**What was skipped and why** ({len(table)} flag(s), also in tables/flags.csv): "
            f"{items}."]
