import copy

import pytest
import yaml

from avemo.config import config_errors, config_hash, load_config, validate_config
from avemo.errors import ConfigError


@pytest.fixture
def cfg(repo):
    return yaml.safe_load((repo / "config.yaml").read_text())


def test_repository_config_is_valid_and_complete(repo):
    cfg = load_config(repo / "config.yaml")
    assert cfg["dataset"] == "synthetic"
    study = cfg["frames"]["sets"]["study"]
    assert study["policy"] == "every_s" and study["every_s"] == 3.0  # the study's sampling


def test_defaults_are_filled_in_nested_sections():
    cfg = validate_config({})
    assert cfg["frames"]["size"] == 224  # the study's VGG-16 input when config.yaml says nothing
    assert cfg["audio"]["ssl"]["enabled"] is False
    assert cfg["synthetic"]["presets"]["tiny"]["train"] > 0


@pytest.mark.parametrize(
    ("mutate", "key", "words"),
    [
        (lambda c: c["frames"].update(sise=64), "frames.sise", "unknown key"),
        (lambda c: c["frames"].update(size="big"), "frames.size", "integer"),
        (
            lambda c: c["frames"]["sets"]["study"].update(policy="sometimes"),
            "frames.sets.study.policy",
            "every_s",
        ),
        (lambda c: c["audio"].update(aligned_frame_set="x"), "audio.aligned_frame_set", "frames"),
        (lambda c: c["train"]["models"].update(resnet={}), "train.models", "resnet"),
        (lambda c: c["fusion"].update(single_task="late"), "fusion.single_task", "early"),
        (lambda c: c["train"]["engine"].update(imbalance="smote"), "train.engine.imbalance",
         "class_weight"),
        (lambda c: c.update(dataset="iemocap"), "dataset", "synthetic"),
        (lambda c: c["synthetic"].update(preset="huge"), "synthetic.preset", "tiny"),
        (lambda c: c["meld"].update(checksum="crc:12"), "meld.checksum", "does not match"),
    ],
)
def test_each_bad_value_is_named_with_its_key(cfg, mutate, key, words):
    bad = copy.deepcopy(cfg)
    mutate(bad)
    problems = config_errors(bad)
    assert any(p.startswith(key) and words in p for p in problems), problems
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(bad)


def test_load_config_reports_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("frames: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_config_hash_is_stable_and_sensitive(cfg):
    assert config_hash(cfg) == config_hash(copy.deepcopy(cfg))
    other = copy.deepcopy(cfg)
    other["frames"]["every_s"] = 2.0
    assert config_hash(other) != config_hash(cfg)
