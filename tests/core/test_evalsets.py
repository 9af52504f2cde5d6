"""core.evalsets: each dataset read from its own files into the common evaluation record.

Fixtures are written in each dataset's own format in tmp_path (tests/core/evalset_fixtures.py);
the real IKEA photos' lists and the ObjectNet3D demo record are read from ``../shared/data``
(marked ``shared_data``, skipped with a reason when absent).
"""

from __future__ import annotations

import csv
import logging
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from core.evalsets import (
    IKEA_CLASSES,
    PROXY_REAL,
    DatasetFormatError,
    DatasetNotFound,
    EvalImage,
    EvalObject,
    EvalSet,
    crop_object,
    devkit_box,
    load_evalset,
    load_ikea,
    load_objectnet3d,
    load_pascal3d,
    load_proxy_real,
    load_voc,
    read_record,
    wrap_angle,
    wrap_azimuth,
)
from core.io import write_manifest
from tests.conftest import shared_data
from tests.core.evalset_fixtures import (
    IKEA_ROWS,
    record_object,
    viewpoint,
    voc_xml,
    write_ikea,
    write_lines,
    write_objectnet3d,
    write_pascal3d,
    write_record,
    write_voc,
)

CAR_CHAIR = ("car", "chair")


def by_id(evalset: EvalSet) -> dict[str, EvalImage]:
    return {image.image_id: image for image in evalset.images}


# --------------------------------------------------------------------------- conventions
def devkit_iou(a, b) -> float:
    """The VOC devkit's IoU of 1-based inclusive boxes (``+ 1`` widths)."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - iw * ih
    return iw * ih / union


def continuous_iou(a, b) -> float:
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih)


def test_devkit_box_conversion_preserves_the_devkit_iou():
    assert devkit_box(1, 1, 10, 20) == (0.0, 0.0, 10.0, 20.0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = [*rng.integers(1, 50, 2)]
        a += [a[0] + int(rng.integers(0, 30)), a[1] + int(rng.integers(0, 30))]
        b = [*rng.integers(1, 50, 2)]
        b += [b[0] + int(rng.integers(0, 30)), b[1] + int(rng.integers(0, 30))]
        assert continuous_iou(devkit_box(*a), devkit_box(*b)) == pytest.approx(devkit_iou(a, b))


@pytest.mark.parametrize(("deg", "azimuth", "angle"), [
    (0.0, 0.0, 0.0), (355.0, 355.0, -5.0), (-2.0, 358.0, -2.0), (360.0, 0.0, 0.0), (180.0, 180.0, 180.0),
    (-180.0, 180.0, 180.0), (540.0, 180.0, 180.0), (-1e-15, 0.0, -1e-15), (721.5, 1.5, 1.5),
])
def test_angle_wrapping(deg, azimuth, angle):
    assert wrap_azimuth(deg) == pytest.approx(azimuth)
    assert 0.0 <= wrap_azimuth(deg) < 360.0
    assert wrap_angle(deg) == pytest.approx(angle)
    assert -180.0 < wrap_angle(deg) <= 180.0


def test_crop_object():
    image = np.arange(10 * 20 * 3, dtype=np.uint8).reshape(10, 20, 3)
    assert crop_object(image, (2.0, 3.0, 6.0, 8.0)).shape == (5, 4, 3)
    np.testing.assert_array_equal(crop_object(image, (2.0, 3.0, 6.0, 8.0)), image[3:8, 2:6])
    assert crop_object(image, (2.5, 3.2, 5.5, 7.9)).shape == (5, 4, 3)  # rounded outwards
    assert crop_object(image, (4.0, 4.0, 8.0, 6.0), context=0.5).shape == (4, 8, 3)  # 2 px / 1 px each side
    assert crop_object(image, (-5.0, -5.0, 100.0, 100.0)).shape == image.shape  # clipped
    assert crop_object(image, (0.0, 0.0, 100.0, 100.0), context=1.0).shape == image.shape
    assert crop_object(image, (5.0, 5.0, 5.0, 5.0)).shape == (1, 1, 3)  # degenerate: never empty
    assert crop_object(image, (50.0, 50.0, 60.0, 60.0)).shape == (1, 1, 3)  # outside the image
    assert crop_object(image, (-9.0, -9.0, -3.0, -3.0)).shape == (1, 1, 3)
    assert crop_object(image[..., 0], (2.0, 3.0, 6.0, 8.0)).shape == (5, 4)
    assert crop_object(image, None) is image
    with pytest.raises(ValueError, match="context"):
        crop_object(image, (0, 0, 1, 1), context=-0.1)


# --------------------------------------------------------------------------- .mat records
def test_read_record_fields(tmp_path):
    path = write_record(tmp_path / "r.mat", "a.jpg", [
        record_object("car", [1, 2, 6, 7], viewpoint(azimuth=20.0, elevation=30.0, distance=0.0, theta=200.0,
                                                      azimuth_coarse=-15.0, elevation_coarse=355.0)),
        record_object("chair", [3, 3, 9, 8], viewpoint(azimuth=370.0, elevation=-190.0, distance=2.5), cad_index=7,
                      truncated=1, occluded=1, difficult=1),
        record_object("sofa", [1, 1, 2, 2], None, cad_index=np.zeros((0, 0))),
    ], width=40, height=30)
    filename, width, height, objects = read_record(path)
    assert (filename, width, height) == ("a.jpg", 40, 30)
    coarse, fine, empty = objects
    # distance == 0: the coarse angles, whatever the fine fields hold; distance reported as None
    assert (coarse.category, coarse.bbox) == ("car", (0.0, 1.0, 6.0, 7.0))
    assert (coarse.azimuth, coarse.elevation, coarse.theta, coarse.distance) == (345.0, -5.0, -160.0, None)
    assert (fine.azimuth, fine.elevation, fine.theta, fine.distance) == (10.0, 170.0, 0.0, 2.5)
    assert (fine.truncated, fine.occluded, fine.difficult, fine.instance) == (True, True, True, "07")
    assert (empty.azimuth, empty.elevation, empty.theta, empty.distance, empty.instance) == (None,) * 5
    assert not (coarse.truncated or coarse.occluded or coarse.difficult)


def test_read_record_single_object_and_no_objects(tmp_path):
    one = read_record(write_record(tmp_path / "one.mat", "a.jpg", [record_object("bus", [1, 1, 4, 4])]))
    assert [o.category for o in one.objects] == ["bus"]
    assert read_record(write_record(tmp_path / "none.mat", "b.jpg", [])).objects == ()


def test_read_record_fine_empty_falls_back_to_coarse(tmp_path):
    """ObjectNet3D records (demo.mat) may leave azimuth/elevation empty with distance != 0."""
    vp = viewpoint(distance=3.6, azimuth_coarse=-2.0, elevation_coarse=16.0, theta=-0.5)
    (obj,) = read_record(write_record(tmp_path / "r.mat", "a.jpg", [record_object("bed", [1, 1, 4, 4], vp)])).objects
    assert (obj.azimuth, obj.elevation, obj.theta, obj.distance) == (358.0, 16.0, -0.5, 3.6)


def test_read_record_malformed(tmp_path):
    good = write_record(tmp_path / "good.mat", "a.jpg", [record_object("car", [1, 1, 4, 4])] * 2)
    truncated = tmp_path / "truncated.mat"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(DatasetFormatError, match=r"truncated\.mat: not a readable MATLAB file"):
        read_record(truncated)
    bad = write_record(tmp_path / "car_pascal" / "2008_000027.mat", "a.jpg",
                       [record_object("car", [1, 1, 4, 4]), record_object("car", [1, 2, 3])])
    with pytest.raises(DatasetFormatError) as err:
        read_record(bad)
    assert str(err.value) == f"{bad}: record.objects(2).bbox: expected 4 numbers, got 3"
    inverted = write_record(tmp_path / "inv.mat", "a.jpg", [record_object("car", [5, 1, 4, 4])])
    with pytest.raises(DatasetFormatError, match=r"inv\.mat: record\.objects\(1\)\.bbox"):
        read_record(inverted)
    no_class = write_record(tmp_path / "nc.mat", "a.jpg", [{"bbox": np.array([1.0, 1, 2, 2])}])
    with pytest.raises(DatasetFormatError, match=r"nc\.mat: record\.objects\(1\)\.class: missing"):
        read_record(no_class)
    bad_angle = write_record(tmp_path / "ba.mat", "a.jpg",
                             [record_object("car", [1, 1, 2, 2], viewpoint(azimuth=np.array([1.0, 2.0])))])
    with pytest.raises(DatasetFormatError, match=r"ba\.mat: record\.objects\(1\)\.viewpoint\.azimuth"):
        read_record(bad_angle)


# --------------------------------------------------------------------------- PASCAL3D+
def test_pascal3d_imagenet(tmp_path):
    root = write_pascal3d(tmp_path / "PASCAL3D+_release1.1")
    val = load_pascal3d(root, "imagenet", "val", classes=CAR_CHAIR)
    assert (val.name, val.domain, val.categories, val.has_viewpoint) == ("pascal3d_imagenet", "real", CAR_CHAIR, True)
    images = by_id(val)
    assert sorted(images) == ["n001", "n101"]
    car = images["n001"]
    assert car.image == root / "Images" / "car_imagenet" / "n001.JPEG" and car.image.is_file()
    assert (car.split, car.width, car.height) == ("val", 12, 8)
    (obj,) = car.objects
    assert obj.bbox == (0.0, 0.0, 10.0, 8.0)
    assert (obj.azimuth, obj.elevation, obj.theta, obj.distance, obj.instance) == (30.5, -5.0, -170.0, 5.0, "03")
    train = load_pascal3d(root, "imagenet", "train", classes=CAR_CHAIR)
    assert [i.image_id for i in train.images] == ["n002"]
    assert [i.image_id for i in load_pascal3d(root, "imagenet", "val", classes=["chair"]).images] == ["n101"]


def test_pascal3d_pascal_merges_class_folders(tmp_path):
    root = write_pascal3d(tmp_path / "p3d")
    val = load_pascal3d(root, "pascal", "val", classes=CAR_CHAIR)
    images = by_id(val)
    assert sorted(images) == ["2008_000001", "2008_000002"]  # 000003 has no annotation of car or chair
    merged = images["2008_000001"]
    assert merged.image.is_file() and merged.split == "val"
    objects = {(o.category, o.bbox): o for o in merged.objects}
    assert len(merged.objects) == len(objects) == 3  # car once, chair once, the difficult chair
    car = objects[("car", (0.0, 1.0, 6.0, 7.0))]
    assert (car.azimuth, car.elevation, car.theta, car.distance) == (350.0, -10.0, 2.0, None)  # coarse: distance 0
    chair = objects[("chair", (6.0, 0.0, 12.0, 8.0))]
    # the chair comes from its own folder, from the copy that has a viewpoint
    assert (chair.azimuth, chair.elevation, chair.theta, chair.instance) == (270.0, 10.0, -5.0, "02")
    assert objects[("chair", (2.0, 2.0, 5.0, 5.0))].difficult
    (empty,) = images["2008_000002"].objects
    assert (empty.azimuth, empty.elevation, empty.theta) == (None, None, None)
    only_car = load_pascal3d(root, "pascal", "val", classes=["car"])
    assert [(i.image_id, [o.category for o in i.objects]) for i in only_car.images] == [("2008_000001", ["car"])]
    assert [i.image_id for i in load_pascal3d(root, "pascal", "train", classes=CAR_CHAIR).images] == ["2008_000004"]
    assert len(val.objects()) == 4 and len(val.split("val").images) == 2


def test_pascal3d_errors(tmp_path):
    with pytest.raises(DatasetNotFound) as err:
        load_pascal3d(tmp_path / "absent", "imagenet", "val")
    assert str(err.value) == f"skipped: PASCAL3D+ not found at {tmp_path / 'absent'}"
    assert isinstance(err.value, FileNotFoundError)
    root = write_pascal3d(tmp_path / "p3d")
    with pytest.raises(DatasetFormatError, match=r"Annotations/bus_imagenet: missing"):
        load_pascal3d(root, "imagenet", "val", classes=["bus"])
    with pytest.raises(ValueError, match="unknown classes"):
        load_pascal3d(root, "imagenet", "val", classes=["bed"])
    with pytest.raises(ValueError, match="subset"):
        load_pascal3d(root, "coco", "val")
    write_lines(root / "Image_sets" / "car_imagenet_val.txt", ["n001", "n999"])
    with pytest.raises(DatasetFormatError, match=r"car_imagenet_val\.txt: line 2: 'n999' has no"):
        load_pascal3d(root, "imagenet", "val", classes=["car"])


# --------------------------------------------------------------------------- ObjectNet3D
def test_objectnet3d_class_map_and_filter(tmp_path):
    root = write_objectnet3d(tmp_path / "ObjectNet3D")
    val = load_objectnet3d(root, "val")
    assert (val.name, val.domain, val.has_viewpoint) == ("objectnet3d", "real", True)
    assert val.categories == ("bed", "bookcase", "diningtable", "drones")
    first = by_id(val)["n01"]
    assert first.image == root / "Images" / "n01.JPEG"
    assert [o.category for o in first.objects] == ["bookcase", "diningtable", "drones"]
    assert (first.objects[0].azimuth, first.objects[0].elevation, first.objects[0].instance) == (358.0, 16.0, "04")
    kept = load_objectnet3d(root, "val", classes=["bookcase", "bed"])
    assert kept.categories == ("bed", "bookcase")
    assert [o.category for _, o in kept.objects()] == ["bookcase", "bed"]
    assert [i.image_id for i in load_objectnet3d(root, "train").images] == ["n03"]
    raw = load_objectnet3d(root, "val", class_map={})
    assert "bookshelf" in raw.categories and "bookcase" not in raw.categories
    with pytest.raises(DatasetFormatError, match=r"test\.txt: line 1: 'n04' has no Annotations/n04\.mat"):
        load_objectnet3d(root, "test")


# --------------------------------------------------------------------------- PASCAL VOC
def test_voc(tmp_path):
    write_voc(tmp_path / "VOCdevkit", year="2007")
    val = load_voc(tmp_path / "VOCdevkit", year="2007", split="val")
    assert (val.name, val.domain, val.has_viewpoint, len(val.categories)) == ("voc", "real", False, 20)
    images = by_id(val)
    assert sorted(images) == ["000001", "000002"]
    car, person = images["000001"].objects
    assert (car.category, car.bbox, car.difficult, car.azimuth) == ("car", (0.0, 1.0, 6.0, 7.0), True, None)
    assert (person.category, person.difficult, person.truncated, person.occluded) == ("person", False, False, False)
    (chair,) = images["000002"].objects
    assert (chair.truncated, chair.occluded, chair.difficult) == (True, True, False)
    assert images["000002"].image.is_file() and (images["000002"].width, images["000002"].height) == (12, 8)
    direct = load_voc(tmp_path / "VOCdevkit" / "VOC2007", year="2007", split="val")
    assert direct.images == val.images
    cars = load_voc(tmp_path / "VOCdevkit", year="2007", classes=["car", "chair"])
    assert cars.categories == ("car", "chair") and len(cars.images) == 2  # images without a kept object stay
    assert [o.category for _, o in cars.objects()] == ["car", "chair"]
    assert [i.image_id for i in load_voc(tmp_path / "VOCdevkit", year="2007", split="train").images] == ["000003"]
    with pytest.raises(DatasetNotFound, match=r"^skipped: VOC2012 not found at "):
        load_voc(tmp_path / "nothing")


@pytest.mark.parametrize(("xml", "match"), [
    ("<annotation><object><name>car</name>", r"000001\.xml: not well-formed XML"),
    (voc_xml("000001.jpg", [{"name": "car", "bbox": (1, 1, 4, 4)}, {"name": "car", "bbox": None}]),
     r"000001\.xml: object\[2\]/bndbox: missing"),
    (voc_xml("000001.jpg", [{"name": "car", "bbox": (1, 1, "x", 4)}]),
     r"000001\.xml: object\[1\]/bndbox/xmax: expected a number, got 'x'"),
    (voc_xml("000001.jpg", [{"name": "lamp", "bbox": (1, 1, 4, 4)}]), r"000001\.xml: object\[1\]/name: 'lamp' is not"),
])
def test_voc_malformed(tmp_path, xml, match):
    write_voc(tmp_path)
    (tmp_path / "VOC2012" / "Annotations" / "000001.xml").write_text(xml)
    with pytest.raises(DatasetFormatError, match=match):
        load_voc(tmp_path)


# --------------------------------------------------------------------------- IKEA
def test_ikea(tmp_path, caplog):
    root, splits = write_ikea(tmp_path)
    with caplog.at_level(logging.WARNING, logger="cad2real.evalsets"):
        ikea = load_ikea(root, splits)
    assert [r.message for r in caplog.records if "not in" in r.message] == [
        f"IKEA: 1 images of Lists/Images.txt are not in {splits} (split 'unassigned'), e.g. ['00000006_001.jpg']"]
    assert (ikea.name, ikea.domain, ikea.has_viewpoint, ikea.categories) == ("ikea", "real", False, IKEA_CLASSES)
    assert len(ikea.images) == len(IKEA_ROWS)
    first = ikea.images[0]
    assert first == EvalImage(image=root / "Images" / "00000001_001.jpg", split="val", image_id="00000001_001",
                              objects=(EvalObject("chair", None, instance="IKEA_chair_POANG"),))
    assert first.image.is_file()
    assert [o.category for _, o in ikea.objects()] == ["chair", "bookcase", "diningtable", "bed", "desk", "sofa"]
    assert Counter(i.split for i in ikea.images) == {"val": 2, "test": 3, "unassigned": 1}
    val = load_ikea(root, splits, split="val")
    assert [i.image_id for i in val.images] == ["00000001_001", "00000004_001"] and val.categories == IKEA_CLASSES
    assert {i.split for i in load_ikea(root).images} == {"unassigned"}
    with pytest.raises(ValueError, match="no image in split 'train'"):
        load_ikea(root, splits, split="train")


def test_ikea_not_found(tmp_path):
    with pytest.raises(DatasetNotFound) as err:
        load_ikea(tmp_path / "IKEA")
    assert str(err.value) == f"skipped: IKEA not found at {tmp_path / 'IKEA'}"
    root, _ = write_ikea(tmp_path)
    with pytest.raises(DatasetNotFound, match=r"^skipped: IKEA splits not found at .*missing\.csv$"):
        load_ikea(root, tmp_path / "missing.csv")


def test_ikea_list_length_mismatch(tmp_path):
    root, splits = write_ikea(tmp_path)
    write_lines(root / "Lists" / "Model.txt", [r[1] for r in IKEA_ROWS[:-1]])
    with pytest.raises(DatasetFormatError, match=r"Lists/Model\.txt: line 6: 5 lines but Lists/Images\.txt has 6"):
        load_ikea(root, splits)


@pytest.mark.parametrize(("row", "match"), [
    (["00000002_001.jpg", "chair", "IKEA_bookcase_BILLY", "test"], r"splits\.csv: line 3: category: 'chair' but"),
    (["00000002_001.jpg", "bookcase", "IKEA_bookcase_HEMNES", "test"], r"splits\.csv: line 3: ikea_model: "),
    (["00000009_001.jpg", "bookcase", "IKEA_bookcase_BILLY", "test"], r"splits\.csv: line 3: image '00000009_001"),
])
def test_ikea_splits_disagree(tmp_path, row, match):
    root, splits = write_ikea(tmp_path)
    lines = splits.read_text().splitlines()
    lines[2] = ",".join(row)
    splits.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=match):
        load_ikea(root, splits)


def test_ikea_malformed_lists(tmp_path):
    root, splits = write_ikea(tmp_path)
    splits.write_text("image,category,split\n00000001_001.jpg,chair,val\n")
    with pytest.raises(DatasetFormatError, match=r"splits\.csv: column ikea_model: missing"):
        load_ikea(root, splits)
    models = [r[1] for r in IKEA_ROWS]
    models[3] = "IKEA_lamp_FOTO/aa_obj0_object"
    write_lines(root / "Lists" / "Model.txt", models)
    with pytest.raises(DatasetFormatError, match=r"Model\.txt: line 4: class 'lamp' not in the IKEA class map"):
        load_ikea(root)
    models[3] = "chair/aa_obj0_object"
    write_lines(root / "Lists" / "Model.txt", models)
    with pytest.raises(DatasetFormatError, match=r"Model\.txt: line 4: expected IKEA_<class>_<NAME>"):
        load_ikea(root)


# --------------------------------------------------------------------------- proxy-real
def proxy_manifest(**overrides) -> pd.DataFrame:
    rows = [
        {"image_id": "m1-p0000", "image": "shards/m1/0000.jpg", "width": 64, "height": 48, "split": "test",
         "domain": PROXY_REAL, "synthetic": True, "category": "car", "model_id": "m1", "bbox_x0": 1.5,
         "bbox_y0": 2.0, "bbox_x1": 30.25, "bbox_y1": 40.0, "azimuth": 359.5, "elevation": 355.0, "theta": -3.0,
         "distance": 2.5, "truncated": True, "occluded": False, "occluded_fraction": 0.0, "difficult": False},
        {"image_id": "m2-p0000", "image": "shards/m2/0000.jpg", "width": 64, "height": 48, "split": "test",
         "domain": PROXY_REAL, "synthetic": True, "category": "bed", "model_id": "m2", "bbox_x0": 0.0,
         "bbox_y0": 0.0, "bbox_x1": 64.0, "bbox_y1": 48.0, "azimuth": -10.0, "elevation": 5.0, "theta": 0.0,
         "distance": 3.0, "truncated": False, "occluded": True, "occluded_fraction": 0.2, "difficult": False},
    ]
    return pd.DataFrame(rows).assign(**overrides)


def test_proxy_real(tmp_path):
    write_manifest(proxy_manifest(), tmp_path / "manifest.parquet")
    proxy = load_evalset("proxy_real", tmp_path)
    assert (proxy.name, proxy.domain, proxy.has_viewpoint, proxy.categories) == (
        "proxy_real", "proxy-real (synthetic)", True, ("bed", "car"))
    first, second = proxy.images
    assert (first.image, first.image_id, first.split, first.width, first.height) == (
        tmp_path / "shards/m1/0000.jpg", "m1-p0000", "test", 64, 48)
    assert first.objects == (EvalObject("car", (1.5, 2.0, 30.25, 40.0), 359.5, -5.0, -3.0, 2.5, truncated=True,
                                        instance="m1"),)
    assert (second.objects[0].azimuth, second.objects[0].occluded) == (350.0, True)
    assert len(proxy.split("test").images) == 2


def test_proxy_real_errors(tmp_path):
    with pytest.raises(DatasetNotFound, match=r"^skipped: proxy_real not found at "):
        load_proxy_real(tmp_path)
    write_manifest(proxy_manifest().drop(columns=["bbox_y1"]), tmp_path / "manifest.parquet")
    with pytest.raises(DatasetFormatError, match=r"manifest\.parquet: column bbox_y1: missing"):
        load_proxy_real(tmp_path)
    write_manifest(proxy_manifest(domain="real"), tmp_path / "manifest.parquet")
    with pytest.raises(DatasetFormatError, match=r"manifest\.parquet: domain: expected 'proxy-real \(synthetic\)'"):
        load_proxy_real(tmp_path)
    write_manifest(proxy_manifest(category="lamp"), tmp_path / "manifest.parquet")
    with pytest.raises(DatasetFormatError, match=r"manifest\.parquet: category: \['lamp'\]"):
        load_proxy_real(tmp_path)


# --------------------------------------------------------------------------- dispatch
def test_load_evalset_dispatch(tmp_path):
    root, splits = write_ikea(tmp_path / "ikea")
    assert load_evalset("ikea", root, splits_csv=str(splits), split="test").name == "ikea"
    assert load_evalset("objectnet3d", write_objectnet3d(tmp_path / "on"), split="val").name == "objectnet3d"
    assert load_evalset("voc", write_voc(tmp_path / "voc")).name == "voc"
    p3d = load_evalset("pascal3d", write_pascal3d(tmp_path / "p3d"), subset="pascal", split="val", classes=CAR_CHAIR)
    assert p3d.name == "pascal3d_pascal"
    with pytest.raises(ValueError, match="unknown eval set kind 'coco'"):
        load_evalset("coco", tmp_path)


# --------------------------------------------------------------------------- real data
@pytest.mark.shared_data
def test_real_ikea_lists_and_splits():
    root, splits = shared_data("ikea", "IKEA"), shared_data("ikea", "splits.csv")
    ikea = load_ikea(root, splits)
    assert len(ikea.images) == 631 and all(len(i.objects) == 1 for i in ikea.images)
    assert {o.category for _, o in ikea.objects()} == {"bed", "bookcase", "chair", "desk", "sofa", "diningtable"}
    with splits.open(newline="") as f:
        expected = Counter(row["split"] for row in csv.DictReader(f))
    assert Counter(i.split for i in ikea.images) == expected == {"val": 191, "test": 440}
    assert len(load_ikea(root, splits, split="val").images) == 191
    test = load_ikea(root, splits, split="test")
    assert len(test.images) == 440 and all(i.image.is_file() for i in test.images)
    assert all(o.instance.startswith(f"IKEA_{'table' if o.category == 'diningtable' else o.category}_")
               for _, o in ikea.objects())


@pytest.mark.shared_data
def test_real_objectnet3d_demo_record():
    filename, width, height, objects = read_record(shared_data("objectnet3d_record", "demo.mat"))
    assert (filename, width, height) == ("n00.JPEG", 500, 500)
    (obj,) = objects
    assert obj.category == "drones" and obj.bbox == (16.0, 72.0, 478.0, 375.0)
    # azimuth/elevation are empty with distance != 0: the coarse values (-2 -> 358, 16)
    assert (obj.azimuth, obj.elevation) == (358.0, 16.0)
    assert obj.theta == pytest.approx(-0.52092) and obj.distance == pytest.approx(3.5937636)
    assert (obj.truncated, obj.occluded, obj.difficult, obj.instance) == (False, True, False, "01")


@pytest.mark.shared_data
def test_real_demo_record_in_an_objectnet3d_layout(tmp_path):
    """The real record file in the ObjectNet3D layout: no class filter keeps 'drones'."""
    demo = shared_data("objectnet3d_record", "demo.mat")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "n00.mat").write_bytes(demo.read_bytes())
    write_lines(tmp_path / "Image_sets" / "val.txt", ["n00"])
    evalset = load_objectnet3d(tmp_path, "val")
    assert evalset.categories == ("drones",) and evalset.images[0].image == tmp_path / "Images" / "n00.JPEG"
    assert load_objectnet3d(tmp_path, "val", classes=["bed"]).objects() == []
