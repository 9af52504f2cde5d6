"""catalog stage: the procedural catalog, folder/real sources, skipped models, and the
canonical frame checked through real renders (front of a car at azimuth 0).

Everything runs the real stage (``stages.catalog.run``) into tmp_path; real CAD files
come from ../shared/data and are skipped with a reason when absent.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import trimesh
import yaml

from core import geometry, meshes, rendering
from core.importers import SourceModel, canonical_transform, discover, load_model
from core.params import IKEA_CLASSES, CatalogSource, parse_params
from flows.smoke import absolute_shared
from stages import catalog
from tests.conftest import ROOT, shared_data, small_params_raw

COLUMNS = [
    "model_id", "category", "source", "path", "n_faces", "n_vertices", "license", "split",
    "original_path", "has_texture", "style", "sha256",
]


def tiny_raw(tmp: Path, *, categories=("car", "chair"), models=2, heldout=1, enabled=True, sources=()) -> dict:
    raw = small_params_raw(tmp)
    raw["catalog"]["procedural"].update(
        enabled=enabled, categories=list(categories), models_per_category=models, heldout_per_category=heldout,
    )
    raw["catalog"]["sources"] = [dict(s) for s in sources]
    return raw


def run_catalog(raw: dict) -> tuple[pd.DataFrame, Path]:
    params = parse_params(raw, "test")
    manifest = catalog.run(params)
    return manifest, Path(params.paths.catalog)


def read_skipped(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "skipped.csv", keep_default_na=False)


# --------------------------------------------------------------------------- procedural
def test_procedural_catalog_tiny(tmp_path: Path):
    manifest, out = run_catalog(tiny_raw(tmp_path))
    on_disk = pd.read_parquet(out / "manifest.parquet")
    assert list(on_disk.columns) == COLUMNS
    pd.testing.assert_frame_equal(on_disk.reset_index(drop=True), manifest.reset_index(drop=True))
    assert len(on_disk) == 4
    assert sorted(on_disk["model_id"]) == ["proc-car-000", "proc-car-001", "proc-chair-000", "proc-chair-001"]
    assert set(on_disk["source"]) == {"procedural"}
    # the last model of each class is held out
    split = dict(zip(on_disk["model_id"], on_disk["split"]))
    assert split == {"proc-car-000": "train", "proc-car-001": "heldout",
                     "proc-chair-000": "train", "proc-chair-001": "heldout"}
    assert on_disk.groupby("category")["split"].value_counts().to_dict() == {
        ("car", "heldout"): 1, ("car", "train"): 1, ("chair", "heldout"): 1, ("chair", "train"): 1,
    }
    for row in on_disk.itertuples():
        assert row.path == f"meshes/{row.model_id}.glb"
        assert row.original_path.startswith(f"procedural://{row.category}/")
        assert isinstance(json.loads(row.style), dict)
        scene = meshes.load_glb(out / row.path)
        assert meshes.scene_faces(scene) == row.n_faces > 0
        assert sum(len(g.vertices) for g in scene.geometry.values()) == row.n_vertices
        # canonical frame: bbox centred, diagonal 1
        assert np.linalg.norm(scene.extents) == pytest.approx(1.0, abs=1e-3)
        assert np.abs(scene.bounds.mean(axis=0)).max() < 1e-3
    skipped = out / "skipped.csv"
    assert skipped.is_file()
    df = read_skipped(out)
    assert list(df.columns) == ["original_path", "source", "reason"] and df.empty
    # nothing else left next to the output (atomic rename, no temporaries)
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".catalog")) == []


def test_procedural_catalog_is_deterministic(tmp_path: Path):
    _, a = run_catalog(tiny_raw(tmp_path / "a"))
    _, b = run_catalog(tiny_raw(tmp_path / "b"))
    assert (a / "manifest.parquet").read_bytes() == (b / "manifest.parquet").read_bytes()
    glbs_a = sorted(p.name for p in (a / "meshes").glob("*.glb"))
    assert glbs_a == sorted(p.name for p in (b / "meshes").glob("*.glb")) and len(glbs_a) == 4
    for name in glbs_a:
        assert (a / "meshes" / name).read_bytes() == (b / "meshes" / name).read_bytes(), name
    assert (a / "skipped.csv").read_bytes() == (b / "skipped.csv").read_bytes()


# --------------------------------------------------------------------------- folder source
def test_folder_source_good_and_bad_files(tmp_path: Path, caplog):
    root = tmp_path / "mine"
    (root / "car").mkdir(parents=True)
    good = trimesh.util.concatenate([
        trimesh.creation.box(extents=(0.3, 0.8, 0.2)),
        trimesh.creation.box(extents=(0.1, 0.1, 0.1), transform=trimesh.transformations.translation_matrix((0, -0.45, 0))),
    ])
    good.export(root / "car" / "good.obj")
    good.export(root / "car" / "good2.stl")
    rng = np.random.default_rng(0)
    (root / "car" / "broken.obj").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (root / "car" / "empty.off").write_text("OFF\n0 0 0\n")
    src = {"kind": "folder", "root": str(root), "class_map": {"car/*": "car"}, "license": "mine"}
    with caplog.at_level(logging.WARNING):
        manifest, out = run_catalog(tiny_raw(tmp_path / "run", sources=[src]))

    imported = manifest[manifest["source"] == "folder"].sort_values("model_id")
    assert list(imported["model_id"]) == ["folder-car-good.obj", "folder-car-good2.stl"]
    assert set(imported["category"]) == {"car"} and set(imported["split"]) == {"train"}
    assert set(imported["license"]) == {"mine"}
    assert set(imported["style"]) == {"{}"}
    for row in imported.itertuples():
        assert Path(row.original_path).parent == root / "car"
        scene = meshes.load_glb(out / row.path)
        assert meshes.scene_faces(scene) == row.n_faces == 24
        assert np.linalg.norm(scene.extents) == pytest.approx(1.0, abs=1e-6)

    skipped = read_skipped(out)
    assert sorted(skipped["original_path"]) == [str(root / "car" / "broken.obj"), str(root / "car" / "empty.off")]
    assert set(skipped["source"]) == {"folder"}
    reasons = dict(zip(skipped["original_path"], skipped["reason"]))
    broken, empty = reasons[str(root / "car" / "broken.obj")], reasons[str(root / "car" / "empty.off")]
    # the importer's MeshError message: names the file and says what is wrong
    assert str(root / "car" / "broken.obj") in broken
    assert any(word in broken for word in ("unreadable", "empty", "degenerate")), broken
    assert str(root / "car" / "empty.off") in empty and "empty" in empty, empty
    # each skipped model is also logged
    assert "broken.obj" in caplog.text and "empty.off" in caplog.text


def test_folder_source_respects_catalog_face_limits(tmp_path: Path):
    """catalog.min_faces/max_faces apply to imported models too (not the importer's defaults)."""
    root = tmp_path / "mine"
    (root / "car").mkdir(parents=True)
    quad = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0.2]], [[0, 1, 2], [0, 2, 3]], process=False)
    quad.export(root / "car" / "quad.stl")  # 2 faces: below the default min_faces=4
    trimesh.creation.box(extents=(0.3, 0.8, 0.2)).export(root / "car" / "box.stl")  # 12 faces
    src = {"kind": "folder", "root": str(root), "class_map": {"car/*": "car"}}

    raw = tiny_raw(tmp_path / "low", enabled=False, sources=[src])
    raw["catalog"]["min_faces"] = 1
    manifest, out = run_catalog(raw)
    assert sorted(manifest["model_id"]) == ["folder-car-box.stl", "folder-car-quad.stl"]
    assert read_skipped(out).empty

    raw = tiny_raw(tmp_path / "high", enabled=False, sources=[src])
    raw["catalog"].update(min_faces=1, max_faces=10)
    manifest, out = run_catalog(raw)
    assert list(manifest["model_id"]) == ["folder-car-quad.stl"]
    skipped = read_skipped(out)
    assert list(skipped["original_path"]) == [str(root / "car" / "box.stl")]
    assert "max_faces=10" in skipped["reason"][0]


# --------------------------------------------------------------------------- missing sources
def test_missing_optional_source_is_logged_and_skipped(tmp_path: Path, caplog):
    missing = tmp_path / "no_such_library"
    src = {"kind": "shapenet_v1", "root": str(missing)}
    with caplog.at_level(logging.INFO, logger="cad2real.catalog"):
        manifest, out = run_catalog(tiny_raw(tmp_path / "run", sources=[src]))
    lines = [r.getMessage() for r in caplog.records if "not found at" in r.getMessage()]
    assert lines, caplog.text
    assert any(str(missing) in line and "shapenet_v1" in line for line in lines), lines
    assert len(manifest) == 4 and set(manifest["source"]) == {"procedural"}
    assert (out / "manifest.parquet").is_file()


def test_missing_required_source_is_an_error_naming_it(tmp_path: Path):
    missing = tmp_path / "no_such_library"
    src = {"kind": "pascal3d", "root": str(missing), "required": True}
    raw = tiny_raw(tmp_path / "run", sources=[src])
    with pytest.raises(FileNotFoundError, match="not found at") as err:
        run_catalog(raw)
    assert str(missing) in str(err.value)
    # nothing published
    assert not Path(raw["paths"]["catalog"]).exists()


# --------------------------------------------------------------------------- real data
def test_real_pascal3d_and_objectnet3d_sources(tmp_path: Path):
    pascal = shared_data("pascal3d_cad")
    objectnet = shared_data("objectnet3d_cad")
    sources = [
        {"kind": "pascal3d", "root": str(pascal), "categories": ["car", "chair"], "max_models_per_category": 2},
        {"kind": "objectnet3d", "root": str(objectnet), "class_map": {"bookshelf": "bookcase"},
         "categories": ["bookcase"], "max_models_per_category": 2},
    ]
    manifest, out = run_catalog(tiny_raw(tmp_path, enabled=False, sources=sources))
    assert set(manifest["source"]) == {"pascal3d", "objectnet3d"}
    by_source = manifest.groupby("source")["category"].value_counts().to_dict()
    assert by_source == {("pascal3d", "car"): 2, ("pascal3d", "chair"): 2, ("objectnet3d", "bookcase"): 2}
    assert sorted(manifest["model_id"]) == [
        "objectnet3d-bookshelf-01", "objectnet3d-bookshelf-02",
        "pascal3d-car-01", "pascal3d-car-03", "pascal3d-chair-01", "pascal3d-chair-02",
    ]
    assert set(manifest["split"]) == {"train"}
    for row in manifest.itertuples():
        assert Path(row.original_path).is_file() and Path(row.original_path).is_relative_to(pascal.parent)
        scene = meshes.load_glb(out / row.path)
        assert meshes.scene_faces(scene) == row.n_faces
        assert np.linalg.norm(scene.extents) == pytest.approx(1.0, abs=1e-3)
    assert read_skipped(out).empty


def test_default_sources_give_all_six_ikea_classes(tmp_path: Path):
    """params.yaml's real CAD sources plus the procedural generators cover the IKEA label
    set; desk has no real CAD model here, so the generators must supply it."""
    shared_data("pascal3d_cad")
    shared_data("objectnet3d_cad")

    default_sources = absolute_shared(yaml.safe_load((ROOT / "params.yaml").read_text()), ROOT)["catalog"]["sources"]
    sources = [{**s, "max_models_per_category": 1, "categories": list(IKEA_CLASSES)} for s in default_sources
               if s["kind"] in ("pascal3d", "objectnet3d")]
    manifest, _ = run_catalog(tiny_raw(tmp_path, categories=IKEA_CLASSES, models=2, heldout=1, sources=sources))
    assert set(manifest["category"]) == set(IKEA_CLASSES)
    real = manifest[manifest["source"] != "procedural"]
    assert set(real["category"]) == set(IKEA_CLASSES) - {"desk"}
    assert set(real.loc[real["source"] == "objectnet3d", "category"]) == {"bed", "bookcase"}


# --------------------------------------------------------------------------- front view
def _view(azimuth: float, elevation: float = 10.0, distance: float = 1.8) -> geometry.View:
    return geometry.View(azimuth=azimuth, elevation=elevation, theta=0.0, distance=distance,
                         focal=(0.0, 0.0, 0.0), closeup=False, focal_shift=0.0)


LIGHT = rendering.LightSample(ambient=0.3, diffuse=3.0, specular=0.2, color=(1.0, 1.0, 1.0),
                              azimuth=20.0, elevation=45.0)
SIZE = 128


def _camera_z(points: np.ndarray, res: rendering.RenderResult) -> np.ndarray:
    return (points @ res.r.T + res.t)[:, 2]


def _rendered_depth(res: rendering.RenderResult, points: np.ndarray) -> np.ndarray:
    """Rendered depth at the pixel each point projects to (0 = background / outside)."""
    uv = geometry.project(points, res.k, res.r, res.t)
    px = np.floor(uv).astype(int)
    inside = (px[:, 0] >= 0) & (px[:, 0] < SIZE) & (px[:, 1] >= 0) & (px[:, 1] < SIZE)
    out = np.zeros(len(points), np.float32)
    out[inside] = res.depth[px[inside, 1], px[inside, 0]]
    return out


def _render(scene: trimesh.Scene, category: str, azimuths: list[float]) -> dict[float, rendering.RenderResult]:
    rendering.select_platform("auto")
    renderer = rendering.Renderer(SIZE, 35.0)
    try:
        renderer.set_model(scene, category, "grey")
        return {az: renderer.render(_view(az), [LIGHT]) for az in azimuths}
    finally:
        renderer.close()


def test_pascal3d_car_front_faces_the_azimuth_0_camera():
    off = shared_data("pascal3d_cad", "CAD", "car", "01.off")
    model = SourceModel("car", "pascal3d", off, "car-01", "PASCAL3D+")
    scene = load_model(model)
    raw = json.loads(off.with_suffix(".keypoints.json").read_text())
    transform = canonical_transform(model)
    names = ["left_front_wheel", "right_front_wheel", "left_back_wheel", "right_back_wheel"]
    src = np.array([[raw[n]["x"], raw[n]["y"], raw[n]["z"]] for n in names])
    kps = src @ transform[:3, :3].T + transform[:3, 3]
    front, back = kps[:2], kps[2:]

    results = _render(scene, "car", [0.0, 180.0])
    res0, res180 = results[0.0], results[180.0]
    for res in results.values():
        assert res.visible_fraction == 1.0 and np.count_nonzero(res.mask) > 500

    z0 = _camera_z(kps, res0)
    assert z0[:2].max() < z0[2:].min(), f"azimuth 0: front wheels not nearer: {z0}"
    # the front wheels are where the image shows the car: rendered depth at their pixel is
    # the wheel's own depth (visible) or smaller (hidden behind the body), never farther
    d0 = _rendered_depth(res0, front)
    assert (d0 > 0).all(), "front-wheel keypoints project onto background"
    assert (d0 <= z0[:2] + 0.05).all(), (d0, z0[:2])

    z180 = _camera_z(kps, res180)
    assert z180[2:].max() < z180[:2].min(), f"azimuth 180: back wheels not nearer: {z180}"
    d180 = _rendered_depth(res180, back)
    assert (d180 > 0).all() and (d180 <= z180[2:] + 0.05).all(), (d180, z180[2:])
    # the two views are not mirror images of one another: depth maps differ
    assert not np.array_equal(res0.depth, np.fliplr(res180.depth))


def _visible_share(res: rendering.RenderResult, points: np.ndarray, tol: float = 0.02) -> float:
    """Fraction of ``points`` that the render shows (rendered depth equals their depth)."""
    d = _rendered_depth(res, points)
    z = _camera_z(points, res)
    return float(np.mean((d > 0) & (np.abs(d - z) < tol)))


def test_shapenet_car_front_faces_the_azimuth_0_camera():
    root = shared_data("shapenet_samples")
    shared_data("shapenet_samples", "02958343")
    [model] = discover(CatalogSource(kind="shapenet_v1", root=str(root), categories=("car",)))
    scene = load_model(model)
    parts = {getattr(g.visual.material, "name", None): g for g in scene.geometry.values()}
    # docs/axis_conventions.md: red tail lights (Color_A02) at the back, gold front
    # indicators (Translucent_Glass_Gold) at the front
    tail, front = parts["Color_A02"].vertices, parts["Translucent_Glass_Gold"].vertices

    results = _render(scene, "car", [0.0, 180.0])
    res0, res180 = results[0.0], results[180.0]
    assert _camera_z(front, res0).mean() < _camera_z(tail, res0).mean()
    assert _camera_z(tail, res180).mean() < _camera_z(front, res180).mean()
    # what the renders show: the front indicators from azimuth 0, the tail lights from 180
    front0, tail0 = _visible_share(res0, front), _visible_share(res0, tail)
    front180, tail180 = _visible_share(res180, front), _visible_share(res180, tail)
    assert front0 > 0.2 and tail0 < 0.05, (front0, tail0)
    assert tail180 > 0.2 and front180 < 0.05, (tail180, front180)


def test_glb_hash_is_in_the_manifest(tmp_path: Path):
    import hashlib

    params = parse_params(tiny_raw(tmp_path))
    manifest = catalog.run(params)
    root = Path(params.paths.catalog)
    for row in manifest.itertuples():
        assert row.sha256 == hashlib.sha256((root / row.path).read_bytes()).hexdigest()


def test_empty_optional_source_is_skipped_with_a_warning(tmp_path: Path, caplog):
    empty = tmp_path / "empty_lib"
    empty.mkdir()
    raw = tiny_raw(tmp_path, sources=({"kind": "pascal3d", "root": str(empty)},))
    with caplog.at_level("WARNING"):
        manifest = catalog.run(parse_params(raw))
    assert (manifest["source"] == "procedural").all()
    assert any(str(empty) in r.getMessage() for r in caplog.records)
