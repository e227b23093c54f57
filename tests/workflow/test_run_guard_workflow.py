"""Real `snakemake` runs in a temporary folder: config problems, results_dir, lock, temps, PATH.

Messages must name the file (the overlay when it comes from there), the line and the fix, and
show no Python traceback. Dry-runs where possible; the runs that must execute a job build only
the tiny synthetic corpus.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, REPO, snakemake, write_config

from avemo import run_guard
from avemo.atomic import host_tag

pytestmark = pytest.mark.slow

DEAD_PID = 4_194_400  # above Linux's largest pid_max: never a live process


def output(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout + proc.stderr


def assert_clean_failure(proc: subprocess.CompletedProcess[str]) -> str:
    text = output(proc)
    assert proc.returncode != 0, text[-3000:]
    assert "Traceback" not in text and not re.search(r'^\s*File "', text, re.M), text[-3000:]
    return text


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    write_config(tmp_path)
    cfg = tmp_path / "config.yaml"
    lines = cfg.read_text().splitlines()
    lines.insert(3, "frames: [size: 32")  # an unclosed flow sequence on line 4
    cfg.write_text("\n".join(lines) + "\n")
    text = assert_clean_failure(snakemake(tmp_path, "-n"))
    assert re.search(r"config\.yaml, line \d+, column \d+: not valid YAML", text), text[-3000:]
    assert "Fix the syntax there" in text


@pytest.mark.parametrize(
    ("base", "overlay", "want", "not_want"),
    [
        ({}, "# meld-like overlay\nframes:\n  size: big\n", r"over\.yaml, line 3: frames\.size",
         "config.yaml, line"),
        ({"train": 5}, "train:\n  seeds: [1]\n", r"config\.yaml, line \d+: train: value 5 should "
         r"be a mapping", "over.yaml, line"),
        ({}, "train:\n  models: [cnn5, vgg16]\n", r"over\.yaml, line 2: train\.models: value "
         r"\['cnn5', 'vgg16'\] should be a mapping", "config.yaml, line"),
    ],
)
def test_config_problem_is_reported_in_the_file_that_has_it(tmp_path, base, overlay, want,
                                                            not_want):
    write_config(tmp_path, base)
    (tmp_path / "over.yaml").write_text(overlay)
    proc = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "over.yaml"))
    text = assert_clean_failure(proc)
    assert re.search(want, text) and not_want not in text, text[-3000:]
    assert "ConfigError" in text and "Fix each key" in text


def test_results_dir_under_a_regular_file_stops_before_any_job(tmp_path):
    (tmp_path / "notes").write_text("a file, not a folder\n")
    write_config(tmp_path, {"results_dir": "notes/results"})
    text = assert_clean_failure(snakemake(tmp_path, "--cores", "1", "synthetic_corpus"))
    assert f"{tmp_path / 'notes'} is a regular file" in text, text[-3000:]
    assert "results_dir 'notes/results' (config.yaml, line " in text and "move the file" in text
    assert "Error in rule" not in text


def _plant_stale(results: Path) -> tuple[list[Path], list[Path]]:
    """Entries a `kill -9` leaves (writer gone) and entries that must survive the cleanup."""
    stale = [results / "frames" / f".avemo-tmp.{host_tag()}.{DEAD_PID}.study.k9k9k9",
             results / "metrics" / f".avemo-tmp.{host_tag()}.{DEAD_PID}.cnn5.json.x1y2z3.json"]
    keep = [results / "frames" / ".study.abc123", results / "data" / ".MELD.Raw.tar.gz.part"]
    stale[0].mkdir(parents=True)
    (stale[0] / "shard-000.npy").write_bytes(b"half")
    for path in (stale[1], *keep):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    return stale, keep


def _bare_path_run(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`.venv/bin/snakemake` by its full path, the venv's bin folder not on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and Path(p).resolve() != BIN.resolve())
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(work),
           "--profile", str(REPO / "workflow" / "profiles" / "default"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def test_lock_on_results_dir_then_clean_rerun(tmp_path):
    write_config(tmp_path)
    results = tmp_path / "results"
    stale, keep = _plant_stale(results)
    corpus = results / "data" / "synthetic"
    lock = run_guard.acquire_results_lock(results)  # another run, as far as snakemake can tell
    try:
        text = assert_clean_failure(snakemake(tmp_path, "--cores", "1", "synthetic_corpus"))
        assert f"results_dir {results} is in use by another run: pid {os.getpid()} on host" in text
        assert "Wait for that run to end" in text, text[-3000:]
        assert not corpus.exists() and all(p.exists() for p in stale)  # nothing was touched
        dry = snakemake(tmp_path, "-n", "synthetic_corpus")
        assert dry.returncode == 0, output(dry)[-3000:]  # a dry-run does not need the lock
    finally:
        lock.release()

    proc = _bare_path_run(tmp_path, "--cores", "1", "synthetic_corpus")
    text = output(proc)
    assert proc.returncode == 0, text[-4000:]  # jobs found the venv's `avemo`
    assert "command not found" not in text and (corpus / "corpus.json").exists()
    assert "Removed 2 stale temporary" in text, text[-3000:]
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)


def test_jobs_that_rerun_snakemake_do_not_take_the_lock(tmp_path):
    """Cluster jobs run `snakemake --no-hooks ...` on the node while the main process holds it."""
    write_config(tmp_path)
    lock = run_guard.acquire_results_lock(tmp_path / "results")
    try:
        proc = snakemake(tmp_path, "--cores", "1", "--no-hooks", "synthetic_corpus")
    finally:
        lock.release()
    assert proc.returncode == 0, output(proc)[-4000:]
    assert (tmp_path / "results" / "data" / "synthetic" / "corpus.json").exists()
