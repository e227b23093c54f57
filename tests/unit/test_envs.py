"""The conda environments for `--sdm conda` pin exactly the versions of requirements.lock."""

import re

import yaml


def _lock(repo):
    pins = {}
    for line in (repo / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def test_every_env_pin_matches_the_lock(repo):
    lock = _lock(repo)
    envs = sorted((repo / "envs").glob("*.yaml"))
    assert {e.stem for e in envs} >= {"data", "frames", "audio", "train", "report"}
    for env in envs:
        spec = yaml.safe_load(env.read_text())
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
        pinned = [p for p in pip if "==" in p]
        assert pinned, env
        for item in pinned:
            name, version = item.split("==")
            key = re.sub(r"[-_.]+", "-", name).lower()
            assert lock.get(key) == version, f"{env.name}: {item} but lock has {lock.get(key)}"


def test_requirements_pin_the_torch_stack(repo):
    req = (repo / "requirements.txt").read_text()
    for pin in ("torch==2.9.1", "torchvision==0.24.1", "torchaudio==2.9.1"):
        assert pin in req
    lock = _lock(repo)
    assert lock["torch"] == "2.9.1" and lock["torchaudio"] == "2.9.1"
    assert int(lock["opencv-python-headless"].split(".")[0]) < 5  # 5.x has no Haar cascades


def test_every_rule_names_an_existing_env(repo):
    for smk in (repo / "workflow" / "rules").glob("*.smk"):
        for env in re.findall(r'conda:\s*\n\s*"([^"]+)"', smk.read_text()):
            assert (smk.parent / env).resolve().exists(), f"{smk.name}: {env}"
