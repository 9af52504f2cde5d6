"""The viewpoint stages' pure parts and failure behaviour: real PASCAL3D+ training boxes
from a fixture in the dataset's own format, AP/AVP of detections on a hand-made case,
errors that name the file and the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.evalsets import EvalImage, EvalObject, EvalSet
from core.features import FeatureExtractor
from core.params import EvalDatasetParams
from stages import evaluate_viewpoint, train_viewpoint, viewpoint_features
from tests.core.evalset_fixtures import write_pascal3d


def _full_release(root: Path) -> Path:
    """The car/chair fixture with the other PASCAL3D+ classes present and empty (a whole
    release, as the loader expects without a class filter)."""
    from core.evalsets import PASCAL3D_CLASSES

    write_pascal3d(root)
    for cls in PASCAL3D_CLASSES:
        (root / "Annotations" / f"{cls}_imagenet").mkdir(parents=True, exist_ok=True)
        for split in ("train", "val"):
            lst = root / "Image_sets" / f"{cls}_imagenet_{split}.txt"
            if not lst.exists():
                lst.write_text("")
    return root


def _with_real(params, root: Path, split: str):
    d = EvalDatasetParams(name="p3d_train", kind="pascal3d", root=str(root), subset="imagenet", split=split)
    return params.model_copy(update={"viewpoint": params.viewpoint.model_copy(update={"real_train": d})})


@pytest.fixture(scope="module")
def extractor():
    from core.params import FeaturesParams

    return FeatureExtractor(FeaturesParams(weights=None, layers=("c3",), grid=2), layers=["c3"])


def test_real_training_boxes_come_from_the_train_split_with_mirrored_targets(small_params, tmp_path, extractor):
    params = _with_real(small_params, _full_release(tmp_path / "p3d"), "train")
    feats, rows, domain = viewpoint_features.real_rows(extractor, "c3", params)
    assert domain == "real"
    assert [r["source"] for r in rows] == ["real"] * 4  # n002's car: box, jittered box, and their mirrors
    assert [r["azimuth"] for r in rows] == [10.0, 10.0, 350.0, 350.0]
    assert [r["flipped"] for r in rows] == [False, False, True, True]
    assert sum(len(f) for f in feats) == 4 and {r["category"] for r in rows} == {"car"}


def test_real_training_refuses_an_evaluation_split(small_params, tmp_path, extractor):
    params = _with_real(small_params, _full_release(tmp_path / "p3d"), "val")
    with pytest.raises(ValueError, match=r"viewpoint.real_train: split 'val' is an evaluation split"):
        viewpoint_features.real_rows(extractor, "c3", params)


def test_real_training_without_the_dataset_names_it(small_params, tmp_path, extractor):
    params = _with_real(small_params, tmp_path / "nowhere", "train")
    with pytest.raises(FileNotFoundError, match=r"viewpoint.real_train: .*nowhere.*\*_real methods"):
        viewpoint_features.real_rows(extractor, "c3", params)


def test_training_without_features_names_the_stage(small_params):
    with pytest.raises(FileNotFoundError, match=r"viewpoint_features/features.npy: not found \(run the viewpoint_features"):
        train_viewpoint.run(small_params, "classif")


def test_evaluation_without_models_names_the_folder(small_params):
    with pytest.raises(Exception, match=r"viewpoint/detector/predictor.json: no trained model here"):
        evaluate_viewpoint.run(small_params)


def test_ap_and_avp_of_detections_by_hand():
    """Image a: one car at az 30 and a difficult car; image b: one car at az 100.
    Detections, best first: a's car with az 32 (correct, right view), a window on nothing,
    b's car with az 200 (correct, wrong view). Precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1:
    AP = 1/2 * 1 + 1/2 * 2/3 = 5/6. View precision 1, 1/2, 1/3 -> AVP = 1/2 * 1 + 1/2 * 1/3 = 2/3."""
    car = EvalObject("car", (0.0, 0.0, 10.0, 10.0), azimuth=30.0)
    hard = EvalObject("car", (20.0, 20.0, 30.0, 30.0), azimuth=0.0, difficult=True)
    evalset = EvalSet("toy", "proxy-real (synthetic)", Path("."), (
        EvalImage(Path("a.png"), (car, hard), "val", "a", 40, 40),
        EvalImage(Path("b.png"), (EvalObject("car", (5.0, 5.0, 15.0, 15.0), azimuth=100.0),), "val", "b", 40, 40)),
        ("car",), True)
    found = [{"image_id": "a", "category": "car", "score": 0.9, "box": [0, 0, 10, 10], "azimuth": 32.0},
             {"image_id": "a", "category": "car", "score": 0.8, "box": [30, 0, 40, 10], "azimuth": 0.0},
             {"image_id": "b", "category": "car", "score": 0.7, "box": [5, 5, 15, 15], "azimuth": 200.0}]
    r = evaluate_viewpoint.detection_metrics(found, evalset, ("car", "chair"), (4, 24), 0.5)
    assert r["map"] == pytest.approx(5 / 6, abs=1e-4) and r["classes"] == 1
    assert r["mavp_4"] == pytest.approx(2 / 3, abs=1e-4) and r["mavp_24"] == pytest.approx(2 / 3, abs=1e-4)


def test_the_targets_read_the_tables():
    values = {"known_boxes": {"proxy_real": {"classif": {"acc_pi_6": 0.6}, "reg2d": {"acc_pi_6": 0.5}}},
              "detection": {"d": {"reg2d": {"mavp_24": 0.1}, "classif": {"mavp_24": 0.2},
                                  "joint_classif": {"mavp_24": 0.25}}}}
    t = evaluate_viewpoint.targets(values, ["reg2d", "classif", "joint_classif"])
    assert t["proxy_real_best_acc_pi_6"] == {"method": "classif", "value": 0.6, "target": 0.8, "met": False}
    assert t["classification_beats_regression"]["met"] is True
    assert t["joint_helps_avp"] == {"pairs": {"joint_classif": {"joint": 0.25, "independent": 0.2}}, "met": True}
    assert np.isfinite(t["classification_beats_regression"]["best_regression_mavp_24"])
