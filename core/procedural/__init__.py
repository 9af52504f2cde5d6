"""The embedded procedural CAD catalog (SPEC §3): parametric generators for 15 classes.

Each class is a shape grammar in the sense of seed 002: a union of transformed trimesh
primitives whose dimensions, part presence and counts are sampled from a per-model rng.
Model ``index`` of ``category`` under ``seed`` is always the same mesh, in any process.

    model = generate("chair", 3, seed=0)
    model.scene   # trimesh.Scene: named parts, canonical frame, unit diagonal, baked poses
    model.style   # {"seat_width": 0.47, "base": "legs", ...} the sampled parameters

Canonical frame (core.meshes): up +z, front faces -y, bounding box centred at the origin
with diagonal 1. Style values are in nominal metres of the real object *before*
normalisation (or fractions/ratios/counts as each builder's docstring says).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import trimesh
from PIL import Image

from core.io import rng_for
from core.meshes import bake, normalize
from core.procedural.furniture import build_bed, build_bookcase, build_chair, build_desk, build_diningtable, build_sofa
from core.procedural.objects import build_bottle, build_tvmonitor
from core.procedural.palette import assign_colors
from core.procedural.parts import Grammar, Part, Style, grammar_context
from core.procedural.vehicles import (
    build_aeroplane,
    build_bicycle,
    build_boat,
    build_bus,
    build_car,
    build_motorbike,
    build_train,
)

Builder = Callable[[np.random.Generator], tuple[list[Part], Style]]

GENERATORS: dict[str, Builder] = {
    "aeroplane": build_aeroplane,
    "bicycle": build_bicycle,
    "boat": build_boat,
    "bottle": build_bottle,
    "bus": build_bus,
    "car": build_car,
    "chair": build_chair,
    "diningtable": build_diningtable,
    "motorbike": build_motorbike,
    "sofa": build_sofa,
    "train": build_train,
    "tvmonitor": build_tvmonitor,
    "bed": build_bed,
    "bookcase": build_bookcase,
    "desk": build_desk,
}

# Largest side of a photo crop used as a texture (keeps GLBs small; crops are resized down).
MAX_TEXTURE_PX = 256


@dataclass(frozen=True)
class ProceduralModel:
    """One generated model.

    scene: named parts (geometry name = node name = part name, unique), canonical frame,
        unit bounding-box diagonal, identity node poses (transforms baked into vertices);
        colours as RGBA uint8 face colours, or a ``TextureVisuals`` photo texture.
    style: the sampled style parameters, JSON-serialisable python scalars.
    """

    category: str
    index: int
    scene: trimesh.Scene
    style: Style


def generate(category: str, index: int, seed: int = 0, *, part_colors: bool = True,
             photos: Sequence[np.ndarray] = (), grammar: Grammar | None = None) -> ProceduralModel:
    """Model ``index`` of ``category``, deterministic in ``(seed, category, index)``.

    The rng is ``core.io.rng_for(seed, "procedural", category, index)``; it draws the
    geometry, then the colours, then (with ``photos``) the textures, so the geometry does
    not depend on ``part_colors`` or ``photos``.

    part_colors: True gives each part a plausible colour from the class palette with seeded
        variation; False makes every part uniform light grey (200, 200, 200, 255).
    photos: (H, W, 3) uint8 RGB images; when given, about half the parts (always the
        largest) get a texture cut from a random crop of a random photo, with UVs from a
        planar projection on the part's two largest bounding-box axes.
    grammar: the class's shape-grammar parameters β (``core.procedural.parts.Grammar``);
        its log-normal factors come from a separate ``rng_for(seed, "grammar", category,
        index)``, so the model rng's draws stay aligned across grammar values. None (and
        ``Grammar()``) give the default catalog's mesh.

    Raises ValueError for an unknown category (naming it and the known ones) or a photo
    that is not (H, W, 3) uint8.
    """
    if category not in GENERATORS:
        raise ValueError(f"Unknown procedural category {category!r}: expected one of {', '.join(GENERATORS)}")
    rng = rng_for(seed, "procedural", category, int(index))
    if grammar is None:
        parts, style = GENERATORS[category](rng)
    else:
        with grammar_context(grammar, rng_for(seed, "grammar", category, int(index))):
            parts, style = GENERATORS[category](rng)
    names = [name for name, _ in parts]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"procedural {category}: duplicate part names {dupes}")
    scene = trimesh.Scene()
    for name, mesh in parts:
        scene.add_geometry(mesh, geom_name=name, node_name=name)
    scene = bake(normalize(scene))
    geometry = {name: scene.geometry[name] for name in names}
    assign_colors(category, geometry, rng, enabled=part_colors)
    if len(photos) > 0:
        _apply_textures(geometry, photos, rng)
    return ProceduralModel(category=category, index=int(index), scene=scene, style=dict(style))


def _photo_crop(photos: Sequence[np.ndarray], rng: np.random.Generator) -> Image.Image:
    k = int(rng.integers(len(photos)))
    photo = np.asarray(photos[k])
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise ValueError(f"photos[{k}]: expected an (H, W, 3) uint8 RGB array, got {photo.shape} {photo.dtype}")
    h, w = photo.shape[:2]
    ch = int(rng.integers(max(1, h // 4), h + 1))
    cw = int(rng.integers(max(1, w // 4), w + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    image = Image.fromarray(np.ascontiguousarray(photo[y0 : y0 + ch, x0 : x0 + cw]))
    scale = MAX_TEXTURE_PX / max(ch, cw)
    if scale < 1.0:
        image = image.resize((max(1, round(cw * scale)), max(1, round(ch * scale))), Image.BILINEAR)
    return image


def _apply_textures(parts: dict[str, trimesh.Trimesh], photos: Sequence[np.ndarray],
                    rng: np.random.Generator) -> None:
    names = sorted(parts)
    chosen = [n for n in names if rng.random() < 0.5]
    largest = max(names, key=lambda n: float(parts[n].area))
    if largest not in chosen:
        chosen.append(largest)
    for name in chosen:
        mesh = parts[name]
        image = _photo_crop(photos, rng)
        extents = mesh.extents
        axes = np.argsort(-extents, kind="stable")[:2]
        lo = mesh.bounds[0]
        uv = (mesh.vertices[:, axes] - lo[axes]) / np.maximum(extents[axes], 1e-9)
        material = trimesh.visual.material.PBRMaterial(baseColorTexture=image, baseColorFactor=[255, 255, 255, 255],
                                                       metallicFactor=0.0, roughnessFactor=0.9)
        mesh.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)


def apply_photo_textures(scene: trimesh.Scene, photos: Sequence[np.ndarray],
                         rng: np.random.Generator) -> trimesh.Scene:
    """A copy of any canonical model with photo textures on about half its parts (always the
    largest), as ``generate(..., photos=...)`` does; used for a style no training render has."""
    textured = scene.copy()
    _apply_textures(dict(textured.geometry), photos, rng)
    return textured


__all__ = ["GENERATORS", "Grammar", "ProceduralModel", "apply_photo_textures", "generate"]
