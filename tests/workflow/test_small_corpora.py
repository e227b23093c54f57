"""Real `snakemake` runs on small or broken MELD-format folders, and after `kill -9`.

A run either finishes with a report whose flags say what was skipped and why, or stops at the
manifest with one line naming the CSV or the clip folder. The folders are the tiny synthetic
corpus (MELD's layout and CSV format) with clips or rows taken away; the runs train two models
for one seed, so that only what small data changes is exercised.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import (
    BIN,
    REPO,
    early_dependency,
    early_result,
    run_cmd,
    snakemake,
    start_early,
    tool_env,
    write_config,
)

from avemo import params as P
from avemo.config import load_config
from avemo.labels import LABEL_FILES, SPLIT_DIRS

pytestmark = pytest.mark.slow


def output(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout + proc.stderr


def _corpus(work: Path) -> Path:
    """The tiny synthetic corpus: MELD's folders and label CSVs."""
    cfg = load_config(write_config(work))
    root = work / "MELD.Raw"
    proc = run_cmd([str(BIN / "avemo"), "synthetic", "--root", str(root), "--workers", "2",
                    "--params", json.dumps(P.synthetic(cfg))], timeout=600, env=tool_env())
    assert proc.returncode == 0, output(proc)[-3000:]
    return root


start_early("small_corpus", _corpus)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic corpus, generated once (at collection, see `start_early`)."""
    return early_result("small_corpus", tmp_path_factory)


def _clip_names(root: Path, split: str) -> list[str]:
    labels = pd.read_csv(root / LABEL_FILES[split])
    return [f"dia{d}_utt{u}" for d, u in zip(labels["Dialogue_ID"], labels["Utterance_ID"],
                                             strict=True)]


def _keep_clips(root: Path, split: str, n: int) -> list[str]:
    """Remove all but the first ``n`` intact clips of ``split`` (no planted defect, with audio;
    their label rows stay: the rest become missing-clip QC rows, as in a partly extracted MELD
    folder)."""
    truth = pd.read_csv(root / "synthetic_truth.csv", keep_default_na=False)
    truth = truth[truth["split"] == split].set_index("clip_name")
    folder = root / SPLIT_DIRS[split]
    kept: list[str] = []
    for name in _clip_names(root, split):
        intact = (name in truth.index and not truth.at[name, "defect"]
                  and str(truth.at[name, "has_audio"]) == "True")
        if intact and len(kept) < n:
            kept.append(name)
        else:
            for clip in folder.glob(f"*{name}.mp4"):
                clip.unlink()
    assert len(kept) == n
    return kept


def _meld_workdir(work: Path, root: Path, overrides: dict | None = None) -> Path:
    """A working directory whose config runs the pipeline on the MELD-format folder ``root``:
    two stream models (late fusion's), late fusion, one seed."""
    path = write_config(work, {"dataset": "meld", "meld": {"root": str(root), "download": False},
                               **(overrides or {})})
    cfg = yaml.safe_load(path.read_text())
    cfg["train"]["models"] = {m: v for m, v in cfg["train"]["models"].items()
                              if m in ("video_branch", "audio_mlp")}
    cfg["fusion"]["models"] = {m: v for m, v in cfg["fusion"]["models"].items()
                               if m in ("late", "late_stacking")}
    cfg["fusion"]["single_task"] = None
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return work


@pytest.mark.parametrize("fault", ["header_only", "no_clip"])
def test_empty_test_split_stops_at_the_manifest_with_one_line(corpus, tmp_path, fault):
    root = tmp_path / "MELD.Raw"
    shutil.copytree(corpus, root)
    csv = root / LABEL_FILES["test"]
    if fault == "header_only":
        csv.write_text(csv.read_text(encoding="utf-8").splitlines()[0] + "\n")
        want = f"avemo manifest: error: {csv}: no rows (only a header), so split 'test' has no"
    else:
        shutil.rmtree(root / SPLIT_DIRS["test"])
        (root / SPLIT_DIRS["test"]).mkdir()
        want = (f"avemo manifest: error: {root / SPLIT_DIRS['test']}: no usable clip for split "
                f"'test': none of the ")
    proc = snakemake(_meld_workdir(tmp_path, root), "--cores", "2")
    text = output(proc)
    assert proc.returncode != 0, text[-3000:]
    assert want in text, text[-3000:]
    line = next(ln for ln in text.splitlines() if "avemo manifest: error:" in ln)
    assert "meld.root" in line, line
    assert "Traceback" not in text and not re.search(r'^\s*File "', text, re.M), text[-3000:]
    # Stopped at once: no stage after the manifest ran.
    results = tmp_path / "results"
    assert not (results / "frames").exists() and not (results / "models").exists()


def _small_run(work: Path) -> Path:
    """One dev clip, one test clip, no train clip of fear: the whole run (two stream models,
    late fusion, one seed). Starts at collection, once the corpus is there."""
    root = work / "MELD.Raw"
    shutil.copytree(early_dependency("small_corpus"), root)
    _keep_clips(root, "dev", 1)
    _keep_clips(root, "test", 1)
    train = pd.read_csv(root / LABEL_FILES["train"])
    assert (train["Emotion"] == "fear").any()  # the corpus has some: taking them away counts
    train[train["Emotion"] != "fear"].to_csv(root / LABEL_FILES["train"], index=False)
    proc = snakemake(_meld_workdir(work, root), "--cores", "2", timeout=1500)
    assert proc.returncode == 0, output(proc)[-6000:]
    return work


start_early("small_run", _small_run, after=("small_corpus",))


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return early_result("small_run", tmp_path_factory)


def test_small_corpus_ends_with_a_report_that_says_what_was_skipped(small_run):
    """The run finishes, and the report's data section opens with the flags."""
    report = small_run / "results" / "report"
    flags = pd.read_csv(report / "tables" / "flags.csv")
    steps = flags["step"].tolist()
    assert {"late fusion (weighted)", "late fusion (stacking)", "selection on dev",
            "statistics"} <= set(steps), flags
    fear = flags[flags["reason"].str.startswith("never predicted: fear has 0 train clips")]
    assert len(fear) == 1 and fear["step"].iloc[0] == "emotion labels", flags
    late = flags[flags["step"] == "late fusion (weighted)"]["reason"].iloc[0]
    assert "dev has 1 utterance(s)" in late and "plain average" in late
    md = (report / "report.md").read_text()
    data = md[md.index("## 1. Data"):]
    assert data.index("What was skipped and why") < data.index("Utterances per split"), data[:800]
    assert "never predicted: fear has 0 train clips" in data[:3000]


# Loaded by every Python process of the run (PYTHONPATH): the manifest job's parquet writes find
# the disk full, as they would on a full disk; Snakemake and other jobs are left alone.
FULL_DISK_AT_MANIFEST = """
import errno, os, sys
if os.path.basename(sys.argv[0]) == "avemo" and sys.argv[1:2] == ["manifest"]:
    import pandas as pd

    def _full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    pd.DataFrame.to_parquet = _full
"""


def test_full_disk_at_a_stage_is_one_line(corpus, tmp_path):
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(FULL_DISK_AT_MANIFEST)
    (tmp_path / "work").mkdir()
    work = _meld_workdir(tmp_path / "work", corpus)
    env = tool_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(inject), env.get("PYTHONPATH")]))
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(work),
           "--profile", str(REPO / "workflow" / "profiles" / "default"), "--cores", "1",
           "results/manifest/qc.csv"]
    proc = run_cmd(cmd, timeout=600, env=env)
    text = output(proc)
    assert proc.returncode != 0, text[-3000:]
    lines = [ln for ln in text.splitlines() if "no space left on device" in ln]
    assert lines and lines[0].startswith("avemo manifest: error: no space left on device: the "
                                         f"disk holding {work / 'results'} is full ("), text[-3000:]
    assert "Free space and run the same command again" in lines[0]
    assert "Traceback" not in text and not re.search(r'^\s*File "', text, re.M), text[-3000:]
    assert not list((work / "results" / "manifest").glob("*.parquet"))  # nothing half-written


def test_key_written_twice_in_an_overlay_is_named_by_plain_snakemake(tmp_path):
    write_config(tmp_path)
    over = tmp_path / "over.yaml"
    over.write_text("frames:\n  size: 32\nevaluation:\n  n_resamples: 100\nframes:\n  size: 48\n")
    proc = snakemake(tmp_path, "-n", "--configfile", str(over))
    text = output(proc)
    assert proc.returncode != 0, text[-3000:]
    assert "over.yaml, line 5: frames is set twice (first on line 1)" in text, text[-3000:]
    assert "Traceback" not in text


def _wait_for(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_9_then_the_same_command_goes_on(tmp_path):
    """kill -9 of snakemake and its job mid-run leaves Snakemake's lock and an incomplete
    output; the same command removes the lock (saying so) and redoes the output."""
    write_config(tmp_path)
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
           "--profile", str(REPO / "workflow" / "profiles" / "default"), "--cores", "1",
           "synthetic_corpus"]
    locks, incomplete = tmp_path / ".snakemake" / "locks", tmp_path / ".snakemake" / "incomplete"
    record = tmp_path / "results" / ".avemo.lock"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=tool_env(), start_new_session=True)
    try:
        _wait_for(lambda: record.is_file() and f'"pid": {proc.pid}' in record.read_text()
                  and any(locks.glob("*.lock")) and incomplete.is_dir()
                  and any(p.is_file() for p in incomplete.rglob("*")), 300, "the job to start")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its job, as a reboot would
        proc.wait()
    assert any(locks.glob("*.lock"))  # what used to need --unlock, then --rerun-incomplete

    again = run_cmd(cmd, timeout=600, env=tool_env())
    text = output(again)
    assert again.returncode == 0, text[-4000:]
    assert "Removed Snakemake's lock (.snakemake/locks, " in text, text[-3000:]
    assert f"pid {proc.pid} on host" in text and "no longer runs" in text
    assert (tmp_path / "results" / "data" / "synthetic" / "corpus.json").is_file()
    assert not any(locks.glob("*.lock"))  # released at the end, as after any run
