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
