"""benchmarks/readme_table.py (make readme-table): the README's headline block from the report."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rt():
    spec = importlib.util.spec_from_file_location("readme_table",
                                                  REPO / "benchmarks" / "readme_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tables(folder: Path) -> Path:
    folder.mkdir()
    row = {"seeds": 3, "test_weighted_f1_mean": 0.5, "test_weighted_f1_ci_low": 0.4,
           "test_weighted_f1_ci_high": 0.6, "dataset": "synthetic demo corpus"}
    pd.DataFrame([{"model": "majority", **row, "test_weighted_f1_mean": 0.297}]).to_csv(
        folder / "baselines.csv", index=False)
    pd.DataFrame([{"model": "cnn5", **row}]).to_csv(folder / "visual_models.csv", index=False)
    pd.DataFrame([{"model": "audio_mlp", **row, "test_weighted_f1_ci_low": None}]).to_csv(
        folder / "audio_models.csv", index=False)
    pd.DataFrame([{"model": "concat_misaligned", "role": "fusion", **row},
                  {"model": "cnn5", "role": "best single stream", **row}]).to_csv(
        folder / "fusion_models.csv", index=False)
    return folder


def test_block_names_the_data_and_lists_each_model_once(rt, tmp_path: Path) -> None:
    rows, data = rt.headline_rows(_tables(tmp_path / "tables"))
    assert data == "synthetic demo corpus"
    assert [(r["stream"], r["model"]) for r in rows] == [
        ("baseline", "majority"), ("visual", "cnn5"), ("audio", "audio_mlp"),
        ("fusion", "concat_misaligned")]
    text = rt.block(rows, data, "`results/report/tables/`")
    assert "Data: **synthetic demo corpus**" in text
    assert "| visual | `cnn5` | 0.500 [0.400, 0.600] | 3 |" in text
    assert "| audio | `audio_mlp` | 0.500 | 3 |" in text  # no interval: none shown


def test_fill_replaces_only_the_block(rt, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# T\n\nbefore\n\n{rt.BEGIN}: old -->\nold text\n{rt.END}\n\nafter\n")
    rc = rt.main(["--tables", str(_tables(tmp_path / "tables")), "--readme", str(readme)])
    text = readme.read_text()
    assert rc == 0 and "old text" not in text and "before" in text and "after" in text
    assert text.count(rt.BEGIN) == 1 and "`concat_misaligned`" in text
    with pytest.raises(SystemExit, match="exactly one"):
        rt.fill("no markers", "x")


def test_missing_report_tables_say_what_to_run(rt, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="make demo"):
        rt.headline_rows(tmp_path)


def test_the_readme_has_the_block(rt) -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert text.count(rt.BEGIN) == 1 and text.count(rt.END) == 1
