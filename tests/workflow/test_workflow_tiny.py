"""The real workflow, end to end, on the tiny synthetic preset in a temporary directory.

The run itself is the session's shared `tiny_run` (tests/conftest.py): the whole workflow,
fusion diagnosis included, `snakemake --cores 2` from an empty folder."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import DIAGNOSIS, seed_data_stages, snakemake, write_config

from avemo.labels import SPLITS
from avemo.manifest import read_manifest

pytestmark = pytest.mark.slow


def test_manifest_and_qc_outputs(tiny_run):
    work = tiny_run
    r = work / "results"
    corpus = json.loads((r / "data" / "synthetic" / "corpus.json").read_text())
    for split in SPLITS:
        m = read_manifest(r / "manifest" / f"{split}.parquet")
        assert len(m) > 0 and m["clip_name"].is_unique
        assert m["ok"].sum() >= 0.8 * len(m)
    qc = pd.read_csv(r / "manifest" / "qc.csv", keep_default_na=False)
    reasons = set(qc["reason"])
    # The injected MELD defects end as QC rows, not crashes.
    assert {"missing", "orphan_clip", "unreadable"} <= reasons, reasons
    assert corpus["defects"]
    clips = pd.read_csv(r / "qc" / "clips.csv")
    assert set(clips["split"]) == set(SPLITS)
    ok = clips[clips["decoded_ok"]]
    assert ok["frames_ok"].all() and (ok["n_frames"] >= 1).all()


def test_frames_and_audio_cover_every_usable_clip(tiny_run):
    from avemo.audio.store import AudioStore
    from avemo.video.store import FrameStore

    work = tiny_run
    r = work / "results"
    for split in SPLITS:
        usable = read_manifest(r / "manifest" / f"{split}.parquet").query("ok")
        study = FrameStore(r / "frames" / "study" / split)
        dense = FrameStore(r / "frames" / "dense" / split)
        audio = AudioStore(r / "audio" / split)
        assert set(study.clip_names) == set(usable["clip_name"]) == set(dense.clip_names)
        # The study's sparse sampling vs 8 frames spread over each clip.
        assert len(study.index) < len(dense.index) == 8 * len(usable)
        assert audio.utterance().shape == (len(usable), 192)
        # One log-mel window per dense frame, centred on its timestamp.
        assert len(audio.aligned()) == len(dense.index)


def test_every_model_is_trained_and_evaluated(tiny_run):
    from avemo.evaluation.metrics import read_predictions

    work = tiny_run
    r = work / "results"
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    test_clips = set(read_manifest(r / "manifest" / "test.parquet").query("ok")["clip_name"])
    for model in [*cfg["train"]["models"], "majority", "prior"]:
        preds = read_predictions(r / "models" / model / "seed0" / "predictions_test.parquet")
        assert set(preds["clip_name"]) == test_clips, model
        metrics = json.loads((r / "metrics" / f"{model}.json").read_text())
        wf1 = metrics["aggregate"]["test"]["emotion"]["weighted_f1"]["mean"]
        assert 0.0 <= wf1 <= 1.0


def test_report_is_built_and_says_synthetic(tiny_run):
    work = tiny_run
    md = (work / "results" / "report" / "report.md").read_text()
    assert "SYNTHETIC" in md and "tiny" in md
    html = (work / "results" / "report" / "report.html").read_text()
    assert "data:image/png;base64," in html
    counts = pd.read_csv(work / "results" / "report" / "tables" / "emotion_counts.csv")
    manifest = read_manifest(work / "results" / "manifest" / "train.parquet")
    assert counts["train"].sum() == len(manifest)


def test_second_run_has_nothing_to_do(tiny_run):
    work = tiny_run
    proc = snakemake(work, "--cores", "2", "-n")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_param_change_reruns_only_downstream_stages(tiny_run):
    work = tiny_run
    original = (work / "config.yaml").read_text()
    cfg = yaml.safe_load(original)
    cfg["audio"]["window_s"] = 0.5
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    try:
        out = snakemake(work, "--cores", "2", "-n", "--quiet", "rules")
        text = out.stdout + out.stderr
        assert "audio" in text and "report" in text
        for rule in ("synthetic_corpus", "manifest", "frames"):
            assert f"\n{rule} " not in text, text
    finally:  # the shared run's config as it was
        (work / "config.yaml").write_text(original)


def test_invalid_config_stops_before_any_job(tmp_path):
    write_config(tmp_path, {"frames": {"size": "big"}})
    proc = snakemake(tmp_path, "--cores", "1")
    assert proc.returncode != 0
    assert "frames.size" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def _planned(work, *args: str) -> dict[str, int]:
    import re

    out = snakemake(work, "--cores", "2", "-n", "--quiet", "rules", *args)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = re.findall(r"^([A-Za-z_]\w*)\s+(\d+)$", out.stdout + out.stderr, flags=re.M)
    return {rule: int(n) for rule, n in rows if rule not in ("total", "all")}


@pytest.mark.parametrize("rel, makes, follows", [
    # a late-fusion metrics file: its evaluate job, then the report (compare reads only
    # the members a best:* pair may choose from, late fusion among them)
    ("metrics/late.json", {"evaluate": 1}, {"compare", "report"}),
    # an embedding only early fusion reads: the video model's training job and what follows
    ("models/video_branch/seed0/embeddings_dev@dense.npz", {"train_visual": 1},
     {"fusion", "evaluate", "report"}),
    # a training log (learning curves): its training job, then everything downstream of it
    ("models/audio_mlp/seed0/live/plots/metrics/dev_emotion_wf1.tsv", {"train_audio": 1},
     {"evaluate", "report"}),
])
def test_deleting_an_intermediate_file_reruns_its_job(tiny_run, rel, makes, follows):
    """Every file a job reads is a declared input (layout module), so a deleted file is
    rebuilt by exactly the job that makes it, and the jobs after it rerun."""
    work = tiny_run
    path = work / "results" / rel
    saved, stat = path.read_bytes(), path.stat()
    path.unlink()
    try:
        planned = _planned(work)
        for rule, n in makes.items():
            assert planned.get(rule, 0) >= n, planned
        assert follows <= set(planned), planned
        assert not {"synthetic_corpus", "manifest", "frames", "audio"} & set(planned), planned
    finally:  # back as it was, mtime included: the run stays complete for the other tests
        path.write_bytes(saved)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_same_metrics_with_one_or_two_cores(tiny_run, tmp_path):
    """The same config gives the same numbers whatever the core count: at --cores 1 the
    training jobs load data in the main process, at --cores 2 in one DataLoader worker.

    The run at --cores 1 starts from the shared run's data stages (their outputs do not depend
    on the worker count: tests/unit test_video, test_audio, test_manifest, test_synthetic) and
    trains every model the targets need itself, cross-fitting included."""
    work = tiny_run
    write_config(tmp_path, DIAGNOSIS)
    seed_data_stages(work, tmp_path)
    # A frame model (augmented frames), an early-fusion model on the video model's embeddings
    # (the pair that differed between -c1 and -c2 before) and one on cross-fitted embeddings.
    targets = ["results/metrics/cnn5.json", "results/metrics/concat_aligned.json",
               "results/metrics/dx1_crossfit.json"]
    proc = snakemake(tmp_path, "--cores", "1", *targets)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ran = set(re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, flags=re.M))
    assert {"train_visual", "crossfit", "fusion", "evaluate"} <= ran, ran  # trained here
    assert not {"synthetic_corpus", "manifest", "frames", "audio"} & ran, ran  # seeded
    for target in targets:
        assert json.loads((tmp_path / target).read_text()) == json.loads(
            (work / target).read_text()), target


def test_diagnosis_runs_cross_fitted_and_is_reported(tiny_run):
    from avemo import diagnosis, registry
    from avemo.fusion.inputs import EmbeddingFile

    work = tiny_run
    r = work / "results"
    name = "embeddings_train@study.npz"
    oof = EmbeddingFile.read(r / "crossfit" / "video_branch" / "seed0" / name)
    full = EmbeddingFile.read(r / "models" / "video_branch" / "seed0" / name)
    # Every train clip, out of fold: same clips as the full model's export, other values.
    assert list(oof.clip_name) == list(full.clip_name)
    assert not np.allclose(oof.emb, full.emb)
    # ... mapped into the full model's coordinates (raw fold exports are in their own spaces).
    cf = json.loads((r / "crossfit" / "video_branch" / "seed0" / "summary.json").read_text())
    assert all(run["map_r2_fit"] > 0.5 for run in cf["runs"]), cf["runs"]
    summary = json.loads((r / "fusion" / "dx1_crossfit" / "seed0" / "summary.json").read_text())
    assert summary["factors"]["embeddings"] == "cross_fitted"
    for name in registry.diagnostic_names():
        assert (r / "metrics" / f"{name}.json").is_file(), name
    cmp = json.loads((r / "metrics" / "compare.json").read_text())
    assert cmp["multiplicity"]["diagnosis"]
    assert {e["family"] for e in cmp["pairs"] if (e["a"], e["b"]) in
            [x.pair for x in diagnosis.effects()]} == {"diagnosis"}
    contrasts = {e["name"]: e for e in cmp["contrasts"]}
    assert list(contrasts) == [x.name for x in diagnosis.effects() if x.pair is None]
    assert {e["family"] for e in contrasts.values()} == {"diagnosis"}
    assert all(len(e["models"]) == 16 for e in contrasts.values())
    late = json.loads((r / "fusion" / "late" / "seed0" / "late.json").read_text())
    assert late["dev_predictions"].startswith("out of fold")
    md = (r / "report" / "report.md").read_text()
    assert "## Why the fusion failed" in md and "fusion_waterfall.png" in md
    # beside the verdicts, what the same protocol detected where a cause was planted
    # (its first sentence in the summary, all of them in the diagnosis section)
    assert md.count("**What this diagnosis can detect (synthetic worlds") == 2
    table = pd.read_csv(r / "report" / "tables" / "fusion_factors.csv")
    assert len(table) == len(diagnosis.effects()) and set(table["dataset"]) == {
        "synthetic demo corpus"}
