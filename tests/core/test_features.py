"""Box features (core/features.py): one definition whether a box is computed alone or
from a shared map of the whole image, and the detector built on them (core/detector.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core import exemplar as ex
from core.detector import ExemplarDetector, windows
from core.features import FeatureExtractor
from core.params import ExemplarParams, FeaturesParams
from models.adaptation import Adaptation

# No weights file: a seeded random initialisation (fast, and enough for these checks).
PARAMS = FeaturesParams(weights="/nonexistent/mobilenet.tflite", layers=("c3", "c4", "gap"), image_size=64)


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    return FeatureExtractor(PARAMS, seed=0)


def image(seed: int = 0, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.full((*size, 3), 200, np.uint8)
    out[20:70, 30:90] = rng.integers(0, 255, (50, 60, 3))
    return out


def test_random_init_fallback_is_recorded(extractor: FeatureExtractor):
    assert extractor.info["source"] == "random-init"
    assert extractor.dims() == {"c3": 32 * 16, "c4": 96 * 16, "gap": 1280}


def test_a_box_alone_equals_the_box_in_a_shared_map(extractor: FeatureExtractor):
    boxes = np.array([[30.0, 20.0, 90.0, 70.0], [0.0, 0.0, 64.0, 48.0], [10.5, 5.25, 50.5, 85.25]])
    alone = extractor.box_features(image(), boxes)
    shared = extractor.box_features(image(), boxes, shared=True)
    for layer in PARAMS.layers:
        assert alone[layer].shape == (3, extractor.dims()[layer])
        np.testing.assert_allclose(alone[layer], shared[layer], rtol=1e-4, atol=1e-5)
    assert (alone["c4"] >= 0).all()  # relu


def test_features_depend_on_the_box_content(extractor: FeatureExtractor):
    box = np.array([[30.0, 20.0, 90.0, 70.0]])
    fa, fb = extractor.box_features(image(0), box)["c4"], extractor.box_features(image(1), box)["c4"]
    assert not np.allclose(fa, fb)


def test_detector_returns_the_window_and_view_that_match():
    """Plumbing, not feature quality: the database holds the feature of one window of the
    scene (category chair, azimuth 30) and of two others; the best detection is that window
    with that view, its pose and model, and the aspect filter keeps other shapes out."""
    p = ExemplarParams(window_sizes={"lo": 0.3, "hi": 0.9}, window_stride=0.25, aspect_tau=0.9, max_per_image=5,
                       calibration_patches=50)
    scene = image(3, (128, 128))
    boxes = windows(scene, p)
    # distinct window features (random-init backbone features are all much alike)
    feats = np.random.default_rng(0).normal(size=(len(boxes), 96 * 16)).astype(np.float32)
    aspect = ex.box_aspect(boxes)
    target = int(np.argmin(np.abs(aspect - 1.5) + 10 * (boxes[:, 0] != boxes[:, 0].max())))
    tall = np.nonzero(np.isclose(aspect, aspect[target]))[0]
    other = int(tall[tall != target][0])
    wide = int(np.argmin(aspect))
    views = pd.DataFrame({"category": ["chair", "car", "car"], "model_id": ["m0", "m1", "m2"],
                          "sample_id": ["s0", "s1", "s2"], "azimuth": [30.0, 0.0, 90.0], "elevation": [10.0, 0, 0],
                          "theta": [0.0, 0, 0], "aspect": aspect[[target, other, wide]]})
    det = ExemplarDetector(feats[[target, other, wide]], views, Adaptation("none", 96, 4), p)
    scored = det.score(boxes, feats)
    assert scored.best[target, det.categories.index("chair")] == pytest.approx(1.0, abs=1e-5)
    incompatible = np.abs(np.log(aspect / aspect[wide])) > -np.log(0.9) + 1e-9
    assert (scored.which[incompatible] != 2).all()  # the wide view never scores a tall window
    found = det.detections(scored)
    chair = [d for d in found if d["category"] == "chair"][0]
    assert chair["box"] == pytest.approx(boxes[target].round(2).tolist())
    assert (chair["model_id"], chair["sample_id"], chair["azimuth"], chair["elevation"]) == ("m0", "s0", 30.0, 10.0)
    c, d = det.calibrate(feats[:50])
    assert c.shape == d.shape == (3,) and (c > 0).all()
