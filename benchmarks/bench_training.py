"""Training throughput of every per-stream model on CPU, and the demo's training-stage wall time.

Each row times forward + backward + AdamW steps of one model, built with the parameters of
`config.yaml` (`train.models`), on random inputs with the demo's shapes (frames `frames.size`
square; the dense set's 8 frames per clip for sequence models; 192-D utterance vectors; log-mel
sequences of `max_len` steps), batch 32, the engine's multi-task loss. ``samples_per_s`` is
training items per second (frames for single-frame models, clips otherwise); ``x_linear`` is the
step time relative to a linear model on the 192-D vector measured in the same process, so rows
compare across machines. ``epoch_s`` is one whole engine epoch (`fit`: the project's in-memory
dataset of uint8 frames / features, 9 training batches, dev evaluation of 2 batches, checkpoint,
log; `num_workers=1` as a 2-thread rule passes) and ``epoch_over_steps`` its ratio to 9 bare
steps: what the engine adds around the model's arithmetic. ``demo_stage_s`` is the wall time
Snakemake recorded for that model's training job in the last demo run
(`results/benchmarks/train_<model>_seed0.tsv`), if present. The last row's ``step_s`` is the
start-up of a training job: importing `avemo.training.stage` in a fresh interpreter.

    python benchmarks/bench_training.py [--steps 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from avemo import params as P  # noqa: E402
from avemo.config import load_config  # noqa: E402
from avemo.layout import LIVE_DIR, live_curves  # noqa: E402
from avemo.models.heads import DualHead  # noqa: E402
from avemo.models.registry import MODELS, build_model  # noqa: E402
from avemo.training.data import (  # noqa: E402
    ClipSequenceDataset,
    FrameDataset,
    SequenceDataset,
    VectorDataset,
)
from avemo.training.engine import fit, make_optimizer  # noqa: E402
from avemo.training.losses import MultiTaskLoss  # noqa: E402
from avemo.training.settings import EngineSettings  # noqa: E402

BATCH = 32


class LinearRef(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = DualHead(192, 64, 0.0)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self.head(batch["x"])



def _epoch_seconds(out: str) -> pd.Series:
    """Each epoch's wall seconds from the engine's epoch log (DVCLive's history file)."""
    return pd.read_csv(live_curves(Path(out) / LIVE_DIR)["seconds"], sep="\t")["seconds"]

def _batch(kind: str, cfg: dict[str, Any], model: str) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    size = cfg["frames"]["size"]
    spec = cfg["train"]["models"].get(model, {})
    if kind == "frame":
        x = torch.randn(BATCH, 3, size, size, generator=g)
        extra: dict[str, Any] = {}
    elif kind == "frame_seq":
        t = 8
        x = torch.randn(BATCH, t, 3, size, size, generator=g)
        extra = {"mask": torch.ones(BATCH, t, dtype=torch.bool),
                 "lengths": torch.full((BATCH,), t), "t_s": torch.zeros(BATCH, t)}
    elif kind == "audio_vec":
        x, extra = torch.randn(BATCH, spec.get("params", {}).get("in_dim", 192), generator=g), {}
    else:
        t = spec.get("max_len") or 256
        x = torch.randn(BATCH, t, cfg["audio"]["n_mels"], generator=g)
        extra = {"mask": torch.ones(BATCH, t, dtype=torch.bool),
                 "lengths": torch.full((BATCH,), t), "t_s": torch.zeros(BATCH, t)}
    return {"x": x, "emotion": torch.randint(0, 7, (BATCH,), generator=g),
            "sentiment": torch.randint(0, 3, (BATCH,), generator=g),
            "clip_name": [f"c{i}" for i in range(BATCH)], **extra}


def _step_seconds(
    net: nn.Module, batch: dict[str, Any], steps: int, s: EngineSettings | None = None
) -> float:
    s = s or EngineSettings()
    # The engine's loss and optimizer with the model's settings (no class counts: random labels).
    loss_fn = MultiTaskLoss(s.w_emotion, s.w_sentiment, "none", s.focal_gamma, None, None)
    opt = make_optimizer(list(net.parameters()), s.lr, s.weight_decay, torch.device("cpu"))
    net.train()

    def step() -> None:
        opt.zero_grad()
        loss_fn(net(batch), batch).backward()
        opt.step()

    step()  # warm-up (allocations, lazy init)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def _dataset(kind: str, batch: dict[str, Any], n: int, split: str) -> Any:
    """A project dataset of ``n`` items shaped like ``batch`` (frames as uint8, as stored)."""
    rng = np.random.default_rng(0)
    x = batch["x"][0]
    names = [f"dia{i}_utt0" for i in range(n)]
    emo, sent = rng.integers(0, 7, n), rng.integers(0, 3, n)
    if kind in ("frame", "frame_seq"):
        frames = rng.integers(0, 256, (n, *x.movedim(-3, -1).shape), dtype=np.uint8)
        if kind == "frame":
            return FrameDataset(frames, names, emo, sent, augment=split == "train", split=split)
        return ClipSequenceDataset(list(frames), names, emo, sent, augment=split == "train",
                                   split=split)
    feats = rng.standard_normal((n, *x.shape)).astype(np.float32)
    if kind == "audio_vec":
        return VectorDataset(feats, names, emo, sent, split=split)
    return SequenceDataset(list(feats), names, emo, sent, split=split)


def _epoch_seconds(model: str, kind: str, batch: dict[str, Any], spec: dict[str, Any]) -> float:
    """Mean wall time of epochs 2-3 of ``fit`` (epoch 1 pays one-off lazy initialisation)."""
    train_ds = _dataset(kind, batch, 9 * BATCH, "train")
    dev_ds = _dataset(kind, batch, 2 * BATCH, "dev")
    torch.manual_seed(0)
    net = build_model(model, **spec["model_params"])
    settings = EngineSettings.from_mapping({**spec["engine"], "epochs": 3, "device": "cpu",
                                            "batch_size": BATCH})
    with tempfile.TemporaryDirectory() as out:
        fit(net, train_ds, dev_ds, out, settings, seed=0, config_hash="bench", num_workers=1)
        return float(_epoch_seconds(out).iloc[1:].mean())


def _startup_seconds(repeats: int = 3) -> float:
    code = "import avemo.training.stage"
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO / "src")
        times.append(time.perf_counter() - t0)
    return min(times)


def _stage_seconds(model: str) -> float | None:
    tsv = REPO / "results" / "benchmarks" / f"train_{model}_seed0.tsv"
    return float(pd.read_csv(tsv, sep="\t")["s"].iloc[-1]) if tsv.exists() else None


def run(steps: int = 5) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    cfg = load_config(REPO / "config.yaml")
    ref = _step_seconds(LinearRef(), _batch("audio_vec", cfg, ""), steps * 4)
    rows = []
    for model in P.configured(cfg, "visual", "audio"):
        kind = MODELS[model].input_kind
        spec = P.train(cfg, model)
        net = build_model(model, **spec["model_params"])
        settings = EngineSettings.from_mapping(spec["engine"])
        batch = _batch(kind, cfg, model)
        sec = _step_seconds(net, batch, steps, settings)
        epoch = _epoch_seconds(model, kind, batch, spec)
        items = BATCH * (8 if kind == "frame_seq" else 1)
        rows.append({"model": model, "input": kind, "step_s": round(sec, 4),
                     "samples_per_s": round(BATCH / sec, 1), "frames_per_s": round(items / sec, 1),
                     "x_linear": round(sec / ref, 1), "epoch_s": round(epoch, 3),
                     "epoch_over_steps": round(epoch / (9 * sec), 2),
                     "demo_stage_s": _stage_seconds(model)})
    total = sum(r["demo_stage_s"] or 0 for r in rows)
    rows.append({"model": "(all per-stream models)", "input": "start-up",
                 "step_s": round(_startup_seconds(), 2), "samples_per_s": None,
                 "frames_per_s": None, "x_linear": None, "epoch_s": None,
                 "epoch_over_steps": None, "demo_stage_s": round(total, 1)})
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    for row in run(ap.parse_args().steps):
        print(row)
