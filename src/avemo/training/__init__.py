"""One training engine, losses, checkpoints, datasets and inference for every model."""

from avemo.training.data import ClipSequenceDataset, FrameDataset, SequenceDataset, VectorDataset
from avemo.training.engine import train
from avemo.training.predict import export_embeddings, predict
from avemo.training.seed import seed_everything

__all__ = [
    "ClipSequenceDataset",
    "FrameDataset",
    "SequenceDataset",
    "VectorDataset",
    "export_embeddings",
    "predict",
    "seed_everything",
    "train",
]
