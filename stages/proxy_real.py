"""proxy_real stage: the held-out *synthetic* evaluation set (SPEC §3). NOT real data.

Held-out catalog instances (split "heldout", never rendered for training) rendered in a
style no training image has: photo textures, several coloured lights with self-shadowing,
more close-ups, then pasted on real photos the composite stage does not use, truncated, occluded,
motion-blurred, with sensor noise and JPEG compression.

Output ``paths.proxy_real``/:
  manifest.parquet  the common evaluation record, one object per image: image_id, image,
                    width, height, split ("test"), domain ("proxy-real (synthetic)"),
                    synthetic (True), category, model_id, bbox_x0..y1 (x1/y1 exclusive),
                    azimuth, elevation, theta, distance, truncated, occluded,
                    occluded_fraction, difficult, visible_fraction, aug (JSON)
  shards/<model_id>/NNNN.jpg
  README.txt        says, for anyone who finds the folder, that this set is synthetic
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from core import compositing, degrade, meshes, procedural, rendering
from core.backgrounds import SKIMAGE_HELDOUT, Background, load_folder, skimage_photos
from core.io import MANIFEST, read_manifest, rng_for, write_image, write_metrics
from core.params import CompositeParams, Params, ProxyRealParams, Range
from stages import render
from stages._cli import stage_main
from stages._shards import Shard, publish, run_shards, shard_prefix, staging_dir

log = logging.getLogger("cad2real.proxy_real")

DOMAIN = "proxy-real (synthetic)"
README = f"""This folder is the cad2real PROXY-REAL evaluation set. It is SYNTHETIC, not real data.
Domain label: {DOMAIN}. Held-out procedural instances rendered in a different style than the
training renders (photo textures, coloured lights, close-ups, truncation, occluders, motion
blur, sensor noise, JPEG) on real photo backgrounds the training composites do not use.
It measures robustness to a domain gap no training image shows; report it as synthetic.
"""
# Placement on the photo: natural colours (no channel swap), mild border blending.
PLACEMENT = CompositeParams(
    bg_channel_swap_p=0.0, bg_flip_p=0.5, bg_rot90_p=0.0, object_scale=Range(lo=0.45, hi=0.9),
    object_noise_std=Range(lo=0.0, hi=0.0), object_blur_sigma=Range(lo=0.0, hi=0.5),
    border_blur_sigma=Range(lo=0.0, hi=0.8), light_color_jitter=0.0,
    blend={"alpha": 0.5, "blurred_alpha": 0.5}, adaptation_pairs=False,
)
OCCLUDED_THRESHOLD = 0.05  # fraction of object pixels hidden for "occluded"


@dataclass(frozen=True)
class ProxyTask:
    model_id: str
    category: str
    glb: str
    seed: int
    p: ProxyRealParams


_PHOTOS: list[Background] | None = None


def heldout_photos(p: ProxyRealParams, size: int) -> list[Background]:
    """Real photos for textures and backgrounds: the user's folder, else the scikit-image
    photos reserved for evaluation (disjoint from the composite stage's)."""
    if p.backgrounds_dir:
        return load_folder(p.backgrounds_dir, size)
    return skimage_photos(SKIMAGE_HELDOUT)


def init_worker(photos: list[Background], *render_args: object) -> None:
    """The render worker (``render.init_worker(*render_args)``) plus the held-out photos,
    loaded once by the parent."""
    global _PHOTOS
    cv2.setNumThreads(1)
    render.init_worker(*render_args)  # type: ignore[arg-type]
    _PHOTOS = photos


def proxy_render_params(params: Params):
    """The render params of the proxy set: textured style, image size of the set."""
    return params.render.model_copy(update={"style": "textured", "image_size": params.proxy_real.image_size})


def proxy_shard(shard: Shard, folder: Path) -> dict[str, list[dict]]:
    renderer, rp, prior = render.worker_renderer()
    assert _PHOTOS is not None
    task: ProxyTask = shard.payload
    p = task.p
    rng = rng_for(task.seed, "proxy_real", task.model_id)
    n_lights = int(rng.integers(int(p.n_lights.lo), int(p.n_lights.hi) + 1))
    scene = procedural.apply_photo_textures(meshes.load_glb(task.glb), [b.image for b in _PHOTOS], rng)
    renderer.set_model(scene, task.category, "textured", n_lights=n_lights)
    plan = render.plan_views(rp, task.seed, task.model_id, task.category, p.images_per_model, prior,
                             closeup_fraction=p.closeup_fraction, n_lights=n_lights,
                             light_color_jitter=p.light_color_jitter, stream="proxy_real")
    rows = []
    flags = rendering.shadow_flags() if p.shadows else None
    for i, (view, _lights, res) in enumerate(render.render_views(renderer, rp, plan, task.model_id, flags=flags)):
        r = rng_for(task.seed, "proxy_real", task.model_id, i, "degrade")
        bg = _PHOTOS[int(r.integers(len(_PHOTOS)))]
        layers = compositing.RenderLayers(rgb=res.rgb, mask=res.mask, semantic=res.semantic, depth=res.depth)
        c = compositing.composite(layers, bg.image, r, PLACEMENT.model_copy(update={"image_size": p.image_size}))
        image, mask, bbox = c.image, c.mask, c.bbox
        truncated = res.visible_fraction < 1.0
        aug: dict = {"background": bg.name, "n_lights": n_lights, **{f"place_{k}": v for k, v in c.aug.items()}}
        if r.uniform() < p.truncation_p:
            image, mask, bbox, cut = degrade.truncate(image, mask, bbox, r)
            truncated = truncated or cut
            aug["truncate"] = bool(cut)
        occluded_fraction = 0.0
        if r.uniform() < p.occluder_p:
            image, occluded_fraction = degrade.add_occluders(image, mask, r)
        if r.uniform() < p.motion_blur_p:
            length, angle = int(r.integers(3, 9)), float(r.uniform(0, 180))
            image = degrade.motion_blur(image, r, length, angle)
            aug.update(motion_blur_px=length, motion_blur_deg=angle)
        noise = float(r.uniform(p.sensor_noise_std.lo, p.sensor_noise_std.hi))
        image = degrade.sensor_noise(image, r, noise)
        quality = int(round(r.uniform(p.jpeg_quality.lo, p.jpeg_quality.hi)))
        aug.update(sensor_noise_std=noise, jpeg_quality=quality)
        name = f"{i:04d}.jpg"
        write_image(folder / name, image, jpeg_quality=quality)
        x0, y0, x1, y1 = bbox
        rows.append({
            "image_id": f"{task.model_id}-p{i:04d}", "image": f"{shard_prefix(shard)}/{name}",
            "width": image.shape[1], "height": image.shape[0], "split": "test", "domain": DOMAIN,
            "synthetic": True, "category": task.category, "model_id": task.model_id,
            "bbox_x0": x0, "bbox_y0": y0, "bbox_x1": x1, "bbox_y1": y1,
            "azimuth": view.azimuth, "elevation": view.elevation, "theta": view.theta, "distance": view.distance,
            "truncated": bool(truncated), "occluded": bool(occluded_fraction > OCCLUDED_THRESHOLD),
            "occluded_fraction": float(occluded_fraction), "difficult": False,
            "visible_fraction": res.visible_fraction, "aug": json.dumps(aug, sort_keys=True, default=str),
        })
    return {"objects": rows}


def stats(manifest: pd.DataFrame) -> dict:
    return {
        "domain": DOMAIN,
        "images": int(len(manifest)),
        "models": int(manifest["model_id"].nunique()),
        "per_category": {k: int(v) for k, v in manifest.groupby("category").size().items()},
        "truncated_fraction": round(float(manifest["truncated"].mean()), 4),
        "occluded_fraction": round(float(manifest["occluded"].mean()), 4),
    }


def run(params: Params) -> pd.DataFrame:
    p = params.proxy_real
    catalog_dir = Path(params.paths.catalog)
    catalog = read_manifest(catalog_dir / MANIFEST)
    heldout = catalog[catalog["split"] == "heldout"].sort_values("model_id")
    if heldout.empty:
        raise ValueError(f"{catalog_dir / MANIFEST}: no held-out models; set catalog.procedural.heldout_per_category > 0")
    photos = heldout_photos(p, 256)  # once, here: a bad folder fails before any worker starts
    shards = [
        Shard(key=row.model_id, n_items=p.images_per_model, payload=ProxyTask(
            model_id=row.model_id, category=row.category, glb=str((catalog_dir / row.path).resolve()),
            seed=params.seed, p=p,
        ))
        for row in heldout.itertuples()
    ]
    rp = proxy_render_params(params)
    workers, render_args = render.render_workers(rp, len(shards))
    platform = render_args[1]
    log.info("proxy_real: %d held-out models x %d images (SYNTHETIC proxy-real set), platform %s",
             len(shards), p.images_per_model, platform)
    staging = staging_dir(params.paths.staging, "proxy_real", (params.seed, rp, p), catalog_dir / MANIFEST)
    rows = run_shards(shards, proxy_shard, staging, tables=("objects",), workers=workers, desc="proxy_real",
                      initializer=init_worker, initargs=(photos, *render_args),
                      finalizer=render.close_worker, compute=params.compute)["objects"]
    manifest = pd.DataFrame(rows).sort_values("image_id", kind="stable")
    out = Path(params.paths.proxy_real)
    publish(shards, staging, {"proxy_real": (out, None, manifest)})
    (out / "README.txt").write_text(README)
    write_metrics(params.paths.metrics, "proxy_real", stats(manifest))
    log.info("proxy_real: wrote %d images to %s — labelled %r: synthetic, not real photos", len(manifest), out, DOMAIN)
    return manifest


def main() -> None:
    stage_main("proxy_real", run)


if __name__ == "__main__":
    main()
