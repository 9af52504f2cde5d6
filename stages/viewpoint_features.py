"""viewpoint_features stage: the training boxes of the viewpoint methods, seen once
through the frozen backbone (seed 004 §5.5: renders composited on backgrounds, their
exact viewpoints, horizontal flips with flipped targets).

Rows, per composite of the composite stage: its object box; a jittered box (IoU >=
``viewpoint.jitter_iou``), so detection tolerates the sliding windows' imprecision; with
``hflip`` both boxes again on the mirrored image, azimuth -> 360 - a, θ -> -θ; and
``part_negatives`` windows overlapping the object by IoU in [0.1, 0.4) (background).
Then ``background_negatives`` random sliding windows of the composite stage's background
photos, computed as detection proposals are. When a ``<method>_real`` method is listed,
the objects of ``viewpoint.real_train`` (e.g. PASCAL3D+ train) the same way, with
source ``real`` (never an evaluation split).

Outputs under ``paths.viewpoint_features``: ``features.npy`` (N, D) float16 (the
``viewpoint.layer`` map pooled to ``viewpoint.grid`` cells), ``rows.parquet`` (source,
category, model_id, azimuth, elevation, theta, flipped; category empty for background),
``info.json`` (backbone and feature definition); ``paths.metrics``/viewpoint_features.json.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from core.backgrounds import load_backgrounds
from core.detector import patch_features
from core.evalsets import DatasetNotFound
from core.features import FeatureExtractor
from core.io import MANIFEST, atomic_dir, read_image, read_manifest, rng_for, write_metrics
from core.metrics import box_iou
from core.params import FeaturesParams, Params
from core.viewpoint import flip_viewpoint, parse_method
from stages._cli import stage_main

log = logging.getLogger("cad2real.viewpoint_features")

FEATURES, ROWS, INFO = "features.npy", "rows.parquet", "info.json"


def feature_params(params: Params) -> FeaturesParams:
    """The features every viewpoint model sees: ``features`` with the viewpoint layer and grid."""
    vp = params.viewpoint
    return params.features.model_copy(update={"layers": (vp.layer,), "grid": vp.grid})


def jitter_box(box: np.ndarray, min_iou: float, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random shift and rescale of ``box`` inside the image with IoU >= ``min_iou``
    (the box itself after 50 unlucky draws)."""
    w, h = box[2] - box[0], box[3] - box[1]
    for _ in range(50):
        s = np.exp(rng.uniform(-0.2, 0.2, 2))
        cx, cy = (box[0] + box[2]) / 2 + rng.uniform(-0.15, 0.15) * w, (box[1] + box[3]) / 2 + rng.uniform(-0.15, 0.15) * h
        nw, nh = w * s[0], h * s[1]
        out = np.array([max(0.0, cx - nw / 2), max(0.0, cy - nh / 2), min(size[0], cx + nw / 2), min(size[1], cy + nh / 2)])
        if out[2] - out[0] >= 4 and out[3] - out[1] >= 4 and box_iou(out[None], box[None])[0, 0] >= min_iou:
            return out
    return box.copy()


def part_box(box: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray | None:
    """A window overlapping ``box`` by IoU in [0.1, 0.4): part object, part background."""
    for _ in range(100):
        side = rng.uniform(0.3, 0.9) * min(size)
        aspect = np.exp(rng.uniform(-0.5, 0.5))
        bw, bh = side * np.sqrt(aspect), side / np.sqrt(aspect)
        x0, y0 = rng.uniform(0, max(size[0] - bw, 1e-3)), rng.uniform(0, max(size[1] - bh, 1e-3))
        out = np.array([x0, y0, min(size[0], x0 + bw), min(size[1], y0 + bh)])
        if 0.1 <= box_iou(out[None], box[None])[0, 0] < 0.4:
            return out
    return None


def mirror(box: np.ndarray, width: int) -> np.ndarray:
    return np.array([width - box[2], box[1], width - box[0], box[3]])


def object_rows(extractor: FeatureExtractor, layer: str, image: np.ndarray, box: np.ndarray, meta: dict[str, Any],
                params: Params, rng: np.random.Generator, negatives: int) -> tuple[list[np.ndarray], list[dict]]:
    """Features and rows of one object: its box, a jittered box, their mirrors, part windows."""
    vp = params.viewpoint
    h, w = image.shape[:2]
    boxes = [box, jitter_box(box, vp.jitter_iou, (w, h), rng)]
    rows = [meta | {"jittered": False, "flipped": False}, meta | {"jittered": True, "flipped": False}]
    feats = [extractor.box_features(image, np.array(boxes))[layer]]
    if vp.hflip:
        az, el, th = flip_viewpoint(meta["azimuth"], meta["elevation"], meta["theta"])
        flipped = meta | {"azimuth": float(az), "elevation": float(el), "theta": float(th), "flipped": True}
        feats.append(extractor.box_features(image[:, ::-1], np.array([mirror(b, w) for b in boxes]))[layer])
        rows += [flipped | {"jittered": False}, flipped | {"jittered": True}]
    parts = [b for b in (part_box(box, (w, h), rng) for _ in range(negatives)) if b is not None]
    if parts:
        feats.append(extractor.box_features(image, np.array(parts))[layer])
        rows += [{"source": "part", "category": "", "model_id": meta["model_id"], "azimuth": np.nan,
                  "elevation": np.nan, "theta": np.nan, "jittered": False, "flipped": False}] * len(parts)
    return feats, rows


def composite_rows(extractor: FeatureExtractor, layer: str, params: Params) -> tuple[list[np.ndarray], list[dict]]:
    root = Path(params.paths.composites)
    manifest = read_manifest(root / MANIFEST)
    feats, rows = [], []
    for r in tqdm(manifest.itertuples(index=False), total=len(manifest), desc="viewpoint boxes", unit="img",
                  mininterval=2.0):
        image = read_image(root / r.image)
        box = np.array([r.bbox_x0, r.bbox_y0, r.bbox_x1, r.bbox_y1], float)
        meta = {"source": "composite", "category": r.category, "model_id": str(r.model_id),
                "azimuth": float(r.azimuth), "elevation": float(r.elevation), "theta": float(r.theta)}
        f, rw = object_rows(extractor, layer, image, box, meta, params,
                            rng_for(params.seed, "viewpoint_boxes", r.composite_id), params.viewpoint.part_negatives)
        feats += f
        rows += rw
    return feats, rows


def real_rows(extractor: FeatureExtractor, layer: str, params: Params) -> tuple[list[np.ndarray], list[dict], str]:
    """The annotated objects of ``viewpoint.real_train`` (non-difficult, with a viewpoint)."""
    from stages.evaluate import open_dataset

    d = params.viewpoint.real_train
    if d is None:
        raise ValueError("viewpoint.methods lists a *_real method but viewpoint.real_train is null")
    try:
        evalset = open_dataset(d, params)
    except DatasetNotFound as exc:  # a *_real method without its photos cannot be trained
        raise FileNotFoundError(f"viewpoint.real_train: {exc} (needed by the *_real methods of "
                                "viewpoint.methods; remove them or point real_train at PASCAL3D+)") from None
    if d.split == "val" or (d.split or "").startswith("test"):
        raise ValueError(f"viewpoint.real_train: split {d.split!r} is an evaluation split; use train")
    feats, rows = [], []
    for image, obj in tqdm(evalset.objects(), desc=f"real boxes {d.name}", unit="obj", mininterval=2.0):
        if obj.difficult or obj.azimuth is None or obj.bbox is None:
            continue
        pixels = read_image(image.image)
        meta = {"source": "real", "category": obj.category, "model_id": f"real:{image.image_id}",
                "azimuth": float(obj.azimuth), "elevation": float(obj.elevation or 0.0), "theta": float(obj.theta or 0.0)}
        f, rw = object_rows(extractor, layer, pixels, np.array(obj.bbox, float), meta, params,
                            rng_for(params.seed, "viewpoint_real", image.image_id, obj.bbox), 0)
        feats += f
        rows += rw
    return feats, rows, evalset.domain


def run(params: Params) -> dict[str, Any]:
    vp = params.viewpoint
    fp = feature_params(params)
    extractor = FeatureExtractor(fp, layers=[vp.layer], seed=params.seed)
    feats, rows = composite_rows(extractor, vp.layer, params)
    n_real, real_note = 0, "not used (no *_real method in viewpoint.methods)"
    if any(parse_method(m).real for m in vp.methods):
        f, r, domain = real_rows(extractor, vp.layer, params)
        feats, rows, n_real = feats + f, rows + r, len(r)
        real_note = f"{vp.real_train.name} ({domain}): {len(r)} boxes"
    backgrounds = load_backgrounds(params.composite.backgrounds, params.seed)
    if vp.background_negatives:
        bg = patch_features(extractor, [b.image for b in backgrounds], vp.background_negatives, vp.layer,
                            params.exemplar, rng_for(params.seed, "viewpoint_negatives"))
        feats.append(bg)
        rows += [{"source": "background", "category": "", "model_id": "", "azimuth": np.nan, "elevation": np.nan,
                  "theta": np.nan, "jittered": False, "flipped": False}] * len(bg)
    x = np.concatenate(feats).astype(np.float16)
    table = pd.DataFrame(rows)
    if len(table) != len(x):
        raise AssertionError(f"{len(table)} rows for {len(x)} features")
    out = Path(params.paths.viewpoint_features)
    counts = table["source"].value_counts().to_dict()
    info = {"layer": vp.layer, "grid": vp.grid, "dim": int(x.shape[1]), "features": fp.model_dump(mode="json"),
            "backbone": extractor.info.get("source"), "weights": extractor.info.get("weights"),
            "rows": {k: int(v) for k, v in sorted(counts.items())}, "real_train": real_note,
            "training_data": "synthetic (composites of renders)" + (" + real annotated photos" if n_real else "")}
    with atomic_dir(out) as tmp:
        np.save(tmp / FEATURES, x, allow_pickle=False)
        table.to_parquet(tmp / ROWS, index=False)
        (tmp / INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    write_metrics(params.paths.metrics, "viewpoint_features", {k: info[k] for k in ("layer", "grid", "dim", "rows")})
    log.info("viewpoint_features: %d boxes (%s), %d-d %s features -> %s", len(x),
             ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), x.shape[1], vp.layer, out)
    return info


def main() -> None:
    stage_main("viewpoint_features", run)


if __name__ == "__main__":
    main()
