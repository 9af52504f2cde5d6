"""proxy_detection stage: a *synthetic* multi-object detection evaluation set (seed 004 §4.4).
NOT real data.

Seed 004 §4.4 scores exemplar detection by VOC average precision on images holding several
objects. Without real detection photos, this stage builds the proxy-real equivalent: each
image is a held-out photo (``stages.proxy_real.heldout_photos``, never a training
background) with ``proxy_detection.objects`` held-out catalog models (split "heldout")
rendered in the proxy-real style (photo textures, coloured lights, self-shadowing; the
``proxy_real`` knobs) and pasted at random scales and positions. A placement whose box IoU
with an earlier object's exceeds ``max_overlap_iou`` is redrawn (``MAX_PLACEMENTS`` draws,
then the object is dropped). Later objects occlude earlier ones. The whole image then gets
motion blur, sensor noise and JPEG as in proxy_real; no painted occluders and no frame
truncation (the objects occlude each other, and every object lies inside the image).
``truncated`` marks an object the render itself cut (none of ``VIEW_DRAWS`` views showed it
whole: rare).

Boxes are *amodal*: the box of the whole placed object, also where a later object hides
part of it, as VOC annotators box a whole object; ``occluded`` says when more than
``proxy_real.OCCLUDED_THRESHOLD`` of its pixels are hidden.

Output ``paths.proxy_detection``/:
  manifest.parquet  proxy_real's evaluation record, one row per *object*; rows sharing
                    image_id are one image (``core.evalsets.load_proxy_real`` reads it):
                    image_id, image, width, height, split ("test"), domain ("proxy-real
                    (synthetic)"), synthetic (True), category, model_id, bbox_x0..y1
                    (pixels, x1/y1 exclusive), azimuth, elevation, theta, distance (the
                    object's render view), truncated, occluded, occluded_fraction,
                    difficult (False), visible_fraction, aug (JSON)
  shards/<sNNNN>/NNNN.jpg  image NNNN, in the shard of its first-scene index sNNNN
  README.txt        says, for anyone who finds the folder, that this set is synthetic
and ``paths.metrics``/proxy_detection.json (images, objects, per category, occlusion).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import trimesh

from core import compositing, degrade, geometry, meshes, metrics, procedural, rendering
from core.backgrounds import Background
from core.io import MANIFEST, read_manifest, rng_for, write_image, write_metrics
from core.params import Params, ProxyDetectionParams, ProxyRealParams, Range, RenderParams
from stages import proxy_real, render
from stages._cli import stage_main
from stages._shards import Shard, publish, run_shards, shard_prefix, staging_dir

log = logging.getLogger("cad2real.proxy_detection")

STREAM = "proxy_detection"
DOMAIN = proxy_real.DOMAIN
README = f"""This folder is the cad2real PROXY-REAL DETECTION set. It is SYNTHETIC, not real data.
Domain label: {DOMAIN}. Each image holds several held-out procedural instances, rendered
in the proxy-real style (photo textures, coloured lights, shadows) and pasted on real photos
the training composites do not use, with motion blur, sensor noise and JPEG. Boxes are
amodal (the whole object, also where another object hides it). It stands in for real
multi-object detection photos (VOC AP); report it as synthetic.
"""
SCENES_PER_SHARD = 4
MAX_PLACEMENTS = 20  # position/scale draws per object before it is dropped
VIEW_DRAWS = 4  # views tried per object for one that shows the whole object
# The photo: proxy_real's background step (flips, natural colours) with a wider crop, as a
# scene of several objects shows more of it than a single close object does.
BACKGROUND = proxy_real.PLACEMENT.model_copy(update={"bg_crop_scale": Range(lo=0.7, hi=1.0)})
# Objects are pasted one by one on the scene so far: composite's background step must pass
# the scene through unchanged (whole crop, no flip; proxy_real's placement has no channel
# swap or rotation).
PASTE = proxy_real.PLACEMENT.model_copy(update={"bg_flip_p": 0.0, "bg_crop_scale": Range(lo=1.0, hi=1.0)})


@dataclass(frozen=True)
class HeldoutModel:
    model_id: str
    category: str
    glb: str  # absolute path


@dataclass(frozen=True)
class SceneTask:
    """Payload of one shard: scenes ``first .. first + n - 1`` drawn from ``models``."""

    first: int
    n: int
    models: tuple[HeldoutModel, ...]
    seed: int
    p: ProxyDetectionParams
    style: ProxyRealParams


@dataclass(frozen=True)
class PlacedObject:
    """One object of a scene. index: position in the list given to :func:`compose_scene`;
    bbox: amodal (x0, y0, x1, y1) of the whole placed object (alpha > 127), pixels, x1/y1
    exclusive; occluded_fraction: share of those pixels hidden by objects placed after it;
    aug: the placement's sampled values."""

    index: int
    bbox: tuple[int, int, int, int]
    occluded_fraction: float
    aug: dict[str, float | int | str | bool]


@dataclass(frozen=True)
class DetectionScene:
    """image: (S, S, 3) uint8 RGB before the camera degradations; objects in paint order
    (later ones occlude earlier ones); dropped: objects that found no place; aug: the
    background crop's sampled values."""

    image: np.ndarray
    objects: tuple[PlacedObject, ...]
    dropped: int
    aug: dict[str, float | int | str | bool]


def compose_scene(
    objects: Sequence[compositing.RenderLayers], background: np.ndarray, rng: np.random.Generator,
    p: ProxyDetectionParams,
) -> DetectionScene:
    """Paste ``objects`` in order on a random crop of ``background`` ((H, W, 3) uint8), each
    with ``compositing.composite`` (longest box side ``U(p.object_scale) * p.image_size``, a
    uniform position inside the image). A placement whose box IoU with an earlier object's
    exceeds ``p.max_overlap_iou`` is redrawn, up to ``MAX_PLACEMENTS`` times, then the object
    is dropped. Deterministic given ``rng``."""
    size = p.image_size
    image, aug = compositing.augment_background(background, rng, BACKGROUND, size)
    paste = PASTE.model_copy(update={"image_size": size, "object_scale": p.object_scale})
    placed: list[tuple[int, compositing.Composite, int]] = []
    for j, layers in enumerate(objects):
        boxes = np.array([c.bbox for _, c, _ in placed], np.float64).reshape(-1, 4)
        for attempt in range(1, MAX_PLACEMENTS + 1):
            c = compositing.composite(layers, image, rng, paste)
            if not len(boxes) or metrics.box_iou([c.bbox], boxes).max() <= p.max_overlap_iou:
                placed.append((j, c, attempt))
                image = c.image
                break
    covered = np.zeros((size, size), bool)
    hidden: list[float] = []
    for _, c, _ in reversed(placed):  # what the objects painted later cover
        hard = c.mask > 127
        hidden.append(float(np.count_nonzero(hard & covered)) / max(1, int(np.count_nonzero(hard))))
        covered |= hard
    result = tuple(
        PlacedObject(index=j, bbox=c.bbox, occluded_fraction=frac, aug={
            "place_attempts": attempt, **{f"place_{k}": v for k, v in c.aug.items() if not k.startswith("bg_")}})
        for (j, c, attempt), frac in zip(placed, reversed(hidden))
    )
    return DetectionScene(image=image, objects=result, dropped=len(objects) - len(placed), aug=aug)


def detection_render_params(params: Params) -> RenderParams:
    """The render params of the set: proxy-real's textured style, at the image size of the
    detection set (an object covers up to ``object_scale.hi`` of it)."""
    return params.render.model_copy(update={"style": "textured", "image_size": params.proxy_detection.image_size})


_PHOTOS: list[Background] | None = None


def init_worker(photos: list[Background], *render_args: object) -> None:
    """proxy_real's worker (a renderer, the parent-loaded held-out photos), photos kept here."""
    global _PHOTOS
    proxy_real.init_worker(photos, *render_args)
    _PHOTOS = photos


@dataclass(frozen=True)
class RenderedObject:
    """One held-out model rendered for a scene: its layers at the render size, the view
    (pose columns), the render's visible fraction (< 1: cut by the render's border, when
    none of ``VIEW_DRAWS`` views shows it whole)."""

    layers: compositing.RenderLayers
    view: geometry.View
    visible_fraction: float
    n_lights: int


def render_object(model: HeldoutModel, mesh: trimesh.Scene, key: str, task: SceneTask) -> RenderedObject:
    """Render ``model`` once in the proxy-real style from a random view with this worker's
    renderer; ``key`` (scene and slot) seeds its photo textures, lights and view."""
    renderer, rp, prior = render.worker_renderer()
    assert _PHOTOS is not None
    style = task.style
    rng = rng_for(task.seed, STREAM, key, "style")
    n_lights = int(rng.integers(int(style.n_lights.lo), int(style.n_lights.hi) + 1))
    textured = procedural.apply_photo_textures(mesh, [b.image for b in _PHOTOS], rng)
    renderer.set_model(textured, model.category, "textured", n_lights=n_lights)
    # A view that cuts the object at the render's border would show a straight edge in
    # mid-scene: no close-ups, and the next planned view while one is cut (the last is kept).
    plan = render.plan_views(rp, task.seed, key, model.category, VIEW_DRAWS, prior, closeup_fraction=0.0,
                             n_lights=n_lights, light_color_jitter=style.light_color_jitter, stream=STREAM)
    flags = rendering.shadow_flags() if style.shadows else None
    for i in range(VIEW_DRAWS):
        one = dataclasses.replace(plan, views=plan.views[i : i + 1])
        [(view, _, res)] = render.render_views(renderer, rp, one, model.model_id, flags=flags)
        if res.visible_fraction >= 1.0:
            break
    layers = compositing.RenderLayers(rgb=res.rgb, mask=res.mask, semantic=res.semantic, depth=res.depth)
    return RenderedObject(layers=layers, view=view, visible_fraction=res.visible_fraction, n_lights=n_lights)


def degrade_image(image: np.ndarray, rng: np.random.Generator, style: ProxyRealParams) -> tuple[np.ndarray, int, dict]:
    """proxy_real's camera effects on a whole (S, S, 3) uint8 image: motion blur with
    ``style.motion_blur_p`` (length 0 = none), then sensor noise. Returns the image, the JPEG
    quality to write it with (``style.jpeg_quality``) and the sampled values."""
    length = int(rng.integers(3, 9)) if rng.uniform() < style.motion_blur_p else 0
    angle = float(rng.uniform(0, 180)) if length else 0.0
    noise = float(rng.uniform(style.sensor_noise_std.lo, style.sensor_noise_std.hi))
    quality = int(round(rng.uniform(style.jpeg_quality.lo, style.jpeg_quality.hi)))
    image = degrade.sensor_noise(degrade.motion_blur(image, rng, length, angle), rng, noise)
    return image, quality, {"motion_blur_px": length, "motion_blur_deg": angle, "sensor_noise_std": noise,
                            "jpeg_quality": quality}


def detection_shard(shard: Shard, folder: Path) -> dict[str, list[dict]]:
    """Build, degrade and write the shard's scenes; return one manifest row per object."""
    assert _PHOTOS is not None
    task: SceneTask = shard.payload
    p = task.p
    meshes_by_id: dict[str, trimesh.Scene] = {}
    rows = []
    for k in range(task.first, task.first + task.n):
        r = rng_for(task.seed, STREAM, k)
        n = int(r.integers(int(p.objects.lo), int(p.objects.hi) + 1))
        picks = [task.models[int(i)] for i in r.choice(len(task.models), size=n, replace=n > len(task.models))]
        photo = _PHOTOS[int(r.integers(len(_PHOTOS)))]
        rendered = []
        for j, model in enumerate(picks):
            if model.model_id not in meshes_by_id:
                meshes_by_id[model.model_id] = meshes.load_glb(model.glb)
            rendered.append(render_object(model, meshes_by_id[model.model_id], f"d{k:04d}-{j}", task))
        scene = compose_scene([obj.layers for obj in rendered], photo.image, r, p)
        image, quality, camera = degrade_image(scene.image, r, task.style)
        name = f"{k:04d}.jpg"
        write_image(folder / name, image, jpeg_quality=quality)
        common = {"background": photo.name, "objects_drawn": n, "objects_dropped": scene.dropped,
                  "amodal_bbox": True, **scene.aug, **camera}
        for obj in scene.objects:
            src, model, (x0, y0, x1, y1) = rendered[obj.index], picks[obj.index], obj.bbox
            aug = {**common, "n_lights": src.n_lights, **obj.aug, "slot": obj.index}
            rows.append({
                "image_id": f"det{k:04d}", "image": f"{shard_prefix(shard)}/{name}", "width": image.shape[1],
                "height": image.shape[0], "split": "test", "domain": DOMAIN, "synthetic": True,
                "category": model.category, "model_id": model.model_id,
                "bbox_x0": x0, "bbox_y0": y0, "bbox_x1": x1, "bbox_y1": y1,
                "azimuth": src.view.azimuth, "elevation": src.view.elevation, "theta": src.view.theta,
                "distance": src.view.distance, "truncated": bool(src.visible_fraction < 1.0),
                "occluded": bool(obj.occluded_fraction > proxy_real.OCCLUDED_THRESHOLD),
                "occluded_fraction": obj.occluded_fraction, "difficult": False,
                "visible_fraction": src.visible_fraction, "aug": json.dumps(aug, sort_keys=True, default=str),
            })
    return {"objects": rows}


def stats(manifest: pd.DataFrame) -> dict:
    per_image = manifest.groupby("image_id").size()
    return {
        "domain": DOMAIN,
        "images": int(len(per_image)),
        "objects": int(len(manifest)),
        "objects_per_image": round(float(per_image.mean()), 4),
        "objects_per_image_min": int(per_image.min()),
        "objects_per_image_max": int(per_image.max()),
        "per_category": {k: int(v) for k, v in manifest.groupby("category").size().items()},
        "occluded_fraction": round(float(manifest["occluded"].mean()), 4),  # objects > 5 % hidden
        "mean_hidden_pixels": round(float(manifest["occluded_fraction"].mean()), 4),
        "truncated_fraction": round(float(manifest["truncated"].mean()), 4),
    }


def plan(params: Params) -> list[Shard]:
    """``SCENES_PER_SHARD`` scenes per shard, each drawing from every held-out model.
    Raises ``ValueError`` naming the catalog manifest when it has no held-out model."""
    p = params.proxy_detection
    manifest = Path(params.paths.catalog) / MANIFEST
    models = tuple(
        HeldoutModel(row.model_id, row.category, str((manifest.parent / row.path).resolve()))
        for row in read_manifest(manifest).sort_values("model_id").itertuples() if row.split == "heldout"
    )
    if not models:
        raise ValueError(f"{manifest}: no held-out models for the proxy_detection set; "
                         "set catalog.procedural.heldout_per_category > 0")
    sizes = {first: min(SCENES_PER_SHARD, p.images - first) for first in range(0, p.images, SCENES_PER_SHARD)}
    return [
        Shard(key=f"s{first:04d}", n_items=n, payload=SceneTask(
            first=first, n=n, models=models, seed=params.seed, p=p, style=params.proxy_real))
        for first, n in sizes.items()
    ]


def run(params: Params) -> pd.DataFrame:
    p = params.proxy_detection
    shards = plan(params)
    photos = proxy_real.heldout_photos(params.proxy_real, p.image_size)  # a bad folder fails here
    rp = detection_render_params(params)
    workers, render_args = render.render_workers(rp, len(shards))
    log.info("proxy_detection: %d images of %d-%d held-out objects at %d px (SYNTHETIC detection set), "
             "platform %s", p.images, int(p.objects.lo), int(p.objects.hi), p.image_size, render_args[1])
    catalog_manifest = Path(params.paths.catalog) / MANIFEST
    staging = staging_dir(params.paths.staging, STREAM, (params.seed, rp, params.proxy_real, p), catalog_manifest)
    rows = run_shards(shards, detection_shard, staging, tables=("objects",), workers=workers, desc=STREAM,
                      initializer=init_worker, initargs=(photos, *render_args),
                      finalizer=render.close_worker, compute=params.compute)["objects"]
    manifest = pd.DataFrame(rows).sort_values("image_id", kind="stable")
    out = Path(params.paths.proxy_detection)
    publish(shards, staging, {STREAM: (out, None, manifest)})
    (out / "README.txt").write_text(README)
    write_metrics(params.paths.metrics, STREAM, stats(manifest))
    log.info("proxy_detection: wrote %d images with %d objects to %s, labelled %r: synthetic, not real photos",
             manifest["image_id"].nunique(), len(manifest), out, DOMAIN)
    return manifest


def main() -> None:
    stage_main(STREAM, run)


if __name__ == "__main__":
    main()
