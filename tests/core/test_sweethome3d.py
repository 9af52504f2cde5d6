"""core.importers, source kind ``sweethome3d``: Sweet Home 3D furniture catalogs (``.sh3f``).

The fixture catalog is written in the format's own layout in tmp_path: a zip with a
``PluginFurnitureCatalog.properties`` (ISO-8859-1, ``\\uXXXX`` escapes, a continued line)
and tiny OBJ+MTL models, Y-up with the front at +z as Sweet Home 3D stores them. The real
catalogs of Debian's ``sweethome3d-furniture`` are read from /usr/share/sweethome3d/furniture
when installed (``scripts/setup_system.sh``), else that test is skipped with a reason.
"""

from __future__ import annotations

import collections
import io
import logging
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import trimesh
from PIL import Image

from core import meshes
from core.importers import (
    SWEETHOME3D_ROOT,
    SourceNotFound,
    canonical_transform,
    discover,
    load_model,
    parse_java_properties,
    read_sh3f,
)
from core.meshes import MeshError
from core.params import CatalogSource, CatalogParams

REAL_ROOT = Path(SWEETHOME3D_ROOT)

# --------------------------------------------------------------------------- fixture
# Boxes (extents, centre) in the *canonical* frame (up +z, front -y); written to the OBJ in
# Sweet Home 3D's frame (up +y, front +z): (x, y, z) -> (x, z, -y).
CHAIR = {  # a tall, thin chair: seat box and a backrest at the back (+y canonical)
    "seat": ((0.4, 0.4, 0.45), (0.0, 0.0, 0.225)),
    "back": ((0.4, 0.05, 0.55), (0.0, 0.175, 0.725)),
}
SOFA = {  # long along x, backrest at the back
    "seat": ((1.8, 0.8, 0.4), (0.0, 0.0, 0.2)),
    "back": ((1.8, 0.15, 0.5), (0.0, 0.325, 0.65)),
}
TABLE = {"top": ((1.2, 0.8, 0.05), (0.0, 0.0, 0.725)), "leg": ((0.1, 0.1, 0.7), (0.0, 0.0, 0.35))}
SH3D_FROM_CANONICAL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
# Blender exports Z-up: the sofa is stored with its height along z and its back at +y, and
# the entry's modelRotation (row-major, R @ v) turns it into Sweet Home 3D's frame.
SOFA_ROTATION = "1 0 0 0 0 1 0 -1 0"  # (x, y, z) -> (x, z, -y)

CATALOG_HEADER = """\
# PluginFurnitureCatalog.properties (test fixture)
id=Test#Fixture
name=Fixture catalog
description=Models for cad2real's tests
license=Creative Commons Attribution 3.0 license \\
  (continued line) \xa9 cad2real
provider : tests
"""

ENTRIES: list[dict[str, str]] = [
    {"id": "Test#chair", "name": "Chair", "category": "Living room", "model": "/test/chair/chair.obj",
     "creator": "Ann \\u00c5berg", "width": "40", "depth": "40", "height": "100"},
    {"id": "Test#sofa", "name": "Sofa 2 seats", "category": "Living room", "model": "test/sofa/sofa.obj",
     "creator": "Bob", "modelRotation": SOFA_ROTATION, "width": "180", "depth": "80", "height": "90"},
    {"id": "Test#table", "name": "Caf\\u00e9 table", "category": "Exterior", "model": "/test/table/table.obj",
     "creator": "Bob", "width": "120", "depth": "80", "height": "75"},
    {"id": "Test#stool", "name": "Bar stool", "category": "Kitchen", "model": "/test/chair/chair.obj",
     "creator": "Bob", "width": "40", "depth": "40", "height": "100"},
    {"id": "Test#night", "name": "Bedside table", "category": "Bedroom", "model": "/test/table/table.obj",
     "creator": "Bob", "width": "40", "depth": "40", "height": "50"},
    {"id": "Test#ottoman", "name": "Armchair ottoman", "category": "Living room", "model": "/test/sofa/sofa.obj",
     "creator": "Bob", "width": "80", "depth": "150", "height": "100"},
    {"id": "Test#lamp", "name": "Desk lamp", "category": "Lights", "model": "/test/table/table.obj",
     "creator": "Bob", "width": "20", "depth": "20", "height": "40"},
    {"id": "Test#broken", "name": "Bed", "category": "Bedroom", "model": "/test/broken/broken.obj",
     "creator": "Carl", "width": "140", "depth": "200", "height": "50"},
    {"id": "Test#missing", "name": "Desk", "category": "Office", "model": "/test/missing/desk.obj",
     "creator": "Carl", "width": "120", "depth": "60", "height": "75"},
]
INCLUDED = {"Test#chair": "chair", "Test#sofa": "sofa", "Test#table": "diningtable", "Test#broken": "bed",
            "Test#missing": "desk"}


def obj_text(parts: dict, frame: np.ndarray, mtllib: str) -> str:
    """OBJ of boxes given in the canonical frame, vertices mapped by ``frame`` (row vectors
    ``v @ frame.T``), one object and one material (``<part>_mat``) per box, UVs per vertex."""
    lines, n = [f"mtllib {mtllib}"], 0
    for name, (extents, centre) in parts.items():
        box = trimesh.creation.box(extents=extents, transform=trimesh.transformations.translation_matrix(centre))
        lines.append(f"o {name}")
        lines += ["v " + " ".join(f"{c:.6f}" for c in v) for v in box.vertices @ frame.T]
        lines += [f"vt {(v[0] + 0.5) % 1:.4f} {(v[2] + 0.5) % 1:.4f}" for v in box.vertices]
        lines.append(f"usemtl {name}_mat")
        lines += ["f " + " ".join(f"{i}/{i}" for i in f) for f in box.faces + n + 1]
        n += len(box.vertices)
    return "\n".join(lines) + "\n"


def png_bytes() -> bytes:
    pixels = np.zeros((4, 4, 3), np.uint8)
    pixels[:2] = (200, 30, 30)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def properties_text(entries: list[dict[str, str]]) -> str:
    lines = [CATALOG_HEADER]
    for n, entry in enumerate(entries, start=1):
        lines += [f"{key}#{n}={value}" for key, value in entry.items()] + [""]
    return "\n".join(lines)


def write_sh3f(path: Path, entries: list[dict[str, str]] = ENTRIES) -> Path:
    """A Sweet Home 3D catalog: properties in ISO-8859-1 (as the real ones), the chair
    textured (its seat maps ``textures/wood.png``), the sofa and table in Kd colours (the
    sofa Z-up, turned by its modelRotation), a broken OBJ, and one entry whose model is
    not in the archive."""
    path.parent.mkdir(parents=True, exist_ok=True)
    to_z_up = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # Blender: canonical axes, back +y
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("PluginFurnitureCatalog.properties", properties_text(entries).encode("iso-8859-1"))
        zf.writestr("test/chair/chair.obj", obj_text(CHAIR, SH3D_FROM_CANONICAL, "chair.mtl"))
        zf.writestr("test/chair/chair.mtl",
                    "newmtl seat_mat\nKd 0.8 0.8 0.8\nmap_Kd textures/wood.png\nnewmtl back_mat\nKd 0 0 1\n")
        zf.writestr("test/chair/textures/wood.png", png_bytes())
        zf.writestr("test/sofa/sofa.obj", obj_text(SOFA, to_z_up, "sofa.mtl"))
        zf.writestr("test/sofa/sofa.mtl",
                    "newmtl seat_mat\nKd 1 0 0\nnewmtl back_mat\nKd 0 1 0\nmap_Kd normalmap.jpg\n")
        zf.writestr("test/table/table.obj", obj_text(TABLE, SH3D_FROM_CANONICAL, "table.mtl"))
        zf.writestr("test/table/table.mtl", "newmtl top_mat\nKd 0.5 0.3 0.1\nnewmtl leg_mat\nKd 0.1 0.1 0.1\n")
        zf.writestr("test/broken/broken.obj", "v 0 0 0\nv nonsense\nf 1 2 3\n")
    return path


@pytest.fixture
def catalog_root(tmp_path: Path) -> Path:
    write_sh3f(tmp_path / "sh3d" / "Fixture.sh3f")
    return tmp_path / "sh3d"


def source(root: Path, **kw) -> CatalogSource:
    return CatalogSource(kind="sweethome3d", root=str(root), **kw)


def by_id(models) -> dict:
    return {m.furniture.id: m for m in models}


def part(scene: trimesh.Scene, material: str) -> trimesh.Trimesh:
    [geom] = [g for g in scene.geometry.values() if getattr(g.visual.material, "name", None) == material]
    return geom


# --------------------------------------------------------------------------- properties
def test_parse_java_properties_escapes_continuations_and_encodings():
    text = ("# comment\n! also a comment\n  key1 = value one  \nkey2:v2\nkey3 v3\n"
            "long=first \\\n    second\nuni=Caf\\u00e9 \\t tab\nesc\\=key=x\nempty=\n").encode("iso-8859-1")
    props = parse_java_properties(text)
    assert props == {"key1": "value one  ", "key2": "v2", "key3": "v3", "long": "first second",
                     "uni": "Café \t tab", "esc=key": "x", "empty": ""}
    assert parse_java_properties("name=\xa9 Scopia".encode("iso-8859-1")) == {"name": "© Scopia"}
    assert parse_java_properties("name=© Scopia".encode("utf-8")) == {"name": "© Scopia"}


def test_read_sh3f_lists_every_entry_with_licence_and_creator(catalog_root: Path):
    entries = read_sh3f(catalog_root / "Fixture.sh3f")
    assert [e.index for e in entries] == list(range(1, len(ENTRIES) + 1))
    chair, sofa, table = entries[:3]
    assert chair.member == "test/chair/chair.obj"  # leading "/" dropped
    assert sofa.member == "test/sofa/sofa.obj"
    assert chair.creator == "Ann Åberg" and table.name == "Café table"
    assert {e.license for e in entries} == {"CC-BY-3.0"}
    assert chair.rotation is None and sofa.rotation == (1, 0, 0, 0, 0, 1, 0, -1, 0)
    assert chair.size_cm == (40.0, 40.0, 100.0)


def test_read_sh3f_names_the_file_when_not_a_catalog(tmp_path: Path):
    not_zip = tmp_path / "bad.sh3f"
    not_zip.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.sh3f.*not a zip"):
        read_sh3f(not_zip)
    no_props = tmp_path / "empty.sh3f"
    with zipfile.ZipFile(no_props, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="empty.sh3f.*PluginFurnitureCatalog.properties"):
        read_sh3f(no_props)


# --------------------------------------------------------------------------- discover
def test_discover_maps_classes_and_excludes_stools_ottomans_bedside_tables(catalog_root: Path, caplog):
    with caplog.at_level(logging.INFO, logger="core.importers"):
        models = discover(source(catalog_root))
    assert {m.furniture.id: m.category for m in models} == INCLUDED
    assert [m.category for m in models] == sorted(m.category for m in models)
    assert by_id(models)["Test#chair"].key == "Fixture-chair"
    assert by_id(models)["Test#chair"].path == catalog_root / "Fixture.sh3f" / "test/chair/chair.obj"
    # excluded names are logged with the reason
    assert "Bar stool" in caplog.text and "Armchair ottoman" in caplog.text and "Bedside table" in caplog.text
    assert "category Lights" in caplog.text


def test_class_map_overrides_by_name_category_and_id(catalog_root: Path):
    models = discover(source(catalog_root, class_map={
        "bar STOOL": "chair",  # by name, case-insensitive
        "Lights": "desk",  # by category
        "Test#table": "none",  # by id, to a label outside our classes: excluded
        "*ottoman": "sofa",  # glob
    }))
    classes = {m.furniture.id: m.category for m in models}
    assert classes["Test#stool"] == "chair" and classes["Test#lamp"] == "desk"
    assert classes["Test#ottoman"] == "sofa" and "Test#table" not in classes
    assert "Test#night" not in classes


def test_categories_and_max_models_per_category(catalog_root: Path):
    models = discover(source(catalog_root, categories=("chair", "sofa"), class_map={"Bar stool": "chair"},
                             max_models_per_category=1))
    assert [(m.category, m.key) for m in models] == [("chair", "Fixture-chair"), ("sofa", "Fixture-sofa")]


def test_licence_and_creator_are_carried(catalog_root: Path):
    models = by_id(discover(source(catalog_root)))
    assert models["Test#chair"].license == "CC-BY-3.0 (creator: Ann Åberg)"
    assert models["Test#sofa"].license == "CC-BY-3.0 (creator: Bob)"


def test_missing_root_and_empty_root(tmp_path: Path):
    with pytest.raises(SourceNotFound, match=r"sweethome3d not found at .*no_such_dir"):
        discover(source(tmp_path / "no_such_dir"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no models found at .*empty.*\.sh3f"):
        discover(source(tmp_path / "empty"))


def test_unreadable_catalog_is_skipped_with_a_warning(catalog_root: Path, caplog):
    (catalog_root / "Broken.sh3f").write_bytes(b"PK not really")
    with caplog.at_level(logging.WARNING, logger="core.importers"):
        models = discover(source(catalog_root))
    assert {m.furniture.id for m in models} == set(INCLUDED)
    assert "Broken.sh3f" in caplog.text and "not a zip" in caplog.text


# --------------------------------------------------------------------------- load
def test_y_up_models_load_tall_along_z_with_the_back_at_pos_y(catalog_root: Path):
    models = by_id(discover(source(catalog_root)))
    chair = load_model(models["Test#chair"])
    lo, hi = chair.bounds
    np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-9)
    assert np.linalg.norm(hi - lo) == pytest.approx(1.0, abs=1e-9)
    ext = hi - lo
    assert ext[2] > 1.5 * ext[0] and ext[2] > 1.5 * ext[1], ext  # 1.0 tall, 0.4 wide and deep
    back = part(chair, "back_mat")
    assert back.vertices[:, 1].mean() > 0.1 and back.vertices[:, 2].mean() > 0.1  # behind, on top
    # the front (-y) is what the azimuth-0 camera sees: the seat's front edge
    assert part(chair, "seat_mat").vertices[:, 1].min() == pytest.approx(lo[1])


def test_model_rotation_is_applied(catalog_root: Path):
    models = by_id(discover(source(catalog_root)))
    sofa = load_model(models["Test#sofa"])
    ext = sofa.extents
    assert ext[0] > ext[1] and ext[0] > ext[2]  # 1.8 long along x
    assert ext[2] == pytest.approx(ext[0] * 0.9 / 1.8, rel=1e-6)  # 0.9 tall along z
    assert part(sofa, "back_mat").vertices[:, 1].mean() > 0.1
    # canonical_transform includes the modelRotation: it maps the file's back-top corner
    transform = canonical_transform(models["Test#sofa"])
    corner = np.array([0.9, 0.4, 0.9, 1.0])  # in the Z-up file: +x end, back (+y), top
    mapped = (transform @ corner)[:3]
    np.testing.assert_allclose(mapped, sofa.bounds[1], atol=1e-9)


def test_textures_and_material_colours_are_loaded(catalog_root: Path, caplog):
    models = by_id(discover(source(catalog_root)))
    chair = load_model(models["Test#chair"])
    seat = part(chair, "seat_mat")
    assert isinstance(seat.visual, trimesh.visual.TextureVisuals)
    assert seat.visual.material.image is not None and seat.visual.material.image.size == (4, 4)
    assert seat.visual.uv is not None and len(seat.visual.uv) == len(seat.vertices)
    np.testing.assert_array_equal(part(chair, "back_mat").visual.material.main_color[:3], [0, 0, 255])
    with caplog.at_level(logging.WARNING, logger="core.importers"):
        sofa = load_model(models["Test#sofa"])
    np.testing.assert_array_equal(part(sofa, "seat_mat").visual.material.main_color[:3], [255, 0, 0])
    # a texture missing from the catalog keeps the material's Kd, as Sweet Home 3D shows it
    np.testing.assert_array_equal(part(sofa, "back_mat").visual.material.main_color[:3], [0, 255, 0])
    assert "normalmap.jpg" in caplog.text and "Fixture.sh3f" in caplog.text and "'Sofa 2 seats'" in caplog.text
    # textures and colours survive the catalog's GLB
    glb = trimesh.load(io.BytesIO(chair.export(file_type="glb")), file_type="glb", force="scene")
    assert any(getattr(g.visual.material, "baseColorTexture", None) is not None for g in glb.geometry.values())


def test_broken_entries_raise_mesh_error_naming_catalog_and_entry(catalog_root: Path):
    models = by_id(discover(source(catalog_root)))
    with pytest.raises(MeshError) as err:
        load_model(models["Test#broken"])
    assert "Fixture.sh3f" in str(err.value) and "entry #8 'Bed'" in str(err.value)
    with pytest.raises(MeshError, match=r"Fixture.sh3f entry #9 'Desk' \(test/missing/desk.obj\): model not in"):
        load_model(models["Test#missing"])


def test_loading_is_deterministic(catalog_root: Path):
    models = by_id(discover(source(catalog_root)))
    first = load_model(models["Test#chair"]).export(file_type="glb")
    again = load_model(by_id(discover(source(catalog_root)))["Test#chair"]).export(file_type="glb")
    assert first == again


# --------------------------------------------------------------------------- catalog stage
def test_catalog_stage_carries_attribution_and_skips_broken_entries(catalog_root: Path, tmp_path: Path, caplog):
    from core.contracts import validate_manifest
    from core.io import MANIFEST, write_manifest
    from stages.catalog import build_catalog

    params = CatalogParams(procedural={"enabled": False}, sources=(source(catalog_root),))
    out = tmp_path / "catalog"
    with caplog.at_level(logging.WARNING):
        manifest, skipped = build_catalog(params, seed=0, out=out)
    rows = manifest.set_index("model_id")
    assert sorted(rows.index) == [f"sweethome3d-Fixture-{name}" for name in ("chair", "sofa", "table")]
    assert rows.loc["sweethome3d-Fixture-chair", "license"] == "CC-BY-3.0 (creator: Ann Åberg)"
    assert rows.loc["sweethome3d-Fixture-chair", "original_path"].endswith("Fixture.sh3f/test/chair/chair.obj")
    assert bool(rows.loc["sweethome3d-Fixture-chair", "has_texture"])
    # the broken and the missing model: one skipped row and one log line each, naming the entry
    assert len(skipped) == 2 and set(skipped["source"]) == {"sweethome3d"}
    reasons = " | ".join(skipped["reason"])
    assert "entry #8 'Bed'" in reasons and "entry #9 'Desk'" in reasons, reasons
    assert "entry #8 'Bed'" in caplog.text and "entry #9 'Desk'" in caplog.text
    # the catalog's data contract holds for the new rows
    write_manifest(manifest, out / MANIFEST)
    result = validate_manifest("catalog", out, categories=sorted(set(manifest["category"])), image_sample=0)
    assert result.success, result.failures


def test_missing_root_is_a_skipped_line_in_the_catalog_stage(tmp_path: Path, caplog):
    from stages.catalog import build_catalog

    params = CatalogParams(procedural={"enabled": True, "categories": ["chair"], "models_per_category": 2,
                                       "heldout_per_category": 1},
                           sources=(source(tmp_path / "no_such_dir"),))
    with caplog.at_level(logging.INFO, logger="cad2real.catalog"):
        manifest, _ = build_catalog(params, seed=0, out=tmp_path / "catalog")
    assert set(manifest["source"]) == {"procedural"}
    assert any(r.getMessage().startswith("skipped: sweethome3d not found at") for r in caplog.records), caplog.text


# --------------------------------------------------------------------------- real catalogs
# Counts by English name in sweethome3d-furniture 1.8 (stools, ottomans, benches, loungers,
# bedside tables excluded): bed 16, bookcase 9, chair 54, desk 8, sofa 22, diningtable 34.
REAL_COUNTS = {"bed": (12, 20), "bookcase": (7, 12), "chair": (45, 65), "desk": (6, 10), "sofa": (18, 28),
               "diningtable": (28, 42)}


def test_real_sweethome3d_furniture_counts_and_samples_load():
    if not REAL_ROOT.is_dir():
        pytest.skip(f"{REAL_ROOT} not found: install the Debian package sweethome3d-furniture "
                    "(scripts/setup_system.sh does)")
    models = discover(source(REAL_ROOT))
    counts = collections.Counter(m.category for m in models)
    assert set(counts) == set(REAL_COUNTS), counts
    for category, (lo, hi) in REAL_COUNTS.items():
        assert lo <= counts[category] <= hi, (category, counts[category])
    names = {m.furniture.name.lower() for m in models}
    assert not any(word in name for name in names for word in ("stool", "ottoman", "bedside", "bench")), names
    assert all(m.license.startswith(("CC0 (creator: ", "CC-BY-3.0 (creator: ", "CC-BY-3.0-US (creator: "))
               for m in models), sorted({m.license for m in models})
    rng = np.random.default_rng(0)
    for category in sorted(REAL_COUNTS):
        group = [m for m in models if m.category == category]
        for i in sorted(rng.choice(len(group), size=3, replace=False)):
            scene = load_model(group[i])
            assert meshes.scene_faces(scene) > 0, group[i].where
            assert np.linalg.norm(scene.extents) == pytest.approx(1.0, abs=1e-6), group[i].where
