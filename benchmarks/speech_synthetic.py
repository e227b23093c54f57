"""What the speech-share stage measures on the synthetic worlds, against their truth file.

Generates an ``event`` and a ``spread`` corpus (the config's synthetic settings, train split of
``--clips`` clips, seed ``--seed``), runs the manifest, the dense frames and the speech-share
stage (``avemo.audio.speech_share``, Silero VAD) on them, and compares with
``synthetic_truth.csv``: the share of each clip where a voice is planted (``event``: the
target's event and the distractor's burst; ``spread``: the whole clip), how well the VAD's
probability tells planted-voice frames from the rest (AUC over 32-ms frames), the
activity-speech correlation the report shows, and, as its ceiling, the correlation of the same
activity level with the planted "target speaks" at each frame. ``--mouth-motion`` adds worlds
with a more visible mouth. ``--write`` puts the table into docs/corpus.md between its markers.

    python benchmarks/speech_synthetic.py --write
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import roc_auc_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from avemo.audio import speech_share as ss  # noqa: E402
from avemo.manifest import build_manifests  # noqa: E402
from avemo.synthetic import TRUTH_CSV, generate_corpus  # noqa: E402
from avemo.video.extract import extract_frames  # noqa: E402
from avemo.video.store import FrameStore  # noqa: E402

DOC = REPO / "docs" / "corpus.md"
BEGIN, END = "<!-- speech-synthetic:begin -->", "<!-- speech-synthetic:end -->"


def _voiced(row: pd.Series, t: np.ndarray) -> np.ndarray:
    if row["cue"] == "spread":
        return np.ones(len(t), bool)
    on = (t >= row["event_start_s"]) & (t <= row["event_end_s"])
    return on | ((t >= row["distractor_start_s"]) & (t <= row["distractor_end_s"]))


def _target(row: pd.Series, t: np.ndarray) -> np.ndarray:
    if row["cue"] == "spread":
        return np.ones(len(t), bool)
    return (t >= row["event_start_s"]) & (t <= row["event_end_s"])


def world(cfg: dict, cue: str, mouth_motion: float, clips: int, seed: int, work: Path
          ) -> dict[str, object]:
    s = cfg["synthetic"]
    corpus = work / f"{cue}_{mouth_motion}"
    generate_corpus(corpus, clips, 1, 1, seed=seed, workers=2, cue=cue, inject_defects=False,
                    width=s["width"], height=s["height"], fps=s["fps"],
                    max_duration_s=s["presets"]["demo"]["max_duration_s"],
                    face_strength=s["face_strength"], voice_strength=s["voice_strength"],
                    label_noise=s["label_noise"], nuisance=s["nuisance"],
                    mouth_motion=mouth_motion)
    res = work / f"res_{cue}_{mouth_motion}"
    build_manifests(corpus, res / "manifest")
    dense = cfg["frames"]["sets"][cfg["audio"]["aligned_frame_set"]]
    extract_frames(res / "manifest" / "train.parquet", res / "frames", size=cfg["frames"]["size"],
                   activity_grid=cfg["frames"]["activity_grid"], workers=2, **dense)
    ss.measure_speech(res / "manifest" / "train.parquet", res / "frames",
                      res / "speech.parquet", **cfg["speech"])
    table = pd.read_parquet(res / "speech.parquet").set_index("clip_name")
    truth = pd.read_csv(corpus / TRUTH_CSV).query("split == 'train'").set_index("clip_name")
    store = FrameStore(res / "frames")
    vad = ss.load_vad()
    waves = [ss._decode(str(corpus / truth.loc[c, "file"])) for c in table.index]
    probs = ss.speech_probs(waves, vad)
    planted, on, p, ceiling = [], [], [], []
    for clip, pr in zip(table.index, probs, strict=True):
        row = truth.loc[clip]
        t = (np.arange(len(pr)) + 0.5) * ss.VAD_HOP_S
        v = _voiced(row, t)
        planted.append(v.mean())
        on.append(v)
        p.append(pr)
        act, ft = store.activity(clip)
        ceiling.append(ss.correlation(_target(row, ft).astype(float), ss.activity_level(act)))
    on_, p_ = np.concatenate(on), np.concatenate(p)
    return {
        "world": cue, "mouth_motion": mouth_motion, "clips": len(table),
        "planted voiced share (median)": float(np.median(planted)),
        "VAD speech share (median)": float(table["speech_share"].median()),
        "VAD speech share (q1, q3)": "{:.2f}, {:.2f}".format(
            *table["speech_share"].quantile([0.25, 0.75])),
        "AUC planted voice vs VAD prob": (float(roc_auc_score(on_, p_)) if (~on_).any()
                                          else float("nan")),
        "activity-speech r (median)": float(table["activity_speech_r"].median()),
        "activity vs planted target speech r (median)": (
            float(np.nanmedian(ceiling)) if np.isfinite(ceiling).any() else float("nan")),
    }


def markdown(df: pd.DataFrame, command: str) -> str:
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        out.append("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v)
                                     for v in r) + " |")
    return "\n".join([f"Written by `{command}` (n/a: only voiced frames, no AUC).", "",
                      *out])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--mouth-motion", type=float, nargs="*", default=[3.0],
                    help="extra event worlds with this mouth_motion (the config's is always run)")
    ap.add_argument("--write", action="store_true", help="update docs/corpus.md")
    a = ap.parse_args()
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    base = float(cfg["synthetic"]["mouth_motion"])
    runs = [("event", base), ("spread", base), *[("event", m) for m in a.mouth_motion]]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [world(cfg, cue, m, a.clips, a.seed, Path(tmp)) for cue, m in runs]
    df = pd.DataFrame(rows)
    extra = " ".join(f"{m:g}" for m in a.mouth_motion)
    command = (f"python benchmarks/speech_synthetic.py --clips {a.clips} --seed {a.seed}"
               f" --mouth-motion {extra} --write")
    text = markdown(df, command).replace("nan", "n/a")
    print(text)
    if a.write:
        doc = DOC.read_text(encoding="utf-8")
        if BEGIN not in doc:
            raise SystemExit(f"{DOC}: markers {BEGIN} / {END} not found")
        doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END),
                     lambda _: f"{BEGIN}\n{text}\n{END}", doc, flags=re.S)
        DOC.write_text(doc, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
