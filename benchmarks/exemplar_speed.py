"""Exemplar detection speed: one image against N rendered views, proposals included
(seed 004 §4.4.4: 9.5 s for 2k views and 52 s for 80k views on a GTX 980; target here:
under 1 s for 80,000 views on a 2-core CPU).

    .venv/bin/python benchmarks/exemplar_speed.py [--views 2000 80000] [--repeats 5]

Needs the pipeline's view database and adaptation (``dvc repro train_adaptation``). The
database is tiled to N views (each copy with a little noise, so no two rows are equal);
the calibration is fitted on random background patches before timing. Timed per image:
sliding-window proposals, the feature maps (one per window size) and region pooling, φ,
the scores Y·φ(x)+d of every window against its aspect-compatible views, the best view per
category, NMS. The image is the first of the proxy-real detection set (or a background
photo when that set is missing). Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from core.backgrounds import load_backgrounds
from core.detector import ExemplarDetector, ViewDatabase, load_adaptation, patch_features, region_features
from core.evalsets import load_proxy_real
from core.features import FeatureExtractor
from core.io import read_image, rng_for
from core.params import load_params


def tiled(db: ViewDatabase, layer: str, n: int, rng: np.random.Generator):
    reps = int(np.ceil(n / len(db.views)))
    y = np.tile(db.features[layer], (reps, 1))[:n]
    y = y + rng.normal(0, 0.01 * float(y.std()), y.shape).astype(np.float32)
    views = db.views.loc[np.tile(np.arange(len(db.views)), reps)[:n]].reset_index(drop=True)
    return y, views


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, nargs="+", default=[2000, 80000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    params = load_params(args.params)
    layer = params.adaptation.layer
    db = ViewDatabase(params.paths.view_features, layers=[layer])
    phi, _ = load_adaptation(params.paths.adaptation)
    extractor = FeatureExtractor(params.features, layers=[layer], seed=params.seed)
    backgrounds = [b.image for b in load_backgrounds(params.composite.backgrounds, params.seed)]
    patches = patch_features(extractor, backgrounds, params.exemplar.calibration_patches, layer, params.exemplar,
                             rng_for(params.seed, "bench", "patches"))
    try:
        image = read_image(load_proxy_real(params.paths.proxy_detection).images[0].image)
        source = "proxy_detection image 0"
    except FileNotFoundError:
        image, source = backgrounds[0], "a background photo"
    rows = []
    for n in args.views:
        y, views = tiled(db, layer, n, rng_for(params.seed, "bench", n))
        det = ExemplarDetector(y, views, phi, params.exemplar)
        det.calibrate(patches)
        det.detections(det.score(*region_features(extractor, image, layer, params.exemplar)))  # warm-up
        t_feat, t_score = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            boxes, feats = region_features(extractor, image, layer, params.exemplar)
            mid = time.perf_counter()
            det.detections(det.score(boxes, feats))
            t_feat.append(mid - start)
            t_score.append(time.perf_counter() - mid)
        total = np.median(np.array(t_feat) + np.array(t_score))
        rows.append((n, len(boxes), np.median(t_feat), np.median(t_score), total))
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, {platform.python_version()}; "
          f"image: {source} ({image.shape[1]}x{image.shape[0]}); layer {layer}, {db.features[layer].shape[1]}-d, "
          f"adaptation {phi.variant}; median of {args.repeats}")
    print("| views | windows | proposals + features (s) | scores + NMS (s) | total per image (s) |")
    print("| --- | --- | --- | --- | --- |")
    for n, w, f, s, t in rows:
        print(f"| {n:,} | {w:,} | {f:.3f} | {s:.3f} | {t:.3f} |")


if __name__ == "__main__":
    main()
