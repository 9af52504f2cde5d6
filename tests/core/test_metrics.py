"""Metrics against hand-computed cases and the reference devkits' conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.linalg import logm
from scipy.spatial.transform import Rotation

from core import metrics

# --------------------------------------------------------------------------- classification

TRUE = ["a", "a", "a", "b", "c"]
PRED = ["a", "a", "b", "b", "a"]


def test_accuracy_weighs_objects_mean_class_accuracy_weighs_classes():
    # 3 of 5 objects correct -> 0.6
    assert metrics.accuracy(TRUE, PRED) == pytest.approx(0.6)
    # a: 2/3, b: 1/1, c: 0/1, d: no true object -> NaN and left out; mean (2/3 + 1 + 0) / 3 = 5/9
    per_class = metrics.per_class_accuracy(TRUE, PRED, ["a", "b", "c", "d"])
    assert list(per_class) == ["a", "b", "c", "d"]
    assert per_class["a"] == pytest.approx(2 / 3)
    assert per_class["b"] == 1.0 and per_class["c"] == 0.0 and math.isnan(per_class["d"])
    assert metrics.mean_class_accuracy(TRUE, PRED, ["a", "b", "c", "d"]) == pytest.approx(5 / 9)


def test_classification_edge_cases():
    assert math.isnan(metrics.accuracy([], []))
    assert math.isnan(metrics.mean_class_accuracy([], [], ["a"]))
    with pytest.raises(ValueError, match="equal length"):
        metrics.accuracy(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="'c'"):  # a true label outside classes would drop out of the mean
        metrics.per_class_accuracy(TRUE, PRED, ["a", "b"])


def test_confusion_matrix_rows_true_columns_predicted():
    # true a -> predicted a, a, b; true b -> b; true c -> a
    expected = np.array([[2, 1, 0], [0, 1, 0], [1, 0, 0]])
    matrix = metrics.confusion_matrix(TRUE, PRED, ["a", "b", "c"])
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.dtype.kind == "i"
    with pytest.raises(ValueError, match="'zebra'"):
        metrics.confusion_matrix(["a"], ["zebra"], ["a", "b"])


# --------------------------------------------------------------------------- calibration


def test_reliability_bins_are_right_closed_with_zero_in_the_first():
    # n = 10: 0 -> bin 0, 0.1 -> bin 0 (0.1 is the upper edge of (0, 0.1]), 0.1000001 -> bin 1,
    # 0.3 -> bin 2 ((0.2, 0.3]), 1.0 -> bin 9
    bins = metrics.reliability_bins([0.0, 0.1, 0.1000001, 0.3, 1.0], [True, False, True, True, False], 10)
    assert [b["count"] for b in bins] == [2, 1, 1, 0, 0, 0, 0, 0, 0, 1]
    assert bins[0]["lo"] == 0.0 and bins[0]["hi"] == pytest.approx(0.1) and bins[9]["hi"] == 1.0
    assert bins[0]["mean_confidence"] == pytest.approx(0.05) and bins[0]["accuracy"] == pytest.approx(0.5)
    assert math.isnan(bins[3]["accuracy"]) and math.isnan(bins[3]["mean_confidence"])


def test_expected_calibration_error_hand_computed():
    # 2 bins. (0, 0.5]: conf 0.2, 0.4, 0.5 -> mean 1.1/3, accuracy 1/3 -> |1/3 - 1.1/3| = 0.1/3, weight 3/5
    #         (0.5, 1]: conf 0.6, 0.9 -> mean 0.75, accuracy 1 -> 0.25, weight 2/5
    # ECE = 3/5 * 0.1/3 + 2/5 * 0.25 = 0.02 + 0.1 = 0.12
    ece = metrics.expected_calibration_error([0.2, 0.4, 0.5, 0.6, 0.9], [False, True, False, True, True], 2)
    assert ece == pytest.approx(0.12)
    assert math.isnan(metrics.expected_calibration_error([], []))
    with pytest.raises(ValueError, match=r"\[0, 1\], got 1\.2"):
        metrics.expected_calibration_error([1.2], [True])


# --------------------------------------------------------------------------- box IoU


def test_box_iou_continuous_and_plus_one():
    a, b = [[0, 0, 2, 2]], [[1, 1, 3, 3]]
    # continuous: areas 4 and 4, intersection 1 x 1 -> 1 / 7
    assert metrics.box_iou(a, b)[0, 0] == pytest.approx(1 / 7)
    # +1: areas 3 x 3 = 9, intersection (2 - 1 + 1)^2 = 4 -> 4 / (18 - 4) = 2/7
    assert metrics.box_iou(a, b, plus_one=True)[0, 0] == pytest.approx(2 / 7)
    # touching boxes: continuous intersection is empty; inclusive pixels share column 1:
    # iw = 1 - 1 + 1 = 1, ih = 2, areas 2 x 2 -> 2 / (4 + 4 - 2) = 1/3
    touch_a, touch_b = [[0, 0, 1, 1]], [[1, 0, 2, 1]]
    assert metrics.box_iou(touch_a, touch_b)[0, 0] == 0.0
    assert metrics.box_iou(touch_a, touch_b, plus_one=True)[0, 0] == pytest.approx(1 / 3)
    assert metrics.box_iou(np.zeros((0, 4)), b).shape == (0, 1)
    with pytest.raises(ValueError, match="x1 < x0"):
        metrics.box_iou([[5, 0, 1, 1]], b)


def _devkit_iou(bb, bbgt):
    """VOCevaldet.m's overlap, transcribed (ovmax stays -inf without a positive intersection)."""
    bi = [max(bb[0], bbgt[0]), max(bb[1], bbgt[1]), min(bb[2], bbgt[2]), min(bb[3], bbgt[3])]
    iw, ih = bi[2] - bi[0] + 1, bi[3] - bi[1] + 1
    if iw > 0 and ih > 0:
        ua = (bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1) + (bbgt[2] - bbgt[0] + 1) * (bbgt[3] - bbgt[1] + 1) - iw * ih
        return iw * ih / ua
    return 0.0


def _random_devkit_boxes(rng, n, size=40):
    x0, y0 = rng.integers(1, size, n), rng.integers(1, size, n)
    return np.stack([x0, y0, x0 + rng.integers(0, 15, n), y0 + rng.integers(0, 15, n)], 1).astype(float)


def test_plus_one_iou_equals_continuous_iou_of_shifted_boxes():
    rng = np.random.default_rng(7)
    a, b = _random_devkit_boxes(rng, 60), _random_devkit_boxes(rng, 50)
    plus_one = metrics.box_iou(a, b, plus_one=True)
    shift = np.array([1.0, 1.0, 0.0, 0.0])  # devkit (x0, y0, x1, y1) == continuous (x0 - 1, y0 - 1, x1, y1)
    np.testing.assert_allclose(metrics.box_iou(a - shift, b - shift), plus_one, rtol=1e-12, atol=0)
    reference = np.array([[_devkit_iou(p, q) for q in b] for p in a])
    np.testing.assert_allclose(plus_one, reference, rtol=1e-12, atol=0)
    assert (reference > 0).sum() > 20  # the sample exercises overlapping pairs


# --------------------------------------------------------------------------- VOC AP

FAR = [[100, 100, 110, 110]]  # overlaps nothing below


def _gt(*boxes, difficult=()):
    return [(b, i in difficult) for i, b in enumerate(boxes)]


def test_voc_ap_all_point_and_11_point_differ_on_a_hand_built_case():
    # npos = 3; in score order: TP, FP, TP, FP, FP
    # cumulative tp 1,1,2,2,2  fp 0,1,1,2,3  recall 1/3,1/3,2/3,2/3,2/3  precision 1,1/2,2/3,1/2,2/5
    # all-point: envelope 1 up to recall 1/3, 2/3 up to 2/3, 0 beyond -> 1/3 * 1 + 1/3 * 2/3 = 5/9
    # 11-point: t = 0, .1, .2, .3 -> 1 (every recall >= 1/3); t = .4, .5, .6 -> max(2/3, 1/2, 2/5) = 2/3;
    #           t = .7 ... 1 -> none -> 0; (4 * 1 + 3 * 2/3) / 11 = 6/11
    g = {"img": _gt([0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10])}
    dets = [("img", 0.9, [0, 0, 10, 10]), ("img", 0.8, FAR[0]), ("img", 0.7, [20, 0, 30, 10]),
            ("img", 0.6, FAR[0]), ("img", 0.5, FAR[0])]
    r = metrics.voc_ap(dets, g)
    np.testing.assert_allclose(r["recall"], [1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(r["precision"], [1, 1 / 2, 2 / 3, 1 / 2, 2 / 5])
    np.testing.assert_array_equal(r["tp"], [1, 1, 2, 2, 2])
    np.testing.assert_array_equal(r["fp"], [0, 1, 1, 2, 3])
    assert r["n_positives"] == 3
    assert r["ap"] == pytest.approx(5 / 9)
    assert metrics.voc_ap(dets, g, use_07_metric=True)["ap"] == pytest.approx(6 / 11)


def test_11_point_thresholds_are_matlab_colon_values():
    # MATLAB 0:0.1:1 is [0, .1, .2, 3 * .1, .4, .5, 1 - .4, 1 - 3 * .1, 1 - .2, 1 - .1, 1]:
    # 3 * 0.1 = 0.30000000000000004 > 3/10, so recall 0.3 reaches only t = 0, .1, .2 -> 3/11
    assert metrics.ap_11_point([3 / 10], [1.0]) == pytest.approx(3 / 11)
    # 1 - 3 * 0.1 == 0.7 == 7/10, so recall 0.7 reaches t = 0 ... .7 -> 8/11
    # (numpy.arange(0, 1.1, 0.1) has 0.7000000000000001 there and would give 7/11)
    assert metrics.ap_11_point([7 / 10], [1.0]) == pytest.approx(8 / 11)


def test_voc_ap_no_detections_and_no_positives():
    g = {"img": _gt([0, 0, 10, 10])}
    r = metrics.voc_ap([], g)
    assert r["ap"] == 0.0 and len(r["recall"]) == 0 and r["n_positives"] == 1
    only_difficult = {"img": _gt([0, 0, 10, 10], difficult=(0,))}
    r = metrics.voc_ap([("img", 0.9, [0, 0, 10, 10])], only_difficult)
    assert math.isnan(r["ap"]) and r["note"] == "no non-difficult ground truth" and r["n_positives"] == 0


def test_voc_ap_ties_keep_input_order():
    # both score 0.5; npos = 1
    # FP listed first: recall 0, 1; precision 0, 1/2 -> envelope 1/2 over recall (0, 1] -> AP 0.5
    # TP listed first: recall 1, 1; precision 1, 1/2 -> AP 1.0
    g = {"img": _gt([0, 0, 10, 10])}
    hit, miss = ("img", 0.5, [0, 0, 10, 10]), ("img", 0.5, FAR[0])
    assert metrics.voc_ap([miss, hit], g)["ap"] == pytest.approx(0.5)
    assert metrics.voc_ap([hit, miss], g)["ap"] == pytest.approx(1.0)


def test_voc_ap_duplicate_is_false_positive():
    # npos = 2: 0.9 on A (TP), 0.8 on A again (FP, duplicate), 0.7 on B (TP)
    # recall 1/2, 1/2, 1; precision 1, 1/2, 2/3 -> 1/2 * 1 + 1/2 * 2/3 = 5/6
    g = {"img": _gt([0, 0, 10, 10], [20, 0, 30, 10])}
    dets = [("img", 0.9, [0, 0, 10, 10]), ("img", 0.8, [1, 0, 10, 10]), ("img", 0.7, [20, 0, 30, 10])]
    r = metrics.voc_ap(dets, g)
    np.testing.assert_array_equal(r["fp"], [0, 1, 1])
    assert r["ap"] == pytest.approx(5 / 6)


def test_voc_ap_detection_on_image_without_ground_truth_is_false_positive():
    # 0.9 on "other" (empty gt list) and 0.85 on "unlisted" (absent from ground_truth): both FP;
    # 0.8 on img: TP. recall 0, 0, 1; precision 0, 0, 1/3 -> AP 1/3
    g = {"img": _gt([0, 0, 10, 10]), "other": []}
    dets = [("other", 0.9, [0, 0, 10, 10]), ("unlisted", 0.85, [0, 0, 10, 10]), ("img", 0.8, [0, 0, 10, 10])]
    assert metrics.voc_ap(dets, g)["ap"] == pytest.approx(1 / 3)


def test_voc_ap_match_on_difficult_is_ignored():
    # A non-difficult, D difficult. 0.9 on D: ignored (neither TP nor FP); 0.8 on A: TP; 0.7: FP.
    # counted rows: recall 1, 1; precision 1, 1/2 -> AP 1.0 (were the ignored one a FP: 0.5)
    g = {"img": _gt([0, 0, 10, 10], [50, 0, 60, 10], difficult=(1,))}
    dets = [("img", 0.9, [50, 0, 60, 10]), ("img", 0.8, [0, 0, 10, 10]), ("img", 0.7, FAR[0])]
    r = metrics.voc_ap(dets, g)
    assert r["ap"] == pytest.approx(1.0) and r["n_ignored"] == 1 and r["n_positives"] == 1
    np.testing.assert_allclose(r["precision"], [1.0, 0.5])
    # the max IoU is over every gt box, difficult ones included: a box overlapping D more than A
    # (IoU with A = 0.5, with D = 1) is ignored rather than matched to A
    g2 = {"img": _gt([0, 0, 10, 10], [0, 0, 10, 5], difficult=(1,))}
    assert metrics.voc_ap([("img", 0.9, [0, 0, 10, 5])], g2)["n_ignored"] == 1
    # every detection ignored: no curve, AP 0 (the 2007 devkit's max over NaNs would give NaN here)
    assert metrics.voc_ap([("img", 0.9, [50, 0, 60, 10])], g, use_07_metric=True)["ap"] == 0.0


def test_plus_one_moves_an_iou_across_one_half():
    # gt (1, 1, 10, 10), detection (2, 1, 10, 6)
    # continuous: 8 x 5 = 40 inside 9 x 9 = 81 -> 40/81 = 0.494 < 0.5 -> FP, AP 0
    # +1 (inclusive pixels): 9 x 6 = 54 inside 10 x 10 = 100 -> 0.54 >= 0.5 -> TP, AP 1
    g = {"img": _gt([1, 1, 10, 10])}
    dets = [("img", 1.0, [2, 1, 10, 6])]
    assert metrics.box_iou([[2, 1, 10, 6]], [[1, 1, 10, 10]])[0, 0] == pytest.approx(40 / 81)
    assert metrics.box_iou([[2, 1, 10, 6]], [[1, 1, 10, 10]], plus_one=True)[0, 0] == pytest.approx(0.54)
    assert metrics.voc_ap(dets, g)["ap"] == 0.0
    assert metrics.voc_ap(dets, g, plus_one=True)["ap"] == pytest.approx(1.0)


def _matlab_max(a, b):
    return b if math.isnan(a) else a if math.isnan(b) else max(a, b)


def _devkit_voc_ap(dets, gt, use_07_metric):
    """VOCevaldet.m + VOCap.m transcribed literally: ignored detections stay as rows, 0/0 is NaN."""
    order = sorted(range(len(dets)), key=lambda d: -dets[d][1])  # Python's sort is stable, like MATLAB's
    detected = {k: [False] * len(v) for k, v in gt.items()}
    tp, fp = [0] * len(dets), [0] * len(dets)
    for r, d in enumerate(order):
        image, _, bb = dets[d]
        ovmax, jmax = -math.inf, -1
        for j, (bbgt, _) in enumerate(gt.get(image, [])):
            ov = _devkit_iou(bb, bbgt)
            if ov > 0 and ov > ovmax:
                ovmax, jmax = ov, j
        if ovmax >= 0.5:
            if not gt[image][jmax][1]:
                if not detected[image][jmax]:
                    tp[r], detected[image][jmax] = 1, True
                else:
                    fp[r] = 1
        else:
            fp[r] = 1
    npos = sum(not diff for v in gt.values() for _, diff in v)
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    rec = tp / npos
    with np.errstate(invalid="ignore"):
        prec = tp / (fp + tp)
    if use_07_metric:
        ap = 0.0
        for t in [0, 0.1, 0.2, 3 * 0.1, 0.4, 0.5, 1 - 0.4, 1 - 3 * 0.1, 1 - 0.2, 1 - 0.1, 1]:
            p = prec[rec >= t]
            ap += (np.nanmax(p) if p.size else 0.0) / 11
        return ap
    mrec, mpre = [0.0, *rec, 1.0], [0.0, *prec, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = _matlab_max(mpre[i], mpre[i + 1])
    return sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


def test_dropping_ignored_rows_gives_the_devkit_ap():
    rng = np.random.default_rng(3)
    first_ignored = 0
    for _ in range(40):
        gt, dets = {}, []
        for image in range(3):
            boxes = _random_devkit_boxes(rng, int(rng.integers(1, 4)))
            gt[image] = [(b, bool(rng.random() < 0.4)) for b in boxes]
            for b in boxes:  # jittered hits (some duplicates) and a stray box per image
                for _ in range(int(rng.integers(0, 3))):
                    dets.append((image, float(rng.integers(0, 5)), b + rng.integers(-2, 3, 4)))
            dets.append((image, float(rng.integers(0, 5)), _random_devkit_boxes(rng, 1)[0]))
        dets = [(i, s, np.array([b[0], b[1], max(b[0], b[2]), max(b[1], b[3])])) for i, s, b in dets]
        if not any(not diff for v in gt.values() for _, diff in v):
            continue
        for use_07 in (False, True):
            ours = metrics.voc_ap(dets, gt, use_07_metric=use_07, plus_one=True)
            if use_07 and ours["n_ignored"] == len(dets):
                continue  # documented: the 2007 devkit gives NaN there
            assert ours["ap"] == pytest.approx(_devkit_voc_ap(dets, gt, use_07), abs=1e-12)
        order = np.argsort([-s for _, s, _ in dets], kind="stable")
        i, _, b = dets[order[0]]
        iou = metrics.box_iou([b], [g for g, _ in gt[i]], plus_one=True)[0]
        first_ignored += bool(iou.max() >= 0.5 and gt[i][int(iou.argmax())][1])
    assert first_ignored >= 3  # the NaN-precision case (first detection ignored) was exercised


# --------------------------------------------------------------------------- PASCAL3D+ AVP


@pytest.mark.parametrize(("azimuth", "n_bins", "expected"), [
    (0.0, 8, 1), (22.4999, 8, 1), (22.5, 8, 2),  # an edge goes to the upper bin ...
    (67.5, 8, 3), (337.4, 8, 8),
    (337.5, 8, 8),  # ... except the last edge: the loop ends without a break and 337.5 > 337.5 is false
    (337.6, 8, 1), (359.9, 8, 1),
    (-10.0, 8, 1), (-30.0, 8, 8), (765.0, 8, 2), (360.0, 8, 1),  # wrapped to [0, 360) first
    (44.9, 4, 1), (45.0, 4, 2), (180.0, 4, 3), (315.0, 4, 4), (315.1, 4, 1),
    (7.5, 24, 2), (352.5, 24, 24), (11.25, 16, 2),
])
def test_azimuth_bin_reproduces_find_interval(azimuth, n_bins, expected):
    assert metrics.azimuth_bin(azimuth, n_bins) == expected


def test_azimuth_bin_rejects_non_finite():
    with pytest.raises(ValueError, match="finite"):
        metrics.azimuth_bin(float("nan"), 8)


def test_avp_removes_difficult_objects_unlike_voc_ap():
    # 4 bins. A (azimuth 10 -> bin 1), B (100 -> bin 2), D difficult.
    # 0.95 on D: official AVP removed D -> false positive (voc_ap: ignored)
    # 0.9 on A, predicted 350 (> 315 -> bin 1): correct, view-correct
    # 0.8 on B, predicted 200 (bin 3): correct, view wrong
    # correct 0,1,1; view-correct 0,1,0; n = 2
    # recall 0, 1/2, 1; precision 0, 1/2, 2/3; view precision 0, 1/2, 1/3
    # AP: envelope 2/3 up to recall 1 -> 1/2 * 2/3 + 1/2 * 2/3 = 2/3
    # AVP: envelope 1/2 up to 1/2, 1/3 up to 1 -> 1/2 * 1/2 + 1/2 * 1/3 = 5/12
    gt = {"img": [([0, 0, 10, 10], 10.0, False), ([20, 0, 30, 10], 100.0, False), ([50, 0, 60, 10], 0.0, True)]}
    dets = [("img", 0.95, [50, 0, 60, 10], 0.0), ("img", 0.9, [0, 0, 10, 10], 350.0),
            ("img", 0.8, [20, 0, 30, 10], 200.0)]
    r = metrics.avp(dets, gt, 4)
    np.testing.assert_allclose(r["recall"], [0, 0.5, 1])
    np.testing.assert_allclose(r["precision"], [0, 1 / 2, 2 / 3])
    np.testing.assert_allclose(r["view_precision"], [0, 1 / 2, 1 / 3])
    assert r["n_positives"] == 2
    assert r["ap"] == pytest.approx(2 / 3)
    assert r["avp"] == pytest.approx(5 / 12)
    # the same detections under VOC rules: D is ignored, two TPs -> AP 1
    voc_gt = {k: [(b, diff) for b, _, diff in v] for k, v in gt.items()}
    voc = metrics.voc_ap([(i, s, b) for i, s, b, _ in dets], voc_gt)
    assert voc["ap"] == pytest.approx(1.0) and voc["n_ignored"] == 1


def test_avp_duplicates_ties_and_no_positives():
    # both score 0.5, both on A (azimuth 0): the first listed is correct (view 90 -> wrong bin),
    # the second a duplicate. correct 1,0; view 0,0; n = 1 -> AP 1, AVP 0
    gt = {"img": [([0, 0, 10, 10], 0.0, False)]}
    dets = [("img", 0.5, [0, 0, 10, 10], 90.0), ("img", 0.5, [0, 0, 10, 10], 0.0)]
    r = metrics.avp(dets, gt, 4)
    assert r["ap"] == pytest.approx(1.0) and r["avp"] == 0.0
    # listed the other way round, the view-correct one comes first -> AVP 1
    assert metrics.avp(dets[::-1], gt, 4)["avp"] == pytest.approx(1.0)
    r = metrics.avp(dets, {"img": [([0, 0, 10, 10], 0.0, True)]}, 4)
    assert math.isnan(r["avp"]) and r["note"] == "no non-difficult ground truth"


def test_avp_table_depends_on_bin_width():
    # gt azimuth 30, predicted 40, perfect box.
    # 4 bins (edges 45, ...): both bin 1 -> 1; 8 (22.5, 67.5): both bin 2 -> 1;
    # 16 (11.25, 33.75, 56.25): 30 -> 2, 40 -> 3 -> 0; 24 (7.5, 22.5, 37.5, 52.5): 30 -> 3, 40 -> 4 -> 0
    gt = {"img": [([0, 0, 10, 10], 30.0, False)]}
    dets = [("img", 1.0, [0, 0, 10, 10], 40.0)]
    assert metrics.avp_table(dets, gt) == {4: pytest.approx(1.0), 8: pytest.approx(1.0), 16: 0.0, 24: 0.0}


# --------------------------------------------------------------------------- viewpoint


def test_viewpoint_rotation_is_angle2dcm_zxz():
    rng = np.random.default_rng(0)
    v = rng.uniform([0, -90, -180], [360, 90, 180], (8, 3))
    rot = metrics.viewpoint_rotation(v[:, 0], v[:, 1], v[:, 2])
    # angle2dcm(r1, r2, r3, 'ZXZ') = R3(r3) R1(r2) R3(r1) with passive matrices = transpose of
    # the active intrinsic rotation Rz(r1) Rx(r2) Rz(r3)
    for (az, el, th), r in zip(np.radians(v), rot, strict=True):
        expected = Rotation.from_euler("ZXZ", [th, el - np.pi / 2, -az]).as_matrix().T
        np.testing.assert_allclose(r, expected, atol=1e-12)
    np.testing.assert_allclose(rot @ np.swapaxes(rot, -1, -2), np.broadcast_to(np.eye(3), rot.shape), atol=1e-12)
    assert metrics.viewpoint_rotation(10, 20, 30).shape == (3, 3)


def test_geodesic_error_equals_logm_form():
    rng = np.random.default_rng(1)
    pred = rng.uniform([0, -90, -180], [360, 90, 180], (20, 3))
    gt = rng.uniform([0, -90, -180], [360, 90, 180], (20, 3))
    rp = metrics.viewpoint_rotation(*pred.T)
    rg = metrics.viewpoint_rotation(*gt.T)
    expected = [np.degrees(np.linalg.norm(np.real(logm(p.T @ g)), "fro") / np.sqrt(2))
                for p, g in zip(rp, rg, strict=True)]
    np.testing.assert_allclose(metrics.geodesic_error_deg(pred, gt), expected, rtol=1e-7)


@pytest.mark.parametrize(("pred", "gt", "expected"), [
    ((30, 0, 0), (0, 0, 0), 30.0),  # azimuth alone
    ((359, 0, 0), (1, 0, 0), 2.0),  # wraps around
    ((0, 40, 0), (0, 10, 0), 30.0),  # elevation alone
    ((0, 0, 5), (0, 0, -20), 25.0),  # theta alone
    ((123, 45, 67), (123, 45, 67), 0.0),
    ((40, 90, 0), (30, 90, 0), 10.0),  # straight down: R = R3(theta - azimuth) ...
    ((40, 90, 10), (30, 90, 0), 0.0),  # ... so azimuth + 10 with theta + 10 is the same rotation
    ((0, 10, 0), (180, 10, 0), 180.0),
])
def test_geodesic_error_hand_cases(pred, gt, expected):
    assert metrics.geodesic_error_deg([pred], [gt])[0] == pytest.approx(expected, abs=1e-6)


def test_geodesic_error_matches_render_for_cnn_zyx_convention():
    # RenderForCNN's evaluation uses angle2dcm(azimuth, elevation, theta) (default 'ZYX'); its geodesic
    # errors are the same as with Tulsiani & Malik's 'ZXZ' form
    rng = np.random.default_rng(2)
    pred = rng.uniform([0, -90, -180], [360, 90, 180], (20, 3))
    gt = rng.uniform([0, -90, -180], [360, 90, 180], (20, 3))
    zyx = [Rotation.from_euler("ZYX", np.radians(v)).as_matrix().T for v in (*pred, *gt)]
    expected = [np.degrees(Rotation.from_matrix(p.T @ g).magnitude()) for p, g in zip(zyx[:20], zyx[20:], strict=True)]
    np.testing.assert_allclose(metrics.geodesic_error_deg(pred, gt), expected, atol=1e-9)


def test_viewpoint_metrics_threshold_is_strict():
    # azimuth errors 0, 10, 29, 31, 100 -> 3 of 5 below 30 deg, median 29
    gt = np.zeros((5, 3))
    pred = np.array([[0, 0, 0], [10, 0, 0], [29, 0, 0], [31, 0, 0], [100, 0, 0]], float)
    m = metrics.viewpoint_metrics(pred, gt)
    assert m["acc_pi_6"] == pytest.approx(0.6) and m["median_error_deg"] == pytest.approx(29.0) and m["n"] == 5
    # an error equal to the threshold is not counted
    err = metrics.geodesic_error_deg(pred, gt)
    assert metrics.viewpoint_metrics(pred, gt, threshold_deg=float(err[2]))["acc_pi_6"] == pytest.approx(0.4)
    assert math.isnan(metrics.viewpoint_metrics(np.zeros((0, 3)), np.zeros((0, 3)))["acc_pi_6"])
    with pytest.raises(ValueError, match="shape"):
        metrics.viewpoint_metrics(pred[:, :2], gt[:, :2])


# --------------------------------------------------------------------------- retrieval


def test_retrieval_top1_and_top_k():
    queries = ["a", "b", "c", "d"]
    ranked = [["a", "b"], ["a", "b"], [], ["d"]]
    # top-1 hits: a yes, b no (b is second), c no (empty), d yes -> 2/4
    assert metrics.retrieval_top1(queries, ranked) == pytest.approx(0.5)
    # top-2 hits: a, b, d -> 3/4
    assert metrics.top_k_accuracy(queries, ranked, 2) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="one ranking per query"):
        metrics.retrieval_top1(["a"], [])
    with pytest.raises(ValueError, match="k must be"):
        metrics.top_k_accuracy(queries, ranked, 0)


# --------------------------------------------------------------------------- convention cards


def test_each_convention_card_is_in_its_docstring():
    functions = {"accuracy": metrics.accuracy, "mean_class_accuracy": metrics.mean_class_accuracy,
                 "voc_ap": metrics.voc_ap, "avp": metrics.avp, "viewpoint": metrics.viewpoint_metrics,
                 "retrieval_top1": metrics.retrieval_top1, "ece": metrics.expected_calibration_error}
    assert set(metrics.CONVENTIONS) == set(functions)
    for name, fn in functions.items():
        assert " ".join(metrics.CONVENTIONS[name].split()) in " ".join(fn.__doc__.split()), name
