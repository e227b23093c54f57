"""Helpers for the DVC end-to-end tests: a throw-away git+DVC copy of this project, running
`dvc`/`git`/`snakemake` in it, and reading what ran from their output."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from conftest import BIN, REPO, tool_env, write_config

# Snakemake's rule names, as DVC stage names map onto them (foreach stages: `frames@train`).
STAGES = (
    "corpus",
    "manifest",
    "frames@train",
    "frames@dev",
    "frames@test",
    "audio@train",
    "audio@dev",
    "audio@test",
    "qc",
    "report",
)
GIT_IDENTITY = {"user.name": "avemo tests", "user.email": "tests@avemo.invalid"}


def project_files(repo: Path = REPO) -> list[str]:
    """Tracked files plus untracked files git does not ignore: what a commit would hold."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted({f for f in out.split("\0") if f and (repo / f).is_file()})


def env(workdir: Path) -> dict[str, str]:
    """Tools from this interpreter's venv; stages import the copy's own `src/` (not the editable
    install's), and DVC sends no analytics."""
    e = tool_env()
    e["PYTHONPATH"] = str(workdir / "src")
    e["DVC_NO_ANALYTICS"] = "1"
    e["GIT_TERMINAL_PROMPT"] = "0"
    return e


def run(
    workdir: Path, *cmd: str, check: bool = True, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(cmd), cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env(workdir)
    )
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


def make_project(dest: Path, overrides: dict | None = None) -> Path:
    """Copy this project into `dest` (a fresh git repository, one commit) with the tiny config."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in project_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    write_config(dest, overrides)
    git(dest, "init", "-q", "-b", "main")
    set_identity(dest)
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "project at test time")
    return dest


_RAN = re.compile(r"Running stage '([^']+)'")
_SKIPPED = re.compile(r"Stage '([^']+)' didn't change, skipping")


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

    import yaml

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
