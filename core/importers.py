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
- ``sweethome3d``: ``<root>/*.sh3f`` (Sweet Home 3D furniture libraries, e.g. Debian's
  ``sweethome3d-furniture`` in ``/usr/share/sweethome3d/furniture``): zip files holding OBJ+MTL
  models with textures and a ``PluginFurnitureCatalog.properties`` (Java properties:
  ``name#N``, ``category#N``, ``model#N``, ``creator#N``, optional ``modelRotation#N``, and the
  catalog's ``license``).

Sweet Home 3D (``sweethome3d``)
-------------------------------
Classes come from each entry's English ``name`` and ``category``
(:func:`sweethome3d_class`), first match wins:

1. the source's ``class_map``: a key (a glob, case-insensitive) matched against the entry's
   ``id`` (``Scopia#bed1``), then its name (``Day bed``), then its category (``Office``); a
   value outside the allowed categories excludes the entry.
2. categories that hold none of our classes are excluded (``SWEETHOME3D_EXCLUDED_CATEGORIES``:
   bathroom fittings, people, doors and windows, lights, staircases, vehicles).
3. ``SWEETHOME3D_NAME_RULES``, whole words of the name, exclusions first:
   - excluded: stools, ottomans and poufs ("Puff"), bedside/night tables, benches (piano,
     garden, workbench, abdominal), wheelchairs, loungers (deck/beach/relax chairs, pool
     lounge: lying surfaces about 2 m long, not chairs), cribs, the opened sofa bed, tables
     that are furniture of another kind or a game (pool, football, table tennis,
     changing, dressing, technical/drawing tables, table fan), cabinets ("Upper shelves
     cabinet"), TV stands and the "Contemporary living room" wall unit.
   - sofa: sofa, couch, settee (so "Futon couch" and the closed "Convertible sofa" are sofas).
   - bed: the word bed (bunk, child, baby, iron, hospital, captain's, mezzanine, day bed) and
     "Futon" (a mattress bed).
   - desk: the word desk ("Desk table" is a desk).
   - chair: chair, armchair and seat ("Class seat"), incl. bar, cafe, folding, child and high
     chairs. Armchairs stay chairs: the catalog's are single seats 55-112 cm wide.
   - bookcase: bookcase, bookshelf, shelves.
   - diningtable: every remaining table (dining, coffee, side, round, glass, bar, cafe,
     folding, garden and children's tables).
4. anything else is skipped (counted in one logged line).

Licence and attribution: each model's ``license`` is the catalog's licence normalised
(``CC0``, ``CC-BY-3.0``, ``CC-BY-3.0-US``; the source's ``license`` when the catalog declares
none) with the entry's creator, e.g. ``CC-BY-3.0 (creator: Jay-Artist)``; the catalog stage
writes it to the manifest's ``license`` column.

Frame: Sweet Home 3D applies ``modelRotation`` (9 numbers, a row-major 3x3 applied to column
vectors) to the OBJ, and the rotated model is up +y with its front facing +z
(``y_up_front_pos_z``, ``SWEETHOME3D_AXES``). Checked on sweethome3d-furniture 1.8: with
``R @ v`` the rotated extents match the declared width/height/depth (with ``R.T @ v`` the
Headphones entry does not); in the canonical frame the upper 30 % of every chair (54) and
sofa (22), their backrests, lies at y > 0, and so do the headboards of 14 of the 16 beds (the
other two, a futon and a rocking baby bed, are the same at both ends); renders at azimuth 0
show the seats, the open shelves and the desks' drawers. The declared width/depth/height are
not applied: the model keeps its own proportions, which match them for all furniture here
but three Scopia entries (an armchair, about 10 % off, and two dining tables whose width and
depth are swapped with respect to their modelRotation).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import logging
import os
import posixpath
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterator
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
    "sweethome3d": {},  # classes come from SWEETHOME3D_NAME_RULES; class_map overrides them
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

# Sweet Home 3D's frame after each entry's modelRotation (Java 3D: up +y, front +z; checked
# on the real catalogs, see the module docstring). Kept beside DEFAULT_AXES, which lists the
# sources of loose files; resolve_axes reads both.
SWEETHOME3D_AXES = "y_up_front_pos_z"


def resolve_axes(kind: str, axes: str | None = None) -> np.ndarray:
    """The 4x4 rotation for ``axes`` (or the source kind's default convention)."""
    if axes is not None:
        name = axes
    elif kind == "sweethome3d":
        name = SWEETHOME3D_AXES
    else:
        name = DEFAULT_AXES[kind]
    if name not in AXES:
        raise ValueError(f"unknown axes convention {name!r}; known: {sorted(AXES)}")
    return AXES[name]


# --------------------------------------------------------------------------- discover
@dataclass(frozen=True)
class FurnitureEntry:
    """One entry ``#index`` of a Sweet Home 3D catalog (``PluginFurnitureCatalog.properties``).

    ``member`` is the OBJ's path inside the archive (no leading ``/``); ``license`` is the
    catalog's licence, normalised (``CC0``, ``CC-BY-3.0``, ``CC-BY-3.0-US``), or None when the
    catalog declares none; ``rotation`` is ``modelRotation`` (9 numbers, row-major 3x3 applied
    to column vectors) or None; ``size_cm`` is (width, depth, height) as declared.
    """

    archive: Path
    index: int
    id: str
    name: str
    category: str
    member: str
    creator: str
    license: str | None
    rotation: tuple[float, ...] | None
    size_cm: tuple[float, float, float]

    @property
    def where(self) -> str:
        """``<archive> entry #N 'name' (<member>)``: how messages name the entry."""
        return f"{self.archive} entry #{self.index} {self.name!r} ({self.member})"


@dataclass(frozen=True)
class SourceModel:
    """One model of a source library.

    ``category`` is after class_map; ``key`` is unique within the source, stable across
    runs and filesystem-safe (``car-01``, ``<synset>-<id>``); ``path`` is the main file.
    Models inside a Sweet Home 3D catalog carry their ``furniture`` entry; their ``path`` is
    ``<archive>/<member>`` (as ``zipfile.Path`` writes it), which names them in messages and
    in the catalog's ``original_path`` but is not a file on disk.
    """

    category: str
    kind: str
    path: Path
    key: str
    license: str
    furniture: FurnitureEntry | None = None

    @property
    def where(self) -> str:
        """How messages name the model: its file, or its catalog entry."""
        return self.furniture.where if self.furniture is not None else str(self.path)


class SourceNotFound(FileNotFoundError):
    """The root of a source does not exist (message: ``<kind> not found at <root>``)."""


_LAYOUTS = {
    "pascal3d": "<root>/CAD/<class>/NN.off",
    "objectnet3d": "<root>/CAD/<class>/NN.off",
    "shapenet_v1": "<root>/<synset>/<id>/model.obj",
    "shapenet_v2": "<root>/<synset>/<id>/models/model_normalized.obj",
    "modelnet": "<root>/<class>/{train,test}/<class>_NNNN.off",
    "folder": "<root>/**/*{" + ",".join(MESH_SUFFIXES) + "} with class_map",
    "sweethome3d": "<root>/*.sh3f (zip: PluginFurnitureCatalog.properties + OBJ/MTL models)",
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


# --------------------------------------------------------------------------- Sweet Home 3D
SWEETHOME3D_ROOT = "/usr/share/sweethome3d/furniture"  # Debian's sweethome3d-furniture
SWEETHOME3D_PROPERTIES = "PluginFurnitureCatalog.properties"

# Categories that hold none of our classes (people, fittings, openings, lights, vehicles).
SWEETHOME3D_EXCLUDED_CATEGORIES: frozenset[str] = frozenset(
    {"Bathroom", "Characters", "Doors and windows", "Lights", "Staircases", "Vehicles"}
)

# (regex on the English name, case-insensitive, whole words) -> class, first match wins; a
# label outside ALL_CLASSES (in brackets) excludes the entry and names why in the log.
SWEETHOME3D_NAME_RULES: tuple[tuple[str, str], ...] = (
    (r"stools?|ottomans?|pouf|puff", "[stool/ottoman]"),
    (r"bedside|night ?stand|night ?tables?", "[bedside table]"),
    (r"(work)?bench(es)?", "[bench]"),
    (r"wheelchair", "[wheelchair]"),
    (r"(deck|beach|relax) chairs?|lounge", "[lounger]"),
    (r"crib", "[crib]"),
    (r"opened", "[opened sofa bed]"),
    (r"(pool|football|changing|dressing|technical) tables?|table (tennis|fan)", "[not a dining table]"),
    (r"cabinets?|tv stand|living room", "[cabinet/wall unit]"),
    (r"sofas?|couch(es)?|settees?", "sofa"),
    (r"beds?|futon", "bed"),
    (r"desks?", "desk"),
    (r"(arm)?chairs?|seats?", "chair"),
    (r"bookcases?|bookshel(f|ves)|shelves", "bookcase"),
    (r"tables?", "diningtable"),
)
_NAME_RULES = tuple((re.compile(rf"\b(?:{rx})\b", re.IGNORECASE), cls) for rx, cls in SWEETHOME3D_NAME_RULES)

_PROPERTY_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def parse_java_properties(data: bytes) -> dict[str, str]:
    """Parse a Java ``.properties`` file: ``#``/``!`` comments, ``key=value``, ``key: value``
    or ``key value``, backslash line continuations and escapes (``\\uXXXX``, ``\\t``, ...).

    Decoded as UTF-8, falling back to ISO-8859-1 (what Java's ``PropertyResourceBundle``
    does; the Sweet Home 3D catalogs write their © signs in ISO-8859-1). Later keys win.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("iso-8859-1")
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        line = line.lstrip(" \t\f")
        if not line or line[0] in "#!":
            continue
        # a line ending in an odd number of backslashes continues on the next one
        while (len(line) - len(line.rstrip("\\"))) % 2 == 1:
            line = line[:-1] + next(lines, "").lstrip(" \t\f")
        key, value = _split_property(line)
        out[_unescape(key)] = _unescape(value)
    return out


def _split_property(line: str) -> tuple[str, str]:
    i = 0
    while i < len(line) and line[i] not in "=: \t\f":
        i += 2 if line[i] == "\\" else 1
    # the key ends at "=", ":" or whitespace; whitespace around one separator is skipped
    key, rest = line[:i], line[i:].lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t\f")
    return key, rest


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 == len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", text[i + 2 : i + 6]):
            out.append(chr(int(text[i + 2 : i + 6], 16)))
            i += 6
        else:
            out.append(_PROPERTY_ESCAPES.get(nxt, nxt))
            i += 2
    return "".join(out)


def normalize_license(text: str | None) -> str | None:
    """A Sweet Home 3D catalog's ``license`` as an SPDX-like short name (``CC0``,
    ``CC-BY-3.0``, ``CC-BY-3.0-US``), the text itself when unrecognised, None when absent."""
    if text is None or not text.strip():
        return None
    low = text.lower()
    if "public domain" in low or re.search(r"\bcc-?0\b", low):
        return "CC0"
    if "attribution 3.0 united states" in low:
        return "CC-BY-3.0-US"
    if "attribution 3.0" in low:
        return "CC-BY-3.0"
    return " ".join(text.split())


def read_sh3f(archive: Path) -> list[FurnitureEntry]:
    """The entries of one ``.sh3f`` catalog, in index order.

    An entry without ``name#N`` or ``model#N``, or with an unreadable number, is skipped
    with a WARNING naming the catalog and the entry. Raises ``ValueError`` naming the file
    when it is not a zip or has no ``PluginFurnitureCatalog.properties``.
    """
    try:
        with zipfile.ZipFile(archive) as zf:
            data = zf.read(SWEETHOME3D_PROPERTIES)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{archive}: not a Sweet Home 3D catalog (not a zip file: {exc})") from exc
    except KeyError as exc:
        raise ValueError(f"{archive}: not a Sweet Home 3D catalog (no {SWEETHOME3D_PROPERTIES})") from exc
    props = parse_java_properties(data)
    licence = normalize_license(props.get("license"))
    indices = sorted({int(m.group(1)) for k in props if (m := re.fullmatch(r"\w+#(\d+)", k))})
    entries = []
    for n in indices:
        name, model = props.get(f"name#{n}", "").strip(), props.get(f"model#{n}", "").strip()
        where = f"{archive} entry #{n} {name!r}"
        if not name or not model:
            log.warning("%s: skipped (no %s)", where, f"model#{n}" if name else f"name#{n}")
            continue
        try:
            width, depth, height = (float(props.get(f"{k}#{n}", "nan")) for k in ("width", "depth", "height"))
            rotation_text = props.get(f"modelRotation#{n}")
            rotation = None if rotation_text is None else tuple(float(t) for t in rotation_text.split())
        except ValueError as exc:
            log.warning("%s: skipped (unreadable number: %s)", where, exc)
            continue
        if rotation is not None and len(rotation) != 9:
            log.warning("%s: skipped (modelRotation has %d numbers, 9 expected)", where, len(rotation))
            continue
        entries.append(FurnitureEntry(
            archive=archive, index=n, id=props.get(f"id#{n}", "").strip() or f"{archive.stem}#{n}",
            name=name, category=props.get(f"category#{n}", "").strip(), member=model.lstrip("/"),
            creator=props.get(f"creator#{n}", "").strip(), license=licence, rotation=rotation,
            size_cm=(width, depth, height),
        ))
    return entries


def sweethome3d_class(entry: FurnitureEntry, class_map: dict[str, str]) -> str | None:
    """The class of ``entry`` by the rules of the module docstring: ``class_map`` (globs on
    id, then name, then category), excluded categories, then ``SWEETHOME3D_NAME_RULES``.

    Returns a class name, a bracketed exclusion label (``"[bench]"``, ``"[category Lights]"``)
    or None when no rule matches.
    """
    for field in (entry.id, entry.name, entry.category):
        for pattern, category in class_map.items():
            if fnmatch.fnmatchcase(field.lower(), pattern.lower()):
                return category
    if entry.category in SWEETHOME3D_EXCLUDED_CATEGORIES:
        return f"[category {entry.category}]"
    return next((cls for rx, cls in _NAME_RULES if rx.search(entry.name)), None)


def _sweethome3d_license(entry: FurnitureEntry, fallback: str) -> str:
    licence = entry.license or fallback
    return f"{licence} (creator: {entry.creator})" if entry.creator else licence


def _scan_sweethome3d(root: Path, src: CatalogSource, allowed: set[str]) -> Iterator[SourceModel]:
    """The models of every ``<root>/*.sh3f`` whose class (``sweethome3d_class``) is allowed;
    an unreadable catalog is skipped with a WARNING, excluded entries are counted in one
    INFO line per catalog and reason."""
    class_map = {**DEFAULT_CLASS_MAPS["sweethome3d"], **src.class_map}
    for archive in sorted(root.glob("*.sh3f")):
        try:
            entries = read_sh3f(archive)
        except (OSError, ValueError) as exc:
            log.warning("skipped catalog %s", exc)
            continue
        excluded: dict[str, list[str]] = defaultdict(list)
        keys: set[str] = set()
        for entry in entries:
            category = sweethome3d_class(entry, class_map)
            if category not in allowed:
                excluded[category or "no class rule"].append(entry.name)
                continue
            key = f"{_safe(archive.stem)}-{_safe(entry.id.split('#')[-1])}"
            if key in keys:  # ids that sanitise alike
                key = f"{key}-{entry.index}"
            keys.add(key)
            yield SourceModel(category, src.kind, archive / entry.member, key,
                              _sweethome3d_license(entry, src.license), entry)
        for reason, names in sorted(excluded.items()):
            log.info("sweethome3d %s: skipped %d entries (%s): %s", archive.name, len(names), reason,
                     ", ".join(sorted(set(names))[:12]) + (", ..." if len(set(names)) > 12 else ""))


def _first_per_category(models: list[SourceModel], limit: int | None) -> list[SourceModel]:
    """Sorted by (category, key), at most ``limit`` models (the first keys) per category."""
    out: list[SourceModel] = []
    for category in sorted({m.category for m in models}):
        group = sorted((m for m in models if m.category == category), key=lambda m: m.key)
        out.extend(group if limit is None else group[:limit])
    return out


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
    if src.kind == "sweethome3d":
        if not any(root.glob("*.sh3f")):
            raise ValueError(f"{src.kind}: no models found at {root}; expected layout {_LAYOUTS[src.kind]}")
        return _first_per_category(list(_scan_sweethome3d(root, src, allowed)), src.max_models_per_category)
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

    return _first_per_category([m for group in models.values() for m in group], src.max_models_per_category)


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


def _mtllibs(obj_text: str) -> list[str]:
    """The MTL files an OBJ's ``mtllib`` lines name, as written."""
    return [ln.split(None, 1)[1].strip() for ln in obj_text.splitlines()
            if ln.startswith("mtllib ") and len(ln.split(None, 1)) == 2]


def _map_kd(mtl_text: str) -> dict[str, str]:
    """``{material name: map_Kd file}`` of one MTL file."""
    textures: dict[str, str] = {}
    name = None
    for ln in mtl_text.splitlines():
        parts = ln.strip().split(None, 1)
        if len(parts) == 2 and parts[0] == "newmtl":
            name = parts[1].strip()
        elif len(parts) == 2 and parts[0].lower() == "map_kd" and name is not None:
            textures[name] = parts[1].strip()
    return textures


def _mtl_textures(obj_path: Path) -> dict[str, str]:
    """``{material name: map_Kd file}`` of the MTL libraries an OBJ references; logs a
    WARNING for a missing MTL file."""
    textures: dict[str, str] = {}
    for lib in _mtllibs(obj_path.read_bytes().decode("utf-8", "replace")):
        mtl = obj_path.parent / lib
        if not mtl.is_file():
            log.warning("%s: material library %s not found; parts fall back to grey", obj_path, mtl)
            continue
        textures.update(_map_kd(mtl.read_text(encoding="utf-8", errors="replace")))
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
    _missing_textures(scene, textures, str(path), lambda tex: os.path.normpath(path.parent / tex), grey=True)
    return scene


def _missing_textures(scene: trimesh.Scene, textures: dict[str, str], where: str, locate, *, grey: bool) -> None:
    """Log a WARNING naming ``locate(texture)`` for every part whose material names a
    texture that did not load; turn the part grey, or (``grey=False``) keep the material's
    diffuse colour ``Kd`` as Sweet Home 3D shows it."""
    for geom in scene.geometry.values():
        material = getattr(geom.visual, "material", None)
        name = getattr(material, "name", None)
        if name in textures and getattr(material, "image", None) is None:
            log.warning("%s: texture %s of material %r is missing or unreadable; using %s",
                        where, locate(textures[name]), name, "grey" if grey else "its diffuse colour (Kd)")
            if grey:
                _grey(geom)


class _ArchiveResolver(trimesh.resolvers.Resolver):
    """Reads the assets of an OBJ inside a zip (MTL, textures) relative to the OBJ's folder,
    as ``FilePathResolver`` does on disk: the path as written, then without a leading
    ``/`` (from the zip's root), then the bare file name in the OBJ's folder."""

    def __init__(self, zf: zipfile.ZipFile, folder: str, file_name: str | None = None) -> None:
        self.zf, self.folder = zf, folder
        self.file_name = file_name  # trimesh names an unnamed OBJ part after it
        self.names = set(zf.namelist())

    def member(self, name: str) -> str | None:
        name = name.strip().replace("\\", "/")
        candidates = (
            posixpath.normpath(posixpath.join(self.folder, name)),
            posixpath.normpath(name.lstrip("/")),
            posixpath.join(self.folder, posixpath.basename(name)),
        )
        return next((c.lstrip("/") for c in candidates if c.lstrip("/") in self.names), None)

    def get(self, name: str) -> bytes:
        member = self.member(name)
        if member is None:
            raise FileNotFoundError(f"{self.zf.filename}: no {name!r} next to {self.folder}/")
        return self.zf.read(member)

    def write(self, name: str, data) -> None:
        raise NotImplementedError("a Sweet Home 3D catalog is read-only")

    def namespaced(self, namespace: str) -> "_ArchiveResolver":
        return _ArchiveResolver(self.zf, posixpath.join(self.folder, namespace))

    def keys(self):
        prefix = self.folder + "/" if self.folder else ""
        return [n[len(prefix):] for n in sorted(self.names) if n.startswith(prefix)]


def _archive_name(entry: FurnitureEntry, resolver: _ArchiveResolver, name: str) -> str:
    member = resolver.member(name)
    return f"{entry.archive.name}:{member}" if member else f"{name!r} (not in {entry.archive.name})"


def _read_furniture(entry: FurnitureEntry) -> trimesh.Scene:
    """The OBJ of a Sweet Home 3D entry with its materials and textures, read from the zip
    (no temporary files: deterministic), in the OBJ's own frame, parts baked and sorted by
    name. A texture that does not load leaves the part its diffuse colour, with a WARNING. Raises
    :class:`MeshError` naming the catalog and the entry for anything else."""
    try:
        with zipfile.ZipFile(entry.archive) as zf:
            resolver = _ArchiveResolver(zf, posixpath.dirname(entry.member), posixpath.basename(entry.member))
            if entry.member not in resolver.names:
                raise MeshError(f"{entry.where}: model not in the archive")
            data = zf.read(entry.member)
            textures: dict[str, str] = {}
            for lib in _mtllibs(data.decode("utf-8", "replace")):
                member = resolver.member(lib)
                if member is None:
                    log.warning("%s: material library %s not found; parts fall back to grey", entry.where, lib)
                    continue
                textures.update(_map_kd(zf.read(member).decode("utf-8", "replace")))
            scene = trimesh.load(io.BytesIO(data), file_type="obj", force="scene", process=False, resolver=resolver)
            # Several catalog MTLs name textures the archive lacks (normal maps, a Windows
            # path): Sweet Home 3D then shows the material's Kd, which is the intended colour.
            _missing_textures(scene, textures, entry.where,
                              lambda tex: _archive_name(entry, resolver, tex), grey=False)
    except MeshError:
        raise
    except Exception as exc:  # zipfile, zlib, trimesh and PIL raise many types for a corrupt entry
        raise MeshError(f"{entry.where}: unreadable OBJ ({type(exc).__name__}: {exc})") from exc
    return _sorted_parts(bake(drop_non_meshes(scene)))


def model_rotation(model: SourceModel) -> np.ndarray:
    """The 4x4 of a Sweet Home 3D entry's ``modelRotation`` (identity without one, and for
    other sources): 9 numbers, row-major, applied to column vectors as Sweet Home 3D does
    (``Matrix3f(m00, m01, m02, m10, ...)``; checked on the real catalogs: the rotated
    extents match the declared width/height/depth, the transposed ones do not)."""
    rotation = np.eye(4)
    if model.furniture is not None and model.furniture.rotation is not None:
        rotation[:3, :3] = np.reshape(model.furniture.rotation, (3, 3))
    return rotation


def _sorted_parts(baked: trimesh.Scene) -> trimesh.Scene:
    """Part order must not depend on dict/set iteration inside the loaders."""
    out = trimesh.Scene()
    for name in sorted(baked.geometry):
        out.add_geometry(baked.geometry[name], geom_name=name, node_name=name)
    return out


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
    return _sorted_parts(bake(drop_non_meshes(scene)))


def _load(model: SourceModel, axes: str | None, min_faces: int, max_faces: int) -> tuple[trimesh.Scene, np.ndarray]:
    # modelRotation first (Sweet Home 3D entries), then the source's convention
    rotation = resolve_axes(model.kind, axes) @ model_rotation(model)
    scene = _read_raw(model.path) if model.furniture is None else _read_furniture(model.furniture)
    check_mesh(scene, model.where, min_faces=min_faces, max_faces=max_faces)
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
    A Sweet Home 3D entry is read from its catalog and its ``modelRotation`` applied before
    the axes. Returns a scene of named parts (one per material for OBJ, ``body`` for OFF)
    with identity node transforms, parts in sorted order. Materials and textures are kept.
    Raises :class:`core.meshes.MeshError` naming the file (for Sweet Home 3D the catalog and
    the entry) for an unreadable, empty or degenerate mesh, and ``ValueError`` for an
    unknown ``axes``.
    """
    return _load(model, axes, min_faces, max_faces)[0]


def canonical_transform(model: SourceModel, axes: str | None = None) -> np.ndarray:
    """The 4x4 that :func:`load_model` applies to the file's coordinates (``modelRotation``
    where given, axis rotation, then centring and scaling); apply it to source-frame
    annotations such as keypoints."""
    return _load(model, axes, 1, 10**9)[1]
