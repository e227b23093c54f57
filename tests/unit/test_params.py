"""Config -> stage arguments: what each rule passes to its stage function."""

import copy
import re
from pathlib import Path

import pytest
import torch

from avemo import params as P
from avemo.config import load_config
from avemo.training.checkpoint import save_checkpoint
from avemo.training.stage import _fresh_start_if_config_changed


@pytest.fixture
def cfg(repo):
    return load_config(repo / "config.yaml")


def test_frame_set_params_merge_shared_and_policy_keys(cfg):
    study = P.frames(cfg, "study")
    assert study["policy"] == "every_s" and study["every_s"] == 3.0
    assert study["size"] == cfg["frames"]["size"]
    assert P.frames(cfg, "dense")["policy"] == "uniform_k"


def test_per_model_engine_overrides_win(cfg):
    c = copy.deepcopy(cfg)
    c["train"]["models"]["cnn5"]["engine"] = {"lr": 0.123}
    t = P.train(c, "cnn5")
    assert t["engine"]["lr"] == 0.123
    assert t["engine"]["epochs"] == c["train"]["engine"]["epochs"]


def test_model_inputs_follow_the_model_kind(cfg):
    audio = P.model_inputs(cfg, "audio_mlp")
    assert audio["audio"] and audio["frame_set"] is None
    video = P.model_inputs(cfg, "temporal_video")
    assert video["frame_set"] == "dense" and "study" in video["extra_frame_sets"]


def test_a_checkpoint_of_another_config_is_removed(tmp_path):
    state = {"config_hash": "old", "epoch": torch.tensor(3)}
    save_checkpoint(tmp_path / "last.pt", state)
    save_checkpoint(tmp_path / "best.pt", state)
    (tmp_path / "log.csv").write_text("epoch\n1\n")
    (tmp_path / "predictions_dev.parquet").write_text("kept")
    _fresh_start_if_config_changed(tmp_path, "new")
    assert not any((tmp_path / n).exists() for n in ("last.pt", "best.pt", "log.csv"))
    assert (tmp_path / "predictions_dev.parquet").exists()
    save_checkpoint(tmp_path / "last.pt", {"config_hash": "new"})
    _fresh_start_if_config_changed(tmp_path, "new")  # same config: resume, keep it
    assert (tmp_path / "last.pt").exists()


def _fake_package(root: Path) -> Path:
    for rel in {p for paths in P.RULE_CODE.values() for p in paths}:
        f = root / rel if rel.endswith(".py") else root / rel / "__init__.py"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(f"# {rel}\n")
    return root


def test_code_hash_follows_the_rules_own_code_only(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path)
    before = {r: P.code_hash(r, pkg) for r in P.RULE_CODE}
    (pkg / "training" / "engine.py").write_text("x = 1\n")
    P.code_hash.cache_clear()  # the workflow hashes once per run; this test edits in between
    after = {r: P.code_hash(r, pkg) for r in P.RULE_CODE}
    changed = {r for r in P.RULE_CODE if before[r] != after[r]}
    assert changed == {"train", "fusion"}
    # Bytecode caches are not code.
    (pkg / "training" / "__pycache__").mkdir()
    (pkg / "training" / "__pycache__" / "engine.cpython-311.pyc").write_bytes(b"\0")
    P.code_hash.cache_clear()
    assert P.code_hash("train", pkg) == after["train"]


def test_code_hash_names_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="RULE_CODE"):
        P.code_hash("train", tmp_path)


def test_every_rule_carries_its_code_hash(repo: Path) -> None:
    """Snakemake's code trigger sees only the shell string: each rule's params hold the digest
    of the package code it runs, so editing that code reruns its jobs."""
    rules = {}
    for smk in (repo / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=\s*rule \w+:)", smk.read_text()):
            m = re.match(r"\s*rule (\w+):", block)
            if m:
                rules[m.group(1)] = block
    assert set(rules) == set(P.RULE_CODE)
    for name, block in rules.items():
        assert f'code=P.code_hash("{name}")' in block, name
    # Training checkpoints resume only under the same code too (the hash the engine checks).
    for name in ("train", "fusion"):
        assert f'P.code_hash("{name}")])' in rules[name].split("hash=", 1)[1], name
