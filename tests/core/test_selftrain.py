"""Self-training's pieces: class-balanced weights and a head that learns pseudo-labels."""

from __future__ import annotations

import numpy as np

from core.params import SelfTrainingParams
from core.selftrain import balanced_weights, fit_student


def test_each_present_class_weighs_the_same():
    w = balanced_weights(np.array([0, 0, 0, 2]), 3)
    assert np.allclose(w, [2 / 3, 2 / 3, 2 / 3, 2.0]) and np.isclose(w.sum(), 4)


def test_the_student_learns_the_photos_pseudo_labels_beside_the_composites():
    rng = np.random.default_rng(0)
    centres = np.eye(3, 8) * 5
    photos = np.concatenate([centres[k] + rng.normal(0, 1, (20, 8)) for k in range(3)])
    pseudo = np.repeat([0, 1, 2], 20)
    comps = np.concatenate([centres[k] + rng.normal(0, 1, (10, 8)) for k in range(2)])  # class 2 has no renders
    w, b = fit_student(photos, pseudo, comps, np.repeat([0, 1], 10), 3, SelfTrainingParams(composite_weight=0.5, c=1.0))
    x = photos / np.linalg.norm(photos, axis=1, keepdims=True)
    assert w.shape == (8, 3) and ((x @ w + b).argmax(1) == pseudo).mean() > 0.9
