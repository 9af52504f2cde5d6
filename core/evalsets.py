"""Evaluation datasets read from their own files into one common record (SPEC §2).

Every loader returns an :class:`EvalSet`: images, each with its objects (canonical
cad2real class, box, viewpoint, flags, instance id), the dataset's label set and a
domain label that reports print ("real" or "proxy-real (synthetic)").

Conventions of the common record:
- Boxes are ``(x0, y0, x1, y1)`` in continuous 0-based pixel coordinates, ``x1``/``y1``
  exclusive; pixel ``i`` covers ``[i, i + 1)``. PASCAL VOC, PASCAL3D+ and ObjectNet3D
  store 1-based inclusive pixel boxes ``[x1 y1 x2 y2]``; they become
  ``(x1 - 1, y1 - 1, x2, y2)``, so the continuous IoU of converted boxes equals the
  devkit's IoU with its ``+ 1`` widths. ``None`` means the whole image (IKEA crops).
- Angles are degrees: azimuth in [0, 360), elevation and in-plane theta in (-180, 180].

A missing dataset raises :class:`DatasetNotFound` (``skipped: <dataset> not found at
<path>``, which callers log before going on); a file that does not follow the dataset's
layout raises :class:`DatasetFormatError` naming the file and the field.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import scipy.io
from scipy.io.matlab import mat_struct

from core.geometry import wrap_deg
from core.io import MANIFEST, read_manifest
from core.params import ALL_CLASSES, IKEA_CLASSES, PASCAL3D_CLASSES, EvalDatasetParams

log = logging.getLogger("cad2real.evalsets")

REAL = "real"
PROXY_REAL = "proxy-real (synthetic)"
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
# Dataset class names -> cad2real names (names not listed are already canonical).
# ObjectNet3D and IKEA name two classes differently from PASCAL3D+ (the same two renames).
OBJECTNET3D_CLASS_MAP: Mapping[str, str] = {"bookshelf": "bookcase", "table": "diningtable"}
IKEA_CLASS_MAP: Mapping[str, str] = OBJECTNET3D_CLASS_MAP
UNASSIGNED = "unassigned"  # split of an IKEA image that splits.csv does not list
PROXY_REAL_COLUMNS: tuple[str, ...] = (
    "image_id", "image", "width", "height", "split", "domain", "category", "model_id",
    "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "azimuth", "elevation", "theta", "distance",
    "truncated", "occluded", "difficult",
)

Box = tuple[float, float, float, float]


class DatasetNotFound(FileNotFoundError):
    """A dataset (or its root file) is absent; message ``skipped: <dataset> not found at <path>``."""

    def __init__(self, dataset: str, path: str | Path) -> None:
        super().__init__(f"skipped: {dataset} not found at {path}")
        self.dataset, self.path = dataset, Path(path)


class DatasetFormatError(ValueError):
    """A dataset file does not follow its layout; message ``<file>: <field>: <problem>``."""

    def __init__(self, path: str | Path, field: str | None, problem: str) -> None:
        super().__init__(f"{path}: {field}: {problem}" if field else f"{path}: {problem}")
        self.path, self.field = Path(path), field


@dataclass(frozen=True)
class EvalObject:
    """One annotated object.

    category: canonical cad2real class (after the dataset's class map).
    bbox: (x0, y0, x1, y1) continuous 0-based pixels, x1/y1 exclusive; None = whole image.
    azimuth: degrees in [0, 360); elevation, theta (in-plane): degrees in (-180, 180].
    distance: camera distance in the dataset's units (PASCAL3D+: CAD model units).
    instance: model id for retrieval: IKEA product folder (``IKEA_chair_POANG``),
        PASCAL3D+/ObjectNet3D ``cad_index`` as the two-digit stem of ``CAD/<class>/NN.off``,
        proxy-real ``model_id``.
    """

    category: str
    bbox: Box | None
    azimuth: float | None = None
    elevation: float | None = None
    theta: float | None = None
    distance: float | None = None
    truncated: bool = False
    occluded: bool = False
    difficult: bool = False
    instance: str | None = None


@dataclass(frozen=True)
class EvalImage:
    """One image file and its objects; width/height in pixels when the annotation gives them."""

    image: Path
    objects: tuple[EvalObject, ...]
    split: str
    image_id: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class EvalSet:
    """An evaluation dataset in the common record.

    name: e.g. "ikea", "pascal3d_imagenet", "pascal3d_pascal", "objectnet3d", "voc", "proxy_real".
    domain: "real" or "proxy-real (synthetic)"; reports print it beside every number.
    categories: the dataset's label set (canonical names, sorted), also where a split has
        no object of a class.
    """

    name: str
    domain: str
    root: Path
    images: tuple[EvalImage, ...]
    categories: tuple[str, ...]
    has_viewpoint: bool

    def objects(self) -> list[tuple[EvalImage, EvalObject]]:
        """Every object with its image, in image order."""
        return [(image, obj) for image in self.images for obj in image.objects]

    def split(self, name: str) -> EvalSet:
        """The images of split ``name`` (same label set); ValueError naming the splits present."""
        images = tuple(image for image in self.images if image.split == name)
        if not images:
            present = sorted({image.split for image in self.images})
            raise ValueError(f"{self.name}: no image in split {name!r}; splits present: {present}")
        return dataclasses.replace(self, images=images)


class Record(NamedTuple):
    """A PASCAL3D+/ObjectNet3D annotation: objects carry the dataset's raw class name."""

    filename: str
    width: int | None
    height: int | None
    objects: tuple[EvalObject, ...]


# --------------------------------------------------------------------------- conventions
def wrap_azimuth(deg: float) -> float:
    """Degrees wrapped to [0, 360)."""
    a = float(deg) % 360.0
    return 0.0 if a >= 360.0 else a  # -1e-15 % 360 rounds to 360.0


def wrap_angle(deg: float) -> float:
    """Degrees wrapped to (-180, 180] (elevation, theta); values in range are kept exactly."""
    deg = float(deg)
    return deg if -180.0 < deg <= 180.0 else float(wrap_deg(deg))


def devkit_box(x1: float, y1: float, x2: float, y2: float) -> Box:
    """A 1-based inclusive devkit box as a continuous 0-based box with exclusive x1/y1."""
    return (float(x1) - 1.0, float(y1) - 1.0, float(x2), float(y2))


def crop_object(image: np.ndarray, bbox: Box | None, context: float = 0.0) -> np.ndarray:
    """The pixels of ``bbox`` (continuous coordinates) in ``image`` (H, W[, C]).

    Each side is widened by ``context`` times the box's width/height, the box is rounded
    outwards to whole pixels and clipped to the image; the crop is never empty (at least
    1x1, also for a box outside the image). ``bbox=None`` returns the whole image. Returns
    a view of ``image``, not a copy.
    """
    if bbox is None:
        return image
    if len(bbox) != 4:
        raise ValueError(f"bbox must be (x0, y0, x1, y1), got {bbox!r}")
    if context < 0:
        raise ValueError(f"context must be >= 0, got {context}")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"cannot crop an empty image of shape {image.shape}")
    x0, y0, x1, y1 = (float(v) for v in bbox)
    mx, my = context * max(x1 - x0, 0.0), context * max(y1 - y0, 0.0)
    c0 = min(max(math.floor(x0 - mx), 0), width - 1)
    r0 = min(max(math.floor(y0 - my), 0), height - 1)
    c1 = min(max(math.ceil(x1 + mx), c0 + 1), width)
    r1 = min(max(math.ceil(y1 + my), r0 + 1), height)
    return image[r0:r1, c0:c1]


# --------------------------------------------------------------------------- .mat records
def _number(value: Any, path: Path, field: str) -> float | None:
    """A MATLAB scalar as float; None for an empty array ([]) or NaN."""
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.size == 0:
        return None
    if arr.size != 1 or arr.dtype.kind not in "biuf":
        raise DatasetFormatError(path, field, f"expected a number, got {value!r}")
    x = float(arr.item())
    return None if math.isnan(x) else x


def _flag(value: Any, path: Path, field: str) -> bool:
    x = _number(value, path, field)
    return bool(x) if x is not None else False


def _text(value: Any, path: Path, field: str) -> str:
    if isinstance(value, str) and value:
        return value
    raise DatasetFormatError(path, field, f"expected a non-empty string, got {value!r}")


def _get(struct: Any, name: str, path: Path, field: str, *, required: bool = True) -> Any:
    if not isinstance(struct, mat_struct):
        raise DatasetFormatError(path, field.rsplit(".", 1)[0], f"expected a struct, got {type(struct).__name__}")
    if name not in (struct._fieldnames or []):
        if required:
            raise DatasetFormatError(path, field, "missing")
        return None
    return getattr(struct, name)


def _viewpoint(vp: Any, path: Path, field: str) -> tuple[float | None, float | None, float | None, float | None]:
    """(azimuth, elevation, theta, distance) of a record's viewpoint struct.

    As in the official PASCAL3D+ code, ``distance == 0`` means only the coarse angles
    were annotated: ``azimuth_coarse``/``elevation_coarse`` are used, else
    ``azimuth``/``elevation``. We also use the coarse value when the fine one is empty
    (ObjectNet3D records such as demo.mat). distance 0 or empty is reported as None;
    an empty or absent viewpoint gives None everywhere.
    """
    if not isinstance(vp, mat_struct):
        if vp is None or np.asarray(vp).size == 0:
            return None, None, None, None
        raise DatasetFormatError(path, field, f"expected a struct or [], got {vp!r}")

    def angle(name: str) -> float | None:
        return _number(_get(vp, name, path, f"{field}.{name}", required=False), path, f"{field}.{name}")

    distance = angle("distance")
    coarse_only = distance == 0.0
    fine_az, fine_el = (None, None) if coarse_only else (angle("azimuth"), angle("elevation"))
    azimuth = fine_az if fine_az is not None else angle("azimuth_coarse")
    elevation = fine_el if fine_el is not None else angle("elevation_coarse")
    theta = angle("theta")
    return (
        None if azimuth is None else wrap_azimuth(azimuth),
        None if elevation is None else wrap_angle(elevation),
        None if theta is None else wrap_angle(theta),
        None if coarse_only else distance,
    )


def _record_object(obj: Any, path: Path, field: str) -> EvalObject:
    category = _text(_get(obj, "class", path, f"{field}.class"), path, f"{field}.class")
    raw = np.asarray(_get(obj, "bbox", path, f"{field}.bbox"))
    if raw.dtype.kind not in "biuf" or raw.size != 4:
        got = raw.size if raw.dtype.kind in "biuf" else repr(raw.tolist())
        raise DatasetFormatError(path, f"{field}.bbox", f"expected 4 numbers, got {got}")
    x1, y1, x2, y2 = raw.astype(float).ravel()  # float first: boxes are often uint16
    if not (np.isfinite([x1, y1, x2, y2]).all() and x2 >= x1 and y2 >= y1):
        raise DatasetFormatError(path, f"{field}.bbox", f"expected [x1 y1 x2 y2] with x1 <= x2, y1 <= y2, "
                                 f"got {raw.tolist()}")
    azimuth, elevation, theta, distance = _viewpoint(
        _get(obj, "viewpoint", path, f"{field}.viewpoint", required=False), path, f"{field}.viewpoint")
    cad_index = _number(_get(obj, "cad_index", path, f"{field}.cad_index", required=False), path,
                        f"{field}.cad_index")

    def flag(name: str) -> bool:
        return _flag(_get(obj, name, path, f"{field}.{name}", required=False), path, f"{field}.{name}")

    return EvalObject(
        category=category, bbox=devkit_box(x1, y1, x2, y2), azimuth=azimuth, elevation=elevation, theta=theta,
        distance=distance, truncated=flag("truncated"), occluded=flag("occluded"), difficult=flag("difficult"),
        instance=None if cad_index is None else f"{int(cad_index):02d}",
    )


def read_record(mat_path: str | Path) -> Record:
    """Parse a PASCAL3D+/ObjectNet3D annotation ``.mat`` (struct ``record``).

    Returns (filename, width, height, objects): objects in file order with the raw class
    name (no class map), boxes converted to the common convention, angles wrapped (see
    :func:`_viewpoint` for the coarse/fine rule), ``instance`` = two-digit ``cad_index``.
    Raises DatasetFormatError naming the file and field for a corrupt file or a bad field.
    """
    path = Path(mat_path)
    try:
        mat = scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except FileNotFoundError:
        raise
    except Exception as err:  # scipy raises many unrelated types for a corrupt file
        raise DatasetFormatError(path, None, f"not a readable MATLAB file ({type(err).__name__}: {err})") from err
    if "record" not in mat:
        raise DatasetFormatError(path, "record", "missing")
    record = mat["record"]
    if not isinstance(record, mat_struct):
        raise DatasetFormatError(path, "record", f"expected a struct, got {type(record).__name__}")
    filename = _get(record, "filename", path, "record.filename", required=False)
    filename = "" if filename is None or np.asarray(filename).size == 0 else _text(filename, path, "record.filename")
    width = height = None
    size = _get(record, "size", path, "record.size", required=False)
    if isinstance(size, mat_struct):
        w = _number(_get(size, "width", path, "record.size.width"), path, "record.size.width")
        h = _number(_get(size, "height", path, "record.size.height"), path, "record.size.height")
        width, height = (None if w is None else int(w)), (None if h is None else int(h))
    objects = _get(record, "objects", path, "record.objects", required=False)
    if objects is None or (isinstance(objects, np.ndarray) and objects.size == 0):
        items: list[Any] = []
    elif isinstance(objects, mat_struct):
        items = [objects]
    elif isinstance(objects, np.ndarray) and objects.dtype == object:
        items = list(objects.ravel())
    else:
        raise DatasetFormatError(path, "record.objects", f"expected a struct array, got {objects!r}")
    parsed = tuple(_record_object(obj, path, f"record.objects({i})") for i, obj in enumerate(items, start=1))
    return Record(filename, width, height, parsed)


# --------------------------------------------------------------------------- helpers
def _root(dataset: str, root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFound(dataset, root)
    return root


def _read_lines(path: Path, what: str) -> list[str]:
    """Non-empty stripped lines of a list file (trailing blank lines ignored)."""
    if not path.is_file():
        raise DatasetFormatError(path, None, f"missing ({what})")
    lines = [line.strip() for line in path.read_text().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    for n, line in enumerate(lines, start=1):
        if not line:
            raise DatasetFormatError(path, f"line {n}", "empty line")
    return lines


def _list_ids(path: Path, what: str) -> list[str]:
    """Image ids of an ImageSets list (first token per line; VOC class lists add a flag)."""
    return [line.split()[0] for line in _read_lines(path, what)]


def _check_classes(classes: Iterable[str], known: tuple[str, ...], dataset: str) -> tuple[str, ...]:
    classes = tuple(classes)
    unknown = sorted(set(classes) - set(known))
    if unknown:
        raise ValueError(f"{dataset}: unknown classes {unknown}; known: {list(known)}")
    return classes


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ValueError(f"{what} must be one of {list(choices)}, got {value!r}")


def _annotated_ids(folder: Path, layout: str) -> set[str]:
    """Stems of the ``.mat`` files in an annotation folder (one listing, not a stat per id)."""
    if not folder.is_dir():
        raise DatasetFormatError(folder, None, f"missing (the layout has {layout})")
    return {f[:-4] for f in os.listdir(folder) if f.endswith(".mat")}


# --------------------------------------------------------------------------- PASCAL3D+
def load_pascal3d(root: str | Path, subset: str = "imagenet", split: str = "val",
                  classes: Iterable[str] = PASCAL3D_CLASSES) -> EvalSet:
    """PASCAL3D+ (release 1.1 layout) subset "imagenet" or "pascal", split "train" or "val".

    ImageNet ids come from ``Image_sets/<class>_imagenet_<split>.txt``; Pascal ids are the
    VOC 2012 ``PASCAL/VOCdevkit/VOC2012/ImageSets/Main/<split>.txt`` ids that have an
    ``Annotations/<class>_pascal/<id>.mat``. Each class folder contributes the objects of
    its own class (that folder's annotation pass gave them their viewpoints); an image
    found under several class folders becomes one EvalImage, an object (class, box) seen
    twice is kept once, preferring the copy with a viewpoint.
    """
    _check_choice(subset, ("imagenet", "pascal"), "PASCAL3D+ subset")
    _check_choice(split, ("train", "val"), "PASCAL3D+ split")
    classes = _check_classes(classes, PASCAL3D_CLASSES, "PASCAL3D+")
    root = _root("PASCAL3D+", root)
    voc_ids: list[str] = []
    if subset == "pascal":
        voc_ids = _list_ids(root / "PASCAL/VOCdevkit/VOC2012/ImageSets/Main" / f"{split}.txt",
                            "the VOC 2012 image list shipped with PASCAL3D+")
    images: dict[str, dict[str, Any]] = {}
    for cls in classes:
        folder = f"{cls}_{subset}"
        annotated = _annotated_ids(root / "Annotations" / folder, f"Annotations/{folder}/<id>.mat")
        if subset == "imagenet":
            list_path = root / "Image_sets" / f"{folder}_{split}.txt"
            ids = _list_ids(list_path, f"the {cls} ImageNet {split} list")
            for n, image_id in enumerate(ids, start=1):
                if image_id not in annotated:
                    raise DatasetFormatError(list_path, f"line {n}",
                                             f"{image_id!r} has no Annotations/{folder}/{image_id}.mat")
        else:
            ids = [i for i in voc_ids if i in annotated]
        suffix = ".JPEG" if subset == "imagenet" else ".jpg"
        for image_id in ids:
            record = read_record(root / "Annotations" / folder / f"{image_id}.mat")
            entry = images.setdefault(image_id, {
                "image": root / "Images" / folder / (record.filename or f"{image_id}{suffix}"),
                "width": record.width, "height": record.height, "objects": {},
            })
            for obj in record.objects:
                if obj.category != cls:
                    continue
                key = (obj.category, obj.bbox)
                kept = entry["objects"].get(key)
                if kept is None or (kept.azimuth is None and obj.azimuth is not None):
                    entry["objects"][key] = obj
    return EvalSet(
        name=f"pascal3d_{subset}", domain=REAL, root=root,
        images=tuple(EvalImage(image=e["image"], objects=tuple(e["objects"].values()), split=split,
                               image_id=image_id, width=e["width"], height=e["height"])
                     for image_id, e in sorted(images.items())),
        categories=tuple(sorted(classes)), has_viewpoint=True,
    )


# --------------------------------------------------------------------------- ObjectNet3D
def load_objectnet3d(root: str | Path, split: str = "val", classes: Iterable[str] | None = None,
                     class_map: Mapping[str, str] = OBJECTNET3D_CLASS_MAP) -> EvalSet:
    """ObjectNet3D: ``Image_sets/<split>.txt``, ``Annotations/<id>.mat``, ``Images/<id>.JPEG``.

    Class names pass through ``class_map`` (ObjectNet3D -> cad2real); with ``classes``
    (canonical names) objects of other classes are dropped, else all 100 classes are kept
    and the label set is the classes seen.
    """
    _check_choice(split, ("train", "val", "test"), "ObjectNet3D split")
    root = _root("ObjectNet3D", root)
    keep = None if classes is None else set(classes)
    list_path = root / "Image_sets" / f"{split}.txt"
    ids = _list_ids(list_path, f"the ObjectNet3D {split} list")
    annotated = _annotated_ids(root / "Annotations", "Annotations/<id>.mat")
    images, seen = [], set()
    for n, image_id in enumerate(ids, start=1):
        if image_id not in annotated:
            raise DatasetFormatError(list_path, f"line {n}", f"{image_id!r} has no Annotations/{image_id}.mat")
        record = read_record(root / "Annotations" / f"{image_id}.mat")
        objects = []
        for obj in record.objects:
            category = class_map.get(obj.category, obj.category)
            if keep is None or category in keep:
                objects.append(dataclasses.replace(obj, category=category))
                seen.add(category)
        images.append(EvalImage(image=root / "Images" / (record.filename or f"{image_id}.JPEG"),
                                objects=tuple(objects), split=split, image_id=image_id,
                                width=record.width, height=record.height))
    return EvalSet(name="objectnet3d", domain=REAL, root=root, images=tuple(images),
                   categories=tuple(sorted(seen if keep is None else keep)), has_viewpoint=True)


# --------------------------------------------------------------------------- PASCAL VOC
def _xml_text(node: ET.Element, tag: str, path: Path, field: str, *, required: bool = True) -> str | None:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if required:
            raise DatasetFormatError(path, field, "missing")
        return None
    return child.text.strip()


def _xml_number(node: ET.Element, tag: str, path: Path, field: str, *, required: bool = True) -> float | None:
    text = _xml_text(node, tag, path, field, required=required)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise DatasetFormatError(path, field, f"expected a number, got {text!r}") from None


def read_voc_xml(xml_path: str | Path) -> Record:
    """Parse a PASCAL VOC annotation XML: (filename, width, height, objects) with VOC
    class names, boxes converted to the common convention, no viewpoint."""
    path = Path(xml_path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise DatasetFormatError(path, None, f"not well-formed XML ({err})") from err
    filename = _xml_text(root, "filename", path, "filename", required=False) or ""
    width = height = None
    size = root.find("size")
    if size is not None:
        w = _xml_number(size, "width", path, "size/width", required=False)
        h = _xml_number(size, "height", path, "size/height", required=False)
        width, height = (None if w is None else int(w)), (None if h is None else int(h))
    objects = []
    for i, node in enumerate(root.findall("object"), start=1):
        field = f"object[{i}]"
        name = _xml_text(node, "name", path, f"{field}/name")
        box = node.find("bndbox")
        if box is None:
            raise DatasetFormatError(path, f"{field}/bndbox", "missing")
        x1, y1, x2, y2 = (_xml_number(box, tag, path, f"{field}/bndbox/{tag}")
                          for tag in ("xmin", "ymin", "xmax", "ymax"))
        if x2 < x1 or y2 < y1:
            raise DatasetFormatError(path, f"{field}/bndbox", f"xmax < xmin or ymax < ymin: {(x1, y1, x2, y2)}")
        flags = {tag: bool(_xml_number(node, tag, path, f"{field}/{tag}", required=False))
                 for tag in ("truncated", "occluded", "difficult")}
        objects.append(EvalObject(category=name, bbox=devkit_box(x1, y1, x2, y2), **flags))
    return Record(filename, width, height, tuple(objects))


def load_voc(root: str | Path, year: str = "2012", split: str = "val", classes: Iterable[str] | None = None) -> EvalSet:
    """PASCAL VOC: ``<root>/VOC<year>/{Annotations/<id>.xml, JPEGImages/<id>.jpg,
    ImageSets/Main/<split>.txt}`` (``root`` may also be the ``VOC<year>`` folder itself).

    Every listed image is kept, also one without objects of ``classes`` (canonical VOC
    names; None = all 20). An object name outside the VOC classes is a DatasetFormatError.
    """
    root = _root(f"VOC{year}", root)
    if (root / f"VOC{year}").is_dir():
        root = root / f"VOC{year}"
    keep = set(VOC_CLASSES if classes is None else _check_classes(classes, VOC_CLASSES, "VOC"))
    list_path = root / "ImageSets" / "Main" / f"{split}.txt"
    images = []
    for image_id in _list_ids(list_path, f"the VOC{year} {split} list"):
        xml_path = root / "Annotations" / f"{image_id}.xml"
        if not xml_path.is_file():
            raise DatasetFormatError(xml_path, None, f"missing (listed in {list_path})")
        record = read_voc_xml(xml_path)
        for i, obj in enumerate(record.objects, start=1):
            if obj.category not in VOC_CLASSES:
                raise DatasetFormatError(xml_path, f"object[{i}]/name",
                                         f"{obj.category!r} is not a VOC class ({', '.join(VOC_CLASSES)})")
        images.append(EvalImage(image=root / "JPEGImages" / (record.filename or f"{image_id}.jpg"),
                                objects=tuple(o for o in record.objects if o.category in keep), split=split,
                                image_id=image_id, width=record.width, height=record.height))
    return EvalSet(name="voc", domain=REAL, root=root, images=tuple(images), categories=tuple(sorted(keep)),
                   has_viewpoint=False)


# --------------------------------------------------------------------------- IKEA
def _ikea_model(line: str, path: Path, n: int) -> tuple[str, str]:
    """(canonical class, product folder) of a Model.txt line ``IKEA_<class>_<NAME>/<hash>_obj0_object``."""
    product = line.split("/", 1)[0]
    parts = product.split("_", 2)
    if len(parts) < 3 or parts[0] != "IKEA" or not parts[1] or not parts[2]:
        raise DatasetFormatError(path, f"line {n}", f"expected IKEA_<class>_<NAME>/..., got {line!r}")
    category = IKEA_CLASS_MAP.get(parts[1], parts[1])
    if category not in IKEA_CLASSES:
        raise DatasetFormatError(path, f"line {n}", f"class {parts[1]!r} not in the IKEA class map "
                                 f"({', '.join(sorted(set(IKEA_CLASSES) | set(IKEA_CLASS_MAP)))})")
    return category, product


def _ikea_splits(splits_csv: Path, models: dict[str, tuple[str, str]]) -> dict[str, str]:
    """image -> split from splits.csv, each row checked against Lists/Model.txt."""
    with splits_csv.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("image", "category", "ikea_model", "split") if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetFormatError(splits_csv, f"column {missing[0]}", f"missing (header: {reader.fieldnames})")
        splits: dict[str, str] = {}
        for row in reader:
            where = f"line {reader.line_num}"
            image, split = (row["image"] or "").strip(), (row["split"] or "").strip()
            if image not in models:
                raise DatasetFormatError(splits_csv, where, f"image {image!r} is not in Lists/Images.txt")
            if image in splits:
                raise DatasetFormatError(splits_csv, where, f"image {image!r} listed twice")
            if not split:
                raise DatasetFormatError(splits_csv, f"{where}: split", "empty")
            category, product = models[image]
            listed = (row["category"] or "").strip()
            if IKEA_CLASS_MAP.get(listed, listed) != category:
                raise DatasetFormatError(splits_csv, f"{where}: category",
                                         f"{listed!r} but Lists/Model.txt says {product} ({category})")
            if (row["ikea_model"] or "").strip() != product:
                raise DatasetFormatError(splits_csv, f"{where}: ikea_model",
                                         f"{row['ikea_model']!r} but Lists/Model.txt says {product!r}")
            splits[image] = split
    return splits


def load_ikea(root: str | Path, splits_csv: str | Path | None = None, split: str | None = None) -> EvalSet:
    """The IKEA object photos as published with Girdhar et al. (ECCV 2016).

    ``root/Images/*.jpg``, ``root/Lists/{Images,Model,ModelID}.txt`` (line-aligned). One
    cropped object per image: bbox None, class from the ``IKEA_<class>_<NAME>`` folder
    (bookshelf -> bookcase, table -> diningtable), instance = that folder name. Splits come
    from ``splits_csv`` (``image,category,ikea_model,split``, rows checked against
    Model.txt); images it does not list get split "unassigned" (one warning). With
    ``split``, only that split is kept. width/height are left None (no image is opened).
    """
    root = _root("IKEA", root)
    lists = root / "Lists"
    names = _read_lines(lists / "Images.txt", "image file names, one per line")
    models_txt = _read_lines(lists / "Model.txt", "IKEA_<class>_<NAME>/<id>_obj0_object, one per image")
    model_ids = _read_lines(lists / "ModelID.txt", "integer model ids, one per image")
    for path, lines in ((lists / "Model.txt", models_txt), (lists / "ModelID.txt", model_ids)):
        if len(lines) != len(names):
            n = min(len(lines), len(names)) + 1
            raise DatasetFormatError(path, f"line {n}", f"{len(lines)} lines but Lists/Images.txt has {len(names)}")
    for n, value in enumerate(model_ids, start=1):
        if not value.lstrip("-").isdigit():
            raise DatasetFormatError(lists / "ModelID.txt", f"line {n}", f"expected an integer, got {value!r}")
    models: dict[str, tuple[str, str]] = {}
    for n, (name, line) in enumerate(zip(names, models_txt, strict=True), start=1):
        if name in models:
            raise DatasetFormatError(lists / "Images.txt", f"line {n}", f"{name!r} listed twice")
        models[name] = _ikea_model(line, lists / "Model.txt", n)
    splits: dict[str, str] = {}
    if splits_csv is not None:
        splits_csv = Path(splits_csv)
        if not splits_csv.is_file():
            raise DatasetNotFound("IKEA splits", splits_csv)
        splits = _ikea_splits(splits_csv, models)
        unlisted = [name for name in names if name not in splits]
        if unlisted:
            log.warning("IKEA: %d images of Lists/Images.txt are not in %s (split %r), e.g. %s",
                        len(unlisted), splits_csv, UNASSIGNED, unlisted[:3])
    elif split is not None:
        raise ValueError("load_ikea: split given without splits_csv (image,category,ikea_model,split)")
    images = tuple(
        EvalImage(image=root / "Images" / name, objects=(EvalObject(category, None, instance=product),),
                  split=splits.get(name, UNASSIGNED), image_id=Path(name).stem)
        for name, (category, product) in models.items()
    )
    evalset = EvalSet(name="ikea", domain=REAL, root=root, images=images, categories=IKEA_CLASSES,
                      has_viewpoint=False)
    return evalset if split is None else evalset.split(split)


# --------------------------------------------------------------------------- proxy-real
def _optional(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def load_proxy_real(root: str | Path) -> EvalSet:
    """Our synthetic proxy-real set (stages/proxy_real.py): ``root/manifest.parquet``.

    Columns used: image_id, image (relative to root), width, height, split, domain,
    category, model_id (-> instance), bbox_x0..bbox_y1 (continuous, exclusive), azimuth,
    elevation, theta, distance, truncated, occluded, difficult. domain must be
    "proxy-real (synthetic)"; rows with one image_id form one image.
    """
    root = Path(root)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise DatasetNotFound("proxy_real", root)
    df = read_manifest(manifest_path)
    missing = [c for c in PROXY_REAL_COLUMNS if c not in df.columns]
    if missing:
        raise DatasetFormatError(manifest_path, f"column {missing[0]}", f"missing (columns: {list(df.columns)})")
    domains = sorted(set(df["domain"]) - {PROXY_REAL})
    if domains:
        raise DatasetFormatError(manifest_path, "domain", f"expected {PROXY_REAL!r} everywhere, got {domains}")
    unknown = sorted(set(df["category"]) - set(ALL_CLASSES))
    if unknown:
        raise DatasetFormatError(manifest_path, "category", f"{unknown} not among the cad2real classes")
    grouped: dict[str, dict[str, Any]] = {}
    for row in df[list(PROXY_REAL_COLUMNS)].itertuples(index=False):
        box = [_optional(v) for v in (row.bbox_x0, row.bbox_y0, row.bbox_x1, row.bbox_y1)]
        azimuth, elevation, theta = _optional(row.azimuth), _optional(row.elevation), _optional(row.theta)
        obj = EvalObject(
            category=row.category, bbox=None if None in box else tuple(box),  # type: ignore[arg-type]
            azimuth=None if azimuth is None else wrap_azimuth(azimuth),
            elevation=None if elevation is None else wrap_angle(elevation),
            theta=None if theta is None else wrap_angle(theta), distance=_optional(row.distance),
            truncated=bool(row.truncated), occluded=bool(row.occluded), difficult=bool(row.difficult),
            instance=str(row.model_id),
        )
        entry = grouped.setdefault(row.image_id, {"row": row, "objects": []})
        entry["objects"].append(obj)
    images = tuple(
        EvalImage(image=root / e["row"].image, objects=tuple(e["objects"]), split=str(e["row"].split),
                  image_id=str(image_id), width=int(e["row"].width), height=int(e["row"].height))
        for image_id, e in grouped.items()
    )
    return EvalSet(name="proxy_real", domain=PROXY_REAL, root=root, images=images,
                   categories=tuple(sorted(set(df["category"]))), has_viewpoint=True)


# --------------------------------------------------------------------------- dispatch
LOADERS: Mapping[str, Callable[..., EvalSet]] = {
    "proxy_real": load_proxy_real,
    "ikea": load_ikea,
    "pascal3d": load_pascal3d,
    "objectnet3d": load_objectnet3d,
    "voc": load_voc,
}


def open_evalset(d: EvalDatasetParams, proxy_real_root: str | Path) -> EvalSet:
    """The dataset of one ``evaluate.datasets`` entry (raises DatasetNotFound when absent);
    ``proxy_real_root`` is where a proxy_real entry without a root reads (paths.proxy_real)."""
    root = Path(d.root) if d.root is not None else Path(proxy_real_root)
    options: dict[str, Any] = {}
    if d.kind == "ikea":
        options = {"splits_csv": d.splits_csv, "split": d.split}
    elif d.kind == "pascal3d":
        options = {"subset": d.subset, "split": d.split or "val"}
    elif d.kind == "objectnet3d":
        options = {"split": d.split or "val"}
    elif d.kind == "voc":
        options = {"year": d.year, "split": d.split or "val"}
    evalset = load_evalset(d.kind, root, **options)
    if d.kind == "proxy_real" and d.split is not None:
        evalset = evalset.split(d.split)
    return evalset


def load_evalset(kind: str, root: str | Path, **options: Any) -> EvalSet:
    """The loader of ``kind`` (proxy_real, ikea, pascal3d, objectnet3d, voc) on ``root``."""
    if kind not in LOADERS:
        raise ValueError(f"unknown eval set kind {kind!r}; one of {sorted(LOADERS)}")
    return LOADERS[kind](root, **options)
