"""Cameras and viewpoints in the canonical frame (PASCAL3D+ conventions).

World frame: up +z, object front faces -y, bounding box centred at the origin with unit
diagonal. A camera at azimuth ``a``, elevation ``e`` and distance ``d`` (PASCAL3D+'s
``project_3d.m``) sits at ``C = d (cos e sin a, -cos e cos a, sin e)`` and looks at the
focal point; ``a = 0, e = 0`` sees the front. In-plane rotation ``theta`` rolls the image:
positive theta rotates the image content counter-clockwise on screen.

Angles in the manifests are degrees: azimuth in [0, 360), elevation and theta in
(-180, 180]. Camera matrices are stored in the OpenCV convention (x right, y down,
z forward): a world point X projects to ``K (R X + t)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import trimesh

from core.params import RenderParams, ViewpointPriorParams

# GL camera (x right, y up, looking down -z) -> OpenCV camera (x right, y down, z forward).
GL_TO_CV = np.diag([1.0, -1.0, -1.0])
MODEL_RADIUS = 0.5  # half the bounding-box diagonal of a canonical model


def icosphere_directions(level: int) -> np.ndarray:
    """Unit vectors at the vertices of an icosahedron subdivided ``level`` times.

    Returns (N, 3) float64 with N = 10 * 4**level + 2 (12, 42, 162, 642, ...).
    """
    vertices = np.asarray(trimesh.creation.icosphere(subdivisions=level, radius=1.0).vertices)
    return vertices / np.linalg.norm(vertices, axis=1, keepdims=True)


def cut_caps(directions: np.ndarray, z_min: float, z_max: float) -> np.ndarray:
    """Keep camera directions with ``z_min <= z/R <= z_max`` (seed 000 §III, Fig. 2: the
    upper and lower caps of the view sphere are cut, Vz in [-0.1 R, 0.6 R] by default)."""
    z = directions[:, 2]
    return directions[(z >= z_min - 1e-9) & (z <= z_max + 1e-9)]


def camera_center(azimuth_deg: float, elevation_deg: float, distance: float) -> np.ndarray:
    a, e = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    return distance * np.array([np.cos(e) * np.sin(a), -np.cos(e) * np.cos(a), np.sin(e)])


def direction_to_angles(direction: np.ndarray) -> tuple[float, float]:
    """Azimuth in [0, 360) and elevation in [-90, 90] degrees of a camera direction."""
    x, y, z = np.asarray(direction, dtype=float) / np.linalg.norm(direction)
    azimuth = float(np.rad2deg(np.arctan2(x, -y))) % 360.0
    elevation = float(np.rad2deg(np.arcsin(np.clip(z, -1.0, 1.0))))
    return azimuth, elevation


def wrap_deg(angle: float | np.ndarray) -> float | np.ndarray:
    """Wrap degrees to (-180, 180]."""
    return 180.0 - (180.0 - np.asarray(angle, dtype=float)) % 360.0


def intrinsics(size: int, fov_deg: float) -> np.ndarray:
    """3x3 pinhole K (OpenCV) for a square image of ``size`` pixels and field of view."""
    f = (size / 2.0) / np.tan(np.deg2rad(fov_deg) / 2.0)
    return np.array([[f, 0.0, size / 2.0], [0.0, f, size / 2.0], [0.0, 0.0, 1.0]])


def world_to_camera(center: np.ndarray, focal: np.ndarray, theta_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) in the OpenCV convention for a camera at ``center`` looking at ``focal`` with
    world up +z and in-plane rotation ``theta_deg``."""
    forward = np.asarray(focal, float) - np.asarray(center, float)
    forward /= np.linalg.norm(forward)
    up = np.array([0.0, 0.0, 1.0])
    if abs(forward @ up) > 0.999:  # looking straight up/down: any horizontal up vector
        up = np.array([0.0, 1.0, 0.0])
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    r_cv = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    # Roll about the optical axis; with y down, content turns counter-clockwise on screen
    # for positive theta when the camera axes turn by -theta.
    c, s = np.cos(np.deg2rad(theta_deg)), np.sin(np.deg2rad(theta_deg))
    roll = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    r_cv = roll @ r_cv
    t_cv = -r_cv @ np.asarray(center, float)
    return r_cv, t_cv


def gl_camera_pose(r_cv: np.ndarray, t_cv: np.ndarray) -> np.ndarray:
    """4x4 camera-to-world pose for pyrender (GL camera axes) from OpenCV (R, t)."""
    r_gl = GL_TO_CV @ r_cv  # world -> GL camera
    pose = np.eye(4)
    pose[:3, :3] = r_gl.T
    pose[:3, 3] = -r_cv.T @ t_cv  # camera centre
    return pose


def project(points: np.ndarray, k: np.ndarray, r: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(N, 3) world points -> (N, 2) pixel coordinates (OpenCV convention)."""
    cam = points @ r.T + t
    uv = cam @ k.T
    return uv[:, :2] / uv[:, 2:3]


@dataclass(frozen=True)
class View:
    """One sampled camera. Angles in degrees, distance in units of the bbox diagonal."""

    azimuth: float
    elevation: float
    theta: float
    distance: float
    focal: tuple[float, float, float]
    closeup: bool
    focal_shift: float  # |F' - F| of the shifted-focal-point close-up, 0 otherwise

    @property
    def center(self) -> np.ndarray:
        return camera_center(self.azimuth, self.elevation, self.distance)


class ViewpointPrior:
    """Per-class empirical viewpoint distribution from PASCAL3D+ annotations.

    Reads the csv layout of ``pascal3d_annotations/{train,val}.csv``: the class is the
    folder ``<class>_{imagenet,pascal}`` in the image path, the last three columns are
    azimuth, elevation, theta in whole degrees stored as ``(x + 360) % 360``. Sampling
    draws an annotated viewpoint and adds Gaussian jitter (``jitter_deg``), a kernel
    density estimate of the real distribution.
    """

    def __init__(self, angles: dict[str, np.ndarray], jitter_deg: float = 3.0, *,
                 class_map: dict[str, str] | None = None, fraction: float = 1.0) -> None:
        self.angles = angles  # class -> (N, 3) azimuth [0,360), elevation, theta (-180,180]
        self.jitter_deg = jitter_deg
        # Classes without annotations borrow another's distribution (bed -> sofa, ...).
        self.class_map = {k: v for k, v in (class_map or {}).items() if k not in angles and v in angles}
        self.fraction = fraction  # share of views drawn from the prior, the rest on the icosphere

    @classmethod
    def from_params(cls, p: ViewpointPriorParams) -> "ViewpointPrior":
        prior = cls.from_csv(p.path)
        return cls(prior.angles, p.jitter_deg, class_map=dict(p.class_map), fraction=p.fraction)

    @classmethod
    def from_csv(cls, path: str | Path) -> "ViewpointPrior":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: viewpoint annotations not found (render.viewpoint_prior.path)")
        try:
            rows = pd.read_csv(path, header=None, skiprows=1, usecols=[0, 6, 7, 8], names=["path", "az", "el", "th"])
        except (ValueError, pd.errors.ParserError) as exc:
            raise ValueError(f"{path}: not a PASCAL3D+ viewpoint csv "
                             f"(path,x0,y0,x1,y1,_,azimuth,elevation,theta): {exc}") from None
        if rows.empty:
            raise ValueError(f"{path}: no viewpoint rows")
        bad = rows[["az", "el", "th"]].isna().any(axis=1)
        if bad.any():
            raise ValueError(f"{path}: row {int(np.flatnonzero(bad)[0]) + 2} lacks azimuth/elevation/theta")
        folder = rows["path"].str.replace("\\", "/", regex=False).str.split("/").str[-2]
        classes = folder.str.rsplit("_", n=1).str[0]
        angles = {}
        for name, group in rows.groupby(classes):
            a = group[["az", "el", "th"]].to_numpy(float)
            a[:, 1:] = wrap_deg(a[:, 1:])
            angles[str(name)] = a
        return cls(angles)

    def has(self, category: str) -> bool:
        return category in self.angles or category in self.class_map

    def summary(self) -> dict[str, dict[str, float]]:
        """Per class: number of annotations and the fitted distribution's medians and
        spreads (degrees), for logs and metrics."""
        out = {}
        for name, a in sorted(self.angles.items()):
            out[name] = {
                "n": int(len(a)), "elevation_median": float(np.median(a[:, 1])),
                "elevation_iqr": float(np.subtract(*np.percentile(a[:, 1], [75, 25]))),
                "theta_std": float(a[:, 2].std()),
                "azimuth_frontal_fraction": float(np.mean(np.abs(wrap_deg(a[:, 0])) < 45.0)),
            }
        return out

    def sample(self, category: str, rng: np.random.Generator) -> tuple[float, float, float]:
        category = self.class_map.get(category, category)
        a = self.angles[category][rng.integers(len(self.angles[category]))]
        az, el, th = a + rng.normal(0.0, self.jitter_deg, 3)
        return float(az % 360.0), float(np.clip(el, -89.0, 89.0)), float(wrap_deg(th))


def sample_view(
    p: RenderParams,
    index: int,
    directions: np.ndarray,
    rng: np.random.Generator,
    *,
    category: str = "",
    prior: ViewpointPrior | None = None,
    closeup_fraction: float | None = None,
) -> View:
    """Sample view ``index`` of a model (seed 000 §III).

    Direction: vertex ``index`` of a per-model random permutation of the cut icosphere
    (cycled when more views than vertices), azimuth jittered; or the viewpoint prior when
    given and it knows ``category``. Distance log-uniform in ``p.distance``; focal point
    uniform in a cube of half-size ``p.focal_jitter``; with probability
    ``closeup_fraction`` a close-up whose focal point is shifted by
    ``F' = F + closeup_shift * (C - P_axis)`` (seed 000 §III), ``C`` and ``P_axis`` (the
    front-view axis) on a sphere of the model's radius (half its unit diagonal), so the
    focal point stays on the object; the camera comes ``closeup_distance_scale`` closer.
    ``directions`` must be the model's permuted directions (see :func:`view_directions`).
    """
    use_prior = prior is not None and prior.has(category)
    if use_prior and prior.fraction < 1.0:
        use_prior = bool(rng.uniform() < prior.fraction)
    if use_prior:
        azimuth, elevation, theta = prior.sample(category, rng)
    else:
        azimuth, elevation = direction_to_angles(directions[index % len(directions)])
        azimuth = (azimuth + rng.uniform(-p.azimuth_jitter_deg, p.azimuth_jitter_deg)) % 360.0
        theta = float(np.clip(rng.normal(0.0, p.theta_sigma_deg), -3 * p.theta_sigma_deg, 3 * p.theta_sigma_deg))
    distance = float(np.exp(rng.uniform(np.log(p.distance.lo), np.log(p.distance.hi))))
    focal = rng.uniform(-p.focal_jitter, p.focal_jitter, 3)
    fraction = p.closeup_fraction if closeup_fraction is None else closeup_fraction
    closeup = bool(rng.uniform() < fraction)
    shift = 0.0
    if closeup:
        c = camera_center(azimuth, elevation, MODEL_RADIUS)
        p_axis = np.array([0.0, -MODEL_RADIUS, 0.0])
        delta = p.closeup_shift * (c - p_axis)
        focal = focal + delta
        shift = float(np.linalg.norm(delta))
        distance *= p.closeup_distance_scale
    return View(
        azimuth=float(azimuth), elevation=float(elevation), theta=float(theta), distance=distance,
        focal=(float(focal[0]), float(focal[1]), float(focal[2])), closeup=closeup, focal_shift=shift,
    )


def view_directions(p: RenderParams, rng: np.random.Generator) -> np.ndarray:
    """The cut icosphere's directions in a random order for one model."""
    directions = cut_caps(icosphere_directions(p.icosphere_level), p.z_min, p.z_max)
    if len(directions) == 0:
        raise ValueError(f"render.z_min={p.z_min}, z_max={p.z_max} leave no camera on the icosphere")
    return directions[rng.permutation(len(directions))]
