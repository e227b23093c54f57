"""DVC over the Snakemake workflow (dvc.yaml), end to end on the tiny preset.

One throw-away copy of the project (git repository + local DVC remote beside it) is built once
with `dvc repro` and pushed; every slow test then works in that repository or in its own fresh
clone, so the tests do not depend on each other's order.

What runs is read from DVC's own report ("Running stage ...") and from Snakemake's per-job log
files (every job rewrites its log), never assumed.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from conftest import BIN, REPO, early_dependency, early_result, start_early, tool_env
from dvc_helpers import (
    cache_file,
    copy_project,
    dvc,
    expected_stages,
    git,
    job_counts,
    make_project,
    resolved_stages,
    run,
    set_identity,
    snakemake,
    snapshot,
    stages_ran,
    stages_skipped,
)

from avemo import params as P

slow = pytest.mark.slow

# The command that, after DVC has restored artefacts, records them as up to date for Snakemake
# (see README "DVC"): Snakemake 9 compares mtimes whatever `rerun-triggers` says, and DVC does
# not restore mtimes. Guarded by `dvc status`, so only what DVC vouches for is adopted.
ADOPT = ("--touch", "--forceall", "--quiet")


# ---------------------------------------------------------------------------------------------
# Fast checks: dvc.yaml is generated from the Snakemake DAG (avemo.dvcgen); nothing is listed twice.


@pytest.fixture(scope="module")
def generated() -> str:
    from avemo.dvcgen import generate

    return generate(REPO)


def test_committed_dvc_yaml_is_a_fresh_generation(generated: str) -> None:
    """CI's check: `make dvc-yaml && git diff --exit-code dvc.yaml`."""
    assert (REPO / "dvc.yaml").read_text() == generated, "run `make dvc-yaml` and commit it"


def test_dvc_yaml_does_not_depend_on_the_seed_list(generated: str, tmp_path: Path) -> None:
    """Per-seed stages are a foreach over train.seeds: another seed list (an experiment's
    `-S config.yaml:train.seeds=...`) needs no new dvc.yaml."""
    copy_project(tmp_path)
    cfg = _config()
    cfg["train"]["seeds"] = [5, 3]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    run(tmp_path, sys.executable, "-m", "avemo.dvcgen")  # the copy's own package (PYTHONPATH)
    assert (tmp_path / "dvc.yaml").read_text() == generated


@pytest.fixture(scope="module")
def stages() -> dict[str, dict[str, Any]]:
    return resolved_stages(REPO)


def _config() -> dict[str, Any]:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _leaves(d: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for k, v in d.items():
        out += _leaves(v, (*prefix, k)) if isinstance(v, dict) and v else [(*prefix, k)]
    return out


def _perturbed(cfg: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    new = copy.deepcopy(cfg)
    node = new
    for k in path[:-1]:
        node = node[k]
    v = node[path[-1]]
    if isinstance(v, bool):
        node[path[-1]] = not v
    elif isinstance(v, int | float):
        node[path[-1]] = v + 1
    elif isinstance(v, list):
        node[path[-1]] = [*v, "x"]
    else:
        node[path[-1]] = f"{v}_x"
    return new


def test_every_stage_runs_exactly_one_snakemake_job(stages: dict[str, dict[str, Any]]) -> None:
    for name, st in stages.items():
        rule = name.split("-")[0]
        assert st["cmd"].startswith("snakemake --profile workflow/profiles/default "), name
        assert f" --allowed-rules {rule} -- results/" in st["cmd"], (name, st["cmd"])


def test_stages_are_the_jobs_of_the_dag(stages: dict[str, dict[str, Any]]) -> None:
    """One stage per job of `snakemake -n` (the rule counts agree; a seed's stage of a
    `foreach` over train.seeds counts once per seed)."""
    import collections

    dry = subprocess.run([str(BIN / "snakemake"), "-n", "--forceall", "--quiet", "rules"],
                         cwd=REPO, capture_output=True, text=True, env=tool_env())
    counts = job_counts(dry.stdout + dry.stderr)
    counts.pop("all", None)
    assert collections.Counter(n.split("-")[0] for n in stages) == counts
    # ... and the default target asks for every output of exactly these jobs.
    from avemo.config import load_config

    jobs = P.job_wildcards(load_config(REPO / "config.yaml"))
    assert {rule: len(w) for rule, w in jobs.items() if w} == counts


def test_code_deps_are_the_modules_the_job_imports(stages: dict[str, dict[str, Any]]) -> None:
    """DVC reruns a stage when its code deps change, Snakemake when the rule's code digest
    does: both come from avemo.codedeps (the import graph)."""
    from avemo import codedeps

    for name, st in stages.items():
        rule, *wild = _parts(name)
        src = [d for d in st["deps"] if d.startswith("src/")]
        covered = {f for d in src for f in ([REPO / d] if d.endswith(".py")
                                           else (REPO / d).rglob("*.py"))}
        command = {"synthetic_corpus": "synthetic", "download_meld": "download",
                   "late_fusion": "late", "evaluate_ablation": "evaluate"}.get(rule, rule)
        command = "train" if rule.startswith("train_") else command
        model = wild[0] if rule in ("train_visual", "train_audio", "crossfit", "fusion",
                                    "late_fusion", "baseline") else None
        if model and rule == "fusion":
            model = model.removesuffix("_single_task")
        assert covered == set(codedeps.files(command, model)), name


def test_dvc_params_cover_every_key_the_job_reads(stages: dict[str, dict[str, Any]]) -> None:
    """Any config key that changes a job's parameters must be a DVC param of its stage, or
    DVC would call a stage up to date that Snakemake would rebuild."""
    from avemo.config import validate_config

    cfg = _config()
    leaves = [p for p in _leaves(cfg) if p != ("results_dir",)]
    base_cfg = validate_config(copy.deepcopy(cfg))
    variants = {}
    for leaf in leaves:
        try:
            variants[leaf] = validate_config(_perturbed(cfg, leaf))
        except Exception:  # noqa: BLE001 - an invalid config stops before any job runs
            continue
    for name, st in stages.items():
        declared = st["params"]
        if declared is None:  # the whole file
            continue
        rule, *wild = _parts(name)
        if rule not in P.job_param_rules():
            continue
        cmd_target = st["cmd"].split(" -- ")[1]
        wildcards = _wildcards(rule, wild, cmd_target)
        base = P.job_params(rule, base_cfg, wildcards)
        for leaf, changed_cfg in variants.items():
            if P.job_params(rule, changed_cfg, wildcards) != base:
                assert any(leaf[: len(k)] == k for k in declared), (name, ".".join(leaf))


def _parts(name: str) -> list[str]:
    """A DVC stage name as rule and wildcards (a foreach stage's seed follows its ``@``)."""
    return name.replace("@", "-").split("-")


def _wildcards(rule: str, wild: list[str], target: str) -> dict[str, str]:
    """The job's wildcards, read back from its stage name and target."""
    if rule == "frames":
        return {"fset": wild[0], "split": wild[1]}
    if rule == "audio":
        return {"split": wild[0]}
    model = target.split("/")[2] if rule in ("train_visual", "train_audio", "crossfit", "fusion",
                                             "late_fusion") else ""
    if rule in ("evaluate", "evaluate_ablation"):
        model = target.split("/")[-1].removesuffix(".json")
    return {"model": model, "name": model, "seed": wild[-1] if wild else "0"}


def test_remote_is_a_relative_default() -> None:
    text = (REPO / ".dvc" / "config").read_text()
    assert "remote = local" in text
    assert "url = ../../avemo-dvc-remote" in text


# ---------------------------------------------------------------------------------------------
# End to end.


class Built:
    def __init__(self, root: Path, repo: Path, repro_log: str, seconds: float) -> None:
        self.root, self.repo, self.repro_log, self.seconds = root, repo, repro_log, seconds
        self.stages = expected_stages(repo)

    def clone(self, name: str) -> Path:
        """A fresh clone beside the repository (so the committed relative remote resolves),
        with the artefacts pulled and nothing else: no .snakemake/, no logs."""
        path = self.root / name
        git(self.root, "clone", "-q", str(self.repo), str(path))
        set_identity(path)
        dvc(path, "pull")
        return path


def _build(root: Path) -> Built:
    repo = make_project(root / "repo")
    t0 = time.monotonic()
    proc = dvc(repo, "repro")
    seconds = time.monotonic() - t0
    git(repo, "add", "dvc.lock")
    git(repo, "commit", "-q", "-m", "dvc repro")
    dvc(repo, "push")
    return Built(root, repo, proc.stdout + proc.stderr, seconds)


# `dvc repro` from nothing is the slowest build here: it starts at collection, beside the unit
# tests and the shared tiny run (tests/conftest.py `start_early`).
start_early("built", _build)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return early_result("built", tmp_path_factory)


# What an audio.window_s change must (and may) rerun; everything else must be skipped.
MUST_RERUN = {
    "audio-train",
    "audio-dev",
    "audio-test",
    "train_audio-audio_mlp@0",
    "fusion-concat_aligned@0",
    "fusion-concat_aligned_single_task@0",
    "report",
}
# These rerun when their inputs' bytes change (they do: training logs record timings); every
# evaluation reads audio/test for its with / without audio subsets.
MAY_RERUN = {
    "qc",
    "compare",
    "evaluate-audio_mlp",
    "evaluate-video_branch",
    "evaluate-majority",
    "evaluate-prior",
    "late_fusion-late@0",
    "evaluate-concat_aligned",
    "evaluate-concat_aligned_single_task",
    "evaluate-late",
    "evaluate_ablation-concat_aligned_no_audio",
    "evaluate_ablation-concat_aligned_no_video",
}
LOGS = {  # DVC stage -> the Snakemake job's log name
    "audio-train": "audio_train",
    "audio-dev": "audio_dev",
    "audio-test": "audio_test",
    "qc": "qc",
    "train_audio-audio_mlp@0": "train_audio_mlp_seed0",
    "fusion-concat_aligned@0": "fusion_concat_aligned_seed0",
    "fusion-concat_aligned_single_task@0": "fusion_concat_aligned@single_task_seed0",
    "late_fusion-late@0": "late_fusion_late_seed0",
    "evaluate-audio_mlp": "evaluate_audio_mlp",
    "evaluate-video_branch": "evaluate_video_branch",
    "evaluate-majority": "evaluate_majority",
    "evaluate-prior": "evaluate_prior",
    "compare": "compare",
    "evaluate-concat_aligned": "evaluate_concat_aligned",
    "evaluate-concat_aligned_single_task": "evaluate_concat_aligned@single_task",
    "evaluate-late": "evaluate_late",
    "evaluate_ablation-concat_aligned_no_audio": "evaluate_concat_aligned@no_audio",
    "evaluate_ablation-concat_aligned_no_video": "evaluate_concat_aligned@no_video",
    "report": "report",
}


@slow
def test_repro_builds_every_stage_and_git_stays_clean(built: Built) -> None:
    assert sorted(stages_ran(built.repro_log)) == sorted(built.stages), built.repro_log[-3000:]
    assert "train_visual-video_branch@0" in built.stages and "late_fusion-late@0" in built.stages
    lock = yaml.safe_load((built.repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(built.stages)
    assert lock["stages"]["audio-train"]["params"]["config.yaml"]["audio.window_s"] == 1.0
    # DVC added no .gitignore entries of its own (results/ is ignored already) and left
    # nothing untracked: the commit above holds the whole state.
    assert git(built.repo, "status", "--porcelain").stdout == ""
    assert not list(built.repo.glob("results/**/.gitignore"))
    # Everything was pushed to the relative default remote beside the repository.
    assert "in sync" in dvc(built.repo, "status", "-c").stdout
    assert any((built.root / "avemo-dvc-remote" / "files" / "md5").iterdir())
    metrics = json.loads(dvc(built.repo, "metrics", "show", "--json").stdout)
    (workspace,) = metrics.values()  # keyed by revision; the workspace's key is ""
    files = workspace["data"]
    assert {"results/metrics/video_branch.json", "results/metrics/late.json"} <= set(files)


@slow
def test_second_repro_does_nothing(built: Built) -> None:
    before = snapshot(built.repo / "results")
    proc = dvc(built.repo, "repro")
    assert stages_ran(proc.stdout) == []
    assert sorted(stages_skipped(proc.stdout)) == sorted(built.stages)
    assert "Data and pipelines are up to date." in proc.stdout
    # ... and Snakemake, which built every artefact here, agrees.
    dry = snakemake(built.repo, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr
    assert snapshot(built.repo / "results") == before


@slow
def test_param_change_flags_only_the_stages_that_read_it(built: Built) -> None:
    cfg_path = built.repo / "config.yaml"
    original = cfg_path.read_text()
    cfg = yaml.safe_load(original)
    cfg["audio"]["window_s"] = 0.5
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    try:
        status = json.loads(dvc(built.repo, "status", "--json").stdout)
        # DVC: the stages whose own params changed (the rest follow once outputs change).
        assert set(status) == {"audio-train", "audio-dev", "audio-test", "report"}, status
        # Snakemake (with its metadata here): the audio jobs, the audio model, the fusion
        # models and what reads them; no corpus, manifest, frames, video model or baseline.
        dry = snakemake(built.repo, "-n", "--quiet", "rules")
        counts = job_counts(dry.stdout + dry.stderr)
        # Every evaluate job reads audio/test (clips with / without usable audio), so all seven
        # rerun, and the paired comparisons after them.
        want = {"audio": 3, "qc": 1, "train_audio": 1, "fusion": 2, "late_fusion": 1}
        want |= {"evaluate": 7, "evaluate_ablation": 2, "compare": 1, "report": 1, "all": 1}
        assert counts == want, dry.stdout + dry.stderr
    finally:
        cfg_path.write_text(original)


def _importers(repo: Path, module: str) -> set[str]:
    """The stages whose code deps (files or folders) cover ``module``."""
    return {name for name, st in resolved_stages(repo).items()
            if any(module == d or module.startswith(d + "/") for d in st["deps"])}


@slow
def test_code_change_flags_only_the_stages_that_import_it(built: Built) -> None:
    """An edit to the metrics module reruns exactly the stages whose jobs import it (from the
    import graph), in DVC and Snakemake alike; no extraction, no per-stream training."""
    rel = "src/avemo/evaluation/metrics.py"
    src = built.repo / rel
    original = src.read_text()
    src.write_text(original + "\n# an edit\n")
    try:
        expected = _importers(built.repo, rel)
        assert {"compare", "report", "late_fusion-late@0"} <= expected
        # Early fusion trains with the engine's own F1 and never imports late fusion.
        assert "fusion-concat_aligned@0" not in expected
        status = json.loads(dvc(built.repo, "status", "--json").stdout)
        assert set(status) == expected
        dry = snakemake(built.repo, "-n", "--quiet", "rules")
        counts = job_counts(dry.stdout + dry.stderr)
        assert {n.split("-")[0] for n in expected} <= set(counts), counts
        assert not {"synthetic_corpus", "manifest", "frames", "audio", "train_visual",
                    "train_audio"} & set(counts), counts
    finally:
        src.write_text(original)


@slow
def test_code_no_stage_imports_reruns_nothing(built: Built) -> None:
    rel = "src/avemo/download.py"  # the MELD download: not run on the synthetic corpus
    src = built.repo / rel
    original = src.read_text()
    src.write_text(original + "\n# an edit\n")
    try:
        assert _importers(built.repo, rel) == set()
        assert dvc(built.repo, "status").stdout.strip() == "Data and pipelines are up to date."
        dry = snakemake(built.repo, "-n")
        assert "Nothing to be done" in dry.stdout + dry.stderr
    finally:
        src.write_text(original)


@slow
def test_pulled_clone_rebuilds_nothing(built: Built) -> None:
    clone = built.clone("clone_rebuild")
    assert not (clone / ".snakemake").exists() and not (clone / "results" / "logs").exists()
    assert dvc(clone, "status").stdout.strip() == "Data and pipelines are up to date."
    pulled = snapshot(clone / "results")
    # Every artefact came back (logs, benchmarks, Snakemake's timestamp markers and the
    # results_dir lock file are not artefacts and are not versioned).
    assert set(pulled) == {
        k
        for k in snapshot(built.repo / "results")
        if not k.startswith(("logs/", "benchmarks/")) and not k.endswith(".snakemake_timestamp")
        and k != ".avemo.lock"  # the results_dir lock of the run that built them
    }

    # `make pull` = dvc pull + this: DVC vouches for the artefacts, Snakemake records them.
    assert dvc(clone, "status", "-q", check=False).returncode == 0
    snakemake(clone, *ADOPT)
    after_adopt = snapshot(clone / "results")
    assert {k: v[0] for k, v in pulled.items()} == {k: after_adopt[k][0] for k in pulled}, (
        "adopting must not change any artefact's content"
    )

    # The one rebuild command (what `make demo` runs): nothing may run.
    proc = snakemake(clone)
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stderr[-3000:]
    assert snapshot(clone / "results") == after_adopt  # no output, log or benchmark rewritten
    assert dvc(clone, "status").stdout.strip() == "Data and pipelines are up to date."


class ExpRun(NamedTuple):
    clone: Path
    log: str  # dvc exp run's output
    before: dict[str, Any]  # snapshot of results/ before and after
    after: dict[str, Any]
    dry: str  # snakemake -n afterwards
    rows: list[dict[str, str]]  # dvc exp show --csv


def _exp_run(_: Path) -> ExpRun:
    """The experiment of the test below, run in the background as soon as `built` is ready
    (tests/conftest.py `start_early`): it waits on one stage after another and would leave a
    core idle if it ran alone."""
    built = early_dependency("built")
    clone = built.clone("clone_exp")
    snakemake(clone, *ADOPT)
    before = snapshot(clone / "results")
    proc = dvc(clone, "exp", "run", "-S", "config.yaml:audio.window_s=0.5")
    after = snapshot(clone / "results")
    dry = snakemake(clone, "-n")
    rows = list(csv.DictReader(io.StringIO(dvc(clone, "exp", "show", "--csv").stdout)))
    return ExpRun(clone, proc.stdout + proc.stderr, before, after, dry.stdout + dry.stderr, rows)


start_early("exp_run", _exp_run, after=("built",))


@pytest.fixture(scope="module")
def exp_run(tmp_path_factory: pytest.TempPathFactory) -> ExpRun:
    return early_result("exp_run", tmp_path_factory)


@slow
def test_experiment_reruns_only_downstream_stages_and_is_listed(built: Built,
                                                                 exp_run: ExpRun) -> None:
    log, before, after = exp_run.log, exp_run.before, exp_run.after
    ran, skipped = set(stages_ran(log)), set(stages_skipped(log))
    assert MUST_RERUN <= ran <= MUST_RERUN | MAY_RERUN, log[-3000:]
    assert skipped == set(built.stages) - ran, log[-3000:]

    # Snakemake ran exactly those jobs (each rewrites its log), and every artefact upstream or
    # beside them is untouched, content and mtime.
    rewritten = {k for k in before if k.startswith("logs/") and after[k] != before[k]}
    assert rewritten == {f"logs/{LOGS[s]}.log" for s in ran}
    # (Every metrics file is rescored: evaluation reads audio/test for its audio subsets.)
    untouched = ("data/", "manifest/", "frames/", "models/video_branch/", "models/majority/")
    for k in before:
        if k.startswith(untouched):
            assert after[k] == before[k], k
    assert any(after[k] != before[k] for k in before if k.startswith("audio/train/"))
    # Snakemake's bookkeeping followed: no rebuild pending after the DVC-driven run.
    assert "Nothing to be done" in exp_run.dry

    rows = exp_run.rows
    baseline = next(r for r in rows if r["rev"] == "main")
    exps = [r for r in rows if r["Experiment"]]
    assert len(exps) == 1
    assert float(baseline["audio.window_s"]) == 1.0 and float(exps[0]["audio.window_s"]) == 0.5
    metric = "results/metrics/audio_mlp.json:aggregate.test.emotion.weighted_f1.mean"
    for row in (baseline, exps[0]):
        assert 0.0 <= float(row[metric]) <= 1.0, row[metric]


@slow
def test_corruption_is_reported_and_recovered(built: Built) -> None:
    clone = built.clone("clone_corrupt")
    out = "results/frames/study/train"
    shard = clone / out / "shard-00000.npy"
    good = shard.read_bytes()

    # 1. A damaged artefact in the workspace: DVC reports it, Snakemake cannot (no hashes);
    #    `dvc repro` restores it from the cache without re-extracting anything.
    shard.chmod(0o644)
    shard.write_bytes(good[:-16] + bytes(16))
    status = json.loads(dvc(clone, "status", "--json").stdout)
    assert {"changed outs": {out: "modified"}} in status["frames-study-train"]
    proc = dvc(clone, "repro")
    assert "Stage 'frames-study-train' is cached - skipping run" in proc.stdout
    assert stages_ran(proc.stdout) == [] and shard.read_bytes() == good

    # 2. A damaged object in the local cache: DVC notices (the hash no longer matches) and
    #    `dvc pull` fetches it again from the remote.
    obj = cache_file(clone, out, "shard-00000.npy")
    obj.chmod(0o644)
    obj.write_bytes(b"bit rot")
    status = json.loads(dvc(clone, "status", "--json").stdout)
    assert {"changed outs": {out: "not in cache"}} in status["frames-study-train"]
    remote = dvc(clone, "status", "-c").stdout
    assert "deleted:" in remote and f"{out}/shard-00000.npy" in remote
    dvc(clone, "pull")
    assert obj.read_bytes() == good and shard.read_bytes() == good
    assert dvc(clone, "status").stdout.strip() == "Data and pipelines are up to date."
    assert "in sync" in dvc(clone, "status", "-c").stdout

    # 3. Back to Snakemake: after adopting, the rebuild command has nothing to do.
    snakemake(clone, *ADOPT)
    proc = snakemake(clone)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_learning_curve_plots_cover_every_trained_model(repo) -> None:
    cfg, pipeline = _config(), yaml.safe_load((repo / "dvc.yaml").read_text())
    curves = next(p["dev_emotion_weighted_f1"] for p in pipeline["plots"]
                  if "dev_emotion_weighted_f1" in p)
    plotted = {f.split("/")[2] for f in curves["y"]}
    assert plotted == set(P.configured(cfg, "visual", "audio")) | set(P.fusion_runs(cfg))


@slow
def test_plots_show_confusion_and_learning_curves(built: Built) -> None:
    shown = json.loads(dvc(built.repo, "plots", "show", "--json").stdout)
    assert not shown.get("errors"), shown["errors"]  # every declared plot file exists
    names = " ".join(shown["data"])
    assert "dev_emotion_weighted_f1" in names and ".confusion.csv" in names, names


# The README's sweep (section "Sweeps"): one queued experiment per seed, run by a queue worker,
# each in DVC's temporary copy of the repository.
SWEEP_SEEDS = ("1", "2")
SWEEP_METRIC = "results/metrics/audio_mlp.json:aggregate.test.emotion.weighted_f1.mean"


class Sweep(NamedTuple):
    clone: Path
    queued: str  # dvc exp run --queue's output
    status: str  # the last dvc queue status
    before: dict[str, Any]  # snapshot of the workspace's results/ before and after
    after: dict[str, Any]


def _sweep(_: Path) -> Sweep:
    """The README's sweep, run in the background as soon as `built` is ready (see _exp_run)."""
    built = early_dependency("built")
    clone = built.clone("clone_sweep")
    before = snapshot(clone / "results")
    grid = ",".join(f"[{s}]" for s in SWEEP_SEEDS)
    queued = dvc(clone, "exp", "run", "--queue", "-S", f"config.yaml:train.seeds={grid}")
    dvc(clone, "queue", "start", "-j", "2")
    status = _wait_for_queue(clone, len(SWEEP_SEEDS), timeout=1800)
    return Sweep(clone, queued.stdout, status, before, snapshot(clone / "results"))


# A finished experiment's git ref (refs/exps/<baseline commit, split 2/38>/<name>).
_EXP_REF = re.compile(r"^refs/exps/[0-9a-f]{2}/[0-9a-f]{38}/[^/\s]+$", flags=re.M)


def _wait_for_queue(clone: Path, n: int, timeout: float) -> str:
    """The last `dvc queue status` once nothing is queued or running (or at `timeout`).
    Finished experiments are counted from their git refs (a git call costs milliseconds);
    `dvc queue status` (a DVC start: about a second of CPU while the workers run) is asked
    when all `n` are there, and every 30 s to notice one that failed (it leaves no ref)."""
    deadline = time.monotonic() + timeout
    asked = time.monotonic()
    while True:
        refs = git(clone, "for-each-ref", "--format=%(refname)", "refs/exps").stdout
        now = time.monotonic()
        if len(_EXP_REF.findall(refs)) >= n or now - asked >= 30 or now > deadline:
            status = dvc(clone, "queue", "status").stdout
            asked = time.monotonic()
            if not re.search(r"\b(Queued|Running)\b", status) or now > deadline:
                return status
        time.sleep(2)


start_early("sweep", _sweep, after=("built",))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    return early_result("sweep", tmp_path_factory)


@slow
def test_queued_seed_sweep_runs_in_temporary_copies(sweep: Sweep) -> None:
    clone, status = sweep.clone, sweep.status
    assert sweep.queued.count("Queued experiment") == len(SWEEP_SEEDS), sweep.queued
    assert not re.search(r"\b(Queued|Running)\b", status), status  # finished in time
    assert status.count("Success") == len(SWEEP_SEEDS), status

    rows = list(csv.DictReader(io.StringIO(dvc(clone, "exp", "show", "--csv").stdout)))
    exps = {r["Experiment"]: r for r in rows if r["Experiment"]}
    assert len(exps) == len(SWEEP_SEEDS) and {r["State"] for r in exps.values()} == {"Success"}
    by_seed = {}
    for name, row in exps.items():
        (seed,) = yaml.safe_load(git(clone, "show", f"{row['rev']}:config.yaml").stdout
                                 )["train"]["seeds"]
        # Its seed's stages ran (the foreach over train.seeds), and DVCLive's summary of each
        # of its training runs is a metric column.
        lock = yaml.safe_load(git(clone, "show", f"{row['rev']}:dvc.lock").stdout)["stages"]
        assert {f"train_visual-video_branch@{seed}", f"fusion-concat_aligned@{seed}",
                "report"} <= set(lock), sorted(lock)
        assert row[f"results/models/audio_mlp/seed{seed}/live/metrics.json:step"] == "1"
        by_seed[str(seed)] = name
    assert sorted(by_seed) == sorted(SWEEP_SEEDS)
    scores = {float(r[SWEEP_METRIC]) for r in exps.values()}
    assert all(0.0 <= s <= 1.0 for s in scores) and len(scores) == len(SWEEP_SEEDS), exps

    names = [by_seed[s] for s in SWEEP_SEEDS]
    plots = json.loads(dvc(clone, "plots", "diff", *names, "--json").stdout)
    assert not plots.get("errors"), plots["errors"]
    confusion = next(v for k, v in plots["data"].items() if k.endswith("audio_mlp.confusion.csv"))
    assert sorted(confusion[0]["revisions"]) == sorted(names)
    # The experiments ran in temporary copies: the workspace's results are untouched.
    assert sweep.after == sweep.before
