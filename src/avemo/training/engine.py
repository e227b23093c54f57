"""One training engine for every model: AdamW, LR schedule, early stopping on dev emotion
weighted F1, mixed precision on CUDA, atomic per-epoch checkpoints and exact resume.

The engine only ever receives the train and dev datasets: model selection uses dev, and the
test split cannot be touched here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import f1_score
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from avemo.atomic import atomic_path
from avemo.errors import TrainingError
from avemo.labels import EMOTIONS, SENTIMENTS
from avemo.training.checkpoint import (
    check_config_hash,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from avemo.training.losses import MultiTaskLoss, balanced_sampler, class_counts
from avemo.training.predict import clip_level, collect_outputs, resolve_device, to_device
from avemo.training.seed import deterministic_mode, worker_init_fn

LOG_COLUMNS = [
    "epoch",
    "train_loss",
    "dev_loss",
    "dev_emotion_wf1",
    "dev_sentiment_wf1",
    "lr",
    "seconds",
]
SCHEDULERS = ("cosine", "plateau", "none")


def _check_split(ds: Dataset, split: str) -> None:
    if len(ds) == 0:  # type: ignore[arg-type]
        raise TrainingError(
            f"the {split} split is empty: likely every {split} clip failed QC or its features "
            f"were not extracted; check manifest/qc.csv and the {split} feature folders"
        )


def make_optimizer(
    params: list[nn.Parameter], lr: float, weight_decay: float, device: torch.device
) -> torch.optim.Optimizer:
    """AdamW, with the fused kernel where torch has one: about 30 % off a small model's CPU
    epoch (the default's per-tensor Python loop dominates), deterministic, same state_dict."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)


def _make_scheduler(
    name: str, opt: torch.optim.Optimizer, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau:
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=2)
    if name == "none":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    raise TrainingError(f"unknown scheduler {name!r}; use one of {list(SCHEDULERS)}")


def _train_loader(
    ds: Dataset, batch_size: int, num_workers: int, seed: int, epoch: int, sampler: bool
) -> DataLoader:
    # A fresh generator per (seed, epoch) makes each epoch's order independent of history,
    # so a resumed run draws exactly the batches an uninterrupted one would.
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    kwargs: dict[str, Any] = {"shuffle": True}
    if sampler:
        kwargs = {"sampler": balanced_sampler(ds.emotion_idx, len(EMOTIONS), g)}  # type: ignore[attr-defined]
    return DataLoader(
        ds,
        batch_size=batch_size,
        num_workers=num_workers,
        generator=g,
        worker_init_fn=worker_init_fn,
        collate_fn=getattr(ds, "collate", None),
        **kwargs,
    )


def evaluate(
    model: nn.Module,
    ds: Dataset,
    device: torch.device,
    loss_fn: nn.Module,
    *,
    batch_size: int,
    num_workers: int,
    amp: bool,
    aggregate: str,
) -> dict[str, float]:
    """Dev loss (item level, what is optimised) and clip-level weighted F1 for both tasks."""
    res = collect_outputs(
        model, ds, device, batch_size=batch_size, num_workers=num_workers, amp=amp, loss_fn=loss_fn
    )
    clip = clip_level(res, aggregate)
    wf1 = {
        task: float(
            f1_score(
                clip[f"{task}_true"],
                clip[f"p_{task}"].argmax(1),
                labels=list(range(len(labels))),
                average="weighted",
                zero_division=0,
            )
        )
        for task, labels in (("emotion", EMOTIONS), ("sentiment", SENTIMENTS))
    }
    return {
        "dev_loss": res["loss"],
        "dev_emotion_wf1": wf1["emotion"],
        "dev_sentiment_wf1": wf1["sentiment"],
    }


def _write_log(path: Path, history: list[dict[str, float]]) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(history, columns=LOG_COLUMNS).to_csv(tmp, index=False)


def train(
    model: nn.Module,
    train_ds: Dataset,
    dev_ds: Dataset,
    out_dir: str | Path,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    patience: int,
    seed: int,
    w_emotion: float,
    w_sentiment: float,
    imbalance: str,
    focal_gamma: float,
    num_workers: int,
    device: str = "auto",
    amp: bool = True,
    config_hash: str,
    scheduler: str = "cosine",
    aggregate: str = "mean",
    grad_clip: float = 5.0,
    on_epoch_end: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` and write ``best.pt``, ``last.pt`` and ``log.csv`` into ``out_dir``.

    Resumes from ``out_dir/last.pt`` when present (same config hash required). Early stopping:
    ``patience`` epochs without a strictly better dev emotion weighted F1 (clip level, frame
    logits aggregated with ``aggregate``); ``patience <= 0`` disables it. On return ``model``
    holds the best epoch's weights. ``on_epoch_end(epoch)`` (1-based) runs after each epoch's
    checkpoint is written (tests use it to simulate interruptions).
    Seed before building the model so initial weights are reproducible too.

    Returns a summary: best_epoch, best_dev_emotion_wf1, best_dev_sentiment_wf1, epochs_run,
    stopped_early, resumed_from_epoch, device, amp, weights_used, n_train, n_dev.
    """
    _check_split(train_ds, "train")
    _check_split(dev_ds, "dev")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    use_amp = bool(amp) and dev.type == "cuda"
    with deterministic_mode(seed):
        emo_counts = class_counts(train_ds.emotion_idx, len(EMOTIONS))  # type: ignore[attr-defined]
        sent_counts = class_counts(train_ds.sentiment_idx, len(SENTIMENTS))  # type: ignore[attr-defined]
        loss_fn = MultiTaskLoss(
            w_emotion, w_sentiment, imbalance, focal_gamma, emo_counts, sent_counts
        ).to(dev)
        if hasattr(model, "set_input_stats") and hasattr(train_ds, "feature_stats"):
            model.set_input_stats(*train_ds.feature_stats())  # train statistics only
        model.to(dev)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = make_optimizer(params, lr, weight_decay, dev)
        sched = _make_scheduler(scheduler, opt, epochs)
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

        state: dict[str, Any] = {
            "epoch": 0,
            "best_score": -1.0,
            "best_epoch": 0,
            "bad_epochs": 0,
            "stopped": False,
            "history": [],
        }
        resumed_from: int | None = None
        last, best = out / "last.pt", out / "best.pt"
        if last.exists():
            ck = load_checkpoint(last)
            check_config_hash(last, ck, config_hash)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            if ck.get("scaler"):
                scaler.load_state_dict(ck["scaler"])
            set_rng_state(ck["rng"])
            state = {k: ck[k] for k in state}
            resumed_from = int(ck["epoch"])

        n_batches = None
        for epoch in range(state["epoch"] + 1, epochs + 1):
            if state["stopped"]:
                break
            t0 = time.perf_counter()
            model.train()
            loader = _train_loader(
                train_ds, batch_size, num_workers, seed, epoch, imbalance == "sampler"
            )
            n_batches = len(loader)
            lr_now = float(opt.param_groups[0]["lr"])
            total, n = torch.zeros((), device=dev), 0
            for batch in tqdm(loader, desc=f"epoch {epoch}/{epochs}", leave=False, file=sys.stderr):
                batch = to_device(batch, dev)
                with torch.autocast(dev.type, enabled=use_amp):
                    outp = model(batch)
                loss = loss_fn(outp, batch)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if grad_clip > 0:
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(params, grad_clip)
                scaler.step(opt)
                scaler.update()
                b = len(batch["clip_name"])
                total += loss.detach().float() * b
                n += b
            train_loss = float(total) / max(n, 1)
            if not np.isfinite(train_loss):
                raise TrainingError(
                    f"training loss became {train_loss} in epoch {epoch} ({out}); lower train.lr "
                    "in config.yaml or check the input features for NaN/inf"
                )
            metrics = evaluate(
                model,
                dev_ds,
                dev,
                loss_fn,
                batch_size=batch_size,
                num_workers=num_workers,
                amp=use_amp,
                aggregate=aggregate,
            )
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.step(metrics["dev_emotion_wf1"])
            else:
                sched.step()

            improved = metrics["dev_emotion_wf1"] > state["best_score"]
            if improved:
                state.update(best_score=metrics["dev_emotion_wf1"], best_epoch=epoch, bad_epochs=0)
            else:
                state["bad_epochs"] += 1
            state["stopped"] = patience > 0 and state["bad_epochs"] >= patience
            state["epoch"] = epoch
            state["history"].append(
                {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    **metrics,
                    "lr": lr_now,
                    "seconds": time.perf_counter() - t0,
                }
            )
            ck = {
                **state,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": get_rng_state(),
                "config_hash": config_hash,
                "model_name": getattr(model, "model_name", type(model).__name__),
                "weights_used": getattr(model, "weights_used", None),
            }
            if improved:
                save_checkpoint(best, ck)
            _write_log(out / "log.csv", state["history"])
            save_checkpoint(last, ck)
            if on_epoch_end is not None:
                on_epoch_end(epoch)

        if not best.exists():
            raise TrainingError(
                f"{best} is missing although {last} exists; delete {out} and retrain"
            )
        model.load_state_dict(load_checkpoint(best)["model"])
        best_row = next(r for r in state["history"] if r["epoch"] == state["best_epoch"])
        return {
            "best_epoch": state["best_epoch"],
            "best_dev_emotion_wf1": best_row["dev_emotion_wf1"],
            "best_dev_sentiment_wf1": best_row["dev_sentiment_wf1"],
            "epochs_run": state["epoch"],
            "stopped_early": state["stopped"],
            "resumed_from_epoch": resumed_from,
            "device": str(dev),
            "amp": use_amp,
            "weights_used": getattr(model, "weights_used", None),
            "n_train": len(train_ds),  # type: ignore[arg-type]
            "n_dev": len(dev_ds),  # type: ignore[arg-type]
            "batches_per_epoch": n_batches,
        }
