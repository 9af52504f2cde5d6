"""The evaluate stage: closed-set scoring, exclusions, skipped datasets, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.baseline import HogSoftmax
from core.evalsets import DatasetNotFound, EvalImage, EvalObject, EvalSet
from core.params import EvalDatasetParams, parse_params
from stages import evaluate
from tests.conftest import shared_data, small_params_raw
from tests.core.test_predictors import stripes


def rows(categories: list[str]) -> list[evaluate.ObjectRow]:
    return [evaluate.ObjectRow(Path(f"{i}.jpg"), None, c, None, None) for i, c in enumerate(categories)]


def test_score_restricts_the_argmax_to_the_label_set():
    model_classes = ("aeroplane", "chair", "sofa")
    # Object 0: aeroplane is the model's argmax but not in the label set -> sofa (0.3 > 0.2).
    proba = np.array([[0.5, 0.2, 0.3], [0.1, 0.8, 0.1], [0.1, 0.6, 0.3], [0.0, 0.1, 0.9]])
    result, extras = evaluate.score(rows(["sofa", "chair", "sofa", "sofa"]), proba, None, model_classes,
                                    ["chair", "sofa"], n_bins=10)
    assert list(extras["pred"]) == ["sofa", "chair", "chair", "sofa"]
    assert result["accuracy"] == 0.75  # 3 of 4
    assert result["per_class_accuracy"] == {"chair": 1.0, "sofa": pytest.approx(0.6667, abs=1e-4)}
    assert result["mean_class_accuracy"] == pytest.approx((1.0 + 2 / 3) / 2, abs=1e-4)
    assert result["chance"] == {"majority_class_accuracy": 0.75, "uniform_mean_class_accuracy": 0.5}
    # Renormalised over {chair, sofa}: object 0 has confidence 0.3 / 0.5.
    assert extras["confidence"][0] == pytest.approx(0.6)
    assert extras["confusion"].tolist() == [[1, 0], [1, 2]]
    assert "viewpoint" not in result


def test_score_reports_viewpoint_errors_when_the_model_has_them():
    r = [evaluate.ObjectRow(Path("a.jpg"), None, "car", (10.0, 0.0, 0.0), None),
         evaluate.ObjectRow(Path("b.jpg"), None, "car", (350.0, 0.0, 0.0), None)]
    views = np.array([[41.0, 0.0, 0.0], [5.0, 0.0, 0.0]])  # errors: 31 deg (a miss) and 15 deg
    result, _ = evaluate.score(r, np.ones((2, 1)), views, ("car",), ["car"], n_bins=10)
    assert result["viewpoint"] == {"acc_pi_6": 0.5, "median_error_deg": 23.0}


def test_select_objects_exclusions_and_subset():
    objs = [EvalObject("chair", None, difficult=True), EvalObject("chair", None, truncated=True),
            EvalObject("aeroplane", None), *[EvalObject("sofa", None, instance=f"s{i}") for i in range(5)]]
    images = tuple(EvalImage(Path(f"{i}.jpg"), (o,), "test", str(i)) for i, o in enumerate(objs))
    evalset = EvalSet("x", "real", Path("."), images, ("aeroplane", "chair", "sofa"), False)
    d = EvalDatasetParams(name="x", kind="ikea", exclude_truncated=True)
    kept, dropped = evaluate.select_objects(evalset, d, {"chair", "sofa"})
    assert dropped == {"difficult": 1, "truncated": 1, "occluded": 0, "class_not_in_model": 1}
    assert [r.category for r in kept] == ["sofa"] * 5
    few, _ = evaluate.select_objects(evalset, d.model_copy(update={"max_objects": 2}), {"chair", "sofa"})
    again, _ = evaluate.select_objects(evalset, d.model_copy(update={"max_objects": 2}), {"chair", "sofa"})
    assert len(few) == 2 and few == again  # a deterministic subset, in dataset order


@pytest.fixture
def model_params(tmp_path: Path):
    """Params of the small profile with a tiny trained baseline in paths.models."""
    rng = np.random.default_rng(0)
    cats = ["bed", "bookcase", "chair", "desk", "diningtable", "sofa"]
    images = [stripes(i % 2 == 0, rng) for i in range(24)]
    HogSoftmax.fit(images, [cats[i % 6] for i in range(24)], cats, size=32, l2=0.1, max_iter=20,
                   info={"training_data": "synthetic only (test)"}).save(tmp_path / "data/models/baseline")
    return small_params_raw(tmp_path)


def test_evaluate_on_real_ikea_photos_and_a_missing_dataset(model_params, tmp_path):
    ikea = shared_data("ikea", "IKEA")
    model_params["evaluate"]["datasets"] = [
        {"name": "ikea_test", "kind": "ikea", "root": str(ikea), "split": "test", "max_objects": 30,
         "splits_csv": str(ikea.parent / "splits.csv")},
        {"name": "pascal3d_val", "kind": "pascal3d", "root": str(tmp_path / "nowhere")},
    ]
    params = parse_params(model_params, "test")
    values = evaluate.run(params, "baseline")
    ikea_result = values["datasets"]["ikea_test"]
    assert ikea_result["domain"] == "real" and ikea_result["objects"] == 30
    assert 0.0 <= ikea_result["accuracy"] <= 1.0 and sum(ikea_result["per_class_objects"].values()) == 30
    assert values["skipped"]["pascal3d_val"].startswith("skipped: PASCAL3D+ not found at")
    assert values["model"]["training_data"] == "synthetic only (test)"
    on_disk = json.loads((Path(params.paths.metrics) / "evaluate" / "baseline.json").read_text())
    assert on_disk["datasets"]["ikea_test"]["accuracy"] == ikea_result["accuracy"]
    assert on_disk["datasets"]["ikea_test"]["contract"]["success"]  # real photos pass the evalset suite
    assert "VOC" not in on_disk["conventions"]["accuracy"] and on_disk["conventions"]["label_set"].startswith("closed")
    for suffix in ("confusion.png", "per_class.png", "reliability.png", "confusion.csv"):
        assert (Path(params.paths.plots) / "evaluate" / "baseline" / f"ikea_test_{suffix}").is_file()
    predictions = pd.read_parquet(Path(params.paths.evaluation) / "baseline" / "predictions.parquet")
    assert len(predictions) == 30 and set(predictions["dataset"]) == {"ikea_test"}
    report = (Path(params.paths.reports) / "evaluate" / "baseline.md").read_text()
    assert "trained on synthetic only (test)" in report and "skipped: PASCAL3D+ not found" in report


def test_a_required_missing_dataset_fails(model_params, tmp_path):
    model_params["evaluate"]["datasets"] = [
        {"name": "voc", "kind": "voc", "root": str(tmp_path / "VOCdevkit"), "required": True}]
    with pytest.raises(DatasetNotFound, match="VOCdevkit"):
        evaluate.run(parse_params(model_params, "test"), "baseline")


def test_a_corrupt_photo_is_reported_and_the_rest_evaluated(model_params, tmp_path, caplog):
    """IKEA fixture in the Girdhar layout; one photo of the test split is corrupt."""
    from tests.core.evalset_fixtures import write_ikea

    ikea, splits = write_ikea(tmp_path / "ikea")
    (ikea / "Images" / "00000003_001.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    model_params["evaluate"]["datasets"] = [
        {"name": "ikea_test", "kind": "ikea", "root": str(ikea), "splits_csv": str(splits), "split": "test"}]
    with caplog.at_level("WARNING"):
        values = evaluate.run(parse_params(model_params, "test"), "baseline")
    result = values["datasets"]["ikea_test"]
    assert result["objects"] == 2 and result["excluded"]["unreadable_image"] == 1  # bookcase and desk remain
    assert "00000003_001.jpg: not a readable image" in result["unreadable"][0]
    assert "00000003_001.jpg" in caplog.text


def test_the_evalset_contract_is_recorded(model_params, tmp_path, caplog):
    """The IKEA fixture's photos are flat grey: the evalset suite fails, the stage says so
    (a warning naming the dataset) and records it beside the scores."""
    from tests.core.evalset_fixtures import write_ikea

    ikea, splits = write_ikea(tmp_path / "ikea")
    model_params["evaluate"]["datasets"] = [
        {"name": "ikea_test", "kind": "ikea", "root": str(ikea), "splits_csv": str(splits), "split": "test"}]
    with caplog.at_level("WARNING"):
        values = evaluate.run(parse_params(model_params, "test"), "baseline")
    contract = values["datasets"]["ikea_test"]["contract"]
    assert not contract["success"] and "constant" in contract["failures"][0]
    assert "ikea_test" in caplog.text and "fails its data contract" in caplog.text
