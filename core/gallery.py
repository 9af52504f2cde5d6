"""A contact sheet of the pipeline's outputs: one row per class."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from core.io import read_image, read_manifest

TILE = 128
LABEL_W = 120


def _tiles(root: Path, df: pd.DataFrame, column: str, n: int) -> list[np.ndarray]:
    """Up to ``n`` images of ``df`` spread over its models (first view of each, then more)."""
    picked = df.sort_values(["model_id"]).groupby("model_id", sort=True).head(max(1, n)).copy()
    picked["rank"] = picked.groupby("model_id").cumcount()
    picked = picked.sort_values(["rank", "model_id"]).head(n)
    return [cv2.resize(read_image(root / rel), (TILE, TILE), interpolation=cv2.INTER_AREA) for rel in picked[column]]


def make_gallery(renders: Path, composites: Path, proxy_real: Path | None, per_class: int = 4) -> np.ndarray:
    """(H, W, 3) uint8: per class, ``per_class`` renders, composites and 2 proxy-real images
    (columns in that order; header row names them; the proxy-real columns are synthetic)."""
    r = read_manifest(renders)
    c = read_manifest(composites)
    p = read_manifest(proxy_real) if proxy_real is not None and (proxy_real / "manifest.parquet").exists() else None
    n_proxy = 2 if p is not None else 0
    width = LABEL_W + TILE * (2 * per_class + n_proxy)
    rows = [_header(width, per_class, n_proxy)]
    for category in sorted(r["category"].unique()):
        tiles = _tiles(renders, r[r["category"] == category], "rgb", per_class)
        tiles += _tiles(composites, c[c["category"] == category], "image", per_class)
        if p is not None:
            tiles += _tiles(proxy_real, p[p["category"] == category], "image", n_proxy)
        row = np.full((TILE, width, 3), 255, np.uint8)
        cv2.putText(row, category, (6, TILE // 2 + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        for j, tile in enumerate(tiles):
            row[:, LABEL_W + j * TILE: LABEL_W + (j + 1) * TILE] = tile
        rows.append(row)
    return np.concatenate(rows, axis=0)


def _header(width: int, per_class: int, n_proxy: int) -> np.ndarray:
    head = np.full((28, width, 3), 255, np.uint8)
    labels = [("renders", per_class), ("composites", per_class), ("proxy-real (synthetic)", n_proxy)]
    x = LABEL_W
    for text, n in labels:
        if n:
            cv2.putText(head, text, (x + 6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        x += n * TILE
    return head
