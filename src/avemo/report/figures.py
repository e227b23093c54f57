"""Report figures (matplotlib, Agg backend), saved as PNG atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..atomic import atomic_path  # noqa: E402
from ..labels import SPLITS  # noqa: E402


def class_distribution(table: pd.DataFrame, column: str, path: Path) -> None:
    """Grouped bars: share of each label per split (from a class_counts table)."""
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=110)
    labels = table[column].tolist()
    width = 0.8 / len(SPLITS)
    for i, split in enumerate(SPLITS):
        xs = [x + (i - (len(SPLITS) - 1) / 2) * width for x in range(len(labels))]
        ax.bar(xs, table[f"{split}_%"], width=width, label=split)
    ax.set_xticks(range(len(labels)), labels, rotation=20)
    ax.set_ylabel("% of utterances")
    ax.set_title(f"{column.capitalize()} distribution per split")
    ax.legend(frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
