"""render stage: views of every training model of the catalog (seed 000 §III, seed 003 §3.1).

Output ``paths.renders``/:
  manifest.parquet   one row per sample (see ``COLUMNS``); angles in degrees, distance in
                     units of the model's bbox diagonal, bbox x1/y1 exclusive, camera K/R/t
                     in the OpenCV convention (core/geometry.py)
  shards/<model_id>/NNNN_{rgb,mask,depth,semantic}.png
      rgb (H, W, 3) uint8; mask (H, W) uint8 255 = object; depth (H, W) uint16,
      depth_m = value * depth_unit_m (0 = background); semantic (H, W, 3) uint8
and ``paths.metrics``/render.json: counts per category and view statistics (a DVC metric).

Parallel over ``render.workers`` spawned processes, one GL context each. Every model is a
shard written atomically into a staging folder keyed by the params and the catalog, so an
interrupted run resumes with the shards already done; the output folder appears in one
rename at the end. Deterministic: each view's randomness comes from (seed, model, view).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core import geometry, meshes, rendering
from core.io import MANIFEST, read_manifest, rng_for, write_metrics, write_png
from core.params import Params, RenderParams
from stages._cli import stage_main
from stages._shards import Shard, publish, run_shards, shard_prefix, staging_dir

log = logging.getLogger("cad2real.render")

MAX_ATTEMPTS = 10  # resample a view whose object falls entirely outside the image

COLUMNS = [
    "sample_id", "model_id", "category", "view_index", "azimuth", "elevation", "theta", "distance",
    "closeup", "focal_x", "focal_y", "focal_z", "focal_shift",
    "light_ambient", "light_diffuse", "light_specular", "light_r", "light_g", "light_b",
    "light_azimuth", "light_elevation",
    "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "visible_fraction", "width", "height",
    "fx", "fy", "cx", "cy", "R", "t", "depth_unit_m", "rgb", "mask", "depth", "semantic",
]


def depth_unit(p: RenderParams) -> float:
    """Metres per uint16 step: 0.1 mm unless the farthest possible depth needs coarser."""
    farthest = p.distance.hi + 1.0  # camera distance + the model's whole extent
    return max(1e-4, float(np.ceil(farthest / 65535.0 * 1e6) / 1e6))


@dataclass(frozen=True)
class ModelTask:
    """Payload of one render shard: a catalog model and how many views of it."""

    model_id: str
    category: str
    glb: str
    n_views: int
    seed: int


@dataclass(frozen=True)
class ViewPlan:
    """The cameras and lights of one model's views, each view with its own generator (used
    again if the view must be resampled), and the model's permuted icosphere directions."""

    category: str
    directions: np.ndarray
    views: list[tuple[geometry.View, list[rendering.LightSample], np.random.Generator]]
    prior: geometry.ViewpointPrior | None


def plan_views(
    p: RenderParams, seed: int, model_id: str, category: str, n_views: int,
    prior: geometry.ViewpointPrior | None, *, closeup_fraction: float | None = None,
    n_lights: int | None = None, light_color_jitter: float | None = None, stream: str = "render",
) -> ViewPlan:
    directions = geometry.view_directions(p, rng_for(seed, stream, model_id))
    n_lights = p.light.n_lights if n_lights is None else n_lights
    views = []
    for i in range(n_views):
        rng = rng_for(seed, stream, model_id, i)
        view = geometry.sample_view(p, i, directions, rng, category=category, prior=prior,
                                    closeup_fraction=closeup_fraction)
        lights = [rendering.sample_light(p.light, rng, color_jitter=light_color_jitter) for _ in range(n_lights)]
        views.append((view, lights, rng))
    return ViewPlan(category, directions, views, prior)


def render_views(
    renderer: rendering.Renderer, p: RenderParams, plan: ViewPlan, model_id: str, *, flags: int | None = None,
) -> list[tuple[geometry.View, list[rendering.LightSample], rendering.RenderResult]]:
    """Render each planned view; a view whose object is not in the image is resampled
    (without close-up) from its own generator, up to ``MAX_ATTEMPTS``, so results stay
    deterministic."""
    results = []
    for i, (view, lights, rng) in enumerate(plan.views):
        result = renderer.render(view, lights, flags=flags)
        attempts = 1
        while result.visible_fraction == 0.0 or np.count_nonzero(result.mask) < 4:
            if attempts >= MAX_ATTEMPTS:
                raise ValueError(f"{model_id}: view {i} shows no object after {MAX_ATTEMPTS} attempts; "
                                 "check render.distance and render.fov_deg")
            view = geometry.sample_view(p, i, plan.directions, rng, category=plan.category, prior=plan.prior,
                                        closeup_fraction=0.0)
            result = renderer.render(view, lights, flags=flags)
            attempts += 1
        results.append((view, lights, result))
    return results


def sample_row(sample_id: str, model_id: str, category: str, i: int, view: geometry.View,
               lights: list[rendering.LightSample], res: rendering.RenderResult) -> dict:
    """The manifest fields describing one rendered sample (everything but the file paths)."""
    x0, y0, x1, y1 = res.bbox
    return {
        "sample_id": sample_id, "model_id": model_id, "category": category, "view_index": i,
        "azimuth": view.azimuth, "elevation": view.elevation, "theta": view.theta, "distance": view.distance,
        "closeup": view.closeup, "focal_x": view.focal[0], "focal_y": view.focal[1], "focal_z": view.focal[2],
        "focal_shift": view.focal_shift, **lights[0].as_row(),
        "bbox_x0": x0, "bbox_y0": y0, "bbox_x1": x1, "bbox_y1": y1,
        "visible_fraction": res.visible_fraction, "width": res.rgb.shape[1], "height": res.rgb.shape[0],
        "fx": float(res.k[0, 0]), "fy": float(res.k[1, 1]), "cx": float(res.k[0, 2]), "cy": float(res.k[1, 2]),
        "R": [float(v) for v in res.r.ravel()], "t": [float(v) for v in res.t],
    }


# --- worker process state: one renderer per process -----------------------------------
_RENDERER: rendering.Renderer | None = None
_PARAMS: RenderParams | None = None
_PRIOR: geometry.ViewpointPrior | None = None


def init_worker(p: RenderParams, platform: str, threads_per_worker: int | None,
                prior: geometry.ViewpointPrior | None = None) -> None:
    """Create this process's renderer once, before any shard; keep the (parent-loaded)
    viewpoint prior."""
    global _RENDERER, _PARAMS, _PRIOR
    if threads_per_worker:
        os.environ["LP_NUM_THREADS"] = str(threads_per_worker)  # llvmpipe threads per context
    rendering.select_platform(platform)
    close_worker()  # a long-lived (Dask) worker may still hold an earlier run's renderer
    _PARAMS = p
    _PRIOR = prior
    _RENDERER = rendering.Renderer(p.image_size, p.fov_deg)


def close_worker() -> None:
    global _RENDERER
    if _RENDERER is not None:
        _RENDERER.close()
        _RENDERER = None


def worker_renderer() -> tuple[rendering.Renderer, RenderParams, geometry.ViewpointPrior | None]:
    if _RENDERER is None or _PARAMS is None:
        raise RuntimeError("render worker not initialised (init_worker)")
    return _RENDERER, _PARAMS, _PRIOR


def load_prior(p: RenderParams) -> geometry.ViewpointPrior | None:
    if p.viewpoint_prior.kind == "none":
        return None
    if not Path(p.viewpoint_prior.path).is_file() and not p.viewpoint_prior.required:
        log.warning("skipped: viewpoint prior not found at %s; views stay on the icosphere", p.viewpoint_prior.path)
        return None
    prior = geometry.ViewpointPrior.from_params(p.viewpoint_prior)
    log.info("render: viewpoint prior from %s: %d classes (%s), borrowed: %s, fraction %.2f",
             p.viewpoint_prior.path, len(prior.angles), ", ".join(sorted(prior.angles)),
             prior.class_map or "none", prior.fraction)
    for name, s in prior.summary().items():
        log.info("render: prior %-12s n=%5d  elevation median %5.1f deg (IQR %4.1f)  theta std %4.1f  frontal %.2f",
                 name, s["n"], s["elevation_median"], s["elevation_iqr"], s["theta_std"], s["azimuth_frontal_fraction"])
    return prior


def write_layers(folder: Path, prefix: str, stem: str, res: rendering.RenderResult, unit: float) -> dict[str, str]:
    """Write a sample's four PNG layers; return their paths relative to the output root."""
    files = {}
    for layer, image in (
        ("rgb", res.rgb), ("mask", res.mask),
        ("depth", np.round(res.depth / unit).astype(np.uint16)), ("semantic", res.semantic),
    ):
        write_png(folder / f"{stem}_{layer}.png", image)
        files[layer] = f"{prefix}/{stem}_{layer}.png"
    return files


def render_shard(shard: Shard, folder: Path) -> dict[str, list[dict]]:
    """Render one model's views into ``folder``; return its manifest rows."""
    renderer, p, prior = worker_renderer()
    task: ModelTask = shard.payload
    renderer.set_model(meshes.load_glb(task.glb), task.category, p.style, n_lights=p.light.n_lights)
    views = plan_views(p, task.seed, task.model_id, task.category, task.n_views, prior)
    unit = depth_unit(p)
    rows = []
    for i, (view, lights, res) in enumerate(render_views(renderer, p, views, task.model_id)):
        files = write_layers(folder, shard_prefix(shard), f"{i:04d}", res, unit)
        row = sample_row(f"{task.model_id}-v{i:04d}", task.model_id, task.category, i, view, lights, res)
        rows.append({**row, "depth_unit_m": unit, **files})
    return {"samples": rows}


def plan(params: Params, catalog: pd.DataFrame) -> list[Shard]:
    p = params.render
    catalog_dir = Path(params.paths.catalog)
    train = catalog[catalog["split"] == "train"].sort_values("model_id")
    return [
        Shard(key=row.model_id, n_items=p.views_per_model, payload=ModelTask(
            model_id=row.model_id, category=row.category, glb=str((catalog_dir / row.path).resolve()),
            n_views=p.views_per_model, seed=params.seed,
        ))
        for row in train.itertuples()
    ]


def render_workers(p: RenderParams, n_shards: int) -> tuple[int, tuple]:
    """Worker count and :func:`init_worker`'s args: the platform, one llvmpipe thread per
    worker when several, and the viewpoint prior, loaded here once (a bad file fails
    before any worker starts)."""
    platform = rendering.select_platform(p.platform)
    workers = max(1, min(p.workers, n_shards))
    return workers, (p, platform, 1 if workers > 1 else None, load_prior(p))


def stats(manifest: pd.DataFrame) -> dict:
    return {
        "samples": int(len(manifest)),
        "models": int(manifest["model_id"].nunique()),
        "per_category": {k: int(v) for k, v in manifest.groupby("category").size().items()},
        "mean_visible_fraction": round(float(manifest["visible_fraction"].mean()), 4),
        "truncated_fraction": round(float((manifest["visible_fraction"] < 1.0).mean()), 4),
        "closeup_fraction": round(float(manifest["closeup"].mean()), 4),
    }


def run(params: Params) -> pd.DataFrame:
    catalog_path = Path(params.paths.catalog) / MANIFEST
    shards = plan(params, read_manifest(catalog_path))
    if not shards:
        raise ValueError(f"{catalog_path}: no models with split 'train' to render")
    p = params.render
    staging = staging_dir(params.paths.staging, "render", (params.seed, p), catalog_path)
    workers, initargs = render_workers(p, len(shards))
    log.info("render: %d models x %d views at %d px on %d worker(s), OpenGL platform %s",
             len(shards), p.views_per_model, p.image_size, workers, initargs[1])
    rows = run_shards(shards, render_shard, staging, tables=("samples",), workers=workers, desc="render",
                      initializer=init_worker, initargs=initargs, finalizer=close_worker,
                      compute=params.compute)["samples"]
    manifest = pd.DataFrame(rows, columns=COLUMNS).sort_values("sample_id", kind="stable")
    out = Path(params.paths.renders)
    publish(shards, staging, {"renders": (out, None, manifest)})
    write_metrics(params.paths.metrics, "render", stats(manifest))
    log.info("render: wrote %d samples of %d models to %s", len(manifest), len(shards), out)
    return manifest


def main() -> None:
    stage_main("render", run)


if __name__ == "__main__":
    main()
