"""composite stage: renders pasted on backgrounds (seed 003 §3.1) and the grey-scale
(composite, clean render) adaptation pairs (seed 004 §4.2.3).

Outputs
  ``paths.composites``/manifest.parquet + shards/<model_id>/NNNN-cJ_{image,mask,semantic}.png
      image (S, S, 3) uint8; mask (S, S) uint8 placed object alpha; semantic (S, S, 3)
      uint8 aligned target; columns: composite_id, sample_id (the render), model_id,
      category, pose labels, visible_fraction, bbox_x0..y1 (x1/y1 exclusive), background,
      blend, aug (JSON of every sampled augmentation), file paths.
  ``paths.adaptation_pairs``/manifest.parquet + shards/<model_id>/NNNN-cJ_{image,render}.png
      grey-scale (S, S) uint8 composite and the clean render on white, same placement.
  ``paths.metrics``/composite.json
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from core import compositing
from core.backgrounds import Background, load_backgrounds
from core.io import MANIFEST, read_image, read_manifest, rng_for, write_metrics, write_png
from core.params import CompositeParams, Params
from stages._cli import stage_main
from stages._shards import Shard, publish, run_shards, shard_prefix, staging_dir

log = logging.getLogger("cad2real.composite")

POSE = ["azimuth", "elevation", "theta", "distance", "visible_fraction"]


@dataclass(frozen=True)
class CompositeTask:
    renders_dir: str
    samples: list[dict]  # render manifest rows of one model
    seed: int
    p: CompositeParams
    with_pairs: bool


_BACKGROUNDS: list[Background] | None = None


def init_worker(backgrounds: list[Background]) -> None:
    """Keep the backgrounds (loaded once by the parent) in this process."""
    global _BACKGROUNDS
    cv2.setNumThreads(1)
    _BACKGROUNDS = backgrounds


def read_layers(renders_dir: Path, row: dict) -> compositing.RenderLayers:
    depth = read_image(renders_dir / row["depth"], flags=cv2.IMREAD_UNCHANGED).astype(np.float32)
    return compositing.RenderLayers(
        rgb=read_image(renders_dir / row["rgb"]),
        mask=read_image(renders_dir / row["mask"], flags=cv2.IMREAD_GRAYSCALE),
        semantic=read_image(renders_dir / row["semantic"]),
        depth=depth * float(row["depth_unit_m"]),
    )


def composite_shard(shard: Shard, folder: Path) -> dict[str, list[dict]]:
    """Composite every render of one model ``p.per_render`` times; return the rows."""
    if _BACKGROUNDS is None:
        raise RuntimeError("composite worker not initialised (init_worker)")
    task: CompositeTask = shard.payload
    prefix = shard_prefix(shard)
    composites, pairs = [], []
    for row in task.samples:
        layers = read_layers(Path(task.renders_dir), row)
        for j in range(task.p.per_render):
            cid = f"{row['sample_id']}-c{j}"
            rng = rng_for(task.seed, "composite", row["sample_id"], j)
            bg = _BACKGROUNDS[int(rng.integers(len(_BACKGROUNDS)))]
            c = compositing.composite(layers, bg.image, rng, task.p)
            stem = f"{row['view_index']:04d}-c{j}"
            for layer, image in (("image", c.image), ("mask", c.mask), ("semantic", c.semantic)):
                write_png(folder / f"{stem}_{layer}.png", image)
            x0, y0, x1, y1 = c.bbox
            composites.append({
                "composite_id": cid, "sample_id": row["sample_id"], "model_id": row["model_id"],
                "category": row["category"], **{k: row[k] for k in POSE},
                "bbox_x0": x0, "bbox_y0": y0, "bbox_x1": x1, "bbox_y1": y1,
                "width": c.image.shape[1], "height": c.image.shape[0], "background": bg.name,
                "blend": str(c.aug.get("blend", "")), "aug": json.dumps(c.aug, sort_keys=True),
                "image": f"{prefix}/{stem}_image.png", "mask": f"{prefix}/{stem}_mask.png",
                "semantic": f"{prefix}/{stem}_semantic.png",
            })
            if task.with_pairs:
                (folder / "pairs").mkdir(exist_ok=True)
                write_png(folder / "pairs" / f"{stem}_image.png", c.image_grey)
                write_png(folder / "pairs" / f"{stem}_render.png", c.clean)
                pairs.append({
                    "pair_id": cid, "composite_id": cid, "sample_id": row["sample_id"],
                    "model_id": row["model_id"], "category": row["category"], **{k: row[k] for k in POSE},
                    "image": f"{prefix}/{stem}_image.png", "render": f"{prefix}/{stem}_render.png",
                })
    return {"composites": composites, "pairs": pairs}


def stats(manifest: pd.DataFrame) -> dict:
    area = (manifest["bbox_x1"] - manifest["bbox_x0"]) * (manifest["bbox_y1"] - manifest["bbox_y0"])
    return {
        "composites": int(len(manifest)),
        "per_category": {k: int(v) for k, v in manifest.groupby("category").size().items()},
        "backgrounds_used": int(manifest["background"].nunique()),
        "blend": {k: int(v) for k, v in manifest.groupby("blend").size().items()},
        "mean_bbox_area_fraction": round(float((area / (manifest["width"] * manifest["height"])).mean()), 4),
    }


def run(params: Params) -> pd.DataFrame:
    p = params.composite
    renders_dir = Path(params.paths.renders)
    renders_path = renders_dir / MANIFEST
    renders = read_manifest(renders_path)
    # Loaded once, here: a bad folder fails before any worker starts, with its own error.
    backgrounds = load_backgrounds(p.backgrounds, params.seed)
    shards = [
        Shard(key=str(model_id), n_items=len(group) * p.per_render, payload=CompositeTask(
            renders_dir=str(renders_dir.resolve()), samples=group.to_dict("records"), seed=params.seed, p=p,
            with_pairs=p.adaptation_pairs,
        ))
        for model_id, group in renders.groupby("model_id", sort=True)
    ]
    log.info("composite: %d renders x %d on %d backgrounds, %d px", len(renders), p.per_render, len(backgrounds),
             p.image_size)
    staging = staging_dir(params.paths.staging, "composite", (params.seed, p), renders_path)
    rows = run_shards(shards, composite_shard, staging, tables=("composites", "pairs"),
                      workers=p.workers, desc="composite", initializer=init_worker,
                      initargs=(backgrounds,), compute=params.compute)
    composites = pd.DataFrame(rows["composites"]).sort_values("composite_id", kind="stable")
    pairs = pd.DataFrame(rows["pairs"], columns=[
        "pair_id", "composite_id", "sample_id", "model_id", "category", *POSE, "image", "render",
    ]).sort_values("pair_id", kind="stable")
    publish(shards, staging, {
        "composites": (Path(params.paths.composites), None, composites),
        "pairs": (Path(params.paths.adaptation_pairs), "pairs", pairs),
    })
    write_metrics(params.paths.metrics, "composite", {**stats(composites), "adaptation_pairs": int(len(pairs))})
    log.info("composite: wrote %d composites to %s and %d adaptation pairs to %s", len(composites),
             params.paths.composites, len(pairs), params.paths.adaptation_pairs)
    return composites


def main() -> None:
    stage_main("composite", run)


if __name__ == "__main__":
    main()
