"""Benchmark of the fusion models: one training epoch over a MELD-sized set on CPU.

Synthetic embeddings with MELD's shapes (10,000 train utterances: 100-D video, 192-D audio;
8 dense steps per clip, log-mel windows of 64 mels × 101 frames pooled to 5 time segments by
``pool_windows``, as the dataset builder does). Each row trains one epoch through the real
engine (``avemo.training.train``: batch 32, AdamW, grad clipping, class weights, a 256-item dev
pass) in this process, ``--repeats`` times from a fresh model, and reports the best epoch
``seconds`` from the engine's epoch log (``live/``);
``epoch_cpu_s`` its process CPU time (what it costs an idle core; wall time also counts
waiting for the CPU); ``x_linear`` = epoch CPU
time / that of a plain linear model on the concatenated utterance vectors
measured in the same process (so it compares across machines). ``pool_windows`` is timed
separately on 8,192 raw windows (its cost is paid once per split when the dataset is built,
not per epoch). Intra-op threads: 1 by default (``--threads``), as the workflow's jobs run.

    python benchmarks/bench_fusion.py [--workdir W] [--n 10000] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from avemo.fusion.inputs import FusionDataset, pool_windows  # noqa: E402
from avemo.fusion.stage import build_fusion_model  # noqa: E402
from avemo.layout import LIVE_DIR, live_curves  # noqa: E402
from avemo.models.heads import DualHead  # noqa: E402
from avemo.training.engine import fit  # noqa: E402
from avemo.training.settings import EngineSettings  # noqa: E402

DV, DA, N_MELS, W, T, POOL = 100, 192, 64, 101, 8, 5
# The schema's defaults (AdamW, cosine, grad clipping, ...) except what is pinned here: the
# batch size sets the cost per epoch, and class weights are the engine's costliest loss.
ENGINE = EngineSettings(epochs=1, batch_size=32, imbalance="class_weight", device="cpu", amp=False)


class LinearRef(nn.Module):
    """Reference: one linear layer per task on [video_utt ; audio_utt]."""

    def __init__(self) -> None:
        super().__init__()
        self.head = DualHead(DV + DA, hidden=0, dropout=0.0)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.head(torch.cat([batch["video_utt"], batch["audio_utt"]], dim=-1))



def _epoch_seconds(out: str) -> pd.Series:
    """Each epoch's wall seconds from the engine's epoch log (DVCLive's history file)."""
    return pd.read_csv(live_curves(Path(out) / LIVE_DIR)["seconds"], sep="\t")["seconds"]

def synthetic(n: int, inputs: str, seed: int = 0) -> FusionDataset:
    """A FusionDataset with MELD's shapes (8-10 % of clips without audio, 3-8 dense steps)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, T + 1, n)
    step = np.arange(T)[None, :] < lengths[:, None]
    audio = rng.random(n) > 0.08
    arrays: dict[str, np.ndarray] = {
        "clip_name": np.array([f"dia{i}_utt0" for i in range(n)]),
        "emotion": rng.integers(0, 7, n),
        "sentiment": rng.integers(0, 3, n),
        "video_utt": rng.standard_normal((n, DV), dtype=np.float32),
        "video_present": np.ones(n, bool),
        "audio_utt": rng.standard_normal((n, DA), dtype=np.float32) * audio[:, None],
        "audio_present": audio,
        "sparse_t_s": np.where(step[:, :4], np.arange(4) * 3.0, np.nan).astype(np.float32),
    }
    if inputs == "aligned":
        arrays.update(
            video_seq=rng.standard_normal((n, T, DV), dtype=np.float32) * step[..., None],
            video_mask=step,
            t_s=np.where(step, np.arange(T) * 0.5, np.nan).astype(np.float32),
            lengths=lengths,
            audio_win=rng.standard_normal((n, T, N_MELS * POOL), dtype=np.float32),
            audio_mask=step & audio[:, None],
            audio_t_s=np.where(step, np.arange(T) * 0.5, np.nan).astype(np.float32),
        )
    return FusionDataset("train", inputs, arrays)


def _epoch_seconds(
    make_model: Callable[[], nn.Module],
    train_ds: FusionDataset,
    dev_ds: FusionDataset,
    repeats: int,
) -> tuple[float, float]:
    """Best of ``repeats`` fresh runs: (wall seconds of the epoch from the epoch log, process CPU
    seconds of the whole train call).

    CPU time is what the epoch costs on an idle core; wall time also counts waiting for the
    CPU when other work runs beside it. The minimum over repeats filters out such bursts."""
    walls, cpus = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            torch.manual_seed(0)
            model = make_model()
            c0 = time.process_time()
            fit(model, train_ds, dev_ds, out, ENGINE, seed=0, config_hash="bench")
            cpus.append(time.process_time() - c0)
            walls.append(float(_epoch_seconds(out).iloc[0]))
    return min(walls), min(cpus)


def _pool_rate(n_windows: int = 8192) -> float:
    x = np.random.default_rng(1).standard_normal((n_windows, N_MELS, W), dtype=np.float32)
    pool_windows(x[:256], POOL)  # warm-up
    t0 = time.perf_counter()
    pool_windows(x, POOL)
    return n_windows / (time.perf_counter() - t0)


def run(
    workdir: str | None = None, n: int = 10_000, threads: int = 1, repeats: int = 3
) -> list[dict[str, Any]]:
    """One row per model: epoch seconds and the ratio to the linear reference."""
    torch.set_num_threads(threads)
    data = {i: synthetic(n, i) for i in ("utterance", "aligned")}
    dev = {i: synthetic(256, i, seed=1) for i in ("utterance", "aligned")}
    ref, ref_cpu = _epoch_seconds(LinearRef, data["utterance"], dev["utterance"], repeats)
    rows: list[dict[str, Any]] = [
        {"model": "linear (reference)", "inputs": "utterance", "epoch_s": ref,
         "epoch_cpu_s": ref_cpu, "x_linear": 1.0}
    ]  # fmt: skip
    for name in ("concat_misaligned", "gated", "concat_aligned", "cross_attention"):
        ds = data["utterance" if name in ("concat_misaligned", "gated") else "aligned"]
        secs, cpu = _epoch_seconds(
            lambda name=name, ds=ds: build_fusion_model(name, **ds.dims()), ds, dev[ds.inputs],
            repeats,
        )
        row: dict[str, Any] = {"model": name, "inputs": ds.inputs, "epoch_s": secs,
                               "epoch_cpu_s": cpu, "x_linear": cpu / ref_cpu}  # fmt: skip
        rows.append(row)
    rows.append({"model": "pool_windows", "inputs": "64x101 windows",
                 "windows_per_s": _pool_rate()})  # fmt: skip
    for r in rows:
        r.update(n_train=n, threads=threads, repeats=repeats)
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        (Path(workdir) / "bench_fusion.json").write_text(json.dumps(rows, indent=2))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    for row in run(args.workdir, args.n, args.threads, args.repeats):
        print(json.dumps(row, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
