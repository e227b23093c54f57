"""The model registry is the one owner of a model's kind, inputs and defaults."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from avemo import params as P
from avemo import registry
from avemo.config import config_errors, load_config
from avemo.layout import Layout


@pytest.fixture
def cfg(repo):
    return load_config(repo / "config.yaml")


def test_every_configured_model_is_registered_under_its_section(cfg) -> None:
    for name in cfg["train"]["models"]:
        assert registry.get(name).config_section == "train.models"
    for name in cfg["fusion"]["models"]:
        assert registry.get(name).config_section == "fusion.models"


def test_every_factory_imports() -> None:
    for entry in registry.MODELS.values():
        assert callable(entry.load()), entry.name


def test_kinds_decide_rules_results_and_report_groups(cfg) -> None:
    assert P.configured(cfg, "late_fusion") == ["late", "late_stacking"]
    assert "late" not in P.fusion_runs(cfg) and "gated" in P.fusion_runs(cfg)
    lay = Layout("r")
    assert lay.run_dir("late", 0) == "r/fusion/late/seed0"
    assert lay.run_dir("audio_cnn", 1) == "r/models/audio_cnn/seed1"
    assert lay.run_dir("majority", 0) == "r/models/majority/seed0"
    assert P.seeds(cfg, "prior") == [0]


def test_a_model_in_the_wrong_section_or_unregistered_is_named(cfg) -> None:
    bad = copy.deepcopy(cfg)
    bad["train"]["models"]["late"] = {}
    bad["fusion"]["models"]["my_net"] = {}
    problems = config_errors(bad)
    assert any(p.startswith("train.models.late: not a registered visual/audio") for p in problems)
    assert any(p.startswith("fusion.models.my_net: not a registered") for p in problems)
    bad = copy.deepcopy(cfg)
    bad["fusion"]["models"]["late"]["visual"] = "audio_cnn"
    assert any("fusion.models.late.visual" in p for p in config_errors(bad))
    bad = copy.deepcopy(cfg)
    bad["fusion"]["video_model"] = "cnn5"
    assert any(p.startswith("fusion.video_model") for p in config_errors(bad))


def test_register_rejects_duplicates_and_bad_names() -> None:
    with pytest.raises(ValueError, match="twice"):
        registry.register(registry.MODELS["cnn5"])
    with pytest.raises(ValueError, match="input_kind"):
        registry.ModelEntry("x", "visual", "m:f", "d")


def test_nothing_outside_the_registry_guesses_a_kind_from_a_name(repo: Path) -> None:
    """No name-prefix tests (`startswith("late")`) and no `features`-key sniffing."""
    pattern = re.compile(r"startswith\(['\"](late|audio|concat)|['\"]features['\"] (not )?in ")
    hits = [f"{p}:{i}" for p in [*(repo / "src").rglob("*.py"), *(repo / "workflow").rglob("*.smk"),
                                  repo / "Snakefile"]
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []
