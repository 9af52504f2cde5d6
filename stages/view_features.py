"""view_features stage: the view database of seed 004 — frozen CNN features of every
rendered view of every training model, with its model, category and pose.

Each render is put on white (its alpha mask) and its object box turned into features of
every layer of ``features.layers`` (core/features.py).

Output ``paths.view_features``/:
  manifest.parquet  one row per view, in the rows' order of the feature files: view_index,
                    sample_id, model_id, category, azimuth, elevation, theta, distance,
                    aspect (bbox height / width, for the aspect-ratio filter), bbox_x0..y1
  <layer>.npy       (V, D) float16 features of each layer
  info.json         backbone and where its weights came from ("random-init" without
                    weights), layers and their dimensions, image size, grid, grey
and ``paths.metrics``/view_features.json.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from core.features import VIEWS_INFO as INFO
from core.features import FeatureExtractor
from core.io import MANIFEST, atomic_dir, read_image, read_manifest, write_manifest, write_metrics
from core.params import FeaturesParams, Params
from stages._cli import stage_main

log = logging.getLogger("cad2real.view_features")

CHUNK = 256  # views read and featurised at a time
COLUMNS = ["view_index", "sample_id", "model_id", "category", "azimuth", "elevation", "theta", "distance",
           "aspect", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]


def view_on_white(renders_dir: Path, row: Any) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The render of ``row`` composited on white by its mask, and its object box."""
    rgb = read_image(renders_dir / row.rgb).astype(np.float32)
    alpha = read_image(renders_dir / row.mask, flags=cv2.IMREAD_GRAYSCALE).astype(np.float32)[..., None] / 255.0
    image = np.clip(np.round(rgb * alpha + 255.0 * (1.0 - alpha)), 0, 255).astype(np.uint8)
    x0, y0, x1, y1 = (float(v) for v in (row.bbox_x0, row.bbox_y0, row.bbox_x1, row.bbox_y1))
    return image, (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))


def database_info(extractor: FeatureExtractor, p: FeaturesParams, dims: dict[str, int]) -> dict[str, Any]:
    return {**extractor.info, "layers": dims, "image_size": p.image_size, "grid": p.grid, "grey": p.grey,
            "relu": p.relu}


def run(params: Params) -> pd.DataFrame:
    p = params.features
    renders_dir = Path(params.paths.renders)
    renders = read_manifest(renders_dir / MANIFEST).sort_values("sample_id", kind="stable").reset_index(drop=True)
    extractor = FeatureExtractor(p, seed=params.seed)
    log.info("view_features: %d rendered views of %d models, layers %s of %s (%s weights), %d px boxes, %s",
             len(renders), renders["model_id"].nunique(), list(p.layers), p.backbone, extractor.info["source"],
             p.image_size, "grey" if p.grey else "colour")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in extractor.layers}
    aspect: list[float] = []
    with tqdm(total=len(renders), desc="view_features", unit="view", mininterval=2.0) as bar:
        for start in range(0, len(renders), CHUNK):  # a chunk of crops in memory at a time
            items = [view_on_white(renders_dir, row) for row in renders.iloc[start : start + CHUNK].itertuples()]
            aspect += [(y1 - y0) / (x1 - x0) for _, (x0, y0, x1, y1) in items]
            for name, f in extractor.many(items).items():
                parts[name].append(f)
            bar.update(len(items))
    features = {name: np.concatenate(v) for name, v in parts.items()}
    views = renders.assign(view_index=np.arange(len(renders)), aspect=aspect)[COLUMNS]
    dims = {name: int(f.shape[1]) for name, f in features.items()}
    out = Path(params.paths.view_features)
    with atomic_dir(out) as tmp:
        write_manifest(views, tmp / MANIFEST)
        for name, f in features.items():
            np.save(tmp / f"{name}.npy", f.astype(np.float16))
        (tmp / INFO).write_text(json.dumps(database_info(extractor, p, dims), indent=2, sort_keys=True) + "\n")
    write_metrics(params.paths.metrics, "view_features", {
        "views": len(views), "models": int(views["model_id"].nunique()),
        "per_category": {k: int(v) for k, v in views.groupby("category").size().items()},
        "dims": dims, "weights_source": extractor.info["source"],
        "megabytes": round(sum(f.size * 2 for f in features.values()) / 2**20, 2),
    })
    log.info("view_features: wrote %d views x layers %s to %s", len(views), dims, out)
    return views


def main() -> None:
    stage_main("view_features", run)


if __name__ == "__main__":
    main()
