"""The embedded procedural CAD catalog: canonical frame, determinism, variation, colours,
photo textures surviving GLB, and the front facing -y."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from core.meshes import check_mesh, export_glb, load_glb, scene_faces
from core.procedural import GENERATORS, generate

CLASSES = (
    "aeroplane", "bicycle", "boat", "bottle", "bus", "car", "chair", "diningtable",
    "motorbike", "sofa", "train", "tvmonitor", "bed", "bookcase", "desk",
)
REPO = Path(__file__).resolve().parents[2]


def _parts(model) -> dict[str, trimesh.Trimesh]:
    return dict(model.scene.geometry)


def _with_prefix(model, *prefixes: str) -> list[trimesh.Trimesh]:
    return [g for n, g in model.scene.geometry.items() if n.startswith(prefixes)]


def _centroid(model, *prefixes: str) -> np.ndarray:
    meshes = _with_prefix(model, *prefixes)
    assert meshes, f"{model.category} {model.index}: no part named {prefixes}"
    return np.concatenate([m.vertices for m in meshes]).mean(axis=0)


def _min_z(model, *prefixes: str) -> float:
    return min(float(m.vertices[:, 2].min()) for m in _with_prefix(model, *prefixes))


def _fingerprint(model) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    return [(n, g.vertices, g.faces, g.visual.face_colors) for n, g in sorted(model.scene.geometry.items())]


def test_registry_covers_the_15_classes():
    assert set(GENERATORS) == set(CLASSES)


@pytest.mark.parametrize("category", CLASSES)
def test_every_class_is_canonical_and_valid(category):
    for index in range(3):
        model = generate(category, index, seed=0)
        scene = model.scene
        assert (model.category, model.index) == (category, index)
        lo, hi = scene.bounds
        np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-6)
        assert abs(float(np.linalg.norm(hi - lo)) - 1.0) < 1e-6
        check_mesh(scene, f"{category}/{index}")
        assert 24 <= scene_faces(scene) <= 5000
        # one node per part, named like its geometry, with the pose baked in
        nodes = list(scene.graph.nodes_geometry)
        assert len(nodes) == len(set(nodes)) == len(scene.geometry)
        for node in nodes:
            transform, geom_name = scene.graph[node]
            assert geom_name == node
            np.testing.assert_allclose(transform, np.eye(4), atol=1e-12)
        # style: JSON-clean python scalars
        assert len(model.style) >= 4
        assert all(type(v) in (float, int, bool, str) for v in model.style.values())


@pytest.mark.parametrize(
    ("category", "ground", "above"),
    [
        ("car", ("tyre",), ("roof",)),
        ("bus", ("tyre",), ("body",)),
        ("bicycle", ("tyre",), ("saddle",)),
        ("motorbike", ("tyre",), ("seat",)),
        ("chair", ("leg", "caster", "star"), ("backrest", "cushion_back")),
        ("diningtable", ("leg", "foot", "pedestal"), ("top",)),
        ("desk", ("leg", "panel", "pedestal"), ("top",)),
        ("train", ("wheel",), ("car0_body",)),
        ("bed", ("headboard", "footboard", "leg"), ("pillow",)),
        ("sofa", ("leg", "base", "back", "arm"), ("back_cushion", "back")),
    ],
)
def test_z_is_up(category, ground, above):
    for index in range(5):
        model = generate(category, index)
        z_floor = float(model.scene.bounds[0, 2])
        assert abs(_min_z(model, *ground) - z_floor) < 1e-6, (category, index)
        assert _centroid(model, *above)[2] > _centroid(model, *ground)[2], (category, index)


def test_same_arguments_give_identical_models():
    for category in CLASSES:
        a, b = generate(category, 7, seed=3), generate(category, 7, seed=3)
        assert a.style == b.style
        for (na, va, fa, ca), (nb, vb, fb, cb) in zip(_fingerprint(a), _fingerprint(b), strict=True):
            assert na == nb
            np.testing.assert_array_equal(va, vb)
            np.testing.assert_array_equal(fa, fb)
            np.testing.assert_array_equal(ca, cb)


def _digest_code(category: str) -> str:
    return (
        "import hashlib, numpy as np\n"
        "from core.procedural import generate\n"
        f"m = generate({category!r}, 4, seed=1)\n"
        "h = hashlib.sha256()\n"
        "for n, g in sorted(m.scene.geometry.items()):\n"
        "    h.update(n.encode()); h.update(np.ascontiguousarray(g.vertices).tobytes())\n"
        "    h.update(np.ascontiguousarray(g.faces).tobytes()); h.update(np.ascontiguousarray(g.visual.face_colors).tobytes())\n"
        "print(h.hexdigest())\n"
    )


def test_models_are_identical_across_processes():
    code = _digest_code("car") + _digest_code("bookcase").split("import hashlib, numpy as np\n", 1)[1]
    runs = [subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0].split()) == 2


def test_indices_and_seeds_differ():
    for category in CLASSES:
        a, b = generate(category, 0), generate(category, 1)
        assert a.style != b.style, category
        va = np.concatenate([g.vertices for g in a.scene.geometry.values()])
        vb = np.concatenate([g.vertices for g in b.scene.geometry.values()])
        assert va.shape != vb.shape or not np.allclose(va, vb), category
        assert generate(category, 0, seed=1).style != a.style, category


@pytest.mark.parametrize("category", CLASSES)
def test_style_varies_across_instances(category):
    styles = [generate(category, i).style for i in range(10)]
    keys = set(styles[0])
    assert len(keys) >= 4
    assert all(set(s) == keys for s in styles)
    varying = [k for k in keys if len({s[k] for s in styles}) > 1]
    assert len(varying) >= 4, f"{category}: only {varying} vary"


def test_part_colors_are_plausible_or_grey():
    car = generate("car", 0)
    tyres = _with_prefix(car, "tyre")
    assert all(int(t.visual.face_colors[:, :3].max()) < 60 for t in tyres)  # tyres are dark
    grey = generate("car", 0, part_colors=False)
    for name, g in grey.scene.geometry.items():
        assert g.visual.kind == "face", name
        assert (g.visual.face_colors == np.array([200, 200, 200, 255], dtype=np.uint8)).all(), name
    # the geometry does not depend on the colour flag
    for (_, va, fa, _), (_, vb, fb, _) in zip(_fingerprint(car), _fingerprint(grey), strict=True):
        np.testing.assert_array_equal(va, vb)
        np.testing.assert_array_equal(fa, fb)
    # colours are uint8 RGBA on every part of every class
    for category in CLASSES:
        for g in generate(category, 2).scene.geometry.values():
            assert g.visual.face_colors.dtype == np.uint8 and g.visual.face_colors.shape[1] == 4


def test_photo_textures_survive_glb(tmp_path):
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8), np.full((30, 30, 3), 120, np.uint8)]
    model = generate("sofa", 1, photos=photos)
    textured = [n for n, g in model.scene.geometry.items() if isinstance(g.visual, trimesh.visual.TextureVisuals)]
    assert textured
    for name in textured:
        uv = model.scene.geometry[name].visual.uv
        assert uv.shape == (len(model.scene.geometry[name].vertices), 2)
        assert uv.min() >= -1e-9 and uv.max() <= 1 + 1e-9
    # same photos -> same textures; geometry unchanged by texturing
    again = generate("sofa", 1, photos=photos)
    for name in textured:
        np.testing.assert_array_equal(model.scene.geometry[name].visual.uv, again.scene.geometry[name].visual.uv)
    plain = generate("sofa", 1)
    for name, g in plain.scene.geometry.items():
        np.testing.assert_array_equal(g.vertices, model.scene.geometry[name].vertices)
        np.testing.assert_array_equal(g.faces, model.scene.geometry[name].faces)
    path = tmp_path / "sofa.glb"
    export_glb(model.scene, path)
    loaded = load_glb(path)
    check_mesh(loaded, str(path))
    kept = [g for g in loaded.geometry.values()
            if isinstance(g.visual, trimesh.visual.TextureVisuals) and g.visual.uv is not None and len(g.visual.uv)]
    assert len(kept) == len(textured)
    image = kept[0].visual.material.baseColorTexture
    assert image is not None and min(image.size) >= 1


def test_bad_photo_is_rejected():
    with pytest.raises(ValueError, match="uint8"):
        generate("chair", 0, photos=[np.zeros((8, 8), np.float32)])


def test_front_faces_minus_y():
    for index in range(6):
        car = generate("car", index)
        assert _centroid(car, "headlight")[1] < _centroid(car, "taillight")[1]
        tv = generate("tvmonitor", index)
        assert _centroid(tv, "screen")[1] < _centroid(tv, "housing")[1]
        chair = generate("chair", index)
        assert _centroid(chair, "backrest", "cushion_back")[1] > 0
        bus = generate("bus", index)
        assert _centroid(bus, "windscreen")[1] < _centroid(bus, "taillight")[1]
        plane = generate("aeroplane", index)
        assert _centroid(plane, "nose")[1] < _centroid(plane, "fin")[1]
        for category in ("bicycle", "motorbike"):
            bike = generate(category, index)
            assert _centroid(bike, "tyre_front")[1] < _centroid(bike, "tyre_rear")[1]
        assert _centroid(generate("bed", index), "headboard")[1] > 0
        assert _centroid(generate("sofa", index), "back")[1] > 0
        assert _centroid(generate("train", index), "windscreen")[1] < -0.2


def test_unknown_category_names_it():
    with pytest.raises(ValueError, match="spaceship") as err:
        generate("spaceship", 0)
    assert "chair" in str(err.value)
