"""The train stage on a tiny composites folder: every kind trains, saves a model folder
that loads back as a predictor, and writes its metrics and plots; a pre-trained method
without weights on disk says so and trains from scratch."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from core.io import write_manifest, write_png
from core.params import parse_params
from core.predictors import load_predictor
from stages import train
from tests.conftest import shared_data, small_params_raw
from tests.core.test_predictors import stripes

CLASSES = ("chair", "sofa")


@pytest.fixture
def raw(tmp_path: Path) -> dict:
    """Small-profile params whose composites are 2 classes x 4 models x 6 views of
    striped images (chair vertical, sofa horizontal) with semantic targets."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data/composites"
    (root / "shards").mkdir(parents=True)
    rows = []
    for c, cls in enumerate(CLASSES):
        for m in range(4):
            for v in range(6):
                cid = f"{cls}-{m}-{v}"
                image = stripes(c == 0, rng, shape=(48, 48))
                semantic = np.zeros_like(image)
                semantic[12:36, 12:36] = (255, 0, 0) if c == 0 else (0, 0, 255)
                write_png(root / "shards" / f"{cid}_image.png", image)
                write_png(root / "shards" / f"{cid}_semantic.png", semantic)
                rows.append({"composite_id": cid, "model_id": f"{cls}-{m}", "category": cls, "azimuth": 60.0 * v,
                             "elevation": 10.0, "image": f"shards/{cid}_image.png",
                             "semantic": f"shards/{cid}_semantic.png"})
    write_manifest(pd.DataFrame(rows), root / "manifest.parquet")
    params = small_params_raw(tmp_path)
    params["trainer"] |= {"label_set": "all", "epochs": 2, "test_models": 0.25, "val_models": 0.25}
    return params


def test_a_conjugate_method_trains_and_loads_back(raw: dict, tmp_path: Path):
    params = parse_params(raw, "test")
    metrics = train.run(params, "gmcml")
    assert metrics["kind"] == "conjugate" and metrics["classes"] == 2 and metrics["steps"] == 2 * (24 // 8)
    assert metrics["train_composites"] == 24 and metrics["test_composites"] == 12 and metrics["val_composites"] == 12
    assert 0.0 <= metrics["synthetic_test_accuracy"] <= 1.0 and metrics["model_size_mb"] > 0
    assert json.loads((tmp_path / "metrics/train/gmcml.json").read_text())["steps"] == metrics["steps"]
    history = pd.read_csv(tmp_path / "plots/train/gmcml/history.csv")
    assert {"loss", "recon", "kl", "softmax", "pair", "triplet", "r_rec", "r_cls"} <= set(history.columns)
    assert ((history["r_cls"] > 0) & (history["r_cls"] < 1)).all()
    predictor = load_predictor(tmp_path / "data/models/gmcml")
    assert predictor.categories == CLASSES and predictor.info["training_data"].startswith("synthetic only")
    proba = predictor.predict_proba([stripes(True, np.random.default_rng(5), shape=(30, 70))])
    assert proba.shape == (1, 2) and np.isclose(proba.sum(), 1.0)


def test_fixed_noise_and_a_plain_classifier(raw: dict, tmp_path: Path):
    params = parse_params(raw, "test")
    train.run(params, "gmml")
    history = pd.read_csv(tmp_path / "plots/train/gmml/history.csv")
    assert (history["r_rec"] == 0.1).all() and (history["r_cls"] == 0.3).all()  # GM-ML: fixed ratios
    metrics = train.run(params, "squeezenet")
    assert metrics["kind"] == "classifier" and "triplet" not in pd.read_csv(
        tmp_path / "plots/train/squeezenet/history.csv").columns


def test_pretrained_without_weights_says_so_and_trains_from_scratch(raw: dict, tmp_path: Path, caplog,
                                                                    monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    raw["methods"]["frozen_mobilenet_v2"] |= {"weights": str(tmp_path / "nowhere.tflite"), "image_size": None,
                                              "head": "ncm"}
    with caplog.at_level(logging.WARNING):
        metrics = train.run(parse_params(raw, "test"), "frozen_mobilenet_v2")
    assert "no pre-trained weights for mobilenet_v2" in caplog.text and "nowhere.tflite" in caplog.text
    assert "learns a linear head instead" in caplog.text  # class means of untrained features mean nothing
    assert metrics["pretrained_weights"].startswith("none")
    assert metrics["image_size"] == raw["trainer"]["image_size"]  # from scratch: the trainer's size, not 224
    assert load_predictor(tmp_path / "data/models/frozen_mobilenet_v2").predict_proba(
        [np.zeros((20, 20, 3), np.uint8)]).shape == (1, 2)


def test_frozen_imagenet_features_from_the_tflite_file(raw: dict, tmp_path: Path):
    weights = shared_data("weights", "coral", "mobilenet_v1_0.25_128_quant.tflite")
    raw["methods"]["frozen_v1"] = {"kind": "pretrained", "backbone": "mobilenet_v1_025", "weights": str(weights),
                                   "image_size": 64}
    metrics = train.run(parse_params(raw, "test"), "frozen_v1")
    assert metrics["pretrained_weights"] == str(weights) and metrics["image_size"] == 64
    predictor = load_predictor(tmp_path / "data/models/frozen_v1")
    assert predictor.info["arch"]["backbone"] == "mobilenet_v1_025" and predictor.info["input"]["std"] == pytest.approx(128 / 255)
    assert predictor.predict_proba([stripes(False, np.random.default_rng(2))]).shape == (1, 2)


def test_nearest_class_mean_head_on_frozen_features(raw: dict, tmp_path: Path):
    weights = shared_data("weights", "coral", "mobilenet_v1_0.25_128_quant.tflite")
    raw["methods"]["ncm_v1"] = {"kind": "pretrained", "backbone": "mobilenet_v1_025", "weights": str(weights),
                                "image_size": 64, "head": "ncm"}
    metrics = train.run(parse_params(raw, "test"), "ncm_v1")
    assert "nearest class mean" in metrics["description"]
    predictor = load_predictor(tmp_path / "data/models/ncm_v1")
    assert predictor.info["arch"]["head"] == "ncm"
    means = predictor.net.head.means
    assert means.shape == (2, predictor.net.embedding_dim) and torch.allclose(means.norm(dim=1), torch.ones(2))
    images = [stripes(vertical, np.random.default_rng(9)) for vertical in (True, False)]
    with torch.no_grad():
        desc = predictor.net.embed(predictor.batch(images))
    nearest = (torch.nn.functional.normalize(desc, dim=1) @ means.T).argmax(1).numpy()
    assert np.array_equal(predictor.predict_proba(images).argmax(1), nearest)


def test_the_imagenet_prior_joins_the_ncm_head_at_inference(raw: dict, tmp_path: Path):
    weights = shared_data("weights", "coral", "mobilenet_v1_0.25_128_quant.tflite")
    raw["imagenet"] = {"labels": str(shared_data("weights", "coral", "imagenet_labels.txt")),
                       "label_map": {"chair": ["folding chair", "rocking chair"]}}
    raw["methods"]["fused_v1"] = {"kind": "pretrained", "backbone": "mobilenet_v1_025", "weights": str(weights),
                                  "image_size": 64, "head": "ncm", "prior_weight": 2.0, "resize": "stretch"}
    metrics = train.run(parse_params(raw, "test"), "fused_v1")
    assert "ImageNet prior (weight 2)" in metrics["description"]
    assert metrics["prior_not_applicable"] == ["sofa"]  # no entry: never predicted by the prior
    predictor = load_predictor(tmp_path / "data/models/fused_v1")
    assert predictor.info["arch"]["prior"]["weight"] == 2.0 and predictor.resize == "stretch"
    images = [stripes(vertical, np.random.default_rng(9)) for vertical in (True, False)]
    with torch.no_grad():
        desc = predictor.net.embed(predictor.batch(images))
        expected = torch.softmax(predictor.net.head(desc) + 2.0 * predictor.net.prior(desc), 1).numpy()
    np.testing.assert_allclose(predictor.predict_proba(images), expected, atol=1e-6)


def test_the_imagenet_zero_shot_reference_trains_nothing(raw: dict, tmp_path: Path):
    weights = shared_data("weights", "coral", "mobilenet_v1_0.25_128_quant.tflite")
    raw["imagenet"] = {"labels": str(shared_data("weights", "coral", "imagenet_labels.txt"))}
    raw["methods"]["zs"] = {"kind": "imagenet_zeroshot", "backbone": "mobilenet_v1_025", "weights": str(weights)}
    metrics = train.run(parse_params(raw, "test"), "zs")
    assert metrics["training_data"].startswith("none") and metrics["train_time_s"] == 0.0
    assert metrics["not_applicable"] == [] and 0.0 <= metrics["synthetic_test_accuracy"] <= 1.0
    assert (tmp_path / "plots/train/zs/pca.png").is_file()  # the stage's plots output exists
    predictor = load_predictor(tmp_path / "data/models/zs")
    assert len(predictor.categories) == 15 and predictor.info["label_map"]["chair"][0] == "barber chair"
    with torch.no_grad():  # the ImageNet classifier's probabilities summed over each class's entries
        logits = predictor.net.prior.classifier(predictor.net.embed(predictor.batch([stripes(True, np.random.default_rng(1))])))
        p = torch.softmax(logits, 1)[0]
    names = predictor.info["label_map"]
    summed = np.array([float(p[predictor.net.prior.membership[:, c] > 0].sum()) for c in range(15)])
    np.testing.assert_allclose(predictor.predict_proba([stripes(True, np.random.default_rng(1))])[0],
                               summed / summed.sum(), rtol=1e-4)
    assert set(names) == set(predictor.categories)
    raw["methods"]["zs"]["weights"] = str(tmp_path / "nowhere.tflite")
    with pytest.raises(FileNotFoundError, match="methods.zs: the ImageNet zero-shot reference needs the ImageNet weights"):
        train.run(parse_params(raw, "test"), "zs")


def test_self_training_on_unlabelled_photos_says_so(raw: dict, tmp_path: Path):
    weights = shared_data("weights", "coral", "mobilenet_v1_0.25_128_quant.tflite")
    photos = tmp_path / "my_photos"
    photos.mkdir()
    for i in range(6):
        write_png(photos / f"{i}.png", stripes(i % 2 == 0, np.random.default_rng(100 + i), shape=(40, 56)))
    (photos / "broken.jpg").write_bytes(b"not an image")
    raw["adaptation"] = {"unlabelled_dir": str(photos)}
    raw["methods"]["adapted_v1"] = {"kind": "pretrained", "backbone": "mobilenet_v1_025", "weights": str(weights),
                                    "image_size": 64, "head": "ncm", "self_training": {"composite_weight": 0.5}}
    metrics = train.run(parse_params(raw, "test"), "adapted_v1")
    assert metrics["training_data"] == f"synthetic labels + 6 unlabelled real photos (folder {photos})"
    assert metrics["self_training"]["photos"] == 6 and metrics["self_training"]["unreadable"] == 1
    assert sum(metrics["self_training"]["pseudo_label_counts"]) == 6
    predictor = load_predictor(tmp_path / "data/models/adapted_v1")
    assert predictor.info["training_data"] == metrics["training_data"]
    assert predictor.info["arch"]["head"] == "linear_normalized" and "prior" not in predictor.info["arch"]
    assert predictor.predict_proba([stripes(True, np.random.default_rng(3))]).shape == (1, 2)


def test_self_training_never_reads_a_test_split(raw: dict):
    weights = shared_data("weights", "coral", "mobilenet_v1_0.25_128_quant.tflite")
    raw["adaptation"] = {"unlabelled_dataset": "ikea_test"}
    raw["evaluate"] = {"datasets": [{"name": "ikea_test", "kind": "ikea", "root": "nowhere", "split": "test"}]}
    raw["methods"]["adapted_v1"] = {"kind": "pretrained", "backbone": "mobilenet_v1_025", "weights": str(weights),
                                    "image_size": 64, "head": "ncm", "self_training": {}}
    with pytest.raises(ValueError, match="'ikea_test' is a test split"):
        train.run(parse_params(raw, "test"), "adapted_v1")


def test_ncm_head_needs_frozen_features(raw: dict):
    raw["methods"]["finetune_mobilenet_v2"] |= {"head": "ncm"}
    with pytest.raises(ValueError, match="head: ncm needs mode: frozen"):
        parse_params(raw, "test")


def test_an_undefined_method_names_the_known_ones(raw: dict):
    with pytest.raises(ValueError, match="method 'nope' is not defined under `methods`"):
        train.run(parse_params(raw, "test"), "nope")


def test_product_shots_of_the_renders_train_on_every_model(raw: dict, tmp_path: Path):
    """``product_shots``: the renders (not the composites) cropped on a plain background;
    ``hold_out_models: false``: every model trains the head, no synthetic split."""
    rng = np.random.default_rng(1)
    root = tmp_path / "data/renders"
    (root / "shards").mkdir(parents=True)
    rows = []
    for c, cls in enumerate(CLASSES):
        for m in range(3):
            for v in range(2):
                sid = f"{cls}-{m}-v{v}"
                mask = np.zeros((48, 48), np.uint8)
                mask[8:40, 12:36] = 255
                write_png(root / "shards" / f"{sid}_rgb.png", stripes(c == 0, rng, shape=(48, 48)))
                write_png(root / "shards" / f"{sid}_mask.png", mask)
                rows.append({"sample_id": sid, "model_id": f"{cls}-{m}", "category": cls, "rgb": f"shards/{sid}_rgb.png",
                             "mask": f"shards/{sid}_mask.png", "bbox_x0": 12, "bbox_y0": 8, "bbox_x1": 36, "bbox_y1": 40})
    write_manifest(pd.DataFrame(rows), root / "manifest.parquet")
    weights = shared_data("weights", "coral", "mobilenet_v1_0.25_128_quant.tflite")
    raw["methods"]["shots_v1"] = {"kind": "pretrained", "backbone": "mobilenet_v1_025", "weights": str(weights),
                                  "image_size": 64, "head": "ncm", "resize": "stretch", "hold_out_models": False,
                                  "product_shots": {"margin": 0.1, "background": {"lo": 220, "hi": 255}}}
    metrics = train.run(parse_params(raw, "test"), "shots_v1")
    assert metrics["training_data"] == "synthetic only (product shots of CAD renders)"
    assert "product shots" in metrics["description"]
    assert metrics["train_composites"] == 12 and metrics["test_composites"] == metrics["val_composites"] == 0
    assert "synthetic_test_accuracy" not in metrics
    predictor = load_predictor(tmp_path / "data/models/shots_v1")
    assert predictor.info["training_data"] == metrics["training_data"] and predictor.info["train_composites"] == 12
    assert predictor.predict_proba([stripes(True, np.random.default_rng(3))]).shape == (1, 2)
