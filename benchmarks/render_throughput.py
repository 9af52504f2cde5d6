"""Render throughput of the render stage's own code path (images/s, PNG writing included).

    .venv/bin/python benchmarks/render_throughput.py [--views 48] [--models 8]

Builds a temporary catalog of procedural models (mixed classes), then renders it through
``stages.render`` (shards, worker processes with one GL context each, four PNG layers per
sample) at 128² and 224² with 1 and 2 workers. Also reports the renderer alone (no I/O)
in one process, and a 20k-face sphere for the effect of mesh size. Prints a Markdown table
for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import trimesh

from core import meshes, procedural, rendering
from core.geometry import View
from core.params import ComputeParams, RenderParams
from stages import render
from stages._shards import Shard, run_shards

CLASSES = ("car", "chair", "aeroplane", "bookcase", "bicycle", "sofa", "tvmonitor", "bus")


def build_catalog(folder: Path, n_models: int) -> tuple[list[tuple[str, str, str]], float]:
    entries, faces = [], []
    for i in range(n_models):
        category = CLASSES[i % len(CLASSES)]
        model = procedural.generate(category, i, 0)
        path = folder / f"m{i}.glb"
        meshes.export_glb(model.scene, path)
        entries.append((f"m{i:03d}", category, str(path)))
        faces.append(meshes.scene_faces(model.scene))
    return entries, float(np.mean(faces))


def stage_rate(entries, size: int, workers: int, views: int, out: Path, engine: str = "local") -> float:
    p = RenderParams(image_size=size, workers=workers, views_per_model=views)
    shards = [Shard(key=mid, n_items=views, payload=render.ModelTask(mid, cat, glb, views, 0))
              for mid, cat, glb in entries]
    n_workers, initargs = render.render_workers(p, len(shards))
    staging = out / f"s{size}-{workers}-{engine}"
    start = time.perf_counter()
    run_shards(shards, render.render_shard, staging, tables=("samples",), workers=n_workers, desc=f"{size}px x{workers}",
               initializer=render.init_worker, initargs=initargs, finalizer=render.close_worker,
               compute=ComputeParams(engine=engine))
    elapsed = time.perf_counter() - start
    shutil.rmtree(staging)
    return len(entries) * views / elapsed


def renderer_rate(scene: trimesh.Scene, size: int, n: int = 300) -> float:
    with rendering.Renderer(size, 35.0) as r:
        r.set_model(scene, "car", "part_colors")
        light = rendering.LightSample(0.3, 3.0, 0.2, (1.0, 1.0, 1.0), 20.0, 45.0)
        r.render(View(0, 10, 0, 1.8, (0, 0, 0), False, 0.0), [light])
        start = time.perf_counter()
        for i in range(n):
            r.render(View(float(i * 7 % 360), 10.0, 0.0, 1.8, (0.0, 0.0, 0.0), False, 0.0), [light])
        return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--views", type=int, default=48)
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--engine", choices=("local", "dask"), default="local",
                    help="run the stage's shards on a process pool or a Dask LocalCluster")
    args = ap.parse_args()
    chosen = rendering.select_platform("auto")
    tmp = Path(tempfile.mkdtemp(prefix="c2r-bench-"))
    try:
        entries, mean_faces = build_catalog(tmp, args.models)
        rows = []
        for size in (128, 224):
            for workers in (1, 2):
                rows.append((f"render stage ({args.engine}), {workers} worker(s), PNGs written", size, mean_faces,
                             stage_rate(entries, size, workers, args.views, tmp, args.engine)))
        car = meshes.load_glb(entries[0][2])
        sphere = trimesh.Scene(trimesh.creation.icosphere(subdivisions=5, radius=0.5))
        for size in (128, 224):
            rows.append(("renderer only, 1 process, no I/O", size, meshes.scene_faces(car), renderer_rate(car, size)))
            rows.append(("renderer only, 1 process, no I/O", size, meshes.scene_faces(sphere), renderer_rate(sphere, size)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmachine: {platform.machine()}, {__import__('os').cpu_count()} cores, OpenGL platform {chosen}; "
          f"{args.models} models x {args.views} views")
    print("| what | size | faces/mesh | images/s |\n| --- | --- | --- | --- |")
    for what, size, faces, rate in rows:
        print(f"| {what} | {size}² | {faces:,.0f} | {rate:.0f} |")


if __name__ == "__main__":
    main()
