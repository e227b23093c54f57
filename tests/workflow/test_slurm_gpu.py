"""The `sbatch` lines the GPU rules get from `workflow/profiles/slurm-gpu`, without a GPU cluster.

The real Snakefile runs with the real profile and the pinned SLURM executor plugin, but with
fake SLURM clients first on PATH (`sbatch` records its arguments and prints a job id, `squeue`
reports every job COMPLETED, `scontrol`/`sinfo`/`sacctmgr`/`sacct`/`scancel` answer what the plugin
asks). A "completed" job whose outputs are missing fails at once (`--latency-wait 0`); a FAILED
one would keep Snakemake in the plugin's growing sleep between status checks (11 s and more)
before it exits. Nothing runs: the inputs of the rules under test are empty placeholders (files, or
folders for directory outputs), so Snakemake submits exactly those rules' jobs, once, and stops.
Also checked: the GPU profile is the CPU profile plus GPU requests, nothing else.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import BIN, DIAGNOSIS, REPO, deep_update, tool_env, write_config

PROFILES = REPO / "workflow" / "profiles"
GPU_RULES = ("train_visual", "train_audio", "crossfit", "fusion")  # the rules that train
GPU_KEYS = {"gpu", "gpus", "gpu_model", "gres", "cpus_per_gpu", "tasks_per_gpu"}
ACCOUNT = "avemo"
SEEDS = [0, 1]
UPSTREAM = ("synthetic_corpus", "manifest", "frames", "audio")  # the data stages


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


# -- The two profiles --------------------------------------------------------------------------


def test_cpu_profile_asks_for_no_gpu() -> None:
    cfg = load("slurm")
    for rule, res in cfg["set-resources"].items():
        assert not GPU_KEYS & set(res), (rule, res)
        assert "gpu" not in str(res.get("slurm_extra", "")), (rule, res)
    assert not GPU_KEYS & set(cfg["default-resources"])


def test_gpu_profile_is_the_cpu_profile_plus_gpu_requests() -> None:
    cpu, gpu = load("slurm"), load("slurm-gpu")
    for rule in GPU_RULES:
        res = gpu["set-resources"][rule]
        assert res["gpu"] == 1 and res["cpus_per_gpu"] == "threads", (rule, res)
        assert "slurm_extra" not in res, (rule, res)  # the plugin's resources, not raw options
    for rule, res in gpu["set-resources"].items():
        if rule not in GPU_RULES:
            assert not GPU_KEYS & set(res), (rule, res)
    # Without GPU keys (and the cpus_per_task default that would override cpus_per_gpu), the
    # GPU profile is the CPU profile.
    stripped = json.loads(json.dumps(gpu))
    for res in stripped["set-resources"].values():
        for key in GPU_KEYS & set(res):
            del res[key]
    expected = json.loads(json.dumps(cpu))
    assert expected["default-resources"].pop("cpus_per_task") == "threads"
    assert stripped == expected


# -- Fake SLURM ---------------------------------------------------------------------------------

FAKE = r'''#!{python}
"""Fake SLURM client: records sbatch calls, answers the plugin's queries."""
import fcntl, json, os, sys
state = os.environ["FAKE_SLURM_STATE"]
name, args = os.path.basename(sys.argv[0]), sys.argv[1:]
lock = open(os.path.join(state, "lock"), "w")
fcntl.flock(lock, fcntl.LOCK_EX)  # the plugin submits from two threads at once
if name == "sbatch":
    counter = os.path.join(state, "next_id")
    jid = int(open(counter).read()) if os.path.exists(counter) else 1000
    open(counter, "w").write(str(jid + 1))
    array = next((a.split("=", 1)[1] for a in args if a.startswith("--array=")), None)
    with open(os.path.join(state, "sbatch.jsonl"), "a") as f:
        f.write(json.dumps({{"argv": args, "jobid": jid}}) + "\n")
    tasks = []
    if array:
        lo, hi = (int(x) for x in array.split("-"))
        tasks = [f"{{jid}}_{{i}}" for i in range(lo, hi + 1)]
    with open(os.path.join(state, "jobs"), "a") as f:
        f.write("".join(f"{{t}}\n" for t in tasks or [str(jid)]))
    print(jid)
elif name == "squeue":
    path = os.path.join(state, "jobs")
    for line in open(path).read().split() if os.path.exists(path) else []:
        print(f"{{line}}|COMPLETED")
elif name == "scontrol":
    print("MinJobAge               = 300 sec\nMaxArraySize            = 1001")
elif name == "sinfo":
    print("PARTITION\ndebug*")
elif name == "sacctmgr":
    print("{account}")
'''
FAKES = ("sbatch", "squeue", "scontrol", "sinfo", "sacctmgr", "sacct", "scancel")


def fake_slurm(folder: Path) -> Path:
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    text = FAKE.format(python=sys.executable, account=ACCOUNT)
    for name in FAKES:
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def outputs_by_rule(work: Path) -> dict[str, list[str]]:
    """Every output file of the workflow in `work`, by the rule that makes it (--summary)."""
    summary = subprocess.run(
        [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(work), "--summary"],
        capture_output=True, text=True, env=tool_env(), timeout=300, check=True,
    ).stdout  # fmt: skip
    outputs: dict[str, list[str]] = {}
    for line in summary.splitlines()[1:]:
        path, _, rule = line.split("\t")[:3]
        outputs.setdefault(rule, []).append(path)
    return outputs


def placeholders(work: Path, outputs: dict[str, list[str]], rules: tuple[str, ...]) -> int:
    """Empty outputs of `rules` (folders where the output has no suffix: directory outputs),
    all with one mtime, so that Snakemake finds them up to date. Returns how many."""
    made = []
    for target in (work / path for rule in rules for path in outputs.get(rule, ())):
        if target.suffix:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        else:
            target.mkdir(parents=True, exist_ok=True)
        made.append(target)
    for target in made:
        os.utime(target, (1_700_000_000, 1_700_000_000))
    return len(made)


def job_counts(work: Path, profile: Path, *args: str) -> Counter[str]:
    """Jobs per rule that Snakemake would run now (dry run with `args`)."""
    out = subprocess.run(
        [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(work),
         "--profile", str(profile), "-n", "--quiet", "rules", *args],
        capture_output=True, text=True, env=tool_env(), timeout=300, check=True,
    ).stdout  # fmt: skip
    counts: Counter[str] = Counter()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            counts[parts[0]] = int(parts[1])
    return counts


def profile_copy(folder: Path, name: str) -> Path:
    """The real profile with an account named (else the plugin guesses one through sacct)."""
    cfg = load(name)
    cfg["default-resources"]["slurm_account"] = ACCOUNT
    out = folder / name
    out.mkdir(parents=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def submit(work: Path, profile: Path, fakes: Path, *args: str) -> list[dict[str, Any]]:
    """Run Snakemake against the fake cluster; the sbatch calls it made (argv, job id)."""
    state = work / "fake_slurm"
    state.mkdir(exist_ok=True)
    env = {**tool_env(), "FAKE_SLURM_STATE": str(state)}
    env["PATH"] = f"{fakes}{os.pathsep}{env['PATH']}"
    env.pop("SLURM_JOB_ID", None)
    cmd = ["timeout", "-s", "KILL", "300", str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"),
           "-d", str(work), "--profile", str(profile), "--retries", "0", "--keep-going",
           "--slurm-init-seconds-before-status-checks", "1", "--latency-wait", "0",
           *args]  # fmt: skip
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=330)
    text = proc.stdout + proc.stderr
    assert proc.returncode not in (0, -9, 137), text[-4000:]  # every job "failed", none hung
    log = state / "sbatch.jsonl"
    assert log.exists(), text[-4000:]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    log.unlink()
    (state / "jobs").unlink(missing_ok=True)
    return calls


def option(argv: list[str], name: str) -> str | None:
    """The value of `--name=value`, `--name value` or `-n value` in argv (None if absent)."""
    for i, arg in enumerate(argv):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name:
            return argv[i + 1]
    return None


def rule_of(argv: list[str]) -> str:
    comment = option(argv, "--comment") or ""
    for rule in sorted(GPU_RULES, key=len, reverse=True):
        if comment == f"rule_{rule}" or comment.startswith(f"rule_{rule}_wildcards_"):
            return rule
    raise AssertionError(f"not a GPU rule's job: {comment}")


def target_jobs(argv: list[str]) -> list[str]:
    """The `--target-jobs` of every task of this submission (first task's from the wrapped
    command, the others' from the plugin's compressed --slurm-jobstep-array-execs map)."""
    wrap = option(argv, "--wrap")
    assert wrap is not None, argv
    words = shlex.split(wrap)
    found = [option(words, "--target-jobs")]
    payload = next((w.split("=", 1)[1] for w in words
                    if w.startswith("--slurm-jobstep-array-execs=")), None)  # fmt: skip
    if payload:
        execs = json.loads(base64.b64decode(payload))
        for key in sorted(execs, key=int):
            found.append(option(shlex.split(zlib.decompress(bytes.fromhex(execs[key])).decode()),
                                "--target-jobs"))  # fmt: skip
    return found


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict[str, Any]:
    """A working directory (tiny config, 2 seeds, the fusion diagnosis: cross-fitting too)
    whose data stages are placeholders, the two test profiles and the fake SLURM clients."""
    root = tmp_path_factory.mktemp("slurmgpu")
    work = root / "work"
    work.mkdir()
    write_config(work, deep_update({"train": {"seeds": SEEDS}}, DIAGNOSIS))
    outputs = outputs_by_rule(work)
    assert placeholders(work, outputs, UPSTREAM) >= 10
    return {"work": work, "outputs": outputs, "fakes": fake_slurm(root / "fake"),
            "gpu": profile_copy(root / "profiles", "slurm-gpu"),
            "cpu": profile_copy(root / "profiles", "slurm")}  # fmt: skip


def _check_common(argv: list[str], rule: str, res: dict[str, Any], mem_extra: range) -> None:
    assert option(argv, "-A") == ACCOUNT, argv
    assert option(argv, "-p") == "debug", argv  # the cluster's default partition
    assert option(argv, "-t") == str(res["runtime"]), argv
    assert int(option(argv, "--mem")) - res["mem_mb"] in mem_extra, argv
    assert not any(a.startswith("--gres") for a in argv), argv
    assert f"rule_{rule}" in option(argv, "--comment"), argv


@pytest.mark.slow
def test_stream_training_rules_are_gpu_array_jobs(project):
    """train_visual / train_audio: one `sbatch --array=1-N` per rule holding every model x
    seed, each task asking for one GPU and the rule's threads as CPUs per GPU."""
    work, gpu = project["work"], load("slurm-gpu")
    arrayed = tuple(gpu["slurm-array-jobs"].split(","))
    assert set(arrayed) == {"train_visual", "train_audio"}
    counts = job_counts(work, project["gpu"], "--until", *arrayed)
    assert all(counts[r] >= 2 for r in arrayed) and set(counts) == set(arrayed), counts

    calls = submit(work, project["gpu"], project["fakes"], "--until", *arrayed)
    by_rule = {rule_of(c["argv"]): c["argv"] for c in calls}
    assert len(calls) == len(by_rule) == len(arrayed), [c["argv"] for c in calls]
    for rule, argv in by_rule.items():
        res, threads = gpu["set-resources"][rule], gpu["set-threads"][rule]
        assert option(argv, "--array") == f"1-{counts[rule]}", argv
        assert option(argv, "--gpus") == "1", argv
        assert option(argv, "--cpus-per-gpu") == str(threads), argv
        assert option(argv, "--cpus-per-task") is None and option(argv, "--ntasks") is None, argv
        _check_common(argv, rule, res, mem_extra=range(1, 4))  # + the array payload's MB
        jobs = target_jobs(argv)
        assert len(jobs) == len(set(jobs)) == counts[rule], jobs
        assert all(j.startswith(f"{rule}:") for j in jobs), jobs
        # Every seed of every model is a task of this one array.
        seeds = Counter(j.split("seed=")[1].split(",")[0] for j in jobs)
        assert set(seeds) == {str(s) for s in SEEDS} and len(set(seeds.values())) == 1, jobs


@pytest.mark.slow
def test_crossfit_and_fusion_jobs_ask_for_one_gpu_each(project):
    """crossfit, then fusion (each once the rules before are placeholders): one job per model
    and seed (they become ready one after another on a cluster), one GPU each."""
    work, gpu = project["work"], load("slurm-gpu")
    before = {"crossfit": UPSTREAM + ("train_visual", "train_audio")}
    before["fusion"] = before["crossfit"] + ("crossfit",)
    try:
        for rule in ("crossfit", "fusion"):
            placeholders(work, project["outputs"], before[rule])
            counts = job_counts(work, project["gpu"], "--until", rule)
            assert set(counts) == {rule} and counts[rule] >= 2, counts
            calls = submit(work, project["gpu"], project["fakes"], "--until", rule)
            assert len(calls) == counts[rule], len(calls)
            res, threads = gpu["set-resources"][rule], gpu["set-threads"][rule]
            for call in calls:
                argv = call["argv"]
                assert rule_of(argv) == rule
                assert option(argv, "--array") is None, argv
                assert option(argv, "--gpus") == "1", argv
                assert option(argv, "--cpus-per-gpu") == str(threads), argv
                assert option(argv, "--cpus-per-task") is None, argv
                _check_common(argv, rule, res, mem_extra=range(0, 1))
                assert len(target_jobs(argv)) == 1
    finally:  # back to placeholders of the data stages only
        for folder in ("models", "crossfit", "fusion"):
            shutil.rmtree(work / "results" / folder, ignore_errors=True)


@pytest.mark.slow
def test_cpu_profile_submits_the_same_rules_without_gpus(project):
    work, cpu = project["work"], load("slurm")
    # Its jobs: one per train_audio output summary (one per model and seed).
    n_jobs = sum(p.endswith("summary.json") for p in project["outputs"]["train_audio"])
    calls = submit(work, project["cpu"], project["fakes"], "--until", "train_audio")
    assert len(calls) == 1, [c["argv"] for c in calls]
    argv = calls[0]["argv"]
    assert rule_of(argv) == "train_audio"
    assert option(argv, "--array") == f"1-{n_jobs}", argv
    assert not any(a.startswith(("--gpus", "--gres", "--cpus-per-gpu")) for a in argv), argv
    assert option(argv, "--cpus-per-task") == str(cpu["set-threads"]["train_audio"]), argv
    assert option(argv, "--ntasks") == "1", argv
    _check_common(argv, "train_audio", cpu["set-resources"]["train_audio"], range(1, 4))
