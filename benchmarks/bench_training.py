"""Training throughput of every per-stream model on CPU, and the demo's training-stage wall time.

Each row times forward + backward + AdamW steps of one model, built with the parameters of
`config.yaml` (`train.models`), on random inputs with the demo's shapes (frames `frames.size`
square; the dense set's 8 frames per clip for sequence models; 192-D utterance vectors; log-mel
sequences of `max_len` steps), batch 32, the engine's multi-task loss. ``samples_per_s`` is
training items per second (frames for single-frame models, clips otherwise); ``x_linear`` is the
step time relative to a linear model on the 192-D vector measured in the same process, so rows
compare across machines. ``demo_stage_s`` is the wall time Snakemake recorded for that model's
training job in the last demo run (`results/benchmarks/train_<model>_seed0.tsv`), if present.

    python benchmarks/bench_training.py [--steps 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from avemo import params as P  # noqa: E402
from avemo.config import load_config  # noqa: E402
from avemo.models.heads import DualHead  # noqa: E402
from avemo.models.registry import MODELS, build_model  # noqa: E402
from avemo.training.engine import make_optimizer  # noqa: E402
from avemo.training.losses import MultiTaskLoss  # noqa: E402
from avemo.training.settings import EngineSettings  # noqa: E402

BATCH = 32


class LinearRef(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = DualHead(192, 64, 0.0)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self.head(batch["x"])


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
        sec = _step_seconds(net, _batch(kind, cfg, model), steps, settings)
        items = BATCH * (8 if kind == "frame_seq" else 1)
        rows.append({"model": model, "input": kind, "step_s": round(sec, 4),
                     "samples_per_s": round(BATCH / sec, 1), "frames_per_s": round(items / sec, 1),
                     "x_linear": round(sec / ref, 1), "demo_stage_s": _stage_seconds(model)})
    total = sum(r["demo_stage_s"] or 0 for r in rows)
    rows.append({"model": "(all per-stream models)", "input": "", "step_s": None,
                 "samples_per_s": None, "frames_per_s": None, "x_linear": None,
                 "demo_stage_s": round(total, 1)})
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    for row in run(ap.parse_args().steps):
        print(row)
