"""Report figures (matplotlib, Agg backend), saved as PNG atomically. Each takes ``data`` (what
the numbers were computed on, e.g. "synthetic demo corpus") and names it in its title."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..atomic import atomic_path  # noqa: E402
from ..labels import SPLITS  # noqa: E402


def class_distribution(table: pd.DataFrame, column: str, path: Path, data: str = "") -> None:
    """Grouped bars: share of each label per split (from a class_counts table)."""
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=110)
    labels = table[column].tolist()
    width = 0.8 / len(SPLITS)
    for i, split in enumerate(SPLITS):
        xs = [x + (i - (len(SPLITS) - 1) / 2) * width for x in range(len(labels))]
        ax.bar(xs, table[f"{split}_%"], width=width, label=split)
    ax.set_xticks(range(len(labels)), labels, rotation=20)
    ax.set_ylabel("% of utterances")
    ax.set_title(f"{column.capitalize()} distribution per split" + (f" ({data})" if data else ""))
    ax.legend(frameon=False)
    _save(fig, path)


def _save(fig: plt.Figure, path: Path, data: str = "") -> None:
    if data:
        fig.suptitle(f"Data: {data}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def confusion_matrices(
    panels: list[tuple[str, list[list[float]], list[str]]], path: Path, data: str = ""
) -> None:
    """Row-normalised confusion matrices side by side; ``panels``: (title, K×K, labels)."""
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 4.0), dpi=110, squeeze=False
    )
    for ax, (title, matrix, labels) in zip(axes[0], panels, strict=True):
        m = np.asarray(matrix, dtype=float)
        ax.imshow(m, vmin=0.0, vmax=1.0, cmap="Blues")
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{m[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color="white" if m[i, j] > 0.5 else "black",
                )
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title, fontsize=9)
    _save(fig, path, data)


def learning_curves(logs: dict[str, dict[str, pd.DataFrame]], path: Path, data: str = "") -> None:
    """One row per model: train/dev loss per epoch (left), dev emotion weighted F1 (right);
    one line per seed. ``logs``: {model: {seed: epoch log}} (report.inputs.read_epoch_log)."""
    fig, axes = plt.subplots(len(logs), 2, figsize=(8, 2.4 * len(logs)), dpi=100, squeeze=False)
    for row, (model, seeds) in zip(axes, logs.items(), strict=True):
        for seed, log in seeds.items():
            row[0].plot(log["epoch"], log["train_loss"], "-", label=f"train s{seed}")
            row[0].plot(log["epoch"], log["dev_loss"], "--", label=f"dev s{seed}")
            row[1].plot(log["epoch"], log["dev_emotion_wf1"], "-o", ms=3, label=f"seed {seed}")
        row[0].set_title(f"{model}: loss", fontsize=9)
        row[1].set_title(f"{model}: dev emotion weighted F1", fontsize=9)
        row[1].set_ylim(0, 1)  # one scale for every model, so rows compare at a glance
        for ax in row:
            ax.set_xlabel("epoch")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.legend(frameon=False, fontsize=6)
    _save(fig, path, data)


def per_class_bars(table: pd.DataFrame, labels: list[str], path: Path, data: str = "") -> None:
    """Grouped bars: test per-class F1 (mean over seeds) for each model (a per_class_f1 table)."""
    models = table["model"].tolist()
    fig, ax = plt.subplots(figsize=(max(7.0, 0.35 * len(models) * len(labels)), 3.6), dpi=100)
    width = 0.85 / max(len(models), 1)
    for i, model in enumerate(models):
        xs = [x + (i - (len(models) - 1) / 2) * width for x in range(len(labels))]
        ax.bar(
            xs, table.loc[table["model"] == model, labels].to_numpy()[0], width=width, label=model
        )
    ax.set_xticks(range(len(labels)), labels, rotation=20)
    ax.set_ylabel("test F1 (mean over seeds)")
    ax.set_ylim(0, 1)
    ax.legend(frameon=False, fontsize=7, ncol=min(len(models), 4))
    _save(fig, path, data)


def waterfall(start: tuple[str, float], steps: list[tuple[str, float, float, float]],
              path: Path, lines: dict[str, float] | None = None, data: str = "",
              end: str = "result") -> None:
    """From ``start`` (label, score) one floating bar per step (label, paired Δ, CI low, CI
    high), each starting where the previous ended, and a final bar ``end`` at the running
    total; ``lines``: reference levels drawn across (e.g. the best single stream)."""
    fig, ax = plt.subplots(figsize=(max(7.0, 1.05 * (len(steps) + 2)), 4.0), dpi=110)
    level = start[1]
    ax.bar(0, level, color="0.55", width=0.6)
    for i, (_, delta, low, high) in enumerate(steps, start=1):
        color = "tab:green" if delta >= 0 else "tab:red"
        ax.bar(i, delta, bottom=level, color=color, width=0.6)
        # the step's paired 95% interval, drawn around the bar's end
        top = level + delta
        ax.errorbar(i, top, yerr=[[max(delta - low, 0.0)], [max(high - delta, 0.0)]],
                    fmt="none", ecolor="black", capsize=3, lw=1)
        ax.plot([i - 0.3, i + 1 - 0.3], [top, top], color="0.6", lw=0.6, ls=":")
        level = top
    last = len(steps) + 1
    ax.bar(last, level, color="tab:blue", width=0.6)
    styles = ["--", ":", "-."]
    for i, (name, value) in enumerate((lines or {}).items()):
        ax.axhline(value, ls=styles[i % len(styles)], lw=1.0, color=f"C{i + 4}", label=name)
    if lines:
        ax.legend(frameon=False, fontsize=7, loc="lower left")
    labels = [start[0], *(s[0] for s in steps), end]
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("test emotion weighted F1")
    ax.set_title("From the study's fusion to the best model, one factor per step", fontsize=9)
    _save(fig, path, data)
