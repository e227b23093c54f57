"""The real workflow submitted through `--profile workflow/profiles/slurm` to a real SLURM cluster.

A one-node cluster with accounting runs on this host (tests/workflow/slurm_cluster.py). The tiny
preset goes through the SLURM executor plugin; the session's local run of the tiny workflow
(`tiny_run`, tests/conftest.py: same data-stage settings) is the reference.
The node has no GPU: the profile is the CPU one (`slurm`; `slurm-gpu` adds GPU requests, see
test_slurm_gpu.py), with the cluster's account named and `frames` added to its array rules, so
that the six frames jobs (ready together) go out as one array job: the path the training seeds
take, through the plugin and its job-step executor, on a real cluster. The run also writes the
plugin's efficiency report. Targets stop before training. Every Snakemake
call runs under `timeout -s KILL`: a plugin that cannot read job states polls forever and
ignores SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import (
    BIN,
    REPO,
    at_session_end,
    early_dependency,
    early_result,
    start_early,
    tool_env,
    write_config,
)
from dvc_helpers import dvc, git
from dvc_helpers import env as dvc_env
from dvc_helpers import snakemake as sm_local
from slurm_cluster import Cluster, ClusterUnavailable, slurm_cluster
from test_dvc import ADOPT  # (and registers its DVC project build, `built`, used below)

from avemo.labels import SPLITS

pytestmark = pytest.mark.slow

PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
SM_TIMEOUT = 900  # seconds before a Snakemake call is SIGKILLed (the suite runs beside it)
# Every data stage for every split, and one baseline + its evaluation (a two-rule group job).
# No training (the node has no GPU and it would take minutes); no qc (one more queue round).
TARGETS = (
    *(f"results/{stage}/{split}" for stage in ("frames/study", "audio") for split in SPLITS),
    "results/metrics/majority.json",
)
COMPARED = ("manifest", "frames", "audio")  # results/ subfolders checked against the local run
ARRAY_RULE = "frames"  # submitted as one array job here (one task per frame set and split)


@pytest.fixture(scope="module")
def profile_settings() -> dict[str, Any]:
    return yaml.safe_load(PROFILE.read_text())


def make_profile(folder: Path, cluster: Cluster) -> Path:
    """The real CPU profile with the cluster's account named (else the plugin guesses one with
    a failing `sacct` call) and the frames jobs as one array job."""
    cfg = yaml.safe_load(PROFILE.read_text())
    for res in cfg.get("set-resources", {}).values():
        assert not {"gpu", "gpus", "gres", "gpu_model"} & set(res), res  # no GPU on this node
    cfg["default-resources"]["slurm_account"] = cluster.account
    cfg["slurm-array-jobs"] = f"{cfg['slurm-array-jobs']},{ARRAY_RULE}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder


def sm_slurm(
    cluster: Cluster, work: Path, profile: Path, *args: str, popen: bool = False
) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    """`snakemake --profile <slurm profile>` on the real Snakefile, hard-killed at SM_TIMEOUT."""
    cmd = ["timeout", "-s", "KILL", str(SM_TIMEOUT), str(BIN / "snakemake"),
           "-s", str(REPO / "Snakefile"), "-d", str(work), "--profile", str(profile),
           "--slurm-init-seconds-before-status-checks", "2", *args]  # fmt: skip
    env = {**tool_env(), "SLURM_CONF": cluster.env["SLURM_CONF"]}
    if popen:
        return subprocess.Popen(
            cmd, cwd=work, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    return subprocess.run(
        cmd, cwd=work, env=env, text=True, capture_output=True, timeout=SM_TIMEOUT + 30
    )


def copy_workdir(src: Path, dst: Path) -> Path:
    """A second working directory with the same results and Snakemake metadata."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("slurm_logs", "log", "locks"))
    return dst


class SlurmRuns(NamedTuple):
    skip: str  # why there is no cluster ("" when there is one)
    cluster: Cluster | None = None
    profile: Path | None = None
    slurm: Path | None = None  # the SLURM run's working folder
    proc: subprocess.CompletedProcess[str] | None = None
    fail: tuple[Path, str, Any] | None = None  # (workdir, target, CompletedProcess)
    efficiency: Path | None = None  # the folder of the SLURM run's efficiency report


def _slurm_runs(folder: Path) -> SlurmRuns:
    """Start the cluster and run the SLURM run and a run with a failing job, side by side. An
    early build (tests/conftest.py `start_early`) that waits for the session's tiny run first:
    its jobs mostly wait on SLURM's polling, so it overlaps the rest of the suite; the cluster
    stays up for the tests and stops when the session ends."""
    early_dependency("tiny_run")
    stack = contextlib.ExitStack()
    try:
        # Declared big enough to run the profile's requests (4 CPUs / 8 GB per decode job)
        # side by side; the jobs themselves are tiny.
        cluster = stack.enter_context(slurm_cluster(cpus=32, mem_mb=128_000))
    except ClusterUnavailable as exc:
        stack.close()
        return SlurmRuns(skip=str(exc))
    at_session_end(stack.close)
    profile = make_profile(folder / "profile", cluster)
    slurm_dir, fail_dir = folder / "slurm", folder / "fail"
    for work in (slurm_dir, fail_dir):
        work.mkdir()
        write_config(work)
    # A manifest the frames stage cannot read: the job itself fails on the node, not
    # Snakemake's planning. --allowed-rules keeps the manifest rule from rewriting it.
    (fail_dir / "results" / "manifest").mkdir(parents=True)
    (fail_dir / "results" / "manifest" / "dev.parquet").write_bytes(b"not a parquet file")
    fail_target = "results/frames/study/dev"
    efficiency = folder / "efficiency"
    efficiency.mkdir()
    with ThreadPoolExecutor(1) as pool:
        # It runs while the SLURM jobs queue: the test waits on polling more than on CPU.
        fail = pool.submit(
            sm_slurm, cluster, fail_dir, profile, fail_target, "--retries", "0",
            "--allowed-rules", "frames",
        )  # fmt: skip
        proc = sm_slurm(cluster, slurm_dir, profile, *TARGETS, "--slurm-efficiency-report",
                        "--slurm-efficiency-report-path", str(efficiency))  # fmt: skip
        failed = fail.result()
    return SlurmRuns("", cluster, profile, slurm_dir, proc, (fail_dir, fail_target, failed),
                     efficiency)


start_early("slurm_runs", _slurm_runs, after=("tiny_run",))


@pytest.fixture(scope="module")
def slurm_runs(tmp_path_factory: pytest.TempPathFactory) -> SlurmRuns:
    res = early_result("slurm_runs", tmp_path_factory)
    if res.skip:
        pytest.skip(f"no SLURM cluster on this host: {res.skip}")
    return res


@pytest.fixture(scope="module")
def cluster(slurm_runs: SlurmRuns) -> Cluster:
    assert slurm_runs.cluster is not None
    return slurm_runs.cluster


@pytest.fixture(scope="module")
def test_profile(slurm_runs: SlurmRuns) -> Path:
    assert slurm_runs.profile is not None
    return slurm_runs.profile


@pytest.fixture(scope="module")
def runs(slurm_runs: SlurmRuns, tiny_run: Path) -> dict[str, Any]:
    """The SLURM run and a run with a failing job; the local reference is the session's tiny
    run (read only). Keys: slurm (workdir), local (workdir), fail (workdir, target,
    CompletedProcess), efficiency (the folder of the SLURM run's efficiency report)."""
    proc = slurm_runs.proc
    assert proc is not None and proc.returncode == 0, proc and (
        proc.stdout[-3000:] + proc.stderr[-6000:])
    return {"slurm": slurm_runs.slurm, "local": tiny_run, "fail": slurm_runs.fail,
            "efficiency": slurm_runs.efficiency}


VOLATILE = {"seconds", "workers"}  # run metadata that differs between any two runs


def _stable_json(value: Any) -> str:
    """JSON without timings/worker counts, canonical (NaN compares equal as text)."""

    def drop(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: drop(x) for k, x in v.items() if k not in VOLATILE}
        return [drop(x) for x in v] if isinstance(v, list) else v

    return json.dumps(drop(value), sort_keys=True)


def _same_file(a: Path, b: Path, a_root: Path, b_root: Path) -> None:
    """Same content; absolute paths into each run's own working directory count as equal."""

    def rel(text: str, root: Path) -> str:
        return text.replace(str(root), "<workdir>")

    if a.suffix == ".parquet":
        x, y = pd.read_parquet(a), pd.read_parquet(b)
        for df, root in ((x, a_root), (y, b_root)):
            for col in df.select_dtypes(include=["object", "string"]).columns:
                df[col] = df[col].map(lambda v, r=root: rel(v, r) if isinstance(v, str) else v)
        pd.testing.assert_frame_equal(x, y)
    elif a.suffix == ".json":
        x = _stable_json(json.loads(rel(a.read_text(), a_root)))
        assert x == _stable_json(json.loads(rel(b.read_text(), b_root))), a
    elif a.suffix == ".npy":
        x, y = np.load(a, allow_pickle=False), np.load(b, allow_pickle=False)
        assert x.dtype == y.dtype and x.shape == y.shape, a
        np.testing.assert_array_equal(x, y, err_msg=str(a))
    else:
        assert rel(a.read_text(), a_root) == rel(b.read_text(), b_root), a


def test_outputs_equal_a_local_run(runs):
    slurm_dir, local_dir = runs["slurm"], runs["local"]
    compared = 0
    for sub in COMPARED:
        for ref in sorted((local_dir / "results" / sub).rglob("*")):
            if ref.is_dir() or ref.name.startswith(".snakemake"):
                continue
            rel = ref.relative_to(local_dir)
            assert (slurm_dir / rel).exists(), f"{rel} missing from the SLURM run"
            _same_file(slurm_dir / rel, ref, slurm_dir, local_dir)
            compared += 1
    kinds = {p.suffix for p in (local_dir / "results").rglob("*") if p.is_file()}
    assert compared >= 10 and {".parquet", ".npy"} <= kinds, compared
    assert (slurm_dir / "results" / "metrics" / "majority.json").exists()


def _rule_of(comment: str, rules: list[str]) -> str | None:
    """The plugin's sbatch comment is rule_<name> or rule_<name>_wildcards_<values>."""
    for rule in sorted(rules, key=len, reverse=True):
        if comment == f"rule_{rule}" or comment.startswith(f"rule_{rule}_wildcards_"):
            return rule
    return None


def _timelimit(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def test_jobs_carry_the_profiles_resources(runs, cluster, profile_settings):
    threads, res = profile_settings["set-threads"], profile_settings["set-resources"]
    rows = cluster.sacct("JobID,Comment,State,ReqCPUS,ReqMem,Timelimit,WorkDir")
    slurm_dir = runs["slurm"]
    rows = [r for r in rows if Path(r["WorkDir"]) == slurm_dir]
    seen: dict[str, int] = {}
    arrays: dict[str, set[str]] = {}  # rule -> array job ids of its jobs
    for row in rows:
        rule = _rule_of(row["Comment"], list(res))
        if rule is None:
            continue
        seen[rule] = seen.get(rule, 0) + 1
        assert row["State"] == "COMPLETED", row
        assert int(row["ReqCPUS"]) == threads[rule], row
        assert row["Timelimit"] == _timelimit(res[rule]["runtime"]), row
        if "_" in row["JobID"]:  # an array task, <array job id>_<task>
            arrays.setdefault(rule, set()).add(row["JobID"].split("_")[0])
            # The plugin adds a MB or so to --mem for the array's encoded task list.
            assert int(row["ReqMem"].rstrip("M")) - res[rule]["mem_mb"] in range(1, 4), row
        else:
            assert row["ReqMem"] == f"{res[rule]['mem_mb']}M", row
    assert seen.get("synthetic_corpus") == 1 and seen.get("manifest") == 1, (seen, rows)
    assert seen.get("frames") == 6 and seen.get("audio") == 3, (seen, rows)
    # The six frames jobs were tasks of one array job; nothing else was an array.
    assert set(arrays) == {ARRAY_RULE} and len(arrays[ARRAY_RULE]) == 1, (arrays, rows)
    # Plugin 2.8.0 writes an array task's SLURM log to rule_<rule>/<array id>_<task>.log (the
    # path it reports has a wildcards folder, so it never deletes these logs): docs/slurm.md, Logs.
    array_id = next(iter(arrays[ARRAY_RULE]))
    logs = slurm_dir / ".snakemake" / "slurm_logs" / f"rule_{ARRAY_RULE}"
    assert sorted(p.name for p in logs.glob(f"{array_id}_*.log")) == [
        f"{array_id}_{i}.log" for i in range(1, 7)
    ], sorted(p.relative_to(logs) for p in logs.rglob("*"))
    # The group job: baseline -> evaluate in one submission, runtimes added, the larger memory.
    group = [r for r in rows if _rule_of(r["Comment"], list(res)) is None]
    bundle = [r for r in group if "baseline" in r["Comment"] or "evaluate" in r["Comment"]]
    assert len(bundle) == 1, group
    want = res["baseline"]["runtime"] + res["evaluate"]["runtime"]
    assert bundle[0]["Timelimit"] == _timelimit(want), bundle
    mem = max(res["baseline"]["mem_mb"], res["evaluate"]["mem_mb"])
    assert bundle[0]["ReqMem"] == f"{mem}M", bundle


def test_efficiency_report_lists_the_runs_job_steps(runs, cluster):
    """--slurm-efficiency-report (docs/slurm.md, "Efficiency report"): one CSV for the run, a
    row per `srun` job step, named by the job's comment. An array's first task runs its job without
    `srun` (no step: not in the report); the other tasks do, under the first task's comment."""
    reports = sorted(runs["efficiency"].glob("efficiency_report_*.csv"))
    assert len(reports) == 1, reports
    report = pd.read_csv(reports[0], dtype=str)
    for column in ("RuleName", "Elapsed", "TotalCPU", "NCPUS", "MaxRSS", "ReqMem",
                   "CPU Efficiency (%)", "Memory Usage (%)"):  # fmt: skip
        assert column in report.columns, report.columns
    names = ["synthetic_corpus", "manifest", "audio", ARRAY_RULE]
    steps: dict[str | None, list[str]] = {}
    for job, comment in zip(report["JobID"], report["RuleName"].fillna(""), strict=True):
        steps.setdefault(_rule_of(comment, names), []).append(job)
    assert len(steps["synthetic_corpus"]) == 1 and len(steps["manifest"]) == 1, steps
    assert len(steps["audio"]) == 3, steps
    array_ids = {r["JobID"].split("_")[0] for r in cluster.sacct("JobID,WorkDir")
                 if "_" in r["JobID"] and Path(r["WorkDir"]) == runs["slurm"]}  # fmt: skip
    assert len(array_ids) == 1, array_ids
    array_id = array_ids.pop()
    assert sorted(steps[ARRAY_RULE]) == [f"{array_id}_{i}.0" for i in range(2, 7)], steps


def test_failing_job_reports_its_log_and_exits_nonzero(runs):
    work, target, proc = runs["fail"]
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-4000:]
    assert "Error in rule frames" in text, text[-4000:]
    log = "results/logs/frames_study_dev.log"
    assert log in text, text[-4000:]
    assert "cannot be read" in (work / log).read_text()  # the stage's own message
    assert ".snakemake/slurm_logs/rule_frames" in text, text[-4000:]
    assert not (work / target).exists()


def _wait_running(cluster: Cluster, comment: str, proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        out = cluster.run("squeue", "-h", "-o", "%i|%T|%k", check=False)
        for line in out.splitlines():
            jid, state, kcomment = line.split("|", 2)
            if kcomment == comment and state == "RUNNING":
                return jid
        time.sleep(0.3)
    raise AssertionError(f"no RUNNING job {comment} within {timeout} s (snakemake: {proc.poll()})")


class Cancelled(NamedTuple):
    work: Path  # a copy of the SLURM run's folder whose frames job was cancelled, then rerun
    target: str
    first: tuple[int, str]  # the cancelled invocation's exit status and output
    state: list[dict[str, str]]  # sacct's JobID/State of the cancelled job
    output_left: bool  # whether the cancelled job left its output behind
    again: subprocess.CompletedProcess[str]  # the next invocation


def _cancelled(folder: Path) -> Cancelled | None:
    """Cancel a running job with `scancel`, then invoke Snakemake again: an early build after
    the SLURM run (it mostly waits for the plugin to notice the cancellation). None without a
    cluster."""
    runs = early_dependency("slurm_runs")
    if runs.skip:
        return None
    assert runs.cluster is not None and runs.profile is not None and runs.slurm is not None
    cluster, profile = runs.cluster, runs.profile
    work = copy_workdir(runs.slurm, folder / "cancel")
    target = "results/frames/study/dev"
    shutil.rmtree(work / target)
    proc = sm_slurm(cluster, work, profile, target, "--retries", "0", popen=True)
    try:
        jid = _wait_running(cluster, "rule_frames_wildcards_study_dev", proc, timeout=120)
        cluster.run("scancel", jid)
        out, _ = proc.communicate(timeout=SM_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    state = cluster.sacct("JobID,State", jid)
    output_left = (work / target).exists()
    again = sm_slurm(cluster, work, profile, target, "--retries", "0")
    return Cancelled(work, target, (proc.returncode, out), state, output_left, again)


start_early("cancelled", _cancelled, after=("slurm_runs",))


@pytest.fixture(scope="module")
def cancelled(slurm_runs: SlurmRuns, tmp_path_factory: pytest.TempPathFactory) -> Cancelled:
    res = early_result("cancelled", tmp_path_factory)
    assert res is not None  # (slurm_runs skips the test without a cluster)
    return res


def test_cancelled_job_is_rerun_by_next_invocation(runs, cancelled: Cancelled):
    (code, out), work, target = cancelled.first, cancelled.work, cancelled.target
    assert code != 0, out[-4000:]
    assert "CANCELLED" in out, out[-4000:]
    assert not cancelled.output_left
    state = cancelled.state
    assert state and state[0]["State"].startswith("CANCELLED"), state

    again = cancelled.again
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-4000:]
    assert "rule frames" in again.stdout + again.stderr
    for ref in sorted((runs["slurm"] / target).iterdir()):
        if not ref.name.startswith(".snakemake"):
            _same_file(work / target / ref.name, ref, work, runs["slurm"])


# ---------------------------------------------------------------------------------------------
# Built on the cluster, recorded in DVC (docs/slurm.md and docs/dvc.md, "Building on the
# cluster, recording in DVC"): `snakemake --profile workflow/profiles/slurm` builds, then
# `dvc commit -f` records what it built in dvc.lock, and `dvc push` stores it.

DVC_CHANGE = ("evaluation", "n_resamples")  # read by every evaluation: one group job on SLURM


class SlurmDvc(NamedTuple):
    clone: Path  # a clone of test_dvc's DVC project (pulled, adopted), config changed
    pending: dict[str, Any]  # dvc status --json before the SLURM run
    built: subprocess.CompletedProcess[str]  # the SLURM run
    jobs: list[dict[str, str]]  # sacct rows of the jobs it submitted
    dry: str  # snakemake -n afterwards (nothing to do)
    unrecorded: dict[str, Any]  # dvc status --json after it, before dvc commit
    recorded: str  # dvc status after dvc commit -f
    git_status: str  # git status --porcelain after committing config.yaml and dvc.lock
    pushed: str  # dvc status -c after dvc push
    pulled: Path  # a fresh clone of the result, dvc pull-ed
    pulled_status: str  # dvc status there


def _slurm_dvc(folder: Path) -> SlurmDvc | None:
    """The DVC project of test_dvc.py (`built`: dvc repro, pushed) cloned and adopted as
    `make pull` does, a config change committed, the rebuild submitted to the cluster of
    `slurm_runs` with the SLURM profile, then recorded as docs/dvc.md says. An early build:
    it waits for both (None without a cluster)."""
    runs = early_dependency("slurm_runs")
    if runs.skip:
        return None
    assert runs.cluster is not None and runs.profile is not None
    built = early_dependency("built")
    clone = built.clone("clone_slurm")
    sm_local(clone, *ADOPT)
    cfg_path = clone / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    section, key = DVC_CHANGE
    cfg[section][key] += 10
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    git(clone, "commit", "-q", "-am", f"{section}.{key} + 10")
    pending = json.loads(dvc(clone, "status", "--json").stdout)
    # The project's own Snakefile and package (PYTHONPATH, as its DVC stages run), the SLURM
    # profile of this cluster; `timeout -s KILL` as for every SLURM call here.
    cmd = ["timeout", "-s", "KILL", str(SM_TIMEOUT), str(BIN / "snakemake"),
           "--profile", str(runs.profile), "--slurm-init-seconds-before-status-checks", "2"]
    env = {**dvc_env(clone), "SLURM_CONF": runs.cluster.env["SLURM_CONF"]}
    proc = subprocess.run(cmd, cwd=clone, env=env, text=True, capture_output=True,
                          timeout=SM_TIMEOUT + 30)
    jobs = [r for r in runs.cluster.sacct("JobID,Comment,State,WorkDir")
            if Path(r["WorkDir"]) == clone]
    dry = sm_local(clone, "-n")
    unrecorded = json.loads(dvc(clone, "status", "--json").stdout)
    dvc(clone, "commit", "-f", "dvc.yaml")  # (the target: docs/dvc.md)
    recorded = dvc(clone, "status").stdout
    git(clone, "add", "dvc.lock")
    git(clone, "commit", "-q", "-m", "built on SLURM, recorded by dvc commit")
    git_status = git(clone, "status", "--porcelain").stdout
    dvc(clone, "push")
    pushed = dvc(clone, "status", "-c").stdout
    pulled = built.root / "clone_slurm_pulled"
    git(built.root, "clone", "-q", str(clone), str(pulled))
    dvc(pulled, "pull")
    pulled_status = dvc(pulled, "status").stdout
    return SlurmDvc(clone, pending, proc, jobs, dry.stdout + dry.stderr, unrecorded, recorded,
                    git_status, pushed, pulled, pulled_status)


start_early("slurm_dvc", _slurm_dvc, after=("slurm_runs", "built"))


@pytest.fixture(scope="module")
def slurm_dvc(slurm_runs: SlurmRuns, tmp_path_factory: pytest.TempPathFactory) -> SlurmDvc:
    res = early_result("slurm_dvc", tmp_path_factory)
    assert res is not None  # (slurm_runs skips the test without a cluster)
    return res


def test_cluster_build_recorded_by_dvc_commit_and_pushed(slurm_dvc: SlurmDvc) -> None:
    """docs/dvc.md, "Building on the cluster, recording in DVC": after a config change, DVC
    flags the evaluations; Snakemake rebuilds them as SLURM jobs; until `dvc commit -f` DVC
    still flags them (dvc.lock holds the old run); then `dvc status` is clean, git holds the
    whole state, `dvc push` stores the cluster's files and a fresh clone pulls exactly them."""
    r = slurm_dvc
    text = r.built.stdout + r.built.stderr
    assert r.built.returncode == 0, text[-6000:]
    stale = {name for name in r.pending if name.startswith(("evaluate-", "evaluate_ablation-"))}
    assert stale and "synthetic_corpus" not in r.pending, r.pending
    # Built on the cluster: sbatch jobs from the clone, all completed; the evaluations ran
    # there (each rewrites its log) and Snakemake has nothing left to do.
    assert r.jobs and all(j["State"] == "COMPLETED" for j in r.jobs), r.jobs
    assert any("evaluate" in j["Comment"] for j in r.jobs), r.jobs
    assert "Nothing to be done" in r.dry, r.dry[-3000:]
    assert stale <= set(r.unrecorded), r.unrecorded
    # Recorded: dvc.lock now holds the new parameter and the cluster's files.
    assert r.recorded.strip() == "Data and pipelines are up to date.", r.recorded
    assert r.git_status == "", r.git_status
    lock = yaml.safe_load((r.clone / "dvc.lock").read_text())["stages"]
    section, key = DVC_CHANGE
    new = yaml.safe_load((r.clone / "config.yaml").read_text())[section][key]
    for name in stale:
        assert lock[name]["params"]["config.yaml"][section][key] == new, name
    # Pushed, and pulled back byte for byte in a fresh clone.
    assert "in sync" in r.pushed, r.pushed
    assert r.pulled_status.strip() == "Data and pipelines are up to date.", r.pulled_status
    metrics = sorted((r.clone / "results" / "metrics").glob("*.json"))
    assert metrics
    for path in metrics:
        assert (r.pulled / "results" / "metrics" / path.name).read_bytes() == path.read_bytes()
