import subprocess
import sys

import yaml

from avemo.cli import main


def test_check_config_accepts_the_repository_config(repo, capsys):
    assert main(["check-config", str(repo / "config.yaml")]) == 0
    assert "valid" in capsys.readouterr().out


def test_bad_config_gives_one_clear_message_and_no_traceback(tmp_path, repo):
    cfg = yaml.safe_load((repo / "config.yaml").read_text())
    cfg["frames"]["size"] = "big"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "avemo.cli", "check-config", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "frames.size" in proc.stderr and "Traceback" not in proc.stderr


def test_params_must_be_a_json_object(capsys):
    assert main(["manifest", "--root", "x", "--out-dir", "y", "--params", "[1,2]"]) == 2
    assert "JSON object" in capsys.readouterr().err


def test_check_config_layers_overlays_and_names_the_overlay(tmp_path, repo, capsys):
    over = tmp_path / "over.yaml"
    over.write_text("train:\n  seeds: [0\n")  # a YAML syntax error in the overlay
    assert main(["check-config", str(repo / "config.yaml"), str(over)]) == 2
    err = capsys.readouterr().err
    assert "over.yaml" in err and "line" in err
    over.write_text("train:\n  seeds: [0, 1]\n  seeds: [2]\n")  # a key written twice
    assert main(["check-config", str(repo / "config.yaml"), str(over)]) == 2
    err = capsys.readouterr().err
    assert f"{over}, line 3: train.seeds is set twice (first on line 2)" in err, err
    over.write_text("train:\n  seeds: [0, 1]\n")
    assert main(["check-config", str(repo / "config.yaml"), str(over)]) == 0
    assert "over.yaml: valid" in capsys.readouterr().out


def test_train_uses_the_configured_frame_set_whatever_the_key_order(monkeypatch, repo):
    """The rule passes --inputs as JSON with sorted keys ("dense" before "study"): the model's
    own frame set must come from its params, not from the first key (it once did)."""
    import json

    import avemo.training.stage as stage
    from avemo import params as P
    from avemo.config import load_config

    seen = {}
    monkeypatch.setattr(stage, "train_stream", lambda *a, **k: seen.update(args=a, kw=k))
    cfg = load_config(repo / "config.yaml")
    for model in ("cnn5", "temporal_video"):
        inputs = P.as_json(P.train_inputs(cfg, model))
        assert list(json.loads(inputs)["frames"]) == ["dense", "study"]
        job = P.as_json(P.job_params("train_visual", cfg, {"model": model}))
        assert main(["train", "--model", model, "--seed", "0", "--out", "o", "--config-hash",
                     "h", "--inputs", inputs, "--params", job]) == 0
        own = P.model_config(cfg, model)["frame_set"]
        splits = seen["args"][2]
        assert seen["kw"]["frame_set"] == own
        assert splits["train"].frames.as_posix().endswith(f"frames/{own}/train")
        assert set(seen["kw"]["extra_frame_sets"]) == set(P.frame_sets(cfg)) - {own}


def test_train_checkpoint_hash_follows_the_input_files(monkeypatch, repo, tmp_path):
    """Snakemake reruns a job whose inputs changed with the same params; its kept last.pt
    must then not be resumed: the hash the stage gets includes the inputs' fingerprint."""
    import json
    import os

    import avemo.training.stage as stage

    seen = []
    monkeypatch.setattr(stage, "train_stream", lambda *a, **k: seen.append(k["config_hash"]))
    audio = tmp_path / "audio"
    audio.mkdir()
    (audio / "utterance.npy").write_bytes(b"x")
    inputs = json.dumps({"manifests": {"train": str(tmp_path / "m.parquet")},
                         "audio": {"train": str(audio)}})
    argv = ["train", "--model", "audio_mlp", "--seed", "0", "--out", "o", "--config-hash", "h",
            "--inputs", inputs, "--params", "{}"]
    assert main(argv) == 0 and main(argv) == 0
    st = (audio / "utterance.npy").stat()
    os.utime(audio / "utterance.npy", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert main(argv) == 0
    assert seen[0] == seen[1] != seen[2] and seen[0].startswith("h-")
