"""Meshes in the canonical frame, and the checks that decide whether a mesh is usable.

Canonical frame (the PASCAL3D+ CAD frame): up is +z, the object's front faces -y, so a
camera at azimuth 0, elevation 0 sits on the -y axis and sees the front; the bounding
box is centred at the origin and its diagonal is 1 (unit scale).

A model is a ``trimesh.Scene`` of named parts (geometry name = part name); colours live
in each part's visuals (face colours or a texture). Catalog files are GLB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh


class MeshError(ValueError):
    """An unreadable, empty or degenerate mesh; the message names the file and the problem."""


def as_scene(obj: trimesh.Trimesh | trimesh.Scene) -> trimesh.Scene:
    if isinstance(obj, trimesh.Scene):
        return obj
    return trimesh.Scene(obj)


def scene_faces(scene: trimesh.Scene) -> int:
    return int(sum(len(g.faces) for g in scene.geometry.values() if hasattr(g, "faces")))


def drop_non_meshes(scene: trimesh.Scene) -> trimesh.Scene:
    """Keep only triangle meshes (drops point clouds and paths some files carry)."""
    for name in [n for n, g in scene.geometry.items() if not isinstance(g, trimesh.Trimesh)]:
        scene.delete_geometry(name)
    return scene


def check_mesh(scene: trimesh.Scene, source: str, *, min_faces: int = 4, max_faces: int = 500_000) -> None:
    """Raise :class:`MeshError` naming ``source`` when the model cannot be rendered usefully."""
    n_faces = scene_faces(scene)
    if n_faces == 0:
        raise MeshError(f"{source}: empty mesh (no triangles)")
    if n_faces < min_faces:
        raise MeshError(f"{source}: degenerate mesh ({n_faces} faces < min_faces={min_faces})")
    if n_faces > max_faces:
        raise MeshError(f"{source}: {n_faces} faces > max_faces={max_faces}; decimate it or raise catalog.max_faces")
    for name, g in scene.geometry.items():
        if not np.isfinite(g.vertices).all():
            raise MeshError(f"{source}: part {name!r} has non-finite vertex coordinates")
    area = sum(float(g.area) for g in scene.geometry.values())
    if not area > 1e-12:
        raise MeshError(f"{source}: degenerate mesh (all triangles have zero area)")
    extents = scene.extents
    if extents is None or not np.isfinite(extents).all() or float(np.linalg.norm(extents)) < 1e-9:
        raise MeshError(f"{source}: degenerate mesh (zero-size bounding box)")


def normalize_transform(scene: trimesh.Scene) -> np.ndarray:
    """The 4x4 that centres the bounding box of a baked scene and scales its diagonal to 1."""
    lo = np.min([g.vertices.min(axis=0) for g in scene.geometry.values()], axis=0)
    hi = np.max([g.vertices.max(axis=0) for g in scene.geometry.values()], axis=0)
    diag = float(np.linalg.norm(hi - lo))
    transform = np.eye(4)
    transform[:3, :3] /= diag
    transform[:3, 3] = -(lo + hi) / 2.0 / diag
    return transform


def transform_parts(scene: trimesh.Scene, transform: np.ndarray) -> trimesh.Scene:
    """Apply ``transform`` to the vertices of every part of a baked scene (in place).

    Not via ``Scene.apply_transform``: trimesh 5.2's scene graph caches transforms under a
    rounded hash, so a near-identity update (an already-normalised PASCAL3D+ model scaled
    by 1 - 4e-6) is silently lost.
    """
    for geom in scene.geometry.values():
        geom.apply_transform(transform)
    return scene


def normalize(scene: trimesh.Scene) -> trimesh.Scene:
    """A baked copy with the bounding box centred at the origin and its diagonal scaled to 1."""
    baked = bake(scene)
    return transform_parts(baked, normalize_transform(baked))


def bake(scene: trimesh.Scene) -> trimesh.Scene:
    """Apply the scene graph's transforms to the vertices: one node per part, identity poses."""
    out = trimesh.Scene()
    for node in scene.graph.nodes_geometry:
        transform, geom_name = scene.graph[node]
        mesh = scene.geometry[geom_name].copy()
        mesh.apply_transform(transform)
        out.add_geometry(mesh, geom_name=node, node_name=node)
    return out


def export_glb(scene: trimesh.Scene, path: str | Path) -> None:
    Path(path).write_bytes(scene.export(file_type="glb"))


def load_glb(path: str | Path) -> trimesh.Scene:
    """Load a catalog GLB with its transforms baked into the vertices."""
    try:
        loaded = trimesh.load(str(path), file_type="glb", force="scene", process=False)
    except Exception as exc:  # trimesh raises many types for a corrupt file
        raise MeshError(f"{path}: unreadable GLB ({type(exc).__name__}: {exc})") from exc
    return bake(loaded)
