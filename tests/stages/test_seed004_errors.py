"""Bad or missing inputs of the seed-004 stages: errors that name the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.detector import ViewDatabase, load_adaptation
from models.adaptation import Adaptation
from stages import exemplar, retrieval, view_features


def test_view_features_without_renders_names_the_manifest(small_params):
    with pytest.raises(FileNotFoundError, match=r"renders/manifest.parquet: manifest not found"):
        view_features.run(small_params)


def test_exemplar_without_a_view_database_names_it(small_params):
    with pytest.raises(FileNotFoundError, match=r"view_features/manifest.parquet"):
        exemplar.run(small_params)


def test_retrieval_names_an_unknown_dataset(small_params):
    params = small_params.model_copy(update={"retrieval": small_params.retrieval.model_copy(
        update={"datasets": ("ikea_tset",)})})
    with pytest.raises(ValueError, match=r"retrieval.datasets: 'ikea_tset' is not an evaluate.datasets entry"):
        retrieval.dataset_params(params, "ikea_tset")


def test_adaptation_files_are_checked(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"adaptation.json: no trained adaptation"):
        load_adaptation(tmp_path)
    (tmp_path / "adaptation.json").write_text(json.dumps(
        {"default": "affine_relu", "channels": 4, "grid": 2, "variants": ["affine_relu", "conv1x1"]}))
    with pytest.raises(FileNotFoundError, match=r"affine_relu.npz: adaptation variant 'affine_relu' was not trained"):
        load_adaptation(tmp_path)
    np.savez(tmp_path / "affine_relu.npz", **{"body.0.weight": np.zeros((3, 3), np.float32)})
    with pytest.raises(ValueError, match=r"affine_relu.npz: weights do not fit variant 'affine_relu'"):
        load_adaptation(tmp_path)
    good = Adaptation("conv1x1", 4, 2)
    np.savez(tmp_path / "conv1x1.npz", **{k: v.numpy() for k, v in good.state_dict().items()})
    phi, meta = load_adaptation(tmp_path, "conv1x1")
    assert phi.variant == "conv1x1" and meta["grid"] == 2


def test_a_view_database_with_the_wrong_number_of_rows_is_refused(tmp_path: Path):
    import pandas as pd

    from core.io import write_manifest

    write_manifest(pd.DataFrame({"sample_id": ["a", "b"]}), tmp_path / "manifest.parquet")
    (tmp_path / "info.json").write_text(json.dumps({"layers": {"c4": 3}}))
    np.save(tmp_path / "c4.npy", np.zeros((3, 3), np.float16))
    with pytest.raises(ValueError, match=r"c4.npy: shape \(3, 3\) does not fit the 2 views"):
        ViewDatabase(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"c3.npy: no features of layer 'c3'"):
        ViewDatabase(tmp_path, layers=["c3"])


def test_a_voc_dataset_goes_through_exemplar_detection(tmp_path: Path, small_params):
    """A user's Pascal VOC folder as an ``exemplar.datasets`` entry: proposals, scores, AP
    per category (difficult objects ignored), on the VOC fixture and a random-init backbone."""
    import pandas as pd

    from core.detector import ExemplarDetector
    from core.features import FeatureExtractor
    from core.params import EvalDatasetParams
    from tests.core.evalset_fixtures import write_voc

    write_voc(tmp_path)
    d = EvalDatasetParams(name="voc_chairs", kind="voc", root=str(tmp_path), split="val")
    evalset = exemplar.open_detection_set(d, small_params)
    params = small_params.model_copy(update={"features": small_params.features.model_copy(
        update={"weights": str(tmp_path / "none.tflite"), "image_size": 32})})
    extractor = FeatureExtractor(params.features, layers=["c4"])
    images = exemplar.Images(evalset, extractor, "c4", params)
    assert images.ids == ["000001", "000002"] and images.windows() > 0
    rng = np.random.default_rng(0)
    views = pd.DataFrame({"category": ["chair", "car", "person"], "model_id": ["a", "b", "c"],
                          "sample_id": ["a0", "b0", "c0"], "azimuth": [0.0, 90.0, 180.0],
                          "elevation": [0.0] * 3, "theta": [0.0] * 3, "aspect": [0.6, 1.0, 1.4]})
    det = ExemplarDetector(rng.random((3, images.features[0].shape[1]), np.float32), views,
                           Adaptation("none", 1, 1), params.exemplar)
    found = exemplar.detect_all(det, images.features, images)
    result = exemplar.average_precision(found, images, 0.5, recall=0.25)
    assert set(result["per_class_ap"]) == {"car", "chair", "person"}
    assert result["per_class_ap"]["car"] is None  # its only object is difficult: no positive
    assert 0.0 <= result["per_class_ap"]["chair"] <= 1.0 and "azimuth" in result

    missing = EvalDatasetParams(name="voc_chairs", kind="voc", root=str(tmp_path / "absent"), split="val")
    assert exemplar.open_detection_set(missing, small_params) is None
