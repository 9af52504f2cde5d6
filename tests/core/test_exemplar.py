"""The retrieval and exemplar-detection computations (seed 004 §3.2-3.3, §4.3) on
hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from core import exemplar as ex


def test_similarities_match_eq_3_1_to_3_3():
    a = np.array([[1.0, 0.0], [3.0, 4.0]])
    b = np.array([[2.0, 0.0], [0.0, 1.0]])
    assert np.allclose(ex.similarity(a, b, "dot"), [[2, 0], [6, 4]])
    assert np.allclose(ex.similarity(a, b, "cos"), [[1, 0], [0.6, 0.8]])
    # -||a - b||²: (1,0)-(2,0) -> -1; (1,0)-(0,1) -> -2; (3,4)-(2,0) -> -17; (3,4)-(0,1) -> -18
    assert np.allclose(ex.similarity(a, b, "l2"), [[-1, -2], [-17, -18]])
    with pytest.raises(ValueError, match="unknown similarity"):
        ex.similarity(a, b, "manhattan")


def test_aspect_ratio_filter_eq_3_4():
    ok = ex.aspect_compatible(np.array([1.0]), np.array([1.0, 1.1, 1.12, 0.9, 0.89, 2.0]), 0.9)
    # 1/1.1 = 0.909 > 0.9 passes; 1/1.12 = 0.893 fails; 1/0.9 = 1.111 < 1/0.9 fails (strict); 1/0.89 fails
    assert ok.tolist() == [[True, True, False, False, False, False]]
    assert ex.aspect_compatible(np.array([1.0]), np.array([5.0]), 0.0).all()  # tau 0: no filter


def test_top_k_masked():
    s = np.array([[0.1, 0.9, 0.5, 0.9]])
    assert ex.top_k(s, 3).tolist() == [[1, 3, 2]]  # ties: lower index first
    mask = np.array([[True, False, True, True]])
    assert ex.top_k(ex.masked(s, mask), 2).tolist() == [[3, 2]]


def test_multiview_choice_eq_3_9_and_3_10():
    # 3 views: model 0 has views 0, 1; model 1 has view 2. Image 1 prefers model 1 a little,
    # image 2 prefers model 0 a lot: the sum of per-image maxima picks model 0.
    view_model = np.array([0, 0, 1])
    scores = np.array([[0.5, 0.6, 0.7],
                       [0.9, 0.2, 0.1]])
    m_hat, views = ex.multiview_choice(scores, view_model, 2)
    assert m_hat == 0  # 0.6 + 0.9 = 1.5 > 0.7 + 0.1 = 0.8
    assert views.tolist() == [1, 0]  # eq. 3.10 within model 0
    per_model = ex.model_scores(scores, view_model, 2)
    assert np.allclose(per_model, [[0.6, 0.7], [0.9, 0.1]])


def test_calibration_maps_mean_to_minus_one_and_percentile_to_zero():
    rng = np.random.default_rng(0)
    scores = np.stack([rng.normal(0.2, 0.05, 5000), rng.normal(0.5, 0.2, 5000)], axis=1)
    c, d = ex.calibration(scores, 99.0)
    calibrated = scores * c + d
    assert np.allclose(calibrated.mean(axis=0), -1.0, atol=1e-5)
    assert np.allclose(np.percentile(calibrated, 99.0, axis=0), 0.0, atol=1e-5)


def test_sliding_windows_cover_the_image_and_keep_their_aspect():
    boxes = ex.sliding_windows(100, 80, sizes=[0.5], aspects=[1.0, 2.0], stride=0.5)
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 100 + 1e-9).all() and (boxes[:, 3] <= 80 + 1e-9).all()
    square = boxes[np.isclose(ex.box_aspect(boxes), 1.0)]
    assert np.allclose(square[:, 2] - square[:, 0], 40.0)
    # 40 px windows stepped by 20 px, the last flush with the border: x0 in 0, 20, 40, 60; y0 in 0, 20, 40
    assert sorted(set(square[:, 0].tolist())) == [0.0, 20.0, 40.0, 60.0]
    assert sorted(set(square[:, 1].tolist())) == [0.0, 20.0, 40.0]
    assert np.allclose(ex.box_aspect(boxes[~np.isclose(ex.box_aspect(boxes), 1.0)]), 2.0)
    assert np.allclose(ex.geometric(0.2, 0.8, 2.0), [0.2, 0.4, 0.8])


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]])
    scores = np.array([0.8, 0.9, 0.5, 0.1])
    assert ex.nms(boxes, scores, 0.3).tolist() == [1, 2]
    assert ex.nms(boxes, scores, 0.99).tolist() == [1, 0, 2, 3]


def test_azimuth_errors_at_recall():
    assert np.allclose(ex.azimuth_difference([350, 10, 180], [10, 350, 0]), [20, 20, 180])
    correct = np.array([True, False, True, True, True])
    errors = np.array([5.0, 99.0, 30.0, 1.0, 2.0])
    # 4 positives, 50% recall: the first two correct detections
    assert ex.errors_at_recall(correct, errors, 4, 0.5).tolist() == [5.0, 30.0]
