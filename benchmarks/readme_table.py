"""The README's headline table: `make readme-table` (or `python benchmarks/readme_table.py`).

Reads the report's model tables (``results/report/tables/{baselines,visual_models,
audio_models,fusion_models}.csv``, written by the workflow's report rule) and writes, between
the README's ``<!-- headline:begin`` and ``<!-- headline:end -->`` markers, one row per model:
its stream, test emotion weighted F1 (mean over seeds) with the report's 95 % interval, and the
number of seeds, under a line naming the data the report names. Nothing in the block is typed
by hand; run it after `make demo`.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
BEGIN = "<!-- headline:begin"
END = "<!-- headline:end -->"
# Report table -> the stream its rows belong to, in the order the README lists them.
TABLES = {"baselines": "baseline", "visual_models": "visual", "audio_models": "audio",
          "fusion_models": "fusion"}


def headline_rows(tables: Path) -> tuple[list[dict], str]:
    """One row per model (first table that lists it wins) and the data's name."""
    rows, seen, names = [], set(), []
    for table, stream in TABLES.items():
        path = tables / f"{table}.csv"
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run `make demo` (the report writes it) first")
        df = pd.read_csv(path)
        if "role" in df.columns:  # the fusion table repeats the best single streams beside it
            df = df[df["role"].astype(str) == "fusion"]
        for r in df.to_dict("records"):
            if r["model"] in seen:
                continue
            seen.add(r["model"])
            rows.append({"stream": stream, "model": r["model"], "seeds": int(r["seeds"]),
                         "mean": r["test_weighted_f1_mean"],
                         "low": r.get("test_weighted_f1_ci_low"),
                         "high": r.get("test_weighted_f1_ci_high")})
            names.append(str(r.get("dataset", "")))
    data = sorted({n for n in names if n and n != "nan"})
    return rows, "; ".join(data) or "the data the report names"


def _f(x: object) -> str:
    return "" if x is None or pd.isna(x) else f"{float(x):.3f}"


def block(rows: list[dict], data: str, source: str) -> str:
    lines = [f"{BEGIN}: written by `make readme-table` from {source}; do not edit -->",
             f"Data: **{data}**. Test split, emotion weighted F1: mean over seeds, with the "
             "report's 95 % bootstrap interval (dialogues and seeds resampled).", "",
             "| stream | model | test weighted F1 [95 % interval] | seeds |",
             "| --- | --- | --- | --- |"]
    for r in rows:
        ci = f" [{_f(r['low'])}, {_f(r['high'])}]" if _f(r["low"]) and _f(r["high"]) else ""
        lines.append(f"| {r['stream']} | `{r['model']}` | {_f(r['mean'])}{ci} | {r['seeds']} |")
    return "\n".join(lines) + f"\n{END}"


def fill(readme: str, new_block: str) -> str:
    """Replace the marker-delimited block (markers included); exactly one must exist."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if len(pattern.findall(readme)) != 1:
        raise SystemExit(f"README needs exactly one {BEGIN} ... {END} block")
    return pattern.sub(lambda _: new_block, readme)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=Path, default=REPO / "results" / "report" / "tables")
    ap.add_argument("--readme", type=Path, default=REPO / "README.md")
    a = ap.parse_args(argv)
    rows, data = headline_rows(a.tables)
    try:
        source = f"`{a.tables.resolve().relative_to(REPO)}/`"
    except ValueError:
        source = f"`{a.tables}`"
    text = block(rows, data, source)
    a.readme.write_text(fill(a.readme.read_text(encoding="utf-8"), text), encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
