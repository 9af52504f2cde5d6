"""The exemplar detector of seed 004 §4.3 and the files it is made of: the view database
(stage view_features), the adaptation φ (stage train_adaptation) and the per-view
calibration (stage exemplar).

Scores of every region against every compatible view are one matrix product,
``Y·φ(x) + d`` with ``Y`` the unit-normalised view features scaled by their calibration
``c`` (the seed's cosine layer with the calibration folded in). The aspect-ratio filter is
applied before the product: windows of one aspect ratio are scored against the views
compatible with it only, which is also what makes 80,000 views affordable on a CPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from core import exemplar as ex
from core.features import ADAPTATION_META, PAIRS, VIEWS_INFO, FeatureExtractor
from core.io import MANIFEST, read_manifest
from core.params import ExemplarParams, Params
from models.adaptation import Adaptation

CALIBRATION = "calibration.npz"


class ViewDatabase:
    """A view database read back: ``views`` (the manifest), ``features[layer]`` (V, D)
    float32 and ``info`` (backbone, weights source, layers, image size, grid, grey)."""

    def __init__(self, folder: str | Path, layers: tuple[str, ...] | list[str] | None = None):
        self.folder = Path(folder)
        self.views = read_manifest(self.folder / MANIFEST)
        info_path = self.folder / VIEWS_INFO
        if not info_path.is_file():
            raise FileNotFoundError(f"{info_path}: view database info not found (run the view_features stage)")
        self.info = json.loads(info_path.read_text())
        self.features: dict[str, np.ndarray] = {}
        for layer in layers or tuple(self.info["layers"]):
            path = self.folder / f"{layer}.npy"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no features of layer {layer!r} in the view database "
                                        f"(layers stored: {sorted(self.info['layers'])}; see features.layers)")
            array = np.load(path, allow_pickle=False)
            if array.ndim != 2 or array.shape[0] != len(self.views):
                raise ValueError(f"{path}: shape {array.shape} does not fit the {len(self.views)} views of "
                                 f"{self.folder / MANIFEST}; re-run the view_features stage")
            self.features[layer] = array.astype(np.float32)


def load_adaptation(folder: str | Path, variant: str | None = None) -> tuple[Adaptation, dict[str, Any]]:
    """A trained φ (default: the ``default`` variant of ``adaptation.json``) and that meta."""
    folder = Path(folder)
    meta_path = folder / ADAPTATION_META
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: no trained adaptation (run the train_adaptation stage)")
    meta = json.loads(meta_path.read_text())
    variant = variant or meta["default"]
    phi = Adaptation(variant, meta["channels"], meta["grid"])
    if variant != "none":
        path = folder / f"{variant}.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: adaptation variant {variant!r} was not trained "
                                    f"(trained: {meta['variants']})")
        with np.load(path, allow_pickle=False) as arrays:
            try:
                phi.load_state_dict({k: torch.from_numpy(arrays[k]) for k in arrays.files})
            except RuntimeError as exc:
                raise ValueError(f"{path}: weights do not fit variant {variant!r}: "
                                 f"{' '.join(str(exc).split())[:300]}") from None
    return phi.eval(), meta


@torch.inference_mode()
def adapt(phi: Adaptation, x: np.ndarray) -> np.ndarray:
    """φ applied to (N, D) features."""
    if phi.variant == "none":
        return np.asarray(x, np.float32)
    return phi(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()


@dataclass
class Scored:
    """The regions of one image against the views: per region and category the best
    score and which view gave it (-inf / -1 where no view is compatible)."""

    boxes: np.ndarray  # (R, 4)
    best: np.ndarray  # (R, K)
    which: np.ndarray  # (R, K)


class ExemplarDetector:
    """Detection by alignment to rendered views.

    exemplars: (V, D) view features (the database's clean renders, or composites of them);
    views: the view manifest rows aligned with them (category, model_id, pose, aspect);
    phi: the adaptation applied to image regions (``none`` for no adaptation);
    calibration: (c, d) per view, or None for raw cosine scores.
    """

    def __init__(self, exemplars: np.ndarray, views: pd.DataFrame, phi: Adaptation, p: ExemplarParams,
                 categories: list[str] | None = None, calibration: tuple[np.ndarray, np.ndarray] | None = None):
        self.p, self.phi = p, phi
        self.views = views.reset_index(drop=True)
        self.categories = categories or sorted(self.views["category"].unique())
        index = {c: i for i, c in enumerate(self.categories)}
        self.view_category = np.array([index.get(c, -1) for c in self.views["category"]])
        self.view_aspect = self.views["aspect"].to_numpy(np.float64)
        self.unit = ex.normalise(exemplars)
        self.set_calibration(calibration)

    def set_calibration(self, calibration: tuple[np.ndarray, np.ndarray] | None) -> None:
        self.calibration = calibration
        if calibration is None:
            self.weights, self.bias = self.unit, np.zeros(len(self.unit), np.float32)
        else:
            c, d = calibration
            self.weights, self.bias = self.unit * c[:, None], np.asarray(d, np.float32)
        self._blocks: dict[float, tuple] = {}

    def calibrate(self, patch_features: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Fit and use the per-view calibration on the features of random patches (views in
        chunks, so 80,000 views x 20,000 patches never sit in memory at once)."""
        a = ex.normalise(adapt(self.phi, patch_features))
        parts = [ex.calibration(a @ self.unit[i : i + chunk].T, self.p.calibration_percentile)
                 for i in range(0, len(self.unit), chunk)]
        cal = (np.concatenate([c for c, _ in parts]), np.concatenate([d for _, d in parts]))
        self.set_calibration(cal)
        return cal

    def _block(self, key: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int, int]]]:
        """The views compatible with windows of aspect exp(key), sorted by category: their
        indices, weights and biases (copied once) and each category's (k, start, stop)."""
        if key not in self._blocks:
            ok = ex.aspect_compatible(np.array([np.exp(key)]), self.view_aspect, self.p.aspect_tau)[0]
            cols = np.nonzero(ok & (self.view_category >= 0))[0]
            cols = cols[np.argsort(self.view_category[cols], kind="stable")]
            cats = self.view_category[cols]
            bounds = np.flatnonzero(np.diff(cats)) + 1
            segments = [(int(cats[a]), int(a), int(b)) for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(cols)],
                                                                      strict=True) if b > a]
            self._blocks[key] = (cols, np.ascontiguousarray(self.weights[cols]), self.bias[cols], segments)
        return self._blocks[key]

    def score(self, boxes: np.ndarray, features: np.ndarray) -> Scored:
        """Calibrated scores Y·φ(x) + d of every region against its compatible views,
        reduced to the best view per category."""
        a = ex.normalise(adapt(self.phi, features))
        keys = np.round(np.log(ex.box_aspect(boxes)), 3)
        k = len(self.categories)
        best = np.full((len(boxes), k), -np.inf, np.float32)
        which = np.full((len(boxes), k), -1, np.int64)
        for key in np.unique(keys):
            rows = np.nonzero(keys == key)[0]
            cols, weights, bias, segments = self._block(float(key))
            if not len(cols):
                continue
            s = a[rows] @ weights.T + bias
            for cat, start, stop in segments:  # contiguous: views, not copies
                arg = s[:, start:stop].argmax(axis=1)
                best[rows, cat] = s[np.arange(len(rows)), start + arg]
                which[rows, cat] = cols[start + arg]
        return Scored(np.asarray(boxes, np.float64), best, which)

    def detections(self, scored: Scored) -> list[dict[str, Any]]:
        """Per-category NMS, then the ``max_per_image`` best: dicts with box, category,
        score, view (index), model_id, sample_id, azimuth, elevation, theta."""
        found = []
        for k, category in enumerate(self.categories):
            ok = np.nonzero(np.isfinite(scored.best[:, k]))[0]
            if not len(ok):
                continue
            ok = ok[np.argsort(-scored.best[ok, k], kind="stable")[: 4 * self.p.max_per_image]]
            for i in ok[ex.nms(scored.boxes[ok], scored.best[ok, k], self.p.nms_iou)]:
                found.append((float(scored.best[i, k]), k, int(i)))
        found.sort(key=lambda t: -t[0])
        out = []
        for score, k, i in found[: self.p.max_per_image]:
            v = self.views.iloc[int(scored.which[i, k])]
            out.append({"box": [round(float(c), 2) for c in scored.boxes[i]], "category": self.categories[k],
                        "score": score, "view": int(scored.which[i, k]), "model_id": str(v["model_id"]),
                        "sample_id": str(v["sample_id"]), "azimuth": float(v["azimuth"]),
                        "elevation": float(v["elevation"]), "theta": float(v["theta"])})
        return out


def windows(image: np.ndarray, p: ExemplarParams) -> np.ndarray:
    """The sliding-window proposals of ``image`` (R, 4)."""
    h, w = image.shape[:2]
    sizes = ex.geometric(p.window_sizes.lo, p.window_sizes.hi, p.window_size_step)
    aspects = ex.geometric(p.window_aspects.lo, p.window_aspects.hi, p.window_aspect_step)
    return ex.sliding_windows(w, h, sizes, aspects, p.window_stride)


def region_features(extractor: FeatureExtractor, image: np.ndarray, layer: str,
                    p: ExemplarParams) -> tuple[np.ndarray, np.ndarray]:
    """The proposals of ``image`` and their features, from the maps computed once per scale."""
    boxes = windows(image, p)
    return boxes, extractor.box_features(image, boxes, shared=True)[layer]


def patch_features(extractor: FeatureExtractor, images: list[np.ndarray], n: int, layer: str, p: ExemplarParams,
                   rng: np.random.Generator) -> np.ndarray:
    """Features of ``n`` random proposals of ``images`` (the calibration's "random patches"),
    computed as proposals are."""
    per_image = np.bincount(rng.integers(len(images), size=n), minlength=len(images))
    out = []
    for image, k in zip(images, per_image, strict=True):
        if k:
            boxes = windows(image, p)
            boxes = boxes[rng.choice(len(boxes), size=min(int(k), len(boxes)), replace=False)]
            out.append(extractor.box_features(image, boxes, shared=True)[layer])
    return np.concatenate(out)


class Detector:
    """The exemplar detector the pipeline built, as ``c2r predict --exemplar`` uses it: the
    view database (view_features), the default φ (train_adaptation) and the calibration
    of the exemplar stage, read from the params' paths."""

    def __init__(self, params: Params):
        layer = params.adaptation.layer
        self.db = ViewDatabase(params.paths.view_features, layers=[layer])
        self.phi, meta = load_adaptation(params.paths.adaptation)
        cal_path = Path(params.paths.exemplar) / CALIBRATION
        if not cal_path.is_file():
            raise FileNotFoundError(f"{cal_path}: no calibration (run the exemplar stage: dvc repro exemplar)")
        with np.load(cal_path, allow_pickle=False) as cal:
            ids, c, d = cal["sample_id"].tolist(), cal["c"], cal["d"]
            variant = str(cal["variant"])
        if ids != self.db.views["sample_id"].astype(str).tolist() or variant != self.phi.variant:
            raise ValueError(f"{cal_path}: calibrated for other views or another adaptation ({variant}); "
                             "re-run the exemplar stage")
        self.extractor = FeatureExtractor(params.features, layers=[layer], seed=params.seed)
        self.layer, self.p = layer, params.exemplar
        self.detector = ExemplarDetector(self.db.features[layer], self.db.views, self.phi, params.exemplar,
                                         calibration=(c, d))
        self.info = {"views": len(self.db.views), "models": int(self.db.views["model_id"].nunique()),
                     "layer": layer, "adaptation": self.phi.variant, "weights_source": self.db.info.get("source"),
                     "training_data": "synthetic only (renders of CAD models)"}

    def __call__(self, image: np.ndarray, min_score: float | None = None) -> list[dict[str, Any]]:
        """The detections of one uint8 RGB image, best first (``min_score``: calibrated
        scores below are dropped; 0 is the expected 0.01% false-positive rate)."""
        boxes, feats = region_features(self.extractor, image, self.layer, self.p)
        found = self.detector.detections(self.detector.score(boxes, feats))
        return [d for d in found if min_score is None or d["score"] >= min_score]
