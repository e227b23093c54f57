"""The frozen diagnosis protocol: loads, hashes its bytes, refuses what the code cannot honour."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from avemo import diagnosis
from avemo.errors import ConfigError
from avemo.evaluation.protocol import DEFAULT_PATH, VERDICTS, load

REPO = Path(__file__).resolve().parents[2]


def test_repository_protocol_loads_and_agrees_with_the_code() -> None:
    p = load()
    assert Path(p.path).resolve() == (REPO / DEFAULT_PATH).resolve()
    assert p.factors == diagnosis.FACTORS
    assert p.verdicts == VERDICTS
    assert 0 < p.margin < 0.1 and 0 < p.alpha < 1
    assert p.collapse_split == "dev"  # decided before test is read
    # The smallest Holm-adjusted p of a full family stays far below alpha.
    assert p.max_family * p.min_p() <= p.alpha / 20
    assert len(diagnosis.effects()) <= p.max_family


def test_hash_is_the_files_sha256_prefix_and_changes_with_any_byte(tmp_path: Path) -> None:
    src = (REPO / DEFAULT_PATH).read_bytes()
    f = tmp_path / "p.yaml"
    f.write_bytes(src)
    h = load(f).hash
    assert h == hashlib.sha256(src).hexdigest()[:12] and len(h) == 12
    f.write_bytes(src + b"\n# a comment is a new protocol too\n")
    assert load(f).hash != h


def _edited(tmp_path: Path, **changes: object) -> Path:
    raw = yaml.safe_load((REPO / DEFAULT_PATH).read_text())
    for dotted, value in changes.items():
        node = raw
        *parents, last = dotted.split("__")
        for k in parents:
            node = node[k]
        node[last] = value
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(raw))
    return f


def test_too_few_resamples_for_the_family_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="resamples"):
        load(_edited(tmp_path, resampling__resamples=999))


def test_factors_other_than_the_codes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FACTORS"):
        load(_edited(tmp_path, factors={"scaling": ["off", "on"]}))


def test_missing_file_and_key_name_what_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="evaluation.protocol"):
        load(tmp_path / "absent.yaml")
    f = _edited(tmp_path)
    raw = yaml.safe_load(f.read_text())
    del raw["equivalence_margin"]
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="equivalence_margin"):
        load(f)


@pytest.mark.parametrize(("key", "value", "says"), [
    ("version", "one", "version = 'one'; use a whole number"),
    ("resampling__seed", None, "resampling.seed = None; use a whole number"),
    ("endpoint", "emotion", "endpoint = 'emotion'; use a mapping"),
    ("effects", None, "effects = None; use a list"),
])
def test_a_value_of_the_wrong_type_is_a_config_error(tmp_path: Path, key: str, value: object,
                                                     says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("(", r"\(")):
        load(_edited(tmp_path, **{key: value}))


def test_family_check(tmp_path: Path) -> None:
    p = load()
    p.check_family(p.max_family)
    with pytest.raises(ConfigError, match="max_family"):
        p.check_family(p.max_family + 1)


def test_compare_and_report_jobs_depend_on_the_protocol_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from avemo import params as P
    from avemo.config import load_config

    cfg = load_config(REPO / "config.yaml")
    monkeypatch.chdir(REPO)
    # Inside the repository: relative, as dvc.yaml names it.
    assert P.protocol_file(cfg) == DEFAULT_PATH
    assert DEFAULT_PATH in P.flat(P.compare_inputs(cfg))
    assert DEFAULT_PATH in P.report_files(cfg)
    # Run from another folder (make planted's runs): the repository's file, absolute.
    monkeypatch.chdir(tmp_path)
    assert P.protocol_file(cfg) == str(REPO / DEFAULT_PATH)
    own = tmp_path / "mine.yaml"
    cfg["evaluation"]["protocol"] = str(own)
    assert P.protocol_file(cfg) == "mine.yaml"
    # The protocol is a file, not a job parameter of the evaluate stage.
    assert "protocol" not in P.evaluation(cfg)


def test_a_design_or_effects_the_code_does_not_estimate_are_refused(tmp_path: Path) -> None:
    assert load().design == diagnosis.DESIGN == "fractional_factorial"
    with pytest.raises(ConfigError, match="new protocol"):
        load(_edited(tmp_path, design="one_at_a_time"))
    with pytest.raises(ConfigError, match="the design's effects"):
        load(_edited(tmp_path, effects=["alone", "step", "control"]))
