"""Importers of real CAD libraries: list a source's models, load one into the canonical frame.

Canonical frame (see :mod:`core.meshes`): up +z, the object's front faces -y, bounding box
centred at the origin with diagonal 1. Each source has a documented native axis
convention (``DEFAULT_AXES``, evidence in ``docs/axis_conventions.md``); ``AXES`` holds the
rotation that takes a named convention into the canonical frame.

Layouts (the datasets' own):
- ``pascal3d`` / ``objectnet3d``: ``<root>/CAD/<class>/NN.off``
- ``shapenet_v1``: ``<root>/<synset>/<id>/model.obj`` (+ ``model.mtl``, textures)
- ``shapenet_v2``: ``<root>/<synset>/<id>/models/model_normalized.obj`` (+ mtl, textures)
- ``modelnet``: ``<root>/<class>/{train,test}/<class>_NNNN.off``
- ``folder``: any ``*.obj|*.glb|*.gltf|*.ply|*.stl|*.off`` below ``<root>``
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from core.meshes import MeshError, bake, check_mesh, drop_non_meshes, normalize_transform, transform_parts
from core.params import ALL_CLASSES, CatalogSource

log = logging.getLogger(__name__)

MESH_SUFFIXES: tuple[str, ...] = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off")
GREY_RGBA: tuple[int, int, int, int] = (128, 128, 128, 255)

# ShapeNetCore synset -> cad2real class (``class_map`` may override by synset or by name).
SHAPENET_SYNSETS: dict[str, str] = {
    "02691156": "aeroplane",  # airplane
    "02834778": "bicycle",
    "02858304": "boat",
    "04530566": "boat",  # vessel
    "02876657": "bottle",
    "02924116": "bus",
    "02958343": "car",
    "03001627": "chair",
    "04379243": "diningtable",  # table
    "03790512": "motorbike",  # motorcycle
    "04256520": "sofa",
    "04468005": "train",
    "03211117": "tvmonitor",  # display
    "02818832": "bed",
    "02871439": "bookcase",  # bookshelf
}

# Source class names that differ from ours; the source's ``class_map`` is applied on top.
DEFAULT_CLASS_MAPS: dict[str, dict[str, str]] = {
    "pascal3d": {},
    "objectnet3d": {"bookshelf": "bookcase"},
    "modelnet": {
        "airplane": "aeroplane",
        "bookshelf": "bookcase",
        "table": "diningtable",
        "monitor": "tvmonitor",
    },
    "shapenet_v1": {},
    "shapenet_v2": {},
    "folder": {},
}


# --------------------------------------------------------------------------- axes
_UNIT = {
    "pos_x": (1.0, 0.0, 0.0), "neg_x": (-1.0, 0.0, 0.0),
    "pos_y": (0.0, 1.0, 0.0), "neg_y": (0.0, -1.0, 0.0),
    "pos_z": (0.0, 0.0, 1.0), "neg_z": (0.0, 0.0, -1.0),
}


def axes_rotation(up: str, front: str) -> np.ndarray:
    """4x4 rotation taking a source whose up is ``up`` and whose front faces ``front``
    (names like ``"pos_y"``, ``"neg_z"``) into the canonical frame (up +z, front -y)."""
    u, f = np.array(_UNIT[up]), np.array(_UNIT[front])
    if abs(float(u @ f)) > 0.5:
        raise ValueError(f"up ({up}) and front ({front}) must be different axes")
    # R maps the orthonormal source basis (front, up, front x up) onto the canonical one
    # (-y, +z, (-y) x z); both bases are right-handed, so det(R) = +1.
    src = np.stack([f, u, np.cross(f, u)], axis=1)
    f_c, u_c = np.array([0.0, -1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    dst = np.stack([f_c, u_c, np.cross(f_c, u_c)], axis=1)
    rot = np.eye(4)
    rot[:3, :3] = dst @ src.T
    return rot


def _axes_table() -> dict[str, np.ndarray]:
    table: dict[str, np.ndarray] = {}
    for up in ("x", "y", "z"):
        for front in ("pos_x", "neg_x", "pos_y", "neg_y", "pos_z", "neg_z"):
            if front.endswith(up):
                continue
            table[f"{up}_up_front_{front}"] = axes_rotation(f"pos_{up}", front)
    return table


# Named convention "<up>_up_front_<pos|neg>_<axis>" -> 4x4 rotation into canonical.
AXES: dict[str, np.ndarray] = _axes_table()

# Each source's native convention (verified on real files, see docs/axis_conventions.md).
DEFAULT_AXES: dict[str, str] = {
    "pascal3d": "z_up_front_neg_y",
    "objectnet3d": "z_up_front_neg_y",
    "shapenet_v1": "y_up_front_pos_x",
    "shapenet_v2": "y_up_front_pos_x",
    "modelnet": "z_up_front_neg_y",  # up is reliable, front is not (docs)
    "folder": "z_up_front_neg_y",
}


def resolve_axes(kind: str, axes: str | None = None) -> np.ndarray:
    """The 4x4 rotation for ``axes`` (or the source kind's default convention)."""
    name = axes if axes is not None else DEFAULT_AXES[kind]
    if name not in AXES:
        raise ValueError(f"unknown axes convention {name!r}; known: {sorted(AXES)}")
    return AXES[name]


# --------------------------------------------------------------------------- discover
@dataclass(frozen=True)
class SourceModel:
    """One model of a source library.

    ``category`` is after class_map; ``key`` is unique within the source, stable across
    runs and filesystem-safe (``car-01``, ``<synset>-<id>``); ``path`` is the main file.
    """

    category: str
    kind: str
    path: Path
    key: str
    license: str


class SourceNotFound(FileNotFoundError):
    """The root of a source does not exist (message: ``<kind> not found at <root>``)."""


_LAYOUTS = {
    "pascal3d": "<root>/CAD/<class>/NN.off",
    "objectnet3d": "<root>/CAD/<class>/NN.off",
    "shapenet_v1": "<root>/<synset>/<id>/model.obj",
    "shapenet_v2": "<root>/<synset>/<id>/models/model_normalized.obj",
    "modelnet": "<root>/<class>/{train,test}/<class>_NNNN.off",
    "folder": "<root>/**/*{" + ",".join(MESH_SUFFIXES) + "} with class_map",
}


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _scan_cad(root: Path) -> list[tuple[str, Path, str]]:
    cad = root / "CAD"
    if not cad.is_dir():
        return []
    return [
        (cls.name, off, f"{_safe(cls.name)}-{_safe(off.stem)}")
        for cls in _subdirs(cad)
        for off in sorted(cls.glob("*.off"))
    ]


def _scan_shapenet(root: Path, rel: str) -> list[tuple[str, Path, str]]:
    found = []
    for synset in _subdirs(root):
        for model_dir in _subdirs(synset):
            path = model_dir / rel
            if path.is_file():
                found.append((synset.name, path, f"{_safe(synset.name)}-{_safe(model_dir.name)}"))
            else:
                log.warning("skipped %s: no %s", model_dir, rel)
    return found


def _scan_modelnet(root: Path) -> list[tuple[str, Path, str]]:
    found = []
    for cls in _subdirs(root):
        for split in ("train", "test"):
            for off in sorted((cls / split).glob("*.off")):
                found.append((cls.name, off, f"{_safe(cls.name)}-{split}-{_safe(off.stem)}"))
    return found


def _scan_folder(root: Path, class_map: dict[str, str], allowed: set[str]) -> list[tuple[str, Path, str]]:
    """Folder sources: ``class_map`` is already the category (first match wins, in the
    map's order), matched on the relative path (fnmatch) or the first folder name; a first
    folder that is itself an allowed category maps to itself."""
    files = sorted(
        (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in MESH_SUFFIXES),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    found = []
    keys: set[str] = set()
    for path in files:
        rel = path.relative_to(root).as_posix()
        first = rel.split("/")[0] if "/" in rel else ""
        category = next(
            (cat for pattern, cat in class_map.items() if fnmatch.fnmatchcase(rel, pattern) or pattern == first),
            first if first in allowed else None,
        )
        if category is None:
            log.info("skipped %s: matches no class_map entry (%s)", path, list(class_map) or "class_map is empty")
            continue
        key = _safe(rel.replace("/", "-"))
        if key in keys:  # "a/b.obj" and "a-b.obj" sanitise alike
            key = f"{key}-{hashlib.sha1(rel.encode()).hexdigest()[:8]}"
        keys.add(key)
        found.append((category, path, key))
    return found


def discover(src: CatalogSource) -> list[SourceModel]:
    """List the models of ``src`` sorted by (category, key), applying class_map,
    categories and max_models_per_category (the first N keys of each category).

    Without ``src.categories`` only cad2real classes (``params.ALL_CLASSES``) are kept;
    other source classes are skipped with a logged reason (map them with ``class_map``).
    Raises :class:`SourceNotFound` for a missing root and ``ValueError`` naming the root and
    the expected layout when the root holds no model of that layout.
    """
    root = Path(src.root)
    if not root.is_dir():
        raise SourceNotFound(f"{src.kind} not found at {root}")
    allowed = set(src.categories) if src.categories is not None else set(ALL_CLASSES)
    if src.kind in ("pascal3d", "objectnet3d"):
        raw = _scan_cad(root)
    elif src.kind == "shapenet_v1":
        raw = _scan_shapenet(root, "model.obj")
    elif src.kind == "shapenet_v2":
        raw = _scan_shapenet(root, "models/model_normalized.obj")
    elif src.kind == "modelnet":
        raw = _scan_modelnet(root)
    elif src.kind == "folder":
        raw = _scan_folder(root, src.class_map, allowed)
    else:
        raise ValueError(f"unknown source kind {src.kind!r}; known: {sorted(_LAYOUTS)}")
    if not raw:
        raise ValueError(f"{src.kind}: no models found at {root}; expected layout {_LAYOUTS[src.kind]}")

    class_map = {**DEFAULT_CLASS_MAPS[src.kind], **src.class_map}
    models: dict[str, list[SourceModel]] = defaultdict(list)
    skipped: dict[str, int] = defaultdict(int)
    for source_class, path, key in raw:
        if src.kind == "folder":
            category = source_class
        elif src.kind.startswith("shapenet"):
            default = SHAPENET_SYNSETS.get(source_class, source_class)
            category = class_map.get(source_class, class_map.get(default, default))
        else:
            category = class_map.get(source_class, source_class)
        if category not in allowed:
            skipped[f"{source_class} -> {category}"] += 1
            continue
        models[category].append(SourceModel(category, src.kind, path, key, src.license))
    for what, n in sorted(skipped.items()):
        log.info("%s at %s: skipped %d models of class %s (not in categories)", src.kind, root, n, what)

    out: list[SourceModel] = []
    for category in sorted(models):
        group = sorted(models[category], key=lambda m: m.key)
        if src.max_models_per_category is not None:
            group = group[: src.max_models_per_category]
        out.extend(group)
    return out


# --------------------------------------------------------------------------- readers
def read_off(path: Path) -> trimesh.Trimesh:
    """Read an OFF file (also ``COFF``/``NOFF`` and ModelNet's glued ``OFF490 518 0``
    header); polygons are fan-triangulated, per-vertex/face colours ignored."""
    text = path.read_bytes().decode("utf-8", errors="strict")
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise MeshError(f"{path}: unreadable OFF (file is empty)")
    head = re.match(r"^([A-Z]*OFF)(.*)$", lines[0])
    if head is None:
        raise MeshError(f"{path}: unreadable OFF (header {lines[0][:40]!r} is not OFF)")
    rest = [head.group(2).strip()] + lines[1:] if head.group(2).strip() else lines[1:]
    try:
        n_vertices, n_faces = (int(t) for t in rest[0].split()[:2])
    except (ValueError, IndexError) as exc:
        raise MeshError(f"{path}: unreadable OFF (bad counts line {rest[:1]!r})") from exc
    vertex_lines = rest[1 : 1 + n_vertices]
    face_lines = rest[1 + n_vertices : 1 + n_vertices + n_faces]
    if len(vertex_lines) < n_vertices or len(face_lines) < n_faces:
        raise MeshError(
            f"{path}: unreadable OFF (truncated: header says {n_vertices} vertices, {n_faces} faces; "
            f"file has {len(vertex_lines)} vertex and {len(face_lines)} face lines)"
        )
    try:
        vertices = np.array([ln.split()[:3] for ln in vertex_lines], dtype=np.float64).reshape(-1, 3)
        triangles: list[list[int]] = []
        for ln in face_lines:
            tokens = ln.split()
            n = int(tokens[0])
            poly = [int(t) for t in tokens[1 : 1 + n]]
            if len(poly) != n:
                raise ValueError(f"face line {ln!r} lists fewer than {n} indices")
            triangles.extend([poly[0], poly[i], poly[i + 1]] for i in range(1, n - 1))
    except ValueError as exc:
        raise MeshError(f"{path}: unreadable OFF ({exc})") from exc
    faces = np.array(triangles, dtype=np.int64).reshape(-1, 3)
    if len(faces) and (faces.min() < 0 or faces.max() >= n_vertices):
        raise MeshError(f"{path}: unreadable OFF (face index outside 0..{n_vertices - 1})")
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False)


def _mtl_textures(obj_path: Path) -> dict[str, str]:
    """``{material name: map_Kd file}`` of the MTL libraries an OBJ references; logs a
    WARNING for a missing MTL file."""
    textures: dict[str, str] = {}
    with obj_path.open("rb") as fh:
        libs = [ln.split(None, 1)[1].strip() for ln in fh.read().decode("utf-8", "replace").splitlines()
                if ln.startswith("mtllib ") and len(ln.split(None, 1)) == 2]
    for lib in libs:
        mtl = obj_path.parent / lib
        if not mtl.is_file():
            log.warning("%s: material library %s not found; parts fall back to grey", obj_path, mtl)
            continue
        name = None
        for ln in mtl.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = ln.strip().split(None, 1)
            if len(parts) == 2 and parts[0] == "newmtl":
                name = parts[1].strip()
            elif len(parts) == 2 and parts[0].lower() == "map_kd" and name is not None:
                textures[name] = parts[1].strip()
    return textures


def _grey(mesh: trimesh.Trimesh) -> None:
    uv = getattr(mesh.visual, "uv", None)
    material = trimesh.visual.material.SimpleMaterial(diffuse=GREY_RGBA, name="grey")
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)


def _load_obj(path: Path) -> trimesh.Scene:
    """OBJ with its MTL materials and textures: one part per material; a texture that is
    missing or unreadable turns that part grey with a WARNING naming the file."""
    textures = _mtl_textures(path)
    # ShapeNet v2 MTLs reference ``../images/texture0.jpg``: trimesh >= 5 refuses paths
    # outside the OBJ's folder unless allowed.
    resolver = trimesh.resolvers.FilePathResolver(str(path), allow_anywhere=True)
    scene = trimesh.load(str(path), file_type="obj", force="scene", process=False, resolver=resolver)
    for geom in scene.geometry.values():
        material = getattr(geom.visual, "material", None)
        name = getattr(material, "name", None)
        if name in textures and getattr(material, "image", None) is None:
            log.warning("%s: texture %s of material %r is missing or unreadable; using grey",
                        path, os.path.normpath(path.parent / textures[name]), name)
            _grey(geom)
    return scene


def _read_raw(path: Path) -> trimesh.Scene:
    """The file's parts in its own frame and units, transforms baked, parts sorted by name."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise MeshError(f"{path}: file not found")
    try:
        if suffix == ".off":
            scene = trimesh.Scene()
            scene.add_geometry(read_off(path), geom_name="body", node_name="body")
        elif suffix == ".obj":
            scene = _load_obj(path)
        elif suffix in MESH_SUFFIXES:
            scene = trimesh.load(str(path), file_type=suffix[1:], force="scene", process=False)
        else:
            raise MeshError(f"{path}: unsupported format {suffix!r}; expected one of {MESH_SUFFIXES}")
    except MeshError:
        raise
    except Exception as exc:  # trimesh and PIL raise many types for a corrupt file
        raise MeshError(f"{path}: unreadable {suffix[1:].upper()} ({type(exc).__name__}: {exc})") from exc
    baked = bake(drop_non_meshes(scene))
    # Part order must not depend on dict/set iteration inside the loaders.
    out = trimesh.Scene()
    for name in sorted(baked.geometry):
        out.add_geometry(baked.geometry[name], geom_name=name, node_name=name)
    return out


def _load(model: SourceModel, axes: str | None, min_faces: int, max_faces: int) -> tuple[trimesh.Scene, np.ndarray]:
    rotation = resolve_axes(model.kind, axes)
    scene = _read_raw(model.path)
    check_mesh(scene, str(model.path), min_faces=min_faces, max_faces=max_faces)
    transform_parts(scene, rotation)
    to_unit = normalize_transform(scene)
    transform_parts(scene, to_unit)
    return scene, to_unit @ rotation


def load_model(
    model: SourceModel, axes: str | None = None, *, min_faces: int = 4, max_faces: int = 500_000
) -> trimesh.Scene:
    """Load ``model`` into the canonical frame (up +z, front -y, bbox centred, diagonal 1).

    ``axes`` overrides the source's convention (a key of ``AXES``; ``CatalogSource.axes``).
    Normalisation is that of :func:`core.meshes.normalize`, applied to the vertices.
    Returns a scene of named parts (one per material for OBJ, ``body`` for OFF) with
    identity node transforms, parts in sorted order. Materials and textures are kept.
    Raises :class:`core.meshes.MeshError` naming the file for an unreadable, empty or
    degenerate mesh, and ``ValueError`` for an unknown ``axes``.
    """
    return _load(model, axes, min_faces, max_faces)[0]


def canonical_transform(model: SourceModel, axes: str | None = None) -> np.ndarray:
    """The 4x4 that :func:`load_model` applies to the file's coordinates (axis rotation,
    then centring and scaling); apply it to source-frame annotations such as keypoints."""
    return _load(model, axes, 1, 10**9)[1]
