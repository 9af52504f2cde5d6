"""Headless rendering with pyrender: one OpenGL context per process, reused.

Choose the platform once, at the entry point of the process and before pyrender is
imported (:func:`select_platform`); create one :class:`Renderer` per worker process and
``close()`` it in ``finally``. Two renderers in one process fail under EGL.
"""

from __future__ import annotations

import ctypes.util
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import trimesh

from core.geometry import View, gl_camera_pose, intrinsics, world_to_camera
from core.params import ALL_CLASSES, LightParams

if TYPE_CHECKING:  # pragma: no cover
    import pyrender

log = logging.getLogger(__name__)

Style = Literal["grey", "part_colors", "textured"]

# Flat semantic colour per category (seed 000 Fig. 6b), RGB uint8; shaded by depth.
SEMANTIC_COLORS: dict[str, tuple[int, int, int]] = dict(zip(ALL_CLASSES, [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0),
]))
FALLBACK_SEMANTIC = (128, 128, 128)
GREY = (0.75, 0.75, 0.75, 1.0)
ZNEAR, ZFAR = 0.02, 50.0


def select_platform(requested: str = "auto") -> str:
    """Set ``PYOPENGL_PLATFORM`` for this process and return it ("egl" or "osmesa").

    ``auto`` prefers EGL (Mesa llvmpipe or a GPU) and falls back to OSMesa. Must run
    before pyrender/OpenGL is imported in this process.
    """
    if requested == "auto":
        requested = os.environ.get("PYOPENGL_PLATFORM") or (
            "egl" if ctypes.util.find_library("EGL") else "osmesa"
        )
    if requested not in ("egl", "osmesa"):
        raise ValueError(f"render.platform {requested!r}: 'auto', 'egl' or 'osmesa' expected")
    os.environ["PYOPENGL_PLATFORM"] = requested
    return requested


def _import_pyrender() -> Any:
    if "PYOPENGL_PLATFORM" not in os.environ:
        select_platform("auto")
    if not hasattr(np, "infty"):
        np.infty = np.inf  # numpy 2 removed np.infty; pyrender 0.1.45 still uses it
    import pyrender

    return pyrender


def shadow_flags() -> int:
    """pyrender flags for directional-light shadows (about 4x slower than plain shading)."""
    return _import_pyrender().RenderFlags.SHADOWS_DIRECTIONAL


@dataclass(frozen=True)
class LightSample:
    """Phong-style light (seed 003 §3.1) as used for one sample."""

    ambient: float
    diffuse: float  # total directional intensity
    specular: float  # 1 - material roughness
    color: tuple[float, float, float]
    azimuth: float  # degrees, relative to the camera azimuth
    elevation: float

    def as_row(self) -> dict[str, float]:
        return {
            "light_ambient": self.ambient, "light_diffuse": self.diffuse, "light_specular": self.specular,
            "light_r": self.color[0], "light_g": self.color[1], "light_b": self.color[2],
            "light_azimuth": self.azimuth, "light_elevation": self.elevation,
        }


def sample_light(p: LightParams, rng: np.random.Generator, *, color_jitter: float | None = None) -> LightSample:
    jitter = p.color_jitter if color_jitter is None else color_jitter
    color = np.clip(1.0 + rng.uniform(-jitter, jitter, 3), 0.0, None)
    color = color / color.max()
    return LightSample(
        ambient=float(rng.uniform(p.ambient.lo, p.ambient.hi)),
        diffuse=float(rng.uniform(p.diffuse.lo, p.diffuse.hi)),
        specular=float(rng.uniform(p.specular.lo, p.specular.hi)),
        color=(float(color[0]), float(color[1]), float(color[2])),
        azimuth=float(rng.uniform(-90.0, 90.0)),
        elevation=float(rng.uniform(p.elevation_deg.lo, p.elevation_deg.hi)),
    )


@dataclass(frozen=True)
class RenderResult:
    """One rendered sample.

    rgb: (H, W, 3) uint8; mask: (H, W) uint8, 255 = object; depth: (H, W) float32, metres
    (canonical units: the model's bbox diagonal is 1) along the optical axis, 0 =
    background; semantic: (H, W, 3) uint8, flat category colour shaded by depth (near =
    bright), 0 = background; bbox: tight (x0, y0, x1, y1) of the mask, x1/y1 exclusive,
    (0, 0, 0, 0) if empty; visible_fraction: object pixels inside the image / object
    pixels of the full projection (1 = not truncated); k, r, t: OpenCV camera.
    """

    rgb: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    semantic: np.ndarray
    bbox: tuple[int, int, int, int]
    visible_fraction: float
    k: np.ndarray
    r: np.ndarray
    t: np.ndarray


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight (x0, y0, x1, y1) of the non-zero pixels, x1/y1 exclusive; zeros when empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return (0, 0, 0, 0)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def semantic_target(category: str, depth: np.ndarray) -> np.ndarray:
    """Flat category colour shaded by depth (seed 000 Fig. 6b): near pixels at full colour,
    the farthest object pixel at 40%; background 0. (H, W) float32 -> (H, W, 3) uint8."""
    color = np.asarray(SEMANTIC_COLORS.get(category, FALLBACK_SEMANTIC), np.float32)
    out = np.zeros(depth.shape + (3,), np.uint8)
    obj = depth > 0
    if not obj.any():
        return out
    d = depth[obj]
    lo, hi = float(d.min()), float(d.max())
    shade = 1.0 - 0.6 * (d - lo) / max(hi - lo, 1e-6)
    out[obj] = np.clip(np.round(shade[:, None] * color[None, :]), 0, 255).astype(np.uint8)
    return out


def _has_texture(mesh: trimesh.Trimesh) -> bool:
    """UVs and an image: a SimpleMaterial's ``image`` or a PBRMaterial's ``baseColorTexture``."""
    visual = mesh.visual
    if not isinstance(visual, trimesh.visual.TextureVisuals) or visual.uv is None:
        return False
    material = visual.material
    return getattr(material, "image", None) is not None or getattr(material, "baseColorTexture", None) is not None


def _plain_part(part: trimesh.Trimesh, grey: bool) -> trimesh.Trimesh:
    """The part with colours as vertex/face colours only (a texture becomes its material's
    main colour), or bare geometry for the grey style."""
    if grey:
        return trimesh.Trimesh(part.vertices, part.faces, process=False)
    if isinstance(part.visual, trimesh.visual.TextureVisuals):
        color = np.asarray(part.visual.to_color().main_color, np.uint8)
        return trimesh.Trimesh(part.vertices, part.faces, face_colors=np.tile(color, (len(part.faces), 1)),
                               process=False)
    return part


def to_pyrender_mesh(scene: trimesh.Scene, style: Style) -> Any:
    """One pyrender mesh for a canonical model in the given style.

    grey: every part uniform grey; part_colors: the parts' own colours (a texture becomes
    its material's colour); textured: textures where present, colours elsewhere.
    Untextured parts are merged into one primitive: pyrender's per-primitive overhead, not
    rasterisation, dominates the cost of small CAD meshes (one draw call instead of ~30
    roughly doubles renders/s for the procedural models). Textured parts follow as further
    primitives of the same mesh, in part-name order: pyrender orders the draws of
    *separate* meshes at equal distance by hash (memory address), which made coplanar faces
    of different parts z-fight differently from run to run.
    """
    pyrender = _import_pyrender()
    plain, textured = [], []
    for name in sorted(scene.geometry):
        part = scene.geometry[name]
        if style == "textured" and _has_texture(part):
            textured.append(part)
        else:
            plain.append(_plain_part(part, grey=style == "grey"))
    primitives = []
    if plain:
        merged = plain[0] if len(plain) == 1 else trimesh.util.concatenate(plain)
        material = (pyrender.MetallicRoughnessMaterial(baseColorFactor=GREY, metallicFactor=0.0)
                    if style == "grey" else None)
        primitives += pyrender.Mesh.from_trimesh(merged, material=material, smooth=False).primitives
    for part in textured:
        primitives += pyrender.Mesh.from_trimesh(part, smooth=False).primitives
    for prim in primitives:  # a common surface response, perturbed per sample via roughness
        if prim.material is not None:
            prim.material.metallicFactor = 0.0
            # Real CAD files often wind faces inwards (ShapeNet): no back-face culling.
            prim.material.doubleSided = True
    return pyrender.Mesh(primitives=primitives)


class Renderer:
    """An offscreen renderer bound to this process's GL context, reused across models."""

    def __init__(self, size: int, fov_deg: float) -> None:
        self._pyrender = _import_pyrender()
        self.size = size
        self.k = intrinsics(size, fov_deg)
        self.platform = os.environ["PYOPENGL_PLATFORM"]
        self._renderer = self._pyrender.OffscreenRenderer(size, size)
        self._scene: Any = None
        self._category = ""

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.delete()
            self._renderer = None

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_model(self, scene: trimesh.Scene, category: str, style: Style, *, n_lights: int = 1) -> None:
        """Build the pyrender scene for one model; subsequent :meth:`render` calls reuse it."""
        pr = self._pyrender
        s = pr.Scene(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=[0.3, 0.3, 0.3])
        self._mesh = to_pyrender_mesh(scene, style)
        s.add(self._mesh)
        k = self.k
        self._camera = pr.IntrinsicsCamera(fx=k[0, 0], fy=k[1, 1], cx=k[0, 2], cy=k[1, 2], znear=ZNEAR, zfar=ZFAR)
        self._camera_node = s.add(self._camera, pose=np.eye(4))
        self._lights = [pr.DirectionalLight(color=np.ones(3), intensity=1.0) for _ in range(n_lights)]
        self._light_nodes = [s.add(light, pose=np.eye(4)) for light in self._lights]
        self._scene = s
        self._category = category

    def render(
        self,
        view: View,
        lights: list[LightSample],
        *,
        flags: int | None = None,
    ) -> RenderResult:
        """Render the current model from ``view`` under ``lights`` (one per scene light)."""
        if self._scene is None:
            raise RuntimeError("Renderer.render called before set_model")
        pr = self._pyrender
        r_cv, t_cv = world_to_camera(view.center, np.asarray(view.focal), view.theta)
        pose = gl_camera_pose(r_cv, t_cv)
        self._scene.set_pose(self._camera_node, pose)
        self._scene.ambient_light = np.full(3, lights[0].ambient) * np.asarray(lights[0].color)
        for light, node, sample in zip(self._lights, self._light_nodes, lights, strict=True):
            light.color = np.asarray(sample.color)
            light.intensity = sample.diffuse / len(lights)
            self._scene.set_pose(node, _light_pose(view, sample))
        for prim in self._mesh.primitives:
            if prim.material is not None:
                prim.material.roughnessFactor = float(np.clip(1.0 - lights[0].specular, 0.05, 1.0))
        render_flags = pr.RenderFlags.NONE if flags is None else flags
        color, depth = self._renderer.render(self._scene, flags=render_flags)
        depth = np.ascontiguousarray(depth, dtype=np.float32)
        mask = np.where(depth > 0, 255, 0).astype(np.uint8)
        bbox = mask_bbox(mask)
        visible = self._visible_fraction(mask)
        return RenderResult(
            rgb=np.ascontiguousarray(color[..., :3]), mask=mask, depth=depth,
            semantic=semantic_target(self._category, depth), bbox=bbox, visible_fraction=visible,
            k=self.k.copy(), r=r_cv, t=t_cv,
        )

    def _visible_fraction(self, mask: np.ndarray, zoom_out: float = 4.0) -> float:
        """Object pixels in the image / object pixels of the whole projection. Only when
        the mask touches the border is a depth-only render with a ``zoom_out`` times wider
        view needed (same centre of projection, focal length divided by ``zoom_out``)."""
        inside = int(np.count_nonzero(mask))
        if inside == 0:
            return 0.0
        if not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()):
            return 1.0
        cam = self._camera
        fx, fy = cam.fx, cam.fy
        cam.fx, cam.fy = fx / zoom_out, fy / zoom_out
        try:
            depth = self._renderer.render(self._scene, flags=self._pyrender.RenderFlags.DEPTH_ONLY)
        finally:
            cam.fx, cam.fy = fx, fy
        full = np.count_nonzero(depth > 0) * zoom_out**2
        return float(np.clip(inside / max(full, 1.0), 0.0, 1.0))


def _light_pose(view: View, light: LightSample) -> np.ndarray:
    """Directional light pose: azimuth relative to the camera's, elevation absolute."""
    az = np.deg2rad(view.azimuth + light.azimuth)
    el = np.deg2rad(light.elevation)
    position = np.array([np.cos(el) * np.sin(az), -np.cos(el) * np.cos(az), np.sin(el)])
    forward = -position  # light shines toward the origin; pyrender lights point down -z
    up = np.array([0.0, 0.0, 1.0]) if abs(forward[2]) < 0.999 else np.array([0.0, 1.0, 0.0])
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = right, true_up, -forward
    pose[:3, 3] = position
    return pose
