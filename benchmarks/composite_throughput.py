"""Composite throughput of the composite stage's own code path (composites/s).

    .venv/bin/python benchmarks/composite_throughput.py [--samples 96]

Renders a few procedural models once (not timed), then runs ``stages.composite``'s shard
function over them — PNG reads of the four render layers, background augmentation,
placement, noise, blurs, blending, PNG writes of the composite, mask, semantic target and
the adaptation pair — at 128² and 224², with 1 and 2 worker processes.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from core import meshes, procedural, rendering
from core.backgrounds import load_backgrounds
from core.params import CompositeParams, Params, RenderParams
from stages import composite, render
from stages._shards import Shard, run_shards

CLASSES = ("car", "chair", "aeroplane", "bookcase")


def make_renders(folder: Path, size: int, views: int) -> pd.DataFrame:
    p = RenderParams(image_size=size, views_per_model=views, workers=1)
    rows = []
    render.init_worker(p, rendering.select_platform("auto"), None)
    try:
        for i, category in enumerate(CLASSES):
            glb = folder / f"m{i}.glb"
            meshes.export_glb(procedural.generate(category, i, 0).scene, glb)
            shard = Shard(key=f"m{i}", n_items=views, payload=render.ModelTask(f"m{i}", category, str(glb), views, 0))
            out = folder / "shards" / shard.key
            out.mkdir(parents=True)
            rows += render.render_shard(shard, out)["samples"]
    finally:
        render.close_worker()
    return pd.DataFrame(rows)


def rate(renders: pd.DataFrame, root: Path, size: int, workers: int, staging: Path) -> float:
    p = CompositeParams(image_size=size, workers=workers)
    shards = [
        Shard(key=str(mid), n_items=len(g), payload=composite.CompositeTask(str(root), g.to_dict("records"), 0, p, True))
        for mid, g in renders.groupby("model_id")
    ]
    start = time.perf_counter()
    run_shards(shards, composite.composite_shard, staging, tables=("composites", "pairs"), workers=workers,
               desc=f"{size}px x{workers}", initializer=composite.init_worker,
               initargs=(load_backgrounds(p.backgrounds, 0),))
    elapsed = time.perf_counter() - start
    shutil.rmtree(staging)
    return len(renders) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=96)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="c2r-bench-"))
    rows = []
    try:
        for size in (128, 224):
            root = tmp / f"r{size}"
            root.mkdir()
            renders = make_renders(root, size, args.samples // len(CLASSES))
            for workers in (1, 2):
                rows.append((size, workers, rate(renders, root, size, workers, tmp / f"s{size}{workers}")))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores; {args.samples} renders per size; "
          f"default composite params ({Params().composite.blend})")
    print("| what | size | workers | composites/s |\n| --- | --- | --- | --- |")
    for size, workers, r in rows:
        print(f"| composite stage (PNG I/O, adaptation pairs) | {size}² | {workers} | {r:.0f} |")


if __name__ == "__main__":
    main()
