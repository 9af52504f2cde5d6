"""Evaluation plots as PNG files (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

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


def history_png(history: "pd.DataFrame", title: str, path: Path) -> Path:
    """The loss terms over training steps (a rolling mean smooths the per-batch noise)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name in ("loss", "softmax", "recon", "kl", "pair", "triplet"):
        if name in history:
            ax.plot(history["step"], history[name].rolling(20, min_periods=1).mean(), label=name, lw=1.2)
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    _title(ax, title, 60)
    return _save(fig, path)


def noise_ratios_png(history: "pd.DataFrame", title: str, path: Path) -> Path:
    """R_rec and R_cls of eq. 9 and the variance ratio Var(M')/Var(M) (seed 000 Fig. 8)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, label in (("r_rec", "R_rec"), ("r_cls", "R_cls"), ("var_ratio", "Var(M')/Var(M)")):
        ax.plot(history["step"], history[name], label=label, lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylim(0, max(1.05, float(history["var_ratio"].max()) * 1.05))
    ax.legend(fontsize=8)
    _title(ax, title, 60)
    return _save(fig, path)


def pca_png(descriptors: np.ndarray, labels: Sequence[str], title: str, path: Path) -> Path:
    """The first two principal components of the descriptors, one colour per class
    (seed 000 Fig. 11)."""
    x = descriptors - descriptors.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T if len(vt) >= 2 else np.c_[x[:, :1], np.zeros(len(x))]
    labels = np.asarray(labels)
    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    for name in sorted(set(labels)):
        sel = labels == name
        ax.scatter(xy[sel, 0], xy[sel, 1], s=8, label=name, alpha=0.7)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=7, markerscale=2)
    _title(ax, title, 55)
    return _save(fig, path)


def reconstruction_grid_png(images: np.ndarray, targets: np.ndarray, recons: np.ndarray, labels: Sequence[str],
                            title: str, path: Path) -> Path:
    """Rows: input composite, semantic target, reconstruction (seed 000 Fig. 9/10)."""
    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(1.4 * n, 4.6), squeeze=False)
    for j in range(n):
        for i, (img, name) in enumerate(((images[j], "input"), (targets[j], "target"),
                                         (np.clip(recons[j], 0, 1), "reconstruction"))):
            ax = axes[i, j]
            ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
        axes[0, j].set_title(str(labels[j]), fontsize=8)
    fig.suptitle("\n".join(textwrap.wrap(title, 90)), fontsize=9)
    return _save(fig, path)


def curves_png(x: Sequence[float], curves: dict[str, Sequence[float]], title: str, path: Path, *,
               xlabel: str, ylabel: str, log_y: bool = False) -> Path:
    """Named curves over a shared x axis (losses per epoch, AP against a threshold, ...)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, y in curves.items():
        ax.plot(x, y, label=name, lw=1.2, marker="o" if len(x) <= 12 else None, ms=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.legend(fontsize=7)
    _title(ax, title, 60)
    fig.tight_layout()
    return _save(fig, path)


def histogram_png(values: Sequence[float], bins: Sequence[float] | np.ndarray, title: str, path: Path, *,
                  xlabel: str) -> Path:
    """A histogram of ``values`` (counts per bin)."""
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    ax.hist(values, bins=bins, color="#4c72b0", edgecolor="black")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    _title(ax, title, 55)
    fig.tight_layout()
    return _save(fig, path)
