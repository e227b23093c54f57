"""The label sets, defined once for the whole project.

Order matters: it is the column order of every probability matrix, confusion matrix and table.
"""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
SENTIMENTS: tuple[str, ...] = ("neutral", "positive", "negative")

EMOTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}
SENTIMENT_INDEX: dict[str, int] = {name: i for i, name in enumerate(SENTIMENTS)}

SPLITS: tuple[str, ...] = ("train", "dev", "test")

# MELD's own folder names for each split's clips inside MELD.Raw.
SPLIT_DIRS: dict[str, str] = {
    "train": "train_splits",
    "dev": "dev_splits_complete",
    "test": "output_repeated_splits_test",
}

# MELD's label file for each split.
LABEL_FILES: dict[str, str] = {
    "train": "train_sent_emo.csv",
    "dev": "dev_sent_emo.csv",
    "test": "test_sent_emo.csv",
}


def clip_name(dialogue_id: int, utterance_id: int) -> str:
    """MELD's clip stem for one utterance: ``dia{D}_utt{U}``."""
    return f"dia{int(dialogue_id)}_utt{int(utterance_id)}"
