"""Config -> stage arguments: what each rule passes to its stage function."""

import copy
import re
from pathlib import Path

import pytest
import torch

from avemo import codedeps
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


def test_train_inputs_follow_the_registry_kind(cfg):
    audio = P.train_inputs(cfg, "audio_mlp")
    assert set(audio) == {"manifests", "audio"}
    video = P.train_inputs(cfg, "temporal_video")
    assert set(video) == {"manifests", "frames"}
    assert list(video["frames"]) == ["dense", "study"]  # its own set first


def test_a_checkpoint_of_another_config_is_removed(tmp_path):
    state = {"config_hash": "old", "epoch": torch.tensor(3)}
    save_checkpoint(tmp_path / "last.pt", state)
    save_checkpoint(tmp_path / "best.pt", state)
    (tmp_path / "predictions_dev.parquet").write_text("kept")
    _fresh_start_if_config_changed(tmp_path, "new")
    assert not any((tmp_path / n).exists() for n in ("last.pt", "best.pt"))
    assert (tmp_path / "predictions_dev.parquet").exists()
    save_checkpoint(tmp_path / "last.pt", {"config_hash": "new"})
    _fresh_start_if_config_changed(tmp_path, "new")  # same config: resume, keep it
    assert (tmp_path / "last.pt").exists()


def _fake_package(root: Path) -> Path:
    """A package whose cli runs `train` (training -> models registry) and `evaluate`."""
    files = {
        "__init__.py": "",
        "errors.py": "",
        "cli.py": ("from .errors import X\n"
                   "def _train(a):\n    from .training.stage import run\n"
                   "def _evaluate(a):\n    from .evaluation import metrics\n"
                   "def build_parser():\n    add('train', _train, '')\n"
                   "    add('evaluate', _evaluate, '')\n"),
        "training/__init__.py": "",
        "training/stage.py": "from ..models import registry\nfrom . import engine\n",
        "training/engine.py": "x = 1\n",
        "models/__init__.py": "",
        "models/registry.py": "",
        "evaluation/__init__.py": "",
        "evaluation/metrics.py": "import numpy\n",
        "report/__init__.py": "from ..evaluation import metrics\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_code_deps_follow_the_import_graph(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path / "avemo")
    rel = {c: {f.relative_to(pkg).as_posix() for f in codedeps.files(c, None, pkg)}
           for c in ("train", "evaluate")}
    # Lazy imports inside the handler, relative imports, package __init__ files, transitively.
    assert rel["train"] == {"__init__.py", "cli.py", "errors.py", "training/__init__.py",
                            "training/stage.py", "training/engine.py", "models/__init__.py",
                            "models/registry.py"}
    assert rel["evaluate"] == {"__init__.py", "cli.py", "errors.py", "evaluation/__init__.py",
                               "evaluation/metrics.py"}
    before = {c: codedeps.digest(c, None, pkg) for c in ("train", "evaluate")}
    (pkg / "training" / "engine.py").write_text("x = 2\n")
    codedeps.digest.cache_clear()
    assert codedeps.digest("train", None, pkg) != before["train"]
    assert codedeps.digest("evaluate", None, pkg) == before["evaluate"]
    (pkg / "report" / "__init__.py").write_text("# not imported by either\n")
    codedeps.digest.cache_clear()
    assert codedeps.digest("evaluate", None, pkg) == before["evaluate"]


def test_a_model_module_is_a_dependency_of_its_own_jobs_only() -> None:
    cnn5 = {f.name for f in codedeps.files("train", "cnn5")}
    audio = {f.name for f in codedeps.files("train", "audio_mlp")}
    assert "cnn5.py" in cnn5 and "cnn5.py" not in audio
    assert "audio_mlp.py" in audio and "audio_mlp.py" not in cnn5
    assert "metrics.py" not in cnn5  # training does not score: no evaluation module


def test_every_rule_carries_its_code_digest(repo: Path) -> None:
    """Snakemake's code trigger sees only the shell string: each rule's params hold the digest
    of the package code its command runs, so editing that code reruns its jobs."""
    for smk in (repo / "workflow" / "rules").glob("*.smk"):
        blocks = re.split(r"\n(?=\s*rule\b)", smk.read_text())
        for block in blocks:
            m = re.search(r'"avemo (\w+)', block)
            if m and re.match(r"\s*rule\b", block):
                assert f'code=code("{m.group(1)}")' in block, (smk.name, block[:80])


def test_profiles_name_only_rules_the_workflow_has(repo: Path) -> None:
    """A renamed rule must not silently lose its cluster threads, resources or group."""
    import subprocess
    import sys

    import yaml

    snakemake = Path(sys.executable).parent / "snakemake"
    rules: set[str] = set()
    for dataset in ("synthetic", "meld"):  # the corpus rule depends on the dataset
        out = subprocess.run([str(snakemake), "--list-rules", "--config", f"dataset={dataset}"],
                             cwd=repo, capture_output=True, text=True, check=True).stdout
        rules |= set(out.split())
    for profile in (repo / "workflow" / "profiles").glob("*/config.yaml"):
        cfg = yaml.safe_load(profile.read_text())
        for key in ("set-threads", "set-resources", "groups"):
            named = set(cfg.get(key) or {})
            assert named <= rules, (profile.parent.name, key, sorted(named - rules))


def test_listing_the_workflow_imports_no_ml_library(repo: Path) -> None:
    """What the Snakefile runs to list every rule's inputs (config, params, the report's model
    names) imports neither scikit-learn, SciPy's statistics nor torch: each Snakemake start
    (every DVC stage, every SLURM job) paid 1.5 s for scikit-learn alone through the eager
    ``avemo.evaluation`` package."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import sys
        from avemo import params as P
        from avemo.config import load_config
        cfg = load_config({str(repo / "config.yaml")!r})
        P.scored(cfg), P.ablated(cfg), P.compare_inputs(cfg)
        print(sorted(m for m in ("sklearn", "scipy.stats", "torch") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
