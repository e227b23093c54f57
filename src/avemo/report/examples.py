"""The tidy per-example table: ``tables/predictions.{parquet,csv}``.

One row per utterance x model x seed x split (dev, test): the labels, each model's argmax
prediction and probabilities, the modality masks and QC flags of the clip. It is the one
source of the error browser (``browser``), so the browser and the table never disagree.
Columns: docs/formats.md, section 7.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .. import registry
from ..errors import DataStageError
from ..evaluation.metrics import TASKS, prob_columns, read_predictions, truth_and_prediction
from ..layout import PREDICTION_SPLITS
from .inputs import PathLike

# {name: {seed: {split: predictions_{split}.parquet}}}: the report rule's ``predictions``.
PredictionFiles = Mapping[str, Mapping[str, Mapping[str, PathLike]]]
# What the QC table says about a clip (qc/clips.csv): has_video / has_audio are the masks the
# models saw (usable frames; usable audio features, else masked), the reasons say why not.
QC_COLUMNS = {"frames_ok": "has_video", "audio_ok": "has_audio", "frames_reason": "frames_reason",
              "audio_reason": "audio_reason", "n_frames": "n_frames", "face_ratio": "face_ratio"}
KEY = ["split", "model", "seed", "clip_name"]


def columns() -> list[str]:
    """The table's columns, in order (docs/formats.md)."""
    probs = [c for task in TASKS for c in prob_columns(task)]
    return ["split", "dialogue", "utterance", "clip_name", "model", "group", "seed",
            "emotion", "sentiment", "pred_emotion", "pred_sentiment", "correct_emotion",
            "correct_sentiment", *probs, *QC_COLUMNS.values()]


def predictions_table(files: PredictionFiles, manifests: Mapping[str, pd.DataFrame],
                      qc: pd.DataFrame) -> pd.DataFrame:
    """Every model's dev/test predictions per seed joined with the manifest (dialogue,
    utterance ids) and the QC table (masks, flags). Rows: split, then model in ``files``
    order, seed, then the predictions file's row order. A predicted clip that the manifest
    does not know is a DataStageError naming the file (the two are out of step)."""
    # reindex: an older or partial qc/clips.csv lacks some flags (shown empty, never guessed).
    qc = qc.rename(columns=QC_COLUMNS).reindex(columns=["split", "clip_name",
                                                        *QC_COLUMNS.values()])
    parts = []
    for split in PREDICTION_SPLITS:
        ids = manifests[split][["clip_name", "dialogue_id", "utterance_id"]].rename(
            columns={"dialogue_id": "dialogue", "utterance_id": "utterance"})
        flags = qc.loc[qc["split"] == split, ["clip_name", *QC_COLUMNS.values()]]
        for name, per_seed in files.items():
            for seed, per_split in sorted(per_seed.items(), key=lambda kv: int(kv[0])):
                if split not in per_split:
                    continue
                df = read_predictions(per_split[split])
                unknown = sorted(set(df["clip_name"]) - set(ids["clip_name"]))
                if unknown:
                    raise DataStageError(
                        f"{per_split[split]}: clips {unknown[:5]} are not in the {split} "
                        "manifest; rerun the model's job (its inputs changed)")
                out = df.assign(split=split, model=name, group=registry.get(name).group,
                                seed=int(seed))
                for task, labels in TASKS.items():
                    y, pred = truth_and_prediction(df, task)
                    out[f"pred_{task}"] = np.asarray(labels)[pred]
                    out[f"correct_{task}"] = y == pred
                out = out.merge(ids, on="clip_name", how="left", validate="one_to_one")
                parts.append(out.merge(flags, on="clip_name", how="left"))
    if not parts:
        return pd.DataFrame(columns=columns())
    table = pd.concat(parts, ignore_index=True)
    # A predicted clip always passed the manifest; QC rows exist for every manifest clip.
    for col in ("has_video", "has_audio"):
        table[col] = table[col].fillna(False).astype(bool)
    return table[columns()]
