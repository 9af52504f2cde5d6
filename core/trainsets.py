"""Training data from the composites: images, semantic targets, labels, model-level
splits and the pose-based multi-triplet sets of seed 000 §V-B.

Everything is synthetic (renders of CAD models pasted on backgrounds). Splits hold out
whole models, never single views, so the synthetic test accuracy measures new objects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from core.io import read_image, read_manifest, rng_for, stable_hash
from core.params import ProductShotParams

log = logging.getLogger("cad2real.trainsets")
TRAINING_DATA = "synthetic only (composites of CAD renders)"
PRODUCT_SHOTS_DATA = "synthetic only (product shots of CAD renders)"
# Images and semantic channels are fed as (x/255 - MEAN) / STD: roughly zero mean, unit
# variance, so the Gaussian noise of eq. 8 is on the data's scale.
MEAN, STD = 0.5, 0.25


@dataclass
class TrainingData:
    """Composites of the chosen classes, resized to ``size`` and held in memory."""

    images: np.ndarray  # (N, S, S, 3) uint8 RGB
    targets: np.ndarray | None  # (N, S, S, 3) uint8 semantic targets (flat class colour, depth-shaded)
    labels: np.ndarray  # (N,) int64 index into categories
    categories: tuple[str, ...]
    frame: pd.DataFrame  # the manifest rows, with a ``split`` column: train | val | test

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.frame["split"].to_numpy() == split)


def split_models(frame: pd.DataFrame, val: float, test: float, seed: int) -> pd.Series:
    """``train``/``val``/``test`` per row, by whole models: per class, models ordered by a
    stable hash; the first ``round(test*n)`` are test, the next ``round(val*n)`` val; at
    least one model of each class stays in training."""
    split = pd.Series("train", index=frame.index, dtype=object)
    for _, group in frame.groupby("category", sort=True):
        models = sorted(group["model_id"].unique(), key=lambda m: stable_hash(seed, "split", m))
        n = len(models)
        n_test = min(int(round(test * n)), max(n - 1, 0))
        n_val = min(int(round(val * n)), max(n - 1 - n_test, 0))
        split[frame["model_id"].isin(models[:n_test])] = "test"
        split[frame["model_id"].isin(models[n_test : n_test + n_val])] = "val"
    return split


def resize(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size and image.shape[1] == size:
        return image
    interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def load_composites(root: str | Path, categories: Sequence[str], size: int, *, targets: bool, val: float,
                    test: float, seed: int) -> TrainingData:
    """The composites of ``categories`` (sorted), resized to ``size``. Classes without
    composites are left out with a warning (the model cannot predict them); fewer than two
    classes left is a ValueError naming the manifest."""
    root = Path(root)
    frame, categories = _select(root, "composites", categories, "composite_id", val, test, seed)
    images = np.stack([resize(read_image(root / rel), size)
                       for rel in tqdm(frame["image"], desc="train: read composites", unit="img", mininterval=2.0)])
    sem = None
    if targets:
        sem = np.stack([resize(read_image(root / rel), size)
                        for rel in tqdm(frame["semantic"], desc="train: read targets", unit="img", mininterval=2.0)])
    return _training_data(images, sem, categories, frame, "composites", size)


def _select(root: Path, what: str, categories: Sequence[str], order: str, val: float, test: float,
            seed: int) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The manifest rows of ``categories`` (those present, sorted), in ``order``, with their
    model-level ``split``; a class without rows is a warning, fewer than two an error."""
    frame = read_manifest(root)
    present = set(frame["category"])
    missing = sorted(set(categories) - present)
    if missing:
        log.warning("train data: %s has no %s of %s; the model will not know those classes (add CAD "
                    "models of them to the catalog)", root / "manifest.parquet", what, missing)
    categories = tuple(sorted(set(categories) & present))
    if len(categories) < 2:
        raise ValueError(f"{root / 'manifest.parquet'}: {what} of {categories or 'no class'} only; training "
                         "needs at least two classes of trainer.label_set")
    frame = frame[frame["category"].isin(categories)].sort_values(order).reset_index(drop=True)
    frame["split"] = split_models(frame, val, test, seed)
    return frame, categories


def _training_data(images: np.ndarray, targets: np.ndarray | None, categories: tuple[str, ...],
                   frame: pd.DataFrame, what: str, size: int) -> TrainingData:
    index = {c: i for i, c in enumerate(categories)}
    labels = frame["category"].map(index).to_numpy(np.int64)
    counts = frame.groupby("split")["model_id"].nunique().to_dict()
    log.info("train data: %d %s of %d classes at %d px; models per split %s", len(frame), what, len(categories),
             size, counts)
    return TrainingData(images, targets, labels, categories, frame)


def product_shot(rgb: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], margin: float, grey: float,
                 size: int, stretch: bool) -> np.ndarray:
    """A render framed like a product photo: the object (soft-edged ``mask``) on a plain
    ``grey`` background, cropped to ``box`` (x0, y0, x1, y1) grown by ``margin`` of its size
    on each side, then stretched (or padded with the background) to ``size`` square."""
    alpha = cv2.GaussianBlur((mask > 0).astype(np.float32), (3, 3), 0)[:, :, None]
    image = rgb[:, :, :3].astype(np.float32) * alpha + grey * (1.0 - alpha)
    x0, y0, x1, y1 = box
    mx, my = int(margin * (x1 - x0)), int(margin * (y1 - y0))
    image = image[max(0, y0 - my) : y1 + my, max(0, x0 - mx) : x1 + mx]
    if not stretch:
        h, w = image.shape[:2]
        side = max(h, w)
        canvas = np.full((side, side, 3), grey, np.float32)
        canvas[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = image
        image = canvas
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR).round().clip(0, 255).astype(np.uint8)


def load_product_shots(root: str | Path, categories: Sequence[str], size: int, shots: ProductShotParams, *,
                       stretch: bool, val: float, test: float, seed: int) -> TrainingData:
    """The renders of ``categories`` under ``root`` (``paths.renders``) as product shots
    (:func:`product_shot`; the grey level of each drawn from ``shots.background``, seeded by
    the render's id), with the composites' model-level splits."""
    root = Path(root)
    frame, categories = _select(root, "renders", categories, "sample_id", val, test, seed)
    frame["composite_id"] = frame["sample_id"]  # the row id the training plots name
    images = []
    for row in tqdm(frame.itertuples(), total=len(frame), desc="train: product shots", unit="img", mininterval=2.0):
        rgb, mask = read_image(root / row.rgb), read_image(root / row.mask)
        if mask.ndim == 3:
            mask = mask[:, :, 0]
        grey = rng_for(seed, "product_shot", row.sample_id).uniform(shots.background.lo, shots.background.hi)
        box = (int(row.bbox_x0), int(row.bbox_y0), int(row.bbox_x1), int(row.bbox_y1))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"{root / row.rgb}: the object's box {box} is empty (manifest {root / 'manifest.parquet'}"
                             "); re-render it (dvc repro render)")
        images.append(product_shot(rgb, mask, box, shots.margin, grey, size, stretch))
    return _training_data(np.stack(images), None, categories, frame, "product shots of renders", size)


def to_tensor_batch(images: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, 3, S, S) float32, normalised with MEAN/STD."""
    return ((images.astype(np.float32) / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2)


def view_directions(frame: pd.DataFrame) -> np.ndarray:
    """Unit camera directions (N, 3) from azimuth/elevation in degrees."""
    az, el = np.radians(frame["azimuth"].to_numpy(float)), np.radians(frame["elevation"].to_numpy(float))
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=1)


class TripletSampler:
    """Multi-triplet sets (seed 000 Fig. 5a) over the training rows: the reference, the
    positive = the view of the same model with the nearest pose (the reference itself,
    re-noised, when the model has one view), one negative of the same class at least
    ``far_pose_deg`` away in pose (any model of the class; the farthest of a few tries),
    and ``n_other`` negatives of other classes."""

    def __init__(self, data: TrainingData, rows: np.ndarray, far_pose_deg: float, n_other: int):
        self.rows = np.asarray(rows)
        frame = data.frame.iloc[self.rows]
        self.dirs = view_directions(frame)
        self.labels = data.labels[self.rows]
        self.n_other = n_other
        self.cos_far = float(np.cos(np.radians(far_pose_deg)))
        self.positive = np.arange(len(self.rows))
        for _, pos in frame.reset_index(drop=True).groupby("model_id").indices.items():
            if len(pos) > 1:
                sims = self.dirs[pos] @ self.dirs[pos].T
                np.fill_diagonal(sims, -np.inf)
                self.positive[pos] = pos[sims.argmax(axis=1)]
        self.by_class = {c: np.flatnonzero(self.labels == c) for c in np.unique(self.labels)}
        self.others = {c: np.flatnonzero(self.labels != c) for c in self.by_class}

    def sample(self, refs: np.ndarray, rng: np.random.Generator, tries: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """For positions ``refs`` (into ``rows``): the positives (n,) and negatives
        (n, 1 + n_other), as row indices of the training data."""
        negs = np.empty((len(refs), 1 + self.n_other), np.int64)
        for i, r in enumerate(refs):
            same = self.by_class[self.labels[r]]
            cand = same[rng.integers(0, len(same), tries)]
            cos = self.dirs[cand] @ self.dirs[r]
            far = cand[cos <= self.cos_far]
            negs[i, 0] = far[0] if len(far) else cand[cos.argmin()]
            other = self.others[self.labels[r]]
            negs[i, 1:] = other[rng.integers(0, len(other), self.n_other)] if len(other) else r
        return self.rows[self.positive[refs]], self.rows[negs]
