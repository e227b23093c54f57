"""run_guard: config layers as Snakemake merges them, results_dir checks, the lock, stale temps."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from avemo import run_guard
from avemo.atomic import atomic_dir, atomic_path, host_tag, temp_owner
from avemo.config import check_sources
from avemo.errors import ConfigError, ResultsDirError

DEAD_PID = 4_194_400  # above Linux's largest pid_max: never a live process


def fake_workflow(overlays=(), cli=None, mode: str = "default") -> SimpleNamespace:
    """The attributes of snakemake.workflow.Workflow that run_guard reads."""
    settings = SimpleNamespace(config=cli or {}, replace_workflow_config=False,
                               overwrite_config=cli or {})
    return SimpleNamespace(config_settings=settings,
                           overwrite_configfiles=[Path(p).absolute() for p in overlays],
                           remote_exec=mode == "remote", subprocess_exec=False)


@pytest.fixture
def workdir(tmp_path, monkeypatch, repo):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text((repo / "config.yaml").read_text())
    return tmp_path


# -- config files ------------------------------------------------------------------------------

def test_sources_are_base_then_overlays_then_command_line(workdir):
    (workdir / "over.yaml").write_text("frames:\n  size: 64\n")
    wf = fake_workflow(["over.yaml"], cli={"audio": {"n_mels": 40}})
    labels = [s.label for s in run_guard.workflow_sources(wf)]
    assert labels == ["config.yaml", "over.yaml", "--config"]
    cfg = run_guard.before_config(wf)
    assert cfg["frames"]["size"] == 64 and cfg["audio"]["n_mels"] == 40


def test_overlay_problem_stops_the_run_naming_the_overlay(workdir, monkeypatch):
    (workdir / "over.yaml").write_text("frames:\n  size: huge\n")
    logged: list[str] = []
    monkeypatch.setattr(run_guard, "_logger", lambda: SimpleNamespace(error=logged.append))
    with pytest.raises(SystemExit) as info:
        run_guard.before_config(fake_workflow(["over.yaml"]))
    assert info.value.code == 1
    assert len(logged) == 1 and "over.yaml, line 2: frames.size" in logged[0], logged
    assert "config.yaml, line" not in logged[0]


def test_key_written_twice_in_an_overlay_stops_the_run_naming_both_lines(workdir, monkeypatch):
    """What plain `snakemake --configfile over.yaml` runs at parse time: YAML itself would keep
    the second value without a word."""
    (workdir / "over.yaml").write_text("train:\n  seeds: [0]\nframes:\n  size: 32\n"
                                       "train:\n  seeds: [1, 2]\n")
    logged: list[str] = []
    monkeypatch.setattr(run_guard, "_logger", lambda: SimpleNamespace(error=logged.append))
    with pytest.raises(SystemExit):
        run_guard.before_config(fake_workflow(["over.yaml"]))
    assert len(logged) == 1, logged
    assert "over.yaml, line 5: train is set twice (first on line 1)" in logged[0], logged
    (workdir / "over.yaml").write_text("frames:\n  size: 32\n  sets: {}\n  size: 64\n")
    with pytest.raises(SystemExit):
        run_guard.before_config(fake_workflow(["over.yaml"]))
    assert "over.yaml, line 4: frames.size is set twice (first on line 2)" in logged[-1]


def test_command_line_value_is_reported_as_such(workdir):
    with pytest.raises(ConfigError, match=r"--config: frames\.size"):
        check_sources(run_guard.workflow_sources(fake_workflow(cli={"frames": {"size": "x"}})))


def test_missing_base_file_is_fine_with_overlays_and_named_without(workdir):
    (workdir / "config.yaml").rename(workdir / "full.yaml")
    assert run_guard.before_config(fake_workflow(["full.yaml"]))["dataset"] == "synthetic"
    with pytest.raises(ConfigError, match="config.yaml: no such file"):
        run_guard.workflow_sources(fake_workflow())


# -- results_dir -------------------------------------------------------------------------------

def test_results_dir_under_a_regular_file(tmp_path):
    (tmp_path / "data").write_text("x")
    cfg = {"results_dir": str(tmp_path / "data" / "results"), "dataset": "synthetic"}
    with pytest.raises(ResultsDirError, match=r"data is a regular file, so the folder .*results "
                                              r"cannot be created.*set results_dir"):
        run_guard.check_results_dir(cfg, where="config.yaml, line 1")
    cfg["results_dir"] = str(tmp_path / "data")
    with pytest.raises(ResultsDirError, match=r"\(config.yaml\): .*data is a regular file;"):
        run_guard.check_results_dir(cfg)


def test_results_dir_not_created_by_the_check(tmp_path):
    cfg = {"results_dir": str(tmp_path / "a" / "results"), "dataset": "synthetic"}
    assert run_guard.check_results_dir(cfg) == tmp_path / "a" / "results"
    assert not (tmp_path / "a").exists()  # dry-runs write nothing


def test_unwritable_folder_in_the_results_tree_is_named(tmp_path, monkeypatch):
    models = tmp_path / "results" / "models" / "cnn5"
    models.mkdir(parents=True)
    # Root may write anywhere: simulate what a non-root user sees.
    real = run_guard._writable
    monkeypatch.setattr(run_guard, "_writable", lambda p: real(p) and p != models.parent)
    cfg = {"results_dir": str(tmp_path / "results"), "dataset": "synthetic"}
    with pytest.raises(ResultsDirError, match=r"models is not writable by .*chmod -R u\+w"):
        run_guard.check_results_dir(cfg)


def test_read_only_meld_copy_inside_results_is_not_a_problem(tmp_path, monkeypatch):
    meld = tmp_path / "results" / "data" / "meld"
    meld.mkdir(parents=True)
    real = run_guard._writable
    monkeypatch.setattr(run_guard, "_writable", lambda p: real(p) and p != meld)
    cfg = {"results_dir": str(tmp_path / "results"), "dataset": "meld",
           "meld": {"root": str(meld)}}
    run_guard.check_results_dir(cfg)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_results_dir_for_real(tmp_path):
    (tmp_path / "results").mkdir(mode=0o555)
    with pytest.raises(ResultsDirError, match="not writable"):
        run_guard.check_results_dir({"results_dir": str(tmp_path / "results"),
                                     "dataset": "synthetic"})


# -- the results_dir lock ----------------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys, time
    from avemo.run_guard import acquire_results_lock
    acquire_results_lock(sys.argv[1])
    print("locked", flush=True)
    time.sleep(60)
""")


def test_lock_names_its_holder_and_is_released_when_it_exits(tmp_path):
    results = tmp_path / "results"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(results)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ResultsDirError) as info:
            run_guard.acquire_results_lock(results)
        msg = str(info.value)
        assert f"pid {holder.pid} on host" in msg and str(results) in msg, msg
        assert "give this one its own results_dir" in msg
    finally:
        holder.kill()  # like kill -9: the kernel drops the lock with the process
        holder.wait()
    lock = run_guard.acquire_results_lock(results)
    try:
        assert lock is not None and run_guard.acquire_results_lock(results) is lock
        assert f'"pid": {os.getpid()}' in (results / run_guard.LOCK_NAME).read_text()
    finally:
        lock.release()


# -- Snakemake's lock after kill -9 -------------------------------------------------------------

def _killed_run(work: Path, outputs: list[str], age_s: float = 10.0) -> Path:
    """What a run killed with -9 leaves in ``work``: its results lock record (process gone) and
    Snakemake's lock files, written before that record (as Snakemake does)."""
    results = work / "results"
    results.mkdir(parents=True, exist_ok=True)
    record = results / run_guard.LOCK_NAME
    record.write_text(json.dumps({"pid": DEAD_PID, "host": socket.gethostname(),
                                  "started": "then", "cwd": str(work), "command": "snakemake"}))
    locks = work / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("config.yaml\n")
    (locks / "0.output.lock").write_text("\n".join(outputs) + "\n")
    earlier = record.stat().st_mtime - age_s
    for lock in locks.iterdir():
        os.utime(lock, (earlier, earlier))
    return locks


def test_lock_of_a_killed_run_is_removed_and_logged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    locks = _killed_run(tmp_path, ["results/manifest/train.parquet", "results/logs/x.log"])
    said = run_guard.clear_stale_snakemake_locks("results")
    assert said is not None and f"pid {DEAD_PID}" in said and "no longer runs" in said
    assert not list(locks.iterdir())
    assert run_guard.clear_stale_snakemake_locks("results") is None  # nothing left to say


def test_lock_of_a_live_run_is_never_touched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    locks = _killed_run(tmp_path, ["results/manifest/train.parquet"])
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "results")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert run_guard.clear_stale_snakemake_locks("results") is None
    finally:
        holder.kill()
        holder.wait()
    assert len(list(locks.iterdir())) == 2


def test_lock_newer_than_the_dead_record_or_of_another_results_folder_stays(tmp_path,
                                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    # A run that started after the killed one: between Snakemake's lock and taking ours.
    locks = _killed_run(tmp_path, ["results/manifest/train.parquet"], age_s=-10.0)
    assert run_guard.clear_stale_snakemake_locks("results") is None
    assert len(list(locks.iterdir())) == 2
    # A run on another results folder (its own lock) in the same working directory.
    shutil.rmtree(locks)
    (tmp_path / "results" / "meld").mkdir()
    (tmp_path / "results" / "meld" / run_guard.LOCK_NAME).write_text("{}")
    locks = _killed_run(tmp_path, ["results/meld/manifest/train.parquet"])
    assert run_guard.clear_stale_snakemake_locks("results") is None
    assert len(list(locks.iterdir())) == 2


# -- stale temporary entries -------------------------------------------------------------------

def test_atomic_writers_use_recognisable_names(tmp_path):
    with atomic_path(tmp_path / "a.parquet") as tmp:
        assert temp_owner(tmp.name) == (host_tag(), os.getpid()) and tmp.suffix == ".parquet"
    with atomic_dir(tmp_path / "train") as tmp:
        assert temp_owner(tmp.name) == (host_tag(), os.getpid())
    for other in (".train.abc123", ".MELD.Raw.tar.gz.part", ".avemo.lock", "shard-000.npy",
                  ".avemo-tmp.", ".avemo-tmp.host.notapid.x"):
        assert temp_owner(other) is None


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from avemo.atomic import atomic_dir, atomic_path
    with atomic_dir(sys.argv[1] + "/audio/train") as tmp:
        (tmp / "utterance.npy").write_bytes(b"half")
        with atomic_path(sys.argv[1] + "/metrics/cnn5.json") as t2:
            t2.write_text("{")
            os.kill(os.getpid(), signal.SIGKILL)
""")


def test_entries_of_a_killed_writer_are_removed_and_nothing_else(tmp_path):
    root = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(root)])
    assert proc.returncode == -signal.SIGKILL
    left = sorted(p.name for p in root.rglob(".avemo-tmp.*"))
    assert len(left) == 2, left  # what kill -9 leaves behind

    keep = [root / "audio" / ".train.abc123", root / "audio" / "shard.npy",
            root / "data" / ".MELD.Raw.tar.gz.part", root / ".avemo.lock"]
    alive = root / "frames" / f".avemo-tmp.{host_tag()}.{os.getpid()}.study.xyz"
    fresh_remote = root / "frames" / f".avemo-tmp.node7.{DEAD_PID}.dense.abc"
    old_remote = root / "models" / f".avemo-tmp.node7.{DEAD_PID}.last.pt.abc.pt"
    for path in (*keep, old_remote):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    for folder in (alive, fresh_remote):
        folder.mkdir(parents=True)
        (folder / "part.npy").write_text("x")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old_remote, (two_days_ago, two_days_ago))

    removed = run_guard.remove_stale_temps(root)
    assert sorted(p.name for p in removed) == sorted([*left, old_remote.name])
    for path in (*keep, alive, fresh_remote):
        assert path.exists(), path
    assert not (root / "audio" / "train").exists()  # the half-written target never appeared


def test_on_start_locks_then_cleans_and_logs(tmp_path, monkeypatch):
    root = tmp_path / "results"
    stale = root / "frames" / f".avemo-tmp.{host_tag()}.{DEAD_PID}.study.q1"
    stale.mkdir(parents=True)
    infos: list[str] = []
    monkeypatch.setattr(run_guard, "_logger", lambda: SimpleNamespace(info=infos.append))
    lock = run_guard.on_start({"results_dir": str(root)})
    try:
        assert lock is not None and not stale.exists()
        assert len(infos) == 1 and "Removed 1 stale" in infos[0] and "frames/" in infos[0]
    finally:
        lock.release()


# -- PATH --------------------------------------------------------------------------------------

def test_jobs_find_this_interpreters_avemo(tmp_path, monkeypatch):
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "avemo").write_text("#!/bin/sh\n")
    (venv_bin / "avemo").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert run_guard.use_own_bin() == venv_bin
    assert os.environ["PATH"] == f"{venv_bin}:/usr/bin:/bin"
    assert run_guard.use_own_bin() is None  # already found: PATH is left as it is
    assert os.environ["PATH"] == f"{venv_bin}:/usr/bin:/bin"
