"""Writers of tiny evaluation datasets in each dataset's own file format (for tests).

PASCAL3D+/ObjectNet3D ``.mat`` records are written with ``scipy.io.savemat`` so that
``loadmat(squeeze_me=True, struct_as_record=False)`` reads them back like the real
``demo.mat``: one object is a 1x1 struct, several a 1xN struct array, an empty field ``[]``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from PIL import Image

EMPTY = np.zeros((0, 0))  # MATLAB []


def write_jpeg(path: Path, width: int = 12, height: int = 8) -> Path:
    """A small grey JPEG (the loaders never decode it; the evaluate stage does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(path, quality=90)
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


# --------------------------------------------------------------------------- .mat records
def viewpoint(azimuth: Any = EMPTY, elevation: Any = EMPTY, distance: Any = EMPTY, theta: Any = 0.0,
              azimuth_coarse: Any = EMPTY, elevation_coarse: Any = EMPTY) -> dict[str, Any]:
    """A record viewpoint struct with the release's fields (unset ones are [])."""
    return {"azimuth_coarse": azimuth_coarse, "elevation_coarse": elevation_coarse, "azimuth": azimuth,
            "elevation": elevation, "distance": distance, "focal": 3000.0, "px": 250.0, "py": 250.0,
            "theta": theta, "error": EMPTY, "interval_azimuth": EMPTY, "interval_elevation": EMPTY,
            "num_anchor": 0, "viewport": 2000}


def record_object(cls: str, bbox: list[float], vp: dict[str, Any] | None = None, cad_index: Any = 1,
                  truncated: int = 0, occluded: int = 0, difficult: int = 0) -> dict[str, Any]:
    """One ``record.objects(i)``; ``vp=None`` writes an empty viewpoint ([])."""
    return {"class": cls, "bbox": np.asarray(bbox, float), "anchors": EMPTY,
            "viewpoint": EMPTY if vp is None else vp, "cad_index": cad_index, "truncated": truncated,
            "occluded": occluded, "difficult": difficult}


def _struct_array(items: list[dict[str, Any]]) -> np.ndarray:
    """A 1xN MATLAB struct array (nested dicts become structs)."""
    names = list(items[0])
    out = np.zeros((1, len(items)), dtype=[(name, object) for name in names])
    for i, item in enumerate(items):
        for name in names:
            out[0, i][name] = item[name]
    return out


def write_record(path: Path, filename: str, objects: list[dict[str, Any]], width: int = 12, height: int = 8,
                 database: str = "ImageNet") -> Path:
    """A PASCAL3D+/ObjectNet3D annotation ``.mat`` holding struct ``record``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"filename": filename, "size": {"width": width, "height": height, "depth": 3},
              "database": database, "imgsize": np.array([height, width, 3])}
    record["objects"] = objects[0] if len(objects) == 1 else (_struct_array(objects) if objects else EMPTY)
    scipy.io.savemat(str(path), {"record": record})
    return path


# --------------------------------------------------------------------------- PASCAL3D+
def write_pascal3d(root: Path) -> Path:
    """A PASCAL3D+ release tree with classes car and chair.

    ImageNet: n001 (val; one car, fine viewpoint, elevation 355, theta 190), n002 (train),
      n101 (val; one chair).
    Pascal (VOC 2012 val = 2008_000001..3, train = 2008_000004):
      2008_000001 under car_pascal (car with distance 0 -> coarse angles; a chair without
        viewpoint) and chair_pascal (the same car without viewpoint; the chair twice, once
        without and once with viewpoint; a difficult chair).
      2008_000002 under chair_pascal only: a chair with an empty viewpoint.
      2008_000003 listed in val.txt but annotated for neither class.
      2008_000004 (train) under car_pascal.
    """
    ann, img = root / "Annotations", root / "Images"
    write_record(ann / "car_imagenet" / "n001.mat", "n001.JPEG", [
        record_object("car", [1, 1, 10, 8], viewpoint(azimuth=30.5, elevation=355.0, distance=5.0, theta=190.0),
                      cad_index=3),
    ])
    write_record(ann / "car_imagenet" / "n002.mat", "n002.JPEG", [record_object("car", [2, 2, 6, 6],
                                                                                viewpoint(10.0, 5.0, 4.0))])
    write_record(ann / "chair_imagenet" / "n101.mat", "n101.JPEG", [record_object("chair", [1, 1, 12, 8],
                                                                                  viewpoint(90.0, 0.0, 2.0))])
    write_lines(root / "Image_sets" / "car_imagenet_val.txt", ["n001"])
    write_lines(root / "Image_sets" / "car_imagenet_train.txt", ["n002"])
    write_lines(root / "Image_sets" / "chair_imagenet_val.txt", ["n101"])
    write_lines(root / "Image_sets" / "chair_imagenet_train.txt", [])
    for cls, name in (("car", "n001"), ("car", "n002"), ("chair", "n101")):
        write_jpeg(img / f"{cls}_imagenet" / f"{name}.JPEG")

    car = [1, 2, 6, 7]
    chair = [7, 1, 12, 8]
    chair_vp = viewpoint(azimuth=-90.0, elevation=10.0, distance=3.0, theta=-5.0)
    write_record(ann / "car_pascal" / "2008_000001.mat", "2008_000001.jpg", [
        record_object("car", car, viewpoint(azimuth=20.0, elevation=30.0, distance=0.0, theta=2.0,
                                            azimuth_coarse=350.0, elevation_coarse=-10.0)),
        record_object("chair", chair, None, cad_index=EMPTY),
    ], database="PASCAL")
    write_record(ann / "chair_pascal" / "2008_000001.mat", "2008_000001.jpg", [
        record_object("car", car, None),
        record_object("chair", chair, None),
        record_object("chair", chair, chair_vp, cad_index=2),
        record_object("chair", [3, 3, 5, 5], chair_vp, difficult=1),
    ], database="PASCAL")
    write_record(ann / "chair_pascal" / "2008_000002.mat", "2008_000002.jpg",
                 [record_object("chair", [1, 1, 12, 8], None)], database="PASCAL")
    write_record(ann / "car_pascal" / "2008_000004.mat", "2008_000004.jpg",
                 [record_object("car", [1, 1, 4, 4], viewpoint(1.0, 2.0, 3.0))], database="PASCAL")
    main = root / "PASCAL" / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main"
    write_lines(main / "val.txt", ["2008_000001", "2008_000002", "2008_000003"])
    write_lines(main / "train.txt", ["2008_000004"])
    for cls, name in (("car", "2008_000001"), ("chair", "2008_000001"), ("chair", "2008_000002"),
                      ("car", "2008_000004")):
        write_jpeg(img / f"{cls}_pascal" / f"{name}.jpg")
    return root


# --------------------------------------------------------------------------- ObjectNet3D
def write_objectnet3d(root: Path) -> Path:
    """ObjectNet3D tree: val = n01 (bookshelf + table + drones), n02 (bed); train = n03 (bed)."""
    ann = root / "Annotations"
    vp = viewpoint(azimuth_coarse=-2.0, elevation_coarse=16.0, distance=3.6, theta=-0.5)
    write_record(ann / "n01.mat", "n01.JPEG", [
        record_object("bookshelf", [1, 1, 5, 5], vp, cad_index=4),
        record_object("table", [5, 1, 12, 8], vp),
        record_object("drones", [2, 2, 3, 3], None),
    ])
    write_record(ann / "n02.mat", "n02.JPEG", [record_object("bed", [1, 1, 12, 8], vp)])
    write_record(ann / "n03.mat", "n03.JPEG", [record_object("bed", [1, 1, 12, 8], vp)])
    write_lines(root / "Image_sets" / "val.txt", ["n01", "n02"])
    write_lines(root / "Image_sets" / "train.txt", ["n03"])
    write_lines(root / "Image_sets" / "test.txt", ["n04"])
    for name in ("n01", "n02", "n03"):
        write_jpeg(root / "Images" / f"{name}.JPEG")
    return root


# --------------------------------------------------------------------------- PASCAL VOC
def voc_xml(filename: str, objects: list[dict[str, Any]], width: int = 12, height: int = 8) -> str:
    """A VOC annotation: objects are dicts with name, bbox (xmin, ymin, xmax, ymax) or None
    (no bndbox element), and optional difficult/truncated/occluded."""
    parts = [f"<annotation><folder>VOC2012</folder><filename>{filename}</filename>",
             f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"]
    for obj in objects:
        parts.append(f"<object><name>{obj['name']}</name><pose>Unspecified</pose>")
        for flag in ("truncated", "occluded", "difficult"):
            if flag in obj:
                parts.append(f"<{flag}>{obj[flag]}</{flag}>")
        if obj.get("bbox") is not None:
            x0, y0, x1, y1 = obj["bbox"]
            parts.append(f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>")
        parts.append("</object>")
    return "".join(parts) + "</annotation>\n"


def write_voc(root: Path, year: str = "2012") -> Path:
    """``root/VOC<year>``: val = 000001 (car difficult + person), 000002 (chair, truncated,
    occluded); train = 000003 (sofa)."""
    voc = root / f"VOC{year}"
    images = {
        "000001": [{"name": "car", "bbox": (1, 2, 6, 7), "difficult": 1, "truncated": 0},
                   {"name": "person", "bbox": (7, 1, 12, 8)}],
        "000002": [{"name": "chair", "bbox": (2, 2, 11, 7), "truncated": 1, "occluded": 1, "difficult": 0}],
        "000003": [{"name": "sofa", "bbox": (1, 1, 12, 8)}],
    }
    for image_id, objects in images.items():
        (voc / "Annotations").mkdir(parents=True, exist_ok=True)
        (voc / "Annotations" / f"{image_id}.xml").write_text(voc_xml(f"{image_id}.jpg", objects))
        write_jpeg(voc / "JPEGImages" / f"{image_id}.jpg")
    write_lines(voc / "ImageSets" / "Main" / "val.txt", ["000001", "000002"])
    write_lines(voc / "ImageSets" / "Main" / "train.txt", ["000003"])
    return root


# --------------------------------------------------------------------------- IKEA
IKEA_ROWS = [  # image, Model.txt line, ModelID, splits.csv category, split (None = not in splits.csv)
    ("00000001_001.jpg", "IKEA_chair_POANG/24ab_obj0_object", 68, "chair", "val"),
    ("00000002_001.jpg", "IKEA_bookcase_BILLY/1d55_obj0_object", 12, "bookcase", "test"),
    ("00000003_001.jpg", "IKEA_table_LACK/77aa_obj0_object", 40, "table", "test"),
    ("00000004_001.jpg", "IKEA_bed_MALM/f9c9_obj0_object", 3, "bed", "val"),
    ("00000005_001.jpg", "IKEA_desk_MICKE/0a0a_obj0_object", 50, "desk", "test"),
    ("00000006_001.jpg", "IKEA_sofa_KLIPPAN/bb11_obj0_object", 90, "sofa", None),
]


def write_ikea(root: Path, rows: list[tuple[str, str, int, str, str | None]] = IKEA_ROWS) -> tuple[Path, Path]:
    """The Girdhar et al. layout under ``root/IKEA`` and ``root/splits.csv``; returns both."""
    ikea = root / "IKEA"
    write_lines(ikea / "Lists" / "Images.txt", [r[0] for r in rows])
    write_lines(ikea / "Lists" / "Model.txt", [r[1] for r in rows])
    write_lines(ikea / "Lists" / "ModelID.txt", [str(r[2]) for r in rows])
    for r in rows:
        write_jpeg(ikea / "Images" / r[0])
    splits = root / "splits.csv"
    with splits.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "category", "ikea_model", "split"])
        for image, model, _, category, split in rows:
            if split is not None:
                writer.writerow([image, category, model.split("/")[0], split])
    return ikea, splits
