import copy
import random

import pytest
import yaml

from avemo.config import (
    ConfigSource,
    check_sources,
    config_errors,
    config_hash,
    load_config,
    load_schema,
    read_source,
    validate_config,
)
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
    assert cfg["frames"]["size"] == load_schema()["properties"]["frames"]["properties"]["size"][
        "default"]
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


# -- malformed shapes never crash -------------------------------------------------------------

MALFORMED = [5, -1.5, "x", "", True, None, [], [1, {"a": 2}], {}, {"zz": [None]}, {3: "int key"}]


def _key_paths(value, prefix=()):
    if isinstance(value, dict):
        for key, sub in value.items():
            yield (*prefix, key)
            yield from _key_paths(sub, (*prefix, key))


@pytest.mark.parametrize("top", [5, "text", [1, 2], None, True, [{"train": {}}]])
def test_a_top_level_that_is_not_a_mapping_is_a_problem_not_a_crash(top):
    problems = config_errors(top)
    assert problems and all(isinstance(p, str) for p in problems)
    assert problems[0].startswith("(top level):"), problems


@pytest.mark.parametrize(
    ("path", "value"),
    [(("train",), 5), (("train", "models"), ["cnn5", "vgg16"]), (("fusion", "models"), "late"),
     (("frames", "sets"), [{"policy": "every_s"}]), (("frames", "sets", "study"), 3.0),
     (("audio", "ssl"), True), (("synthetic", "presets"), None),
     (("train", "models", "cnn5"), ["study"]), (("fusion", "models", "late"), "video_branch"),
     (("train", "models", "video_branch", "engine"), 30), (("train", "engine"), "fast")],
)
def test_a_wrongly_typed_section_is_named_with_its_key(cfg, path, value):
    bad = copy.deepcopy(cfg)
    node = bad
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    problems = config_errors(bad)
    key = ".".join(path)
    assert any(p.startswith(f"{key}:") for p in problems), problems
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(copy.deepcopy(bad))


def test_no_value_at_any_key_crashes_config_errors(cfg):
    """Every key of the repository config, replaced by each malformed value (seeded sample)."""
    rng = random.Random(0)
    schema = load_schema()
    paths = list(_key_paths(cfg))
    assert len(paths) > 80
    for path in paths:
        for value in rng.sample(MALFORMED, 4):
            bad = copy.deepcopy(cfg)
            node = bad
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = copy.deepcopy(value)
            problems = config_errors(bad, schema)  # must not raise
            assert all(isinstance(p, str) and ": " in p for p in problems), (path, value)


def test_a_value_that_refers_to_itself_is_reported(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("frames: &f\n  sets: *f\n")
    with pytest.raises(ConfigError, match="loop.yaml"):
        load_config(path)


# -- relations between keys, policies' parameters, empty results_dir ---------------------------

@pytest.mark.parametrize(
    ("mutate", "key", "words"),
    [
        (lambda c: c.update(results_dir=""), "results_dir", "empty"),
        (lambda c: c["manifest"].update(min_duration_s=5.0, max_duration_s=2.0),
         "manifest.min_duration_s", "manifest.max_duration_s"),
        (lambda c: c["frames"]["sets"].update(sparse={"policy": "every_s"}),
         "frames.sets.sparse.every_s", "policy 'every_s' needs it"),
        (lambda c: c["frames"]["sets"].update(k={"policy": "uniform_k", "every_s": 2.0}),
         "frames.sets.k.uniform_k", "policy 'uniform_k' needs it"),
        (lambda c: c["frames"]["sets"].update(f={"policy": "fps"}), "frames.sets.f.fps",
         "needs it"),
    ],
)
def test_relations_the_schema_alone_did_not_catch(cfg, mutate, key, words):
    bad = copy.deepcopy(cfg)
    mutate(bad)
    problems = config_errors(bad)
    assert any(p.startswith(f"{key}:") and words in p for p in problems), problems


def test_equal_durations_and_every_policy_with_its_parameter_are_valid(cfg):
    ok = copy.deepcopy(cfg)
    ok["manifest"].update(min_duration_s=2.0, max_duration_s=2.0)
    ok["frames"]["sets"].update(f={"policy": "fps", "fps": 2.0})
    assert config_errors(ok) == []


# -- files, lines, overlays ----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "line", "words"),
    [("frames:\n  size: 32\n  sets: [unclosed\n", 4, "flow sequence"),
     ("frames:\n\tsize: 32\n", 2, "'\\t'"),
     ("dataset: synthetic\nmeld: {root: \"unterminated\n", 3, "quoted scalar")],
)
def test_yaml_syntax_error_names_file_line_and_fix(tmp_path, text, line, words):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert f"{path}, line {line}, column" in msg and "not valid YAML" in msg, msg
    assert words in msg and "Fix the syntax" in msg and "\n" not in msg, msg


def test_top_level_list_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("- results_dir: results\n")
    with pytest.raises(ConfigError, match=r"c\.yaml, line 1: the top level must be a mapping"):
        load_config(path)


def test_problem_in_an_overlay_is_reported_in_the_overlay(tmp_path, repo):
    over = tmp_path / "over.yaml"
    over.write_text("# study settings\ntrain:\n  engine:\n    epochs: many\n")
    with pytest.raises(ConfigError) as info:
        load_config(repo / "config.yaml", over)
    lines = [ln for ln in str(info.value).splitlines() if "train.engine.epochs" in ln]
    assert len(lines) == 1 and lines[0].strip().startswith(f"- {over}, line 4:"), info.value


def test_wrong_shape_in_base_is_reported_even_when_an_overlay_replaces_it(tmp_path):
    base, over = tmp_path / "config.yaml", tmp_path / "over.yaml"
    base.write_text("results_dir: results\ntrain: 5\n")
    over.write_text("train:\n  seeds: [1]\n")
    with pytest.raises(ConfigError, match=rf"{base}, line 2: train: value 5 should be a mapping"):
        load_config(base, over)


def test_cross_file_problem_is_placed_where_the_key_was_last_set(tmp_path):
    base = read_source_text(tmp_path, "config.yaml", "manifest:\n  min_duration_s: 1.0\n")
    over = read_source_text(tmp_path, "over.yaml", "frames:\n  size: 64\n")
    cli = ConfigSource("--config", {"manifest": {"max_duration_s": 0.5}},
                       {("manifest",): None, ("manifest", "max_duration_s"): None})
    with pytest.raises(ConfigError) as info:
        check_sources([base, over, cli])
    assert "config.yaml, line 2: manifest.min_duration_s: 1.0 is greater than" in str(info.value)


def read_source_text(folder, name, text):
    path = folder / name
    path.write_text(text)
    return read_source(path, name)


def test_overlays_merge_like_snakemake(tmp_path, repo):
    over = tmp_path / "over.yaml"
    over.write_text("frames:\n  size: 64\n  sets:\n    extra: {policy: fps, fps: 1.0}\n")
    cfg = load_config(repo / "config.yaml", over)
    assert cfg["frames"]["size"] == 64
    assert set(cfg["frames"]["sets"]) == {"study", "dense", "extra"}  # mappings merge
