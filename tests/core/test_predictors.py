"""The predictor interface and the wiring baseline (real features, real L-BFGS fit)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.baseline import HogSoftmax, features, fit_softmax
from core.io import write_image
from core.predictors import (
    Predictor,
    PredictorError,
    image_files,
    load_predictor,
    predict_files,
    square_pad,
    to_input,
)


def stripes(vertical: bool, rng: np.random.Generator, shape=(40, 56)) -> np.ndarray:
    """A noisy striped image: vertical or horizontal stripes, random phase and colour."""
    h, w = shape
    axis = np.arange(w if vertical else h)
    wave = (np.sin(axis * 2 * np.pi / rng.uniform(6, 10) + rng.uniform(0, 6)) > 0).astype(float)
    plane = np.tile(wave, (h, 1)) if vertical else np.tile(wave[:, None], (1, w))
    colour = rng.uniform(0.3, 1.0, 3)
    image = plane[:, :, None] * colour + rng.normal(0, 0.05, (h, w, 3))
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def test_square_pad_keeps_aspect_and_content():
    image = np.arange(2 * 6 * 3, dtype=np.uint8).reshape(2, 6, 3)
    out = square_pad(image)
    assert out.shape == (6, 6, 3)
    np.testing.assert_array_equal(out[2:4], image)  # the original rows sit in the middle
    assert square_pad(out) is out
    assert to_input(np.zeros((10, 30), np.uint8), 16).shape == (16, 16, 3)  # grey -> RGB
    assert to_input(np.zeros((30, 10, 4), np.uint8), 16).shape == (16, 16, 3)  # RGBA -> RGB


def test_softmax_fit_matches_the_optimum_of_a_separable_problem():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, (50, 2)), rng.normal(2, 1, (50, 2))])
    y = np.repeat([0, 1], 50)
    w, b = fit_softmax(x, y, 2, l2=1e-2, max_iter=200)
    assert ((x @ w + b).argmax(axis=1) == y).mean() > 0.95
    # At the optimum the gradient vanishes: X^T (p - onehot)/n + l2 W = 0.
    logits = x @ w + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = x.T @ (p - np.eye(2)[y]) / len(y) + 1e-2 * w
    assert np.abs(grad).max() < 1e-3


def test_baseline_learns_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    images = [stripes(v, rng) for v in [True, False] * 20]
    labels = ["vertical", "horizontal"] * 20
    model = HogSoftmax.fit(images, labels, ["horizontal", "vertical"], size=32, l2=1e-2, max_iter=100,
                           info={"training_data": "synthetic only"})
    test = [stripes(v, rng) for v in [True, False] * 10]
    proba = model.predict_proba(test)
    assert proba.shape == (20, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert (np.array(model.categories)[proba.argmax(1)] == np.array(["vertical", "horizontal"] * 10)).mean() >= 0.9
    model.save(tmp_path / "m")
    first = (tmp_path / "m" / "weights.npz").read_bytes()
    loaded = load_predictor(tmp_path / "m")
    assert isinstance(loaded, Predictor)
    np.testing.assert_allclose(loaded.predict_proba(test), proba, rtol=1e-5)
    assert loaded.info["training_data"] == "synthetic only" and loaded.predict_viewpoint(test) is None
    model.save(tmp_path / "m")  # same weights, same bytes (DVC sees no change)
    assert (tmp_path / "m" / "weights.npz").read_bytes() == first
    assert features([], 32).shape == (0, 0)


def test_load_predictor_errors_name_the_file(tmp_path):
    with pytest.raises(PredictorError, match="predictor.json: no trained model here"):
        load_predictor(tmp_path)
    (tmp_path / "predictor.json").write_text("{not json")
    with pytest.raises(PredictorError, match="predictor.json: not valid JSON"):
        load_predictor(tmp_path)
    (tmp_path / "predictor.json").write_text(json.dumps({"kind": "nope", "categories": ["a"]}))
    with pytest.raises(PredictorError, match="unknown predictor kind 'nope'"):
        load_predictor(tmp_path / "predictor.json")
    (tmp_path / "predictor.json").write_text(json.dumps({"kind": "hog_softmax", "categories": ["a"],
                                                         "image_size": 32}))
    with pytest.raises(PredictorError, match="weights.npz: cannot read model weights"):
        load_predictor(tmp_path)


def test_predict_files_reports_unreadable_images(tmp_path):
    rng = np.random.default_rng(2)
    model = HogSoftmax.fit([stripes(v, rng) for v in [True, False] * 5], ["v", "h"] * 5, ["h", "v"], size=32,
                           l2=1e-2, max_iter=50)
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.jpg", stripes(True, rng))
    (folder / "b.png").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("ignored")
    files = image_files([folder])
    assert [f.name for f in files] == ["a.jpg", "b.png"]
    records = predict_files(model, files, top_k=2)
    assert records[0]["category"] in {"h", "v"} and len(records[0]["top"]) == 2
    assert "b.png" in records[1]["image"] and "not a readable image" in records[1]["error"]
    with pytest.raises(FileNotFoundError, match="missing.jpg: no such image"):
        image_files([tmp_path / "missing.jpg"])
