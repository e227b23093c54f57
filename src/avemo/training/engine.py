"""One training engine for every model: AdamW, LR schedule, early stopping on dev emotion
weighted F1, mixed precision on CUDA, atomic per-epoch checkpoints and exact resume.

Reads top to bottom like torchvision's classification reference: :func:`fit` runs the epochs,
each one :func:`train_one_epoch` then :func:`evaluate` on dev, then a checkpoint
(:mod:`avemo.training.checkpoint`). :func:`train` is the keyword entry point the stages use.
Settings (epochs, lr, patience, ...) are :class:`~avemo.training.settings.EngineSettings`.

The engine only ever receives the train and dev datasets: model selection uses dev, and the
test split cannot be touched here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from avemo.errors import TrainingError
from avemo.labels import EMOTIONS, SENTIMENTS
from avemo.layout import EPOCH_METRICS, LIVE_DIR
from avemo.progress import progress as progress_bar  # fit() has a local `progress`
from avemo.training.checkpoint import load_checkpoint, restore, save_checkpoint, snapshot
from avemo.training.live import EpochLog
from avemo.training.losses import MultiTaskLoss, balanced_sampler, class_counts
from avemo.training.predict import (
    amp_dtype,
    autocast,
    clip_level,
    collect_outputs,
    float_outputs,
    loader_options,
    resolve_device,
    to_device,
)
from avemo.training.provenance import run_facts
from avemo.training.seed import deterministic_mode, nondeterministic_ops, worker_init_fn
from avemo.training.settings import EngineSettings

LOG_COLUMNS = ["epoch", *EPOCH_METRICS]  # one history row per epoch (Progress.history)
SCHEDULERS = ("cosine", "plateau", "none")
Scheduler = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau


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


def _make_scheduler(name: str, opt: torch.optim.Optimizer, epochs: int) -> Scheduler:
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=2)
    if name == "none":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    raise TrainingError(f"unknown scheduler {name!r}; use one of {list(SCHEDULERS)}")


def _train_loader(
    ds: Dataset, batch_size: int, num_workers: int, seed: int, epoch: int, sampler: bool,
    device: torch.device,
) -> DataLoader:
    # A fresh generator per (seed, epoch) makes each epoch's order independent of history,
    # so a resumed run draws exactly the batches an uninterrupted one would.
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if hasattr(ds, "set_epoch"):  # augmentation keyed by (seed, epoch, index), not by worker
        ds.set_epoch(seed, epoch)
    kwargs: dict[str, Any] = {"shuffle": True}
    if sampler:
        kwargs = {"sampler": balanced_sampler(ds.emotion_idx, len(EMOTIONS), g)}  # type: ignore[attr-defined]
    return DataLoader(
        ds,
        batch_size=batch_size,
        generator=g,
        worker_init_fn=worker_init_fn,
        collate_fn=getattr(ds, "collate", None),
        **loader_options(num_workers, device),
        **kwargs,
    )


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint and restored on resume."""

    epoch: int = 0  # last completed epoch (1-based; 0: none yet)
    skipped_batches: int = 0  # non-finite training batches skipped so far (all epochs)
    best_score: float = -1.0  # best dev emotion weighted F1 so far
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the last improvement (the patience counter)
    stopped: bool = False  # early stopping fired
    history: list[dict[str, float]] = field(default_factory=list)  # LOG_COLUMNS rows

    def record(self, row: dict[str, float], patience: int) -> bool:
        """Add one finished epoch's log row; return whether it is the new best on dev.

        Only a strictly better dev emotion weighted F1 counts; ``patience <= 0`` never stops."""
        epoch, score = int(row["epoch"]), row["dev_emotion_wf1"]
        improved = score > self.best_score
        if improved:
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
        else:
            self.bad_epochs += 1
        self.stopped = patience > 0 and self.bad_epochs >= patience
        self.epoch = epoch
        self.history.append(row)
        return improved


@dataclass
class Optimization:
    """What is updated each step besides the model; checkpointed with it."""

    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: Scheduler
    scaler: torch.amp.GradScaler

    @classmethod
    def create(
        cls, model: nn.Module, s: EngineSettings, device: torch.device,
        dtype: torch.dtype | None,
    ) -> Optimization:
        params = [p for p in model.parameters() if p.requires_grad]
        opt = make_optimizer(params, s.lr, s.weight_decay, device)
        sched = _make_scheduler(s.scheduler, opt, s.epochs)
        # Loss scaling only for float16 (narrow range); bfloat16 has float32's exponent.
        scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
        return cls(params, opt, sched, scaler)

    def step_scheduler(self, dev_score: float) -> None:
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(dev_score)
        else:
            self.scheduler.step()

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])


@dataclass
class EpochResult:
    loss: float  # mean training loss per item over the finite batches (NaN: none was)
    skipped: int  # batches skipped for a non-finite loss or gradient


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[dict[str, Any]],
    loss_fn: nn.Module,
    optim: Optimization,
    device: torch.device,
    *,
    amp: torch.dtype | bool | None,
    grad_clip: float,
    max_skipped: int = 0,
    desc: str = "",
) -> EpochResult:
    """One pass over ``loader``. ``amp``: the autocast dtype (None: fp32; True: the device's
    :func:`amp_dtype`). The loss is computed in fp32 on fp32 logits. A batch whose loss (or,
    when gradients are clipped without loss scaling, whose gradient norm) is not finite makes
    no update and is counted;
    more than ``max_skipped`` in one epoch is a TrainingError. Under float16 the GradScaler
    also skips steps with overflowing gradients by itself (and lowers its scale): those are
    the scaler's routine, not counted."""
    dtype = amp_dtype(device, True) if amp is True else (amp or None)
    model.train()
    channels_last = bool(getattr(model, "channels_last", False))
    # Summed on the device: a .item() per batch for the sum would add a second sync per step.
    total, n, skipped = torch.zeros((), device=device), 0, 0
    for batch in progress_bar(loader, desc=desc, unit="batch", leave=False):
        batch = to_device(batch, device, channels_last)
        with autocast(device, dtype):
            outputs = model(batch)
        loss = loss_fn(float_outputs(outputs), batch)
        optim.optimizer.zero_grad(set_to_none=True)
        optim.scaler.scale(loss).backward()
        bad = ~torch.isfinite(loss.detach())
        if grad_clip > 0:
            optim.scaler.unscale_(optim.optimizer)  # clip the true gradients, not scaled ones
            norm = nn.utils.clip_grad_norm_(optim.params, grad_clip)
            if not optim.scaler.is_enabled():  # float16's scaler checks gradients itself
                bad |= ~torch.isfinite(norm)
        skip = bool(bad)  # the one read-back per step (GradScaler's step makes one too)
        if skip:
            skipped += 1
            if skipped > max_skipped:
                raise TrainingError(
                    f"{skipped} training batches in {desc or 'one epoch'} had a non-finite loss "
                    f"or gradient (limit: train.engine.max_nonfinite_batches = {max_skipped}); "
                    "lower the learning rate (train.engine.lr), check the input features for "
                    "NaN/inf, or turn amp off"
                )
        if skip and not optim.scaler.is_enabled():
            optim.optimizer.zero_grad(set_to_none=True)  # no update from this batch
            continue
        # With float16 loss scaling the scaler skips a non-finite step itself (and lowers its
        # scale); step and update keep its per-step bookkeeping consistent.
        optim.scaler.step(optim.optimizer)
        optim.scaler.update()
        if skip:
            continue
        b = len(batch["clip_name"])
        total += loss.detach().float() * b
        n += b
    # No finite batch at all: NaN, not 0.0 (a perfect-looking loss for an epoch that made no
    # update); fit's finiteness check then stops the run.
    return EpochResult(float(total) / n if n else float("nan"), skipped)


def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """``sklearn.metrics.f1_score(labels=range(n_classes), average="weighted",
    zero_division=0)``, same arithmetic, in numpy: importing sklearn costs every training job
    about a second of start-up, and this is all the engine needs from it."""
    counts = np.bincount(np.asarray(y_true) * n_classes + np.asarray(y_pred),
                         minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(counts).astype(np.float64)
    support = counts.sum(1)
    denom = (support + counts.sum(0)).astype(np.float64)
    f1 = np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(np.average(f1, weights=support)) if support.sum() else 0.0


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
        task: weighted_f1(clip[f"{task}_true"], clip[f"p_{task}"].argmax(1), len(labels))
        for task, labels in (("emotion", EMOTIONS), ("sentiment", SENTIMENTS))
    }
    return {
        "dev_loss": res["loss"],
        "dev_emotion_wf1": wf1["emotion"],
        "dev_sentiment_wf1": wf1["sentiment"],
    }


def _make_loss(train_ds: Dataset, s: EngineSettings, device: torch.device) -> nn.Module:
    # Class weights (imbalance: class_weight) come from the train split only.
    emo = class_counts(train_ds.emotion_idx, len(EMOTIONS))  # type: ignore[attr-defined]
    sent = class_counts(train_ds.sentiment_idx, len(SENTIMENTS))  # type: ignore[attr-defined]
    loss = MultiTaskLoss(s.w_emotion, s.w_sentiment, s.imbalance, s.focal_gamma, emo, sent)
    return loss.to(device)


def _save_epoch(
    out: Path, checkpoint: dict[str, Any], row: dict[str, float], log: EpochLog, improved: bool
) -> None:
    # last.pt goes last: a kill before it leaves the previous epoch's last.pt, whose resume
    # replays that history into a cleared live/ folder, reruns this epoch and rewrites best.pt
    # and the epoch log identically.
    if improved:
        save_checkpoint(out / "best.pt", checkpoint)
    log.log(row)
    save_checkpoint(out / "last.pt", checkpoint)


def _check_finite(train_loss: float, epoch: int, out: Path) -> None:
    if not np.isfinite(train_loss):
        raise TrainingError(
            f"training loss became {train_loss} in epoch {epoch} ({out}); lower train.lr "
            "in config.yaml or check the input features for NaN/inf"
        )


def fit(
    model: nn.Module,
    train_ds: Dataset,
    dev_ds: Dataset,
    out_dir: str | Path,
    settings: EngineSettings,
    *,
    seed: int,
    config_hash: str,
    num_workers: int = 0,
    on_epoch_end: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` and write ``best.pt``, ``last.pt`` and the epoch log (DVCLive's
    ``live/`` folder, :mod:`avemo.training.live`) into ``out_dir``.

    Resumes from ``out_dir/last.pt`` when present (same config hash required), drawing exactly
    the batches an uninterrupted run would. Stops early after ``settings.patience`` epochs
    without a strictly better dev emotion weighted F1 (clip level, frame logits aggregated with
    ``settings.aggregate``). On return ``model`` holds the best dev epoch's weights.
    ``on_epoch_end(epoch)`` (1-based) runs after each epoch's checkpoint is written (tests use
    it to simulate interruptions). Seed before building the model so initial weights are
    reproducible too. ``num_workers`` DataLoader workers are used on CUDA only (see
    :func:`~avemo.training.predict.loader_workers`), with pinned memory. On CUDA with
    ``amp``: bfloat16 autocast where the GPU supports it, else float16 with loss scaling
    (:func:`~avemo.training.predict.amp_dtype`). Returns the summary described in
    :func:`_summary`.
    """
    s = settings
    _check_split(train_ds, "train")
    _check_split(dev_ds, "dev")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(s.device)
    if device.type == "cpu":
        # Fixed by the settings, not by the job's cores (OMP_NUM_THREADS): the thread count
        # changes floating-point sums, so the same config gives the same numbers at any
        # --cores. Process-wide: prediction and export after fit use it too.
        torch.set_num_threads(s.cpu_threads)
    amp = bool(s.amp) and device.type == "cuda"  # mixed precision only pays off on CUDA
    dtype = amp_dtype(device, amp)
    # Strict determinism (an op without a deterministic kernel raises) except for models that
    # declare such an op on CUDA (attention backward): those run, and the summary names it.
    loose = nondeterministic_ops(model, device)
    with deterministic_mode(seed, warn_only=bool(loose)):
        loss_fn = _make_loss(train_ds, s, device)
        if hasattr(model, "set_input_stats") and hasattr(train_ds, "feature_stats"):
            model.set_input_stats(*train_ds.feature_stats())  # train statistics only
        model.to(device)
        if device.type == "cuda" and getattr(model, "channels_last", False):
            model.to(memory_format=torch.channels_last)  # NHWC convolutions on tensor cores
        optim = Optimization.create(model, s, device, dtype)
        progress, resumed_from = Progress(), None
        if (out / "last.pt").exists():
            saved = restore(out / "last.pt", model, optim.optimizer, optim.scheduler,
                            optim.scaler, config_hash)
            progress, resumed_from = Progress(**saved), saved["epoch"]
        # Started from the checkpoint's rows: the folder holds exactly the resumed history
        # (the workflow also removes it before rerunning a job).
        log = EpochLog(out / LIVE_DIR, progress.history)

        n_batches = None
        for epoch in range(progress.epoch + 1, s.epochs + 1):
            if progress.stopped:
                break
            t0, lr = time.perf_counter(), optim.lr
            loader = _train_loader(train_ds, s.batch_size, num_workers, seed, epoch,
                                   sampler=s.imbalance == "sampler", device=device)
            n_batches = len(loader)
            result = train_one_epoch(model, loader, loss_fn, optim, device, amp=dtype,
                                     grad_clip=s.grad_clip, max_skipped=s.max_nonfinite_batches,
                                     desc=f"epoch {epoch}/{s.epochs}")
            progress.skipped_batches += result.skipped
            _check_finite(result.loss, epoch, out)
            metrics = evaluate(model, dev_ds, device, loss_fn, batch_size=s.batch_size,
                               num_workers=num_workers, amp=amp, aggregate=s.aggregate)
            optim.step_scheduler(metrics["dev_emotion_wf1"])
            row = {"epoch": epoch, "train_loss": result.loss, **metrics, "lr": lr,
                   "seconds": time.perf_counter() - t0}
            improved = progress.record(row, s.patience)
            ck = snapshot(asdict(progress), model, optim.optimizer, optim.scheduler,
                          optim.scaler, config_hash)
            _save_epoch(out, ck, row, log, improved)
            if on_epoch_end is not None:
                on_epoch_end(epoch)

        log.close()
        _load_best(model, out)
        summary = _summary(progress, resumed_from, model, device, amp, train_ds, dev_ds,
                           n_batches)
        summary.update(run_facts(device, dtype, model, loose))
        return summary


def _load_best(model: nn.Module, out: Path) -> None:
    best = out / "best.pt"
    if not best.exists():
        raise TrainingError(
            f"{best} is missing although {out / 'last.pt'} exists; delete {out} and retrain"
        )
    ck = load_checkpoint(best)
    model.load_state_dict(ck["model"])
    if ck.get("weights_used") is not None:  # what the run really started from
        model.weights_used = ck["weights_used"]


def _summary(
    progress: Progress,
    resumed_from: int | None,
    model: nn.Module,
    device: torch.device,
    amp: bool,
    train_ds: Dataset,
    dev_ds: Dataset,
    n_batches: int | None,
) -> dict[str, Any]:
    """best_epoch, best_dev_emotion_wf1, best_dev_sentiment_wf1, epochs_run, stopped_early,
    resumed_from_epoch, device, amp, weights_used (from the checkpoint: on resume, what the
    first epoch started from), skipped_batches, n_train, n_dev, batches_per_epoch (None when no
    epoch ran in this call); :func:`fit` adds the hardware facts of
    :func:`avemo.training.provenance.run_facts`."""
    best_row = next(r for r in progress.history if r["epoch"] == progress.best_epoch)
    return {
        "best_epoch": progress.best_epoch,
        "best_dev_emotion_wf1": best_row["dev_emotion_wf1"],
        "best_dev_sentiment_wf1": best_row["dev_sentiment_wf1"],
        "epochs_run": progress.epoch,
        "stopped_early": progress.stopped,
        "resumed_from_epoch": resumed_from,
        "device": str(device),
        "amp": amp,
        "weights_used": getattr(model, "weights_used", None),
        "skipped_batches": progress.skipped_batches,
        "n_train": len(train_ds),  # type: ignore[arg-type]
        "n_dev": len(dev_ds),  # type: ignore[arg-type]
        "batches_per_epoch": n_batches,
    }


def train(
    model: nn.Module,
    train_ds: Dataset,
    dev_ds: Dataset,
    out_dir: str | Path,
    *,
    seed: int,
    config_hash: str,
    num_workers: int = 0,
    on_epoch_end: Callable[[int], None] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """:func:`fit` with the settings as keywords (a stage's ``engine`` param, config keys);
    settings not given take the schema defaults, an unknown one is a ConfigError."""
    return fit(
        model,
        train_ds,
        dev_ds,
        out_dir,
        EngineSettings.from_mapping(settings, where="engine settings"),
        seed=seed,
        config_hash=config_hash,
        num_workers=num_workers,
        on_epoch_end=on_epoch_end,
    )
