"""Primitive parts shared by the procedural generators, and the style samplers.

Every helper returns a new ``trimesh.Trimesh`` already placed in the canonical frame
(up +z, front -y), so a generator is a list of ``(part_name, helper(...))`` calls and
never touches a scene graph. Units are "nominal metres" of the real object before
normalisation to a unit diagonal; only ratios matter.

Section counts are kept low (16 round a cylinder) so a whole model stays under ~5k faces.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import trimesh

Part = tuple[str, trimesh.Trimesh]
ArrayLike3 = Sequence[float] | np.ndarray

SECTIONS = 16


# --- the shape grammar's parameters β (seed 002) ---


# Valid range of each Grammar field (also the bounds of core.params.GrammarParams).
GRAMMAR_RANGES: dict[str, tuple[float, float]] = {
    "dim_log_mean": (-0.5, 0.5),
    "dim_log_std": (0.0, 0.5),
    "option_logit": (-4.0, 4.0),
    "choice_temperature": (0.25, 4.0),
}


@dataclass(frozen=True)
class Grammar:
    """Real-valued parameters of every class's shape grammar, applied by the style samplers
    while :func:`grammar_context` is active. The defaults change nothing.

    dim_log_mean, dim_log_std: every continuous draw of :func:`uniform` is multiplied by
        ``exp(dim_log_mean + dim_log_std * z)``, ``z ~ N(0, 1)`` (a log-normal factor on
        dimensions, fractions and angles alike); ``dim_log_mean`` in [-0.5, 0.5],
        ``dim_log_std`` in [0, 0.5].
    option_logit: added to the logit of every :func:`coin` probability (optional parts
        present more often when > 0); in [-4, 4]. Probabilities 0 and 1 stay as they are.
    choice_temperature: :func:`choice` draws with probabilities ``∝ p ** (1 / T)`` (flatter
        when > 1, sharper when < 1; uniform options stay uniform); in [0.25, 4].

    Raises ValueError naming the field and its value when one is out of range.
    """

    dim_log_mean: float = 0.0
    dim_log_std: float = 0.0
    option_logit: float = 0.0
    choice_temperature: float = 1.0

    def __post_init__(self) -> None:
        for name, (lo, hi) in GRAMMAR_RANGES.items():
            value = getattr(self, name)
            if not lo <= value <= hi:
                raise ValueError(f"Grammar.{name} = {value!r} is outside [{lo}, {hi}]")


# The active grammar and the separate rng its log-normal factors are drawn from, or None.
_ACTIVE: contextvars.ContextVar[tuple[Grammar, np.random.Generator] | None] = contextvars.ContextVar(
    "procedural_grammar", default=None
)


@contextmanager
def grammar_context(grammar: Grammar, rng: np.random.Generator) -> Iterator[None]:
    """Apply ``grammar`` to the style samplers inside the block. The factors of
    :func:`uniform` are drawn from ``rng``, never from the builder's rng, so the builder's
    draws stay aligned whatever the grammar's values."""
    token = _ACTIVE.set((grammar, rng))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


# --- style samplers: python scalars, rounded so the style dict is short and JSON-clean ---


# The sampled style parameters of a model: JSON-serialisable python scalars.
Style = dict[str, float | int | bool | str]

def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A float in ``[lo, hi)``, rounded to 4 decimals; under a grammar, times its log-normal
    factor (one ``z`` drawn from the grammar's rng on every call)."""
    value = float(rng.uniform(lo, hi))
    active = _ACTIVE.get()
    if active is not None:
        grammar, grammar_rng = active
        z = float(grammar_rng.standard_normal())
        value *= math.exp(grammar.dim_log_mean + grammar.dim_log_std * z)
    return round(value, 4)


def integer(rng: np.random.Generator, lo: int, hi: int) -> int:
    """An int in ``[lo, hi]`` (both inclusive)."""
    return int(rng.integers(lo, hi + 1))


def choice(rng: np.random.Generator, options: Sequence[str], p: Sequence[float] | None = None) -> str:
    """One of ``options`` with probabilities ``p`` (None: uniform); under a grammar with
    ``choice_temperature`` T != 1, with probabilities ``∝ p ** (1 / T)``."""
    active = _ACTIVE.get()
    if p is not None and active is not None and active[0].choice_temperature != 1.0:
        q = np.asarray(p, dtype=float) ** (1.0 / active[0].choice_temperature)
        p = q / q.sum()
    return str(options[int(rng.choice(len(options), p=p))])


def coin(rng: np.random.Generator, p: float = 0.5) -> bool:
    """True with probability ``p``; under a grammar with ``option_logit`` != 0, with
    ``sigmoid(logit(p) + option_logit)`` (0 and 1 unchanged)."""
    active = _ACTIVE.get()
    if active is not None and active[0].option_logit != 0.0 and 0.0 < p < 1.0:
        p = 1.0 / (1.0 + math.exp(-(math.log(p / (1.0 - p)) + active[0].option_logit)))
    return bool(rng.random() < p)


# --- primitives ---


def box(center: ArrayLike3, size: ArrayLike3) -> trimesh.Trimesh:
    """Axis-aligned box of extents ``size`` (x, y, z) centred at ``center``."""
    mesh = trimesh.creation.box(extents=np.asarray(size, dtype=float))
    mesh.apply_translation(np.asarray(center, dtype=float))
    return mesh


def box_between(lo: ArrayLike3, hi: ArrayLike3) -> trimesh.Trimesh:
    """Axis-aligned box spanning the corners ``lo`` and ``hi``."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    return box((lo + hi) / 2.0, np.abs(hi - lo))


def cylinder(p0: ArrayLike3, p1: ArrayLike3, radius: float, sections: int = SECTIONS) -> trimesh.Trimesh:
    """Capped cylinder whose axis runs from ``p0`` to ``p1``."""
    segment = np.array([p0, p1], dtype=float)
    return trimesh.creation.cylinder(radius=radius, segment=segment, sections=sections)


def cylinder_x(center: ArrayLike3, radius: float, length: float, sections: int = SECTIONS) -> trimesh.Trimesh:
    """Cylinder with its axis along x (wheels, axles), centred at ``center``."""
    c = np.asarray(center, dtype=float)
    return cylinder(c - [length / 2, 0, 0], c + [length / 2, 0, 0], radius, sections)


def cylinder_z(center: ArrayLike3, radius: float, height: float, sections: int = SECTIONS) -> trimesh.Trimesh:
    """Upright cylinder centred at ``center``."""
    c = np.asarray(center, dtype=float)
    return cylinder(c - [0, 0, height / 2], c + [0, 0, height / 2], radius, sections)


def sphere(center: ArrayLike3, radius: float, subdivisions: int = 1) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    mesh.apply_translation(np.asarray(center, dtype=float))
    return mesh


def ellipsoid(center: ArrayLike3, radii: ArrayLike3, subdivisions: int = 2) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    mesh.apply_scale(np.asarray(radii, dtype=float))
    mesh.apply_translation(np.asarray(center, dtype=float))
    return mesh


def hull(points: np.ndarray | Sequence[ArrayLike3]) -> trimesh.Trimesh:
    """Convex hull of 3-D points: the workhorse for tapered bodies, hulls, noses, wings."""
    mesh = trimesh.convex.convex_hull(np.asarray(points, dtype=float))
    mesh.fix_normals()
    return mesh


def prism_x(profile_yz: Sequence[Sequence[float]], x0: float, x1: float) -> trimesh.Trimesh:
    """Convex hull of a (y, z) side profile extruded across ``x0..x1`` (car bodies, hulls)."""
    p = np.asarray(profile_yz, dtype=float)
    pts = [[x, y, z] for x in (x0, x1) for y, z in p]
    return hull(pts)


def ring(y: float, radius_x: float, radius_z: float, z: float = 0.0, n: int = 12, x: float = 0.0) -> np.ndarray:
    """``n`` points on an ellipse in the plane of constant y (fuselage/nose sections)."""
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return np.stack([x + radius_x * np.cos(t), np.full(n, y), z + radius_z * np.sin(t)], axis=1)


def plate(corners: Sequence[ArrayLike3], normal: ArrayLike3, offset: float, thickness: float) -> trimesh.Trimesh:
    """A thin slab on a (planar) quad: the corners pushed ``offset`` along ``normal``, then
    ``thickness`` more. Windscreens and windows lying on a sloped face of a hull."""
    c = np.asarray(corners, dtype=float)
    n = np.asarray(normal, dtype=float)
    n = n / np.linalg.norm(n)
    return hull(np.concatenate([c + n * offset, c + n * (offset + thickness)]))


def torus_x(center: ArrayLike3, radius: float, tube: float, major_sections: int = 24, minor_sections: int = 8) -> trimesh.Trimesh:
    """Torus in the y-z plane (a tyre seen from the side), axis along x."""
    mesh = trimesh.creation.torus(radius, tube, major_sections=major_sections, minor_sections=minor_sections)
    mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0]))
    mesh.apply_translation(np.asarray(center, dtype=float))
    return mesh


def revolve_z(profile_rz: Sequence[Sequence[float]], sections: int = 20) -> trimesh.Trimesh:
    """Surface of revolution about +z of a (radius, z) polyline that starts and ends on the
    axis (radius 0), so the result is closed (bottles)."""
    mesh = trimesh.creation.revolve(np.asarray(profile_rz, dtype=float), sections=sections)
    mesh.fix_normals()
    return mesh


def rotated(mesh: trimesh.Trimesh, axis: str, angle_deg: float, pivot: ArrayLike3) -> trimesh.Trimesh:
    """``mesh`` rotated by ``angle_deg`` about the line through ``pivot`` parallel to ``axis``.

    About x, a positive angle tips +z towards -y (forward); :func:`tilt_back` is the
    readable form of the opposite case.
    """
    direction = {"x": [1, 0, 0], "y": [0, 1, 0], "z": [0, 0, 1]}[axis]
    m = trimesh.transformations.rotation_matrix(np.deg2rad(angle_deg), direction, np.asarray(pivot, dtype=float))
    out = mesh.copy()
    out.apply_transform(m)
    return out


def tilt_back(mesh: trimesh.Trimesh, angle_deg: float, pivot: ArrayLike3) -> trimesh.Trimesh:
    """Lean ``mesh`` backwards (its top moves to +y) by ``angle_deg`` about the x-parallel
    line through ``pivot``."""
    return rotated(mesh, "x", -angle_deg, pivot)


def wheel(name: str, center: ArrayLike3, radius: float, width: float, hub_fraction: float = 0.6) -> list[Part]:
    """A car/bus wheel: dark tyre cylinder and a slightly wider metal hub, axis along x."""
    c = np.asarray(center, dtype=float)
    return [
        (f"tyre_{name}", cylinder_x(c, radius, width)),
        (f"hub_{name}", cylinder_x(c, radius * hub_fraction, width * 1.08, sections=12)),
    ]


def concat(meshes: Sequence[trimesh.Trimesh]) -> trimesh.Trimesh:
    """Several pieces of one material as one part (a row of windows, a set of slats)."""
    return trimesh.util.concatenate(list(meshes))

