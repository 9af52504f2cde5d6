"""Stage ``train_baseline``: the wiring baseline, trained on composites only.

Reads the composites manifest (synthetic data only: renders of CAD models pasted on
backgrounds), holds out whole models for a synthetic validation accuracy, fits
:class:`core.baseline.HogSoftmax` on the rest and writes ``<paths.models>/baseline``
(predictor.json + weights.npz) and ``<paths.metrics>/train_baseline.json``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from core.baseline import HogSoftmax
from core.io import read_image, read_manifest, stable_hash, write_metrics
from core.params import Params
from stages._cli import stage_main

log = logging.getLogger("cad2real.train_baseline")
TRAINING_DATA = "synthetic only (composites of CAD renders)"


def split_models(frame: pd.DataFrame, fraction: float, seed: int) -> pd.Series:
    """True for rows whose model is held out: per category, the ``round(fraction * n)``
    models with the smallest stable hash, keeping at least one model for training."""
    held = pd.Series(False, index=frame.index)
    for _, group in frame.groupby("category", sort=True):
        models = sorted(group["model_id"].unique(), key=lambda m: stable_hash(seed, "holdout", m))
        n = min(int(round(fraction * len(models))), len(models) - 1)
        held |= frame["model_id"].isin(models[:n])
    return held


def load_images(root: Path, rel_paths: list[str], desc: str) -> list[np.ndarray]:
    return [read_image(root / rel) for rel in tqdm(rel_paths, desc=desc, unit="img", mininterval=2.0)]


def run(params: Params) -> dict:
    p = params.baseline
    root = Path(params.paths.composites)
    frame = read_manifest(root)
    if p.categories is not None:
        missing = sorted(set(p.categories) - set(frame["category"]))
        if missing:
            raise ValueError(f"baseline.categories: {missing} have no composites in {root}")
        frame = frame[frame["category"].isin(p.categories)].reset_index(drop=True)
    categories = sorted(frame["category"].unique())
    held = split_models(frame, p.holdout_models, params.seed)
    train, val = frame[~held], frame[held]
    log.info("train_baseline: %d composites of %d models (%d classes) for training, %d of %d models held out",
             len(train), train["model_id"].nunique(), len(categories), len(val), val["model_id"].nunique())

    start = time.perf_counter()
    info = {"training_data": TRAINING_DATA, "method": "HOG + colour grid, softmax regression (L-BFGS)",
            "params": p.model_dump(mode="json"), "train_composites": int(len(train))}
    model = HogSoftmax.fit(load_images(root, train["image"].tolist(), "train_baseline: read"),
                           train["category"].tolist(), categories, size=p.image_size, l2=p.l2,
                           max_iter=p.max_iter, info=info)
    fit_s = time.perf_counter() - start
    metrics: dict = {"training_data": TRAINING_DATA, "classes": len(categories), "train_composites": int(len(train)),
                     "train_models": int(train["model_id"].nunique())}  # no timings: same data, same bytes
    if len(val):
        proba = model.predict_proba(load_images(root, val["image"].tolist(), "train_baseline: holdout"))
        pred = np.array(categories)[proba.argmax(axis=1)]
        metrics["synthetic_holdout_accuracy"] = round(float((pred == val["category"].to_numpy()).mean()), 4)
        metrics["synthetic_holdout_composites"] = int(len(val))
    out = model.save(Path(params.paths.models) / "baseline")
    write_metrics(params.paths.metrics, "train_baseline", metrics)
    log.info("train_baseline: fitted in %.1f s; synthetic held-out accuracy %s; wrote %s",
             fit_s, metrics.get("synthetic_holdout_accuracy", "n/a (no held-out models)"), out)
    return metrics


def main() -> None:
    stage_main("train_baseline", run)


if __name__ == "__main__":
    main()
