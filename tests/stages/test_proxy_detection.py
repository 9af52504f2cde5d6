"""The synthetic multi-object detection set: the scene composer on hand-made layers, then
the stage for real (procedural catalog, pyrender, ``render.workers: 1`` in this process) on
a tiny configuration, read back by ``core.evalsets.load_proxy_real``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from core.compositing import RenderLayers
from core.evalsets import load_proxy_real
from core.io import write_manifest
from core.params import ParamsError, ProxyDetectionParams, Range, parse_params
from stages import catalog, proxy_detection
from stages._cli import stage_main
from tests.conftest import small_params_raw

SIZE = 64


def tiny_raw(tmp: Path) -> dict:
    """The small profile shrunk: 3 held-out models, 6 images of 2-3 objects at 64 px,
    rendering in this process; every path under ``tmp``."""
    raw = small_params_raw(tmp)
    raw["catalog"]["procedural"].update(categories=["bottle", "car", "chair"], models_per_category=2,
                                        heldout_per_category=1)
    raw["render"].update(workers=1)
    raw["proxy_detection"] = {"images": 6, "image_size": SIZE, "objects": {"lo": 2, "hi": 3},
                              "object_scale": {"lo": 0.3, "hi": 0.5}, "max_overlap_iou": 0.3}
    return raw


def with_paths(raw: dict, tmp: Path) -> dict:
    """``raw`` with the stage's outputs (not the catalog) under ``tmp``."""
    out = yaml.safe_load(yaml.safe_dump(raw))  # deep copy
    out["paths"].update(proxy_detection=str(tmp / "proxy_detection"), staging=str(tmp / "staging"),
                        metrics=str(tmp / "metrics"))
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """The catalog once, then the stage twice into different folders."""
    tmp = tmp_path_factory.mktemp("proxy_detection")
    raw = tiny_raw(tmp)
    catalog.run(parse_params(raw, "tiny"))
    first = with_paths(raw, tmp / "a")
    a = proxy_detection.run(parse_params(first, "tiny"))
    b = proxy_detection.run(parse_params(with_paths(raw, tmp / "b"), "tiny"))
    return first, a, b


# --------------------------------------------------------------------------- compose_scene
def square(side: int = 32) -> RenderLayers:
    """A render of a flat grey square filling most of a ``side`` px image."""
    mask = np.zeros((side, side), np.uint8)
    mask[4:-4, 4:-4] = 255
    rgb = np.where(mask[..., None] > 0, 180, 0).astype(np.uint8).repeat(3, axis=2)
    return RenderLayers(rgb=rgb, mask=mask, semantic=rgb.copy(), depth=(mask > 0).astype(np.float32))


def test_compose_scene_amodal_boxes_and_occlusion():
    p = ProxyDetectionParams(image_size=SIZE, object_scale=Range(lo=0.9, hi=0.9), max_overlap_iou=1.0)
    background = np.full((80, 80, 3), 40, np.uint8)
    scene = proxy_detection.compose_scene([square(), square()], background, np.random.default_rng(0), p)
    assert scene.image.shape == (SIZE, SIZE, 3) and scene.image.dtype == np.uint8 and scene.dropped == 0
    first, second = scene.objects
    assert [first.index, second.index] == [0, 1]
    # Two 58 px squares in 64 px overlap: the later one hides part of the earlier one,
    # whose box stays the whole (amodal) square.
    for obj in scene.objects:
        x0, y0, x1, y1 = obj.bbox
        assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE and abs((x1 - x0) - 0.9 * SIZE) <= 2
    assert 0.05 < first.occluded_fraction <= 1.0 and second.occluded_fraction == 0.0


def test_compose_scene_caps_overlap_and_drops_what_does_not_fit():
    p = ProxyDetectionParams(image_size=SIZE, object_scale=Range(lo=0.9, hi=0.9), max_overlap_iou=0.0)
    scene = proxy_detection.compose_scene([square(), square()], np.zeros((64, 64, 3), np.uint8),
                                          np.random.default_rng(0), p)
    assert scene.dropped == 1 and len(scene.objects) == 1 and scene.objects[0].occluded_fraction == 0.0

    p = ProxyDetectionParams(image_size=SIZE, object_scale=Range(lo=0.3, hi=0.3), max_overlap_iou=0.0)
    scene = proxy_detection.compose_scene([square()] * 3, np.zeros((64, 64, 3), np.uint8), np.random.default_rng(1), p)
    boxes = np.array([o.bbox for o in scene.objects], float)
    assert len(boxes) >= 2
    for i in range(len(boxes)):
        for j in range(i):  # disjoint boxes: no pixel of one inside the other
            a, b = boxes[i], boxes[j]
            assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1])


def test_params_reject_bad_ranges():
    with pytest.raises(ParamsError, match="objects"):
        parse_params({"proxy_detection": {"objects": {"lo": 0, "hi": 2}}}, "test")
    with pytest.raises(ParamsError, match="object_scale"):
        parse_params({"proxy_detection": {"object_scale": {"lo": 0.5, "hi": 1.5}}}, "test")


# --------------------------------------------------------------------------- the stage
def test_stage_writes_the_proxy_real_record(built):
    raw, manifest, _ = built
    root = Path(raw["paths"]["proxy_detection"])
    assert list(manifest.columns) == [
        "image_id", "image", "width", "height", "split", "domain", "synthetic", "category", "model_id",
        "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "azimuth", "elevation", "theta", "distance",
        "truncated", "occluded", "occluded_fraction", "difficult", "visible_fraction", "aug",
    ]
    assert pd.read_parquet(root / "manifest.parquet").equals(manifest.reset_index(drop=True))
    assert (manifest["domain"] == "proxy-real (synthetic)").all() and manifest["synthetic"].all()
    assert (manifest["split"] == "test").all() and not manifest["difficult"].any()
    cat = pd.read_parquet(Path(raw["paths"]["catalog"]) / "manifest.parquet")
    assert set(manifest["model_id"]) <= set(cat.loc[cat["split"] == "heldout", "model_id"])
    per_image = manifest.groupby("image_id").size()
    assert len(per_image) == 6 and per_image.between(2, 3).all()
    assert ((manifest["width"] == SIZE) & (manifest["height"] == SIZE)).all()
    assert (manifest["bbox_x0"] >= 0).all() and (manifest["bbox_y0"] >= 0).all()
    assert (manifest["bbox_x1"] <= SIZE).all() and (manifest["bbox_y1"] <= SIZE).all()
    assert ((manifest["bbox_x1"] > manifest["bbox_x0"]) & (manifest["bbox_y1"] > manifest["bbox_y0"])).all()
    assert (manifest.groupby("image_id")["image"].nunique() == 1).all()
    assert all((root / rel).is_file() for rel in manifest["image"])
    assert all(rel.startswith("shards/s") and rel.endswith(".jpg") for rel in manifest["image"])
    assert manifest["occluded"].eq(manifest["occluded_fraction"] > 0.05).all()
    assert json.loads(manifest["aug"].iloc[0])["amodal_bbox"] is True
    assert "SYNTHETIC" in (root / "README.txt").read_text()
    assert not any(Path(raw["paths"]["staging"]).glob("proxy_detection-*"))
    metrics = json.loads((Path(raw["paths"]["metrics"]) / "proxy_detection.json").read_text())
    assert metrics["domain"] == "proxy-real (synthetic)" and metrics["images"] == 6
    assert metrics["objects"] == len(manifest) and sum(metrics["per_category"].values()) == len(manifest)


def test_stage_is_deterministic(built):
    raw, a, b = built
    assert a.reset_index(drop=True).equals(b.reset_index(drop=True))
    root_a = Path(raw["paths"]["proxy_detection"])
    root_b = root_a.parents[1] / "b" / "proxy_detection"
    assert (root_a / "manifest.parquet").read_bytes() == (root_b / "manifest.parquet").read_bytes()
    for rel in a["image"].unique():
        assert (root_a / rel).read_bytes() == (root_b / rel).read_bytes(), rel


def test_load_proxy_real_reads_it_as_a_multi_object_set(built):
    raw, manifest, _ = built
    evalset = load_proxy_real(raw["paths"]["proxy_detection"])
    assert evalset.domain == "proxy-real (synthetic)" and evalset.has_viewpoint
    assert len(evalset.images) == 6 and sum(len(i.objects) for i in evalset.images) == len(manifest)
    assert max(len(i.objects) for i in evalset.images) > 1
    for image in evalset.images:
        assert image.image.is_file() and (image.width, image.height) == (SIZE, SIZE)
        for obj in image.objects:
            assert obj.bbox is not None and obj.azimuth is not None


def test_no_heldout_model_names_the_catalog_manifest(tmp_path: Path, caplog):
    raw = tiny_raw(tmp_path)
    manifest = Path(raw["paths"]["catalog"]) / "manifest.parquet"
    manifest.parent.mkdir(parents=True)
    write_manifest(pd.DataFrame({"model_id": ["car_000"], "category": ["car"], "split": ["train"],
                                 "path": ["models/car_000.glb"]}), manifest)
    with pytest.raises(ValueError, match="no held-out models") as err:
        proxy_detection.run(parse_params(raw, "test"))
    assert str(manifest) in str(err.value)
    assert not Path(raw["paths"]["proxy_detection"]).exists()

    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_info:
        stage_main("proxy_detection", proxy_detection.run, ["--params", str(params_file)])
    assert exit_info.value.code == 2 and str(manifest) in caplog.text
