"""Helpers for the DVC end-to-end tests: a throw-away git+DVC copy of this project, running
`dvc`/`git`/`snakemake` in it, and reading what ran from their output."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import BIN, REPO, run_cmd, tool_env, write_config

# The tiny project the end-to-end tests build: two frame sets, one model per stream, one early
# and one late fusion model, one short epoch each and a small bootstrap.
VIDEO_MODELS = ["video_branch"]  # early fusion reads its per-frame embeddings
AUDIO_MODELS = ["audio_mlp"]
EARLY_FUSION = ["concat_aligned"]
LATE_FUSION = ["late"]
TINY_OVERRIDES = {
    "train": {"engine": {"epochs": 1}, "models": {"video_branch": {"engine": {"epochs": 1}}}},
    "fusion": {"engine": {"epochs": 1}, "video_model": "video_branch"},
    "evaluation": {"n_resamples": 50},
}

GIT_IDENTITY = {"user.name": "avemo tests", "user.email": "tests@avemo.invalid"}


def _ls_files(repo: Path, *args: str) -> set[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    return {f for f in out.split("\0") if f}


def project_files(repo: Path = REPO) -> list[str]:
    """Tracked files plus untracked files git does not ignore: what a commit would hold.

    Untracked files count only inside a top-level folder git already tracks (a new module under
    src/, a new test) or at the top level: a whole untracked top-level folder (someone's scratch
    results beside results/) is not part of the project and would be copied and committed into
    every test project. Nor is an untracked pipeline (an overlay's generated dvc.yaml and its
    dvc.lock, `make dvc-yaml OVERLAY=...`): DVC would count its stages in every test project."""
    tracked = _ls_files(repo, "--cached")
    tops = {f.split("/", 1)[0] for f in tracked if "/" in f}
    untracked = {f for f in _ls_files(repo, "--others", "--exclude-standard")
                 if ("/" not in f or f.split("/", 1)[0] in tops)
                 and Path(f).name not in ("dvc.yaml", "dvc.lock")}
    return sorted(f for f in tracked | untracked if (repo / f).is_file())


def env(workdir: Path) -> dict[str, str]:
    """Tools from this interpreter's venv; stages import the copy's own `src/` (not the editable
    install's), and DVC sends no analytics."""
    e = tool_env()
    e["PYTHONPATH"] = str(workdir / "src")
    e["DVC_NO_ANALYTICS"] = "1"
    e["GIT_TERMINAL_PROMPT"] = "0"
    return e


def run(
    workdir: Path, *cmd: str, check: bool = True, timeout: int = 1800
) -> subprocess.CompletedProcess[str]:
    """`cmd` in `workdir`; `timeout` only guards against a hang (a `dvc repro` of the whole tiny
    project beside the other builds takes minutes on 2 shared cores)."""
    proc = run_cmd(list(cmd), cwd=workdir, timeout=timeout, env=env(workdir))
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}) in {workdir}:\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def dvc(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(workdir, str(BIN / "dvc"), *args, check=check)


def git(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(workdir, "git", *args, check=check)


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The project's one rebuild command (what `make demo` runs), inside `workdir`."""
    return run(
        workdir,
        str(BIN / "snakemake"),
        "--profile",
        "workflow/profiles/default",
        *args,
        check=check,
    )


def set_identity(workdir: Path) -> None:
    for key, value in GIT_IDENTITY.items():
        git(workdir, "config", key, value)


def keep_models(dest: Path) -> None:
    """Train only the models above (config.yaml), then generate the copy's dvc.yaml from its
    own DAG, as `make dvc-yaml` does."""
    cfg_path = dest / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    models = cfg["train"]["models"]
    cfg["train"]["models"] = {m: models[m] for m in [*VIDEO_MODELS, *AUDIO_MODELS]}
    fusion = cfg["fusion"]["models"]
    cfg["fusion"]["models"] = {m: fusion[m] for m in [*EARLY_FUSION, *LATE_FUSION]}
    cfg["fusion"]["single_task"] = EARLY_FUSION[0]
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    run(dest, sys.executable, "-m", "avemo.dvcgen")


def expected_stages(workdir: Path) -> list[str]:
    """DVC's stage names for the project in `workdir`, in dvc.yaml order."""
    return dvc(workdir, "stage", "list", "--name-only").stdout.split()


def copy_project(dest: Path) -> Path:
    """This project's files (``project_files``) copied into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in project_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    return dest


def make_project(dest: Path, overrides: dict | None = None) -> Path:
    """Copy this project into `dest` (a fresh git repository, one commit) with the tiny config."""
    copy_project(dest)
    write_config(dest, {**TINY_OVERRIDES, **(overrides or {})})
    keep_models(dest)
    git(dest, "init", "-q", "-b", "main")
    set_identity(dest)
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "project at test time")
    return dest


_RAN = re.compile(r"Running stage '([^']+)'")
_SKIPPED = re.compile(r"Stage '([^']+)' didn't change, skipping")


def resolved_stages(workdir: Path) -> dict[str, dict]:
    """dvc.yaml as DVC resolves it (a `foreach` stage once per item, ``name@item``): stage
    name -> cmd, config keys (None: all), deps, outs."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    out: dict[str, dict] = {}
    with Repo(str(workdir)) as repo:
        for st in repo.index.stages:
            params = [d for d in st.deps if isinstance(d, ParamsDependency)]
            assert all(d.def_path == "config.yaml" for d in params), st.addressing
            keys = [tuple(k.split(".")) for d in params for k in d.params]
            out[st.name] = {  # (addressing would prefix dvc.yaml's path from the cwd)
                "cmd": st.cmd,
                "params": None if any(not d.params for d in params) else keys,
                "deps": [d.def_path for d in st.deps if not isinstance(d, ParamsDependency)],
                "outs": [o.def_path for o in st.outs],
            }
    return out


def job_counts(text: str) -> dict[str, int]:
    """Snakemake's "job  count" table (`-n --quiet rules`) as {rule: count}, total left out."""
    rows = re.findall(r"^([A-Za-z_]\w*)\s+(\d+)$", text, flags=re.M)
    return {rule: int(n) for rule, n in rows if rule != "total"}


def stages_ran(text: str) -> list[str]:
    return _RAN.findall(text)


def stages_skipped(text: str) -> list[str]:
    return _SKIPPED.findall(text)


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under `root`: (sha256, mtime_ns). Equal snapshots: nothing was rewritten."""
    snap: dict[str, tuple[str, int]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        snap[str(path.relative_to(root))] = (digest, path.stat().st_mtime_ns)
    return snap


def cache_file(workdir: Path, out: str, member: str) -> Path:
    """The cache object DVC stored for `member` of the directory output `out`, from dvc.lock and
    the directory's .dir listing."""
    import json

    lock = yaml.safe_load((workdir / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        for entry in stage.get("outs", []):
            if entry["path"] == out:
                dir_md5 = entry["md5"]
                break
        else:
            continue
        break
    else:
        raise KeyError(out)
    files = workdir / ".dvc" / "cache" / "files" / "md5"
    listing = json.loads((files / dir_md5[:2] / dir_md5[2:]).read_text())
    md5 = next(e["md5"] for e in listing if e["relpath"] == member)
    return files / md5[:2] / md5[2:]


def remove_tree(path: Path) -> None:
    """Remove a folder whose files DVC may have made read-only."""

    def _chmod_retry(func, p, _exc):  # type: ignore[no-untyped-def]
        os.chmod(p, 0o700)
        func(p)

    shutil.rmtree(path, onerror=_chmod_retry)  # py3.11: no onexc yet
