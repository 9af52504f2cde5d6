"""The wiring baseline: hand-made image features and a softmax regression.

It exists so the evaluate stage and ``c2r predict`` work end to end before any deep
trainer lands (issue 5), and as the floor every method must beat. Features: HOG of the
grey image (Dalal & Triggs: 8 px cells, 2x2 blocks, 9 orientations) plus the mean
colour on a 4x4 grid; standardised with the training statistics. Classifier:
multinomial logistic regression with an L2 penalty, fitted by L-BFGS (scipy), so the
fit is deterministic for given data. Pure numpy: no torch, no pickle.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from skimage.feature import hog

from core.predictors import load_weights, register, save_predictor, to_input

KIND = "hog_softmax"
GRID = 4  # mean colour on a GRID x GRID grid


def features(images: Sequence[np.ndarray], size: int) -> np.ndarray:
    """(N, D) float32 features of RGB uint8 images of any size (square-padded, resized)."""
    rows = []
    for image in images:
        x = to_input(image, size).astype(np.float32) / 255.0
        grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
        h = hog(grey, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys",
                feature_vector=True)
        colour = x.reshape(GRID, size // GRID, GRID, size // GRID, 3).mean(axis=(1, 3)).ravel()
        rows.append(np.concatenate([h, colour]).astype(np.float32))
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def fit_softmax(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float, max_iter: int,
                sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression: minimise the (``sample_weight``-weighted) mean
    cross-entropy + l2/2 ||W||^2 (bias not penalised). Returns W (D, C) and b (C,)."""
    n, d = x.shape
    onehot = np.eye(n_classes)[y]
    x64 = x.astype(np.float64)
    sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
    sw = (sw / sw.sum())[:, None]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: d * n_classes].reshape(d, n_classes), theta[d * n_classes :]
        logits = x64 @ w + b
        logp = log_softmax(logits, axis=1)
        value = -(sw * onehot * logp).sum() + 0.5 * l2 * (w * w).sum()
        g = sw * (np.exp(logp) - onehot)
        grad = np.concatenate([(x64.T @ g + l2 * w).ravel(), g.sum(axis=0)])
        return float(value), grad

    res = minimize(loss, np.zeros(d * n_classes + n_classes), jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter})
    return res.x[: d * n_classes].reshape(d, n_classes).astype(np.float32), res.x[d * n_classes :].astype(np.float32)


class HogSoftmax:
    """A fitted baseline: the :class:`core.predictors.Predictor` interface."""

    def __init__(self, categories: Sequence[str], size: int, mean: np.ndarray, std: np.ndarray, w: np.ndarray,
                 b: np.ndarray, info: dict[str, Any] | None = None) -> None:
        self.categories = tuple(categories)
        self.size, self.mean, self.std, self.w, self.b = size, mean, std, w, b
        self.info = info or {}

    @classmethod
    def fit(cls, images: Sequence[np.ndarray], labels: Sequence[str], categories: Sequence[str], *, size: int,
            l2: float, max_iter: int, info: dict[str, Any] | None = None) -> "HogSoftmax":
        x = features(images, size)
        index = {c: i for i, c in enumerate(categories)}
        y = np.array([index[label] for label in labels])
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        w, b = fit_softmax((x - mean) / std, y, len(categories), l2, max_iter)
        return cls(categories, size, mean, std, w, b, info)

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        x = (features(images, self.size) - self.mean) / self.std
        return softmax(x.astype(np.float64) @ self.w + self.b, axis=1)

    def predict_viewpoint(self, images: Sequence[np.ndarray]) -> None:
        return None

    def save(self, folder: str | Path) -> Path:
        info = {**self.info, "kind": KIND, "categories": list(self.categories), "image_size": self.size,
                "preprocessing": "square-pad (reflect), resize to image_size, RGB uint8"}
        return save_predictor(folder, info, {"mean": self.mean, "std": self.std, "w": self.w, "b": self.b})


@register(KIND)
def load(folder: Path, info: dict[str, Any]) -> HogSoftmax:
    arrays = load_weights(folder)
    return HogSoftmax(info["categories"], int(info["image_size"]), arrays["mean"], arrays["std"], arrays["w"],
                      arrays["b"], info)
