"""Config -> stage arguments: what each rule passes to its stage function."""

import copy

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
