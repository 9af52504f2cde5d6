"""Evaluation plots as PNG files (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# Stable bytes across runs: no creation date, no software version in the PNG.
PNG_META = {"Software": None}


def _title(ax: plt.Axes, title: str, width: int) -> None:
    """A title wrapped to the figure's width (long dataset/model labels stay readable)."""
    lines = [textwrap.fill(line, width) for line in title.split("\n")]
    ax.set_title("\n".join(lines), fontsize=8)


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata=PNG_META)
    plt.close(fig)
    return path


def confusion_png(matrix: np.ndarray, classes: Sequence[str], title: str, path: Path) -> Path:
    """Row-normalised confusion matrix (rows: true class), counts printed in each cell."""
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * n, 1.0 + 0.5 * n))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=60, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    _title(ax, title, int(20 + 6 * n))
    fig.tight_layout()
    return _save(fig, path)


def per_class_png(values: dict[str, float], counts: dict[str, int], chance: float, title: str, path: Path) -> Path:
    """Per-class accuracy bars with the number of objects, and the chance level."""
    names = list(values)
    fig, ax = plt.subplots(figsize=(1.5 + 0.45 * len(names), 3.2))
    heights = [0.0 if np.isnan(values[k]) else values[k] for k in names]
    ax.bar(range(len(names)), heights, color="#4c72b0")
    ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance {chance:.2f}")
    for i, k in enumerate(names):
        ax.text(i, heights[i] + 0.01, f"n={counts.get(k, 0)}", ha="center", fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy (recall)")
    ax.legend(fontsize=7, loc="upper right")
    _title(ax, title, int(25 + 5 * len(names)))
    fig.tight_layout()
    return _save(fig, path)


def reliability_png(bins: Sequence[dict], ece: float, title: str, path: Path) -> Path:
    """Reliability diagram: accuracy against mean confidence per confidence bin."""
    fig, ax = plt.subplots(figsize=(3.6, 3.6))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    filled = [b for b in bins if b["count"]]
    ax.bar([b["lo"] for b in filled], [b["accuracy"] for b in filled], width=[b["hi"] - b["lo"] for b in filled],
           align="edge", edgecolor="black", color="#dd8452", alpha=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    _title(ax, f"{title}\nECE {ece:.3f}", 45)
    fig.tight_layout()
    return _save(fig, path)
