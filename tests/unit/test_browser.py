"""The per-example table (tables/predictions.*) and the error browser in report.html, built by
the report stage from test_report's fake results tree plus real frame stores and audio clips.
The same tree is opened in a real browser by tests/workflow/test_browser.py."""

from __future__ import annotations

import json
import re
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_report import CFG, MISSING_AUDIO, make_tree, report_inputs

from avemo.evaluation.metrics import prob_columns, read_predictions
from avemo.labels import EMOTIONS
from avemo.layout import Layout
from avemo.report import browser, examples, spec
from avemo.report.build import build_report
from avemo.video.store import CLIPS_FILE, META_FILE, ShardWriter

CAP = 2
BROWSER_CFG: dict[str, Any] = {
    **CFG,
    "audio": {"aligned_frame_set": "study", "window_s": 1.0},
    "report": {"browser": {"max_clips_per_cell": CAP}},
}
RATE = 16000


def _wav(path: Path, seconds: float, freq: float) -> None:
    t = np.arange(int(seconds * RATE)) / RATE
    pcm = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def add_media(root: Path) -> None:
    """Give the fake tree what the browser shows: a study frame store per split (2 frames per
    clip, 0.5 s and 1.5 s) and a 2-s WAV clip per utterance, named in the manifest."""
    lay = Layout(str(root))
    for split in ("train", "dev", "test"):
        path = Path(lay.manifest(split))
        manifest = pd.read_parquet(path)
        names = list(manifest["clip_name"])
        writer = ShardWriter(lay.frames("study", split), shard_clips=256)
        for i, name in enumerate(names):
            frames = np.full((2, 16, 16, 3), (i * 37) % 256, np.uint8)
            writer.add(name, frames, np.array([0.5, 1.5], np.float32))
            if split != "train":
                _wav(root / "clips" / split / f"{name}.wav", 2.0, 200 + 10 * i)
        writer.close()
        out = Path(lay.frames("study", split))
        pd.DataFrame({"clip_name": names, "n_frames": 2, "ok": True, "reason": "",
                      "face_ratio": np.nan, "decoded_duration_s": 2.0}).to_parquet(out / CLIPS_FILE)
        (out / META_FILE).write_text(json.dumps({"policy": "every_s"}))
        if split != "train":  # relative to the manifest's folder, as the manifest stage stores it
            manifest["clip_path"] = [f"../clips/{split}/{n}.wav" for n in names]
            manifest.to_parquet(path)
    qc = pd.read_csv(lay.qc_clips())
    qc["audio_ok"] = ~((qc["split"] == "test") & qc["clip_name"].isin(MISSING_AUDIO))
    qc.to_csv(lay.qc_clips(), index=False)


def browser_inputs(root: Path) -> dict[str, Any]:
    lay = Layout(str(root))
    return {**report_inputs(root, BROWSER_CFG),
            "frames": {"study": {s: lay.frames("study", s) for s in ("dev", "test")}}}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = make_tree(tmp_path_factory.mktemp("browser") / "results", BROWSER_CFG)
    add_media(root)
    out = root / "report"
    # Through JSON with sorted keys, as the rule passes them to the CLI.
    inputs = json.loads(json.dumps(browser_inputs(root), sort_keys=True))
    build_report(inputs, out, **spec.report_params(BROWSER_CFG))
    return root, out


def eb_data(html: str) -> dict[str, Any]:
    text = re.search(r'<script type="application/json" id="eb-data">(.*?)</script>', html, re.S)
    assert text, "no error-browser data in report.html"
    return json.loads(text.group(1))


def test_predictions_table_one_row_per_utterance_model_seed(report: tuple[Path, Path]) -> None:
    root, out = report
    table = pd.read_parquet(out / "tables" / "predictions.parquet")
    csv = pd.read_csv(out / "tables" / "predictions.csv")
    assert list(table.columns) == [*examples.columns(), "dataset"] == list(csv.columns)
    assert len(csv) == len(table)
    assert not table.duplicated(examples.KEY).any()
    files = browser_inputs(root)["predictions"]
    expected = sum(len(read_predictions(p)) for per_seed in files.values()
                   for per_split in per_seed.values() for p in per_split.values())
    assert len(table) == expected
    assert set(table["model"]) == set(files) and set(table["split"]) == {"dev", "test"}
    # In the report's order (visual, audio, fusion, variants, baselines), not the JSON's.
    assert list(dict.fromkeys(table["model"])) == [
        "cnn5", "vgg16", "audio_mlp", "concat_misaligned", "gated", "late",
        "gated@single_task", "majority", "prior"]
    # Values trace to the predictions file; the prediction is the argmax (ties: first label).
    one = table[(table["model"] == "vgg16") & (table["seed"] == 1) & (table["split"] == "test")]
    src = read_predictions(Layout(str(root)).predictions("vgg16", 1, "test"))
    assert list(one["clip_name"]) == list(src["clip_name"])
    probs = src[prob_columns("emotion")].to_numpy()
    assert np.allclose(one[prob_columns("emotion")].to_numpy(), probs)
    assert list(one["pred_emotion"]) == [EMOTIONS[i] for i in probs.argmax(axis=1)]
    assert (one["correct_emotion"] == (one["pred_emotion"] == one["emotion"])).all()
    # Modality masks and QC flags come from qc/clips.csv; ids from the manifest.
    assert set(one.loc[~one["has_audio"], "clip_name"]) == set(MISSING_AUDIO)
    assert one["has_video"].all() and (one["dataset"] != "").all()
    assert (one["dialogue"] == 0).all()  # the fake manifest's ids
    assert set(table.loc[table["model"] == "majority", "seed"]) == {0}


def test_media_cap_and_selection_in_manifest_order() -> None:
    clips = [f"c{i}" for i in range(6)]
    manifests = {"test": pd.DataFrame({"clip_name": clips})}
    rows = [("test", m, 0, c, "joy", "joy" if m == "a" or i % 2 else "fear")
            for m in ("a", "b") for i, c in enumerate(clips)]
    table = pd.DataFrame(rows, columns=["split", "model", "seed", "clip_name", "emotion",
                                        "pred_emotion"])
    # a: one cell (joy, joy) -> c0, c1; b: (joy, fear) -> c0, c2, (joy, joy) -> c1, c3.
    assert browser.media_clips(table, manifests, 2) == {"test": ["c0", "c1", "c2", "c3"]}
    dis = browser.disagreements(table, "a", "b")
    assert list(dis["clip_name"]) == ["c0", "c2", "c4"]
    assert set(dis["single"]) == {"joy"} and set(dis["fusion"]) == {"fear"}
    # Disagreements add their first clips per class too.
    assert browser.media_clips(table, manifests, 1, "a", "b") == {"test": ["c0", "c1"]}


def test_browser_data_traces_to_metrics_and_embeds_media(report: tuple[Path, Path]) -> None:
    root, out = report
    html = (out / "report.html").read_text()
    data = eb_data(html)
    assert data["cap"] == CAP and data["labels"] == list(EMOTIONS)
    # Every model's confusion matrix, recomputed from the page's data, is the metrics file's.
    for run in data["runs"]:
        metrics = json.loads((root / "metrics" / f"{run['model']}.json").read_text())
        for split, s in data["splits"].items():
            conf = np.zeros((len(EMOTIONS),) * 2, int)
            for y, p in zip(s["y"], s["pred"][run["id"]], strict=True):
                conf[y, p] += 1
            want = metrics["seeds"][run["seed"]][split]["emotion"]["confusion"]
            assert conf.tolist() == want, (run, split)
    # Media: at most CAP clips per cell carry media, and each has audio + thumbnails.
    test = data["splits"]["test"]
    media = data["media"]["test"]
    for run in data["runs"]:
        cells: dict[tuple[int, int], int] = {}
        for i, (y, p) in enumerate(zip(test["y"], test["pred"][run["id"]], strict=True)):
            first = cells.get((y, p), 0) < CAP
            cells[(y, p)] = cells.get((y, p), 0) + 1
            if first:
                assert test["clips"][i] in media, (run, i)
    assert len(media) < len(test["clips"])  # the cap leaves some clips without media
    m = next(iter(media.values()))
    assert m["audio"].startswith("data:audio/webm;base64,") and m["dur"] == 2.0
    assert [f[0] for f in m["frames"]["study"]] == [0.5, 1.5]
    assert m["frames"]["study"][0][1].startswith("data:image/jpeg;base64,")
    assert m["windows"] == [[0.0, 1.0], [1.0, 2.0]]  # window_s 1.0 centred on the frames
    info = {x["name"]: x for x in data["models"]}
    assert info["cnn5"]["frames"] == "study" and info["audio_mlp"]["frames"] is None
    assert data["best"]["single_stream"] and data["best"]["fusion"]


def test_markdown_links_to_the_browser(report: tuple[Path, Path]) -> None:
    _, out = report
    md = (out / "report.md").read_text()
    assert f"](report.html#{browser.ANCHOR})" in md and "tables/predictions.parquet" in md
    html = (out / "report.html").read_text()
    assert f'<div id="{browser.ANCHOR}">' in html and "eb-data" not in md


def test_frames_seen_by_each_kind() -> None:
    cfg = {**BROWSER_CFG, "audio": {"aligned_frame_set": "dense", "window_s": 1.0},
           "fusion": {**CFG["fusion"], "video_model": "vgg16",
                      "models": {**CFG["fusion"]["models"], "concat_aligned": {}}}}
    seen = spec.browser_params(cfg)
    assert seen["frame_sets"]["cnn5"] == "study" and seen["frame_sets"]["audio_mlp"] is None
    assert seen["frame_sets"]["concat_misaligned"] == "study"  # the video model's set
    assert seen["frame_sets"]["concat_aligned"] == "dense"  # dense video: the aligned set
    assert seen["frame_sets"]["late"] == "study" and seen["frame_sets"]["majority"] is None
    assert seen["windowed"] == ["concat_aligned"] and seen["max_clips_per_cell"] == CAP


def test_audio_is_decodable_opus() -> None:
    import av

    uri = browser.encode_audio(np.zeros(RATE, np.float32) + 0.1)
    import base64
    import io

    with av.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as c:
        stream = c.streams.audio[0]
        assert stream.codec_context.name == "opus"
        assert sum(f.samples for f in c.decode(stream)) >= RATE * 0.9
    assert browser.encode_audio(np.zeros(RATE, np.float32)) == browser.encode_audio(
        np.zeros(RATE, np.float32))  # bit-exact: same clip, same bytes


@pytest.mark.slow  # a real browser (installed with apt-get on first use)
def test_click_through_in_headless_chromium(report: tuple[Path, Path]) -> None:
    from headless_chromium import BrowserUnavailable, assert_browsed, chromium, click_through

    _, out = report
    try:
        with chromium() as driver:
            seen = click_through(driver, str(out / "report.html"))
    except BrowserUnavailable as exc:
        pytest.skip(f"no headless browser: {exc}")
    assert_browsed(seen, min_audio_s=1.5)  # the fixture's clips are 2 s long
    assert seen["rows"] == 1  # the class filter keeps one label's row
    assert seen["disagreements"].startswith("Disagreements")
