"""Evaluation metrics as pure functions, each following a named reference convention.

Classification (accuracy, per-class recall, confusion matrix), calibration (ECE and
reliability bins), detection (Pascal VOC devkit AP), joint detection and viewpoint
(PASCAL3D+ AVP), viewpoint errors (geodesic distance, Acc@π/6) and retrieval (top-k).

Boxes are (x0, y0, x1, y1) arrays. By default they are continuous (x1 exclusive, width
x1 - x0), the layout of our records; ``plus_one=True`` reads them as the devkits' 1-based
inclusive pixel boxes instead. ``CONVENTIONS`` holds one short card per metric, copied
into the metrics JSON by the evaluate stage; each card also appears in the docstring of
the function that computes the metric.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

CONVENTIONS: dict[str, str] = {
    "accuracy": (
        "Fraction of objects whose predicted label equals the true label (every object weighs the same); "
        "NaN when there are no objects."
    ),
    "mean_class_accuracy": (
        "Recall of each class (correct / true objects of that class), averaged with equal weight over the "
        "classes that have at least one true object; classes without true objects are NaN and left out."
    ),
    "voc_ap": (
        "Pascal VOC devkit AP (VOCevaldet.m, VOCap.m): detections in descending score order (stable on ties) "
        "take the ground-truth box of maximal IoU in their image; IoU >= 0.5 on an undetected object is a true "
        "positive, on a difficult object is ignored, on an already detected object or below 0.5 is a false "
        "positive. AP is the area under the monotone precision envelope at every recall change (VOC2010+), "
        "or with use_07_metric the mean over recall thresholds 0:0.1:1 of the best precision at that recall "
        "or more (VOC2007)."
    ),
    "avp": (
        "PASCAL3D+ AVP (VDPM compute_recall_precision_accuracy.m): difficult objects are removed, so a "
        "detection on one is a false positive; a detection is correct when its maximal-IoU object has IoU >= "
        "0.5 and is not yet detected, and view-correct when its azimuth also falls in the object's bin of n "
        "bins centred on 0 deg (bin 1 = [0, 180/n) and (360 - 180/n, 360); 360 - 180/n itself stays in bin n); "
        "AVP = VOCap(recall, cumulative view-correct / rank). Azimuths are wrapped to [0, 360) before binning, "
        "the one documented pre-step that the official code (which assumes [0, 360)) does not have."
    ),
    "viewpoint": (
        "Geodesic error ||logm(R_pred^T R_gt)||_F / sqrt(2) in degrees between viewpoint rotations "
        "R = angle2dcm(theta, elevation - pi/2, -azimuth, 'ZXZ') (Tulsiani & Malik 2015); Acc@pi/6 is the "
        "fraction of objects with error < 30 deg (strict), reported with the median error."
    ),
    "retrieval_top1": (
        "Fraction of queries whose first-ranked item carries the query's label; a query with an empty "
        "ranking counts as a miss."
    ),
    "ece": (
        "Expected calibration error over n equal-width bins (i/n, (i+1)/n] of the top-class confidence "
        "(0 goes into the first bin): sum over bins of count / N * |accuracy - mean confidence|."
    ),
}

# MATLAB's ``0:0.1:1`` (VOC2007 VOCevaldet.m). The colon operator builds the first half as
# k * 0.1 and the second half as 1 - k * 0.1, so the fourth threshold is 0.30000000000000004
# and a recall of exactly 3/10 does not reach it; numpy.arange(0, 1.1, 0.1) differs at 0.6 and 0.7.
_VOC07_THRESHOLDS = np.array([k * 0.1 for k in range(6)] + [1 - k * 0.1 for k in range(4, -1, -1)])


# --------------------------------------------------------------------------- classification


def _labels(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.ndim != 1 or t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must be 1-D of equal length, got shapes {t.shape} and {p.shape}")
    return t, p


def _class_index(classes: Sequence[Hashable]) -> dict[Hashable, int]:
    index = {c: i for i, c in enumerate(classes)}
    if len(index) != len(classes):
        raise ValueError(f"classes must be unique, got {list(classes)}")
    return index


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of objects whose predicted label equals the true label (every object weighs the same);
    NaN when there are no objects.

    ``y_true``, ``y_pred``: (N,) labels of any comparable type.
    """
    t, p = _labels(y_true, y_pred)
    return float(np.mean(t == p)) if len(t) else float("nan")


def per_class_accuracy(y_true: ArrayLike, y_pred: ArrayLike, classes: Sequence[str]) -> dict[str, float]:
    """Recall of each class in ``classes`` (correct / true objects of that class), in the order of
    ``classes``; NaN for a class with no true object. A true label outside ``classes`` raises
    ValueError (it would silently drop out of the mean)."""
    t, p = _labels(y_true, y_pred)
    index = _class_index(classes)
    unknown = sorted({str(x) for x in np.unique(t) if x not in index})
    if unknown:
        raise ValueError(f"true label(s) {unknown} not in classes {list(classes)}: add them to classes")
    out = {}
    for c in classes:
        mask = t == c
        out[c] = float(np.mean(p[mask] == c)) if mask.any() else float("nan")
    return out


def mean_class_accuracy(y_true: ArrayLike, y_pred: ArrayLike, classes: Sequence[str]) -> float:
    """Recall of each class (correct / true objects of that class), averaged with equal weight over the
    classes that have at least one true object; classes without true objects are NaN and left out.

    NaN when no class has a true object. See :func:`per_class_accuracy`.
    """
    values = [v for v in per_class_accuracy(y_true, y_pred, classes).values() if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, classes: Sequence[Hashable]) -> np.ndarray:
    """Counts (C, C) int64: rows are true classes, columns predicted classes, in the order of
    ``classes``. A true or predicted label outside ``classes`` raises ValueError naming it."""
    t, p = _labels(y_true, y_pred)
    index = _class_index(classes)
    for name, labels in (("true", t), ("predicted", p)):
        unknown = sorted({str(x) for x in np.unique(labels) if x not in index})
        if unknown:
            raise ValueError(f"{name} label(s) {unknown} not in classes {list(classes)}")
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(matrix, ([index[x] for x in t], [index[x] for x in p]), 1)
    return matrix


# --------------------------------------------------------------------------- calibration


def reliability_bins(confidence: ArrayLike, correct: ArrayLike, n_bins: int = 10) -> list[dict[str, float]]:
    """Per confidence bin: ``lo``, ``hi``, ``count``, ``mean_confidence``, ``accuracy``.

    Bins are equal-width on [0, 1]; bin i is (i/n, (i+1)/n] and 0 goes into the first bin.
    ``confidence``: (N,) in [0, 1]; ``correct``: (N,) bool. Empty bins have NaN mean
    confidence and accuracy.
    """
    conf = np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    if conf.ndim != 1 or conf.shape != ok.shape:
        raise ValueError(f"confidence and correct must be 1-D of equal length, got {conf.shape} and {ok.shape}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if len(conf) and not (np.all(conf >= 0.0) and np.all(conf <= 1.0)):
        bad = conf[~((conf >= 0.0) & (conf <= 1.0))][0]
        raise ValueError(f"confidence must lie in [0, 1], got {bad}")
    edges = np.arange(n_bins + 1) / n_bins  # i/n correctly rounded, so membership is exact at the edges
    # searchsorted(left) - 1 puts c in bin i when edges[i] < c <= edges[i+1]; c = 0 gives -1 -> bin 0.
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    bins = []
    for i in range(n_bins):
        mask = which == i
        count = int(mask.sum())
        bins.append({
            "lo": float(edges[i]), "hi": float(edges[i + 1]), "count": count,
            "mean_confidence": float(conf[mask].mean()) if count else float("nan"),
            "accuracy": float(ok[mask].mean()) if count else float("nan"),
        })
    return bins


def expected_calibration_error(confidence: ArrayLike, correct: ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error over n equal-width bins (i/n, (i+1)/n] of the top-class confidence
    (0 goes into the first bin): sum over bins of count / N * |accuracy - mean confidence|.

    ``confidence``: (N,) in [0, 1]; ``correct``: (N,) bool. NaN when N = 0.
    """
    bins = reliability_bins(confidence, correct, n_bins)
    n = sum(b["count"] for b in bins)
    if n == 0:
        return float("nan")
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["mean_confidence"]) for b in bins if b["count"]))


# --------------------------------------------------------------------------- boxes and AP


def _boxes(x: ArrayLike, name: str, plus_one: bool) -> np.ndarray:
    b = np.asarray(x, dtype=float).reshape(-1, 4) if np.size(x) else np.zeros((0, 4))
    if not np.all(np.isfinite(b)):
        raise ValueError(f"{name}: boxes must be finite, got {b[~np.isfinite(b).all(axis=1)][0].tolist()}")
    slack = 1.0 if plus_one else 0.0  # a 1-pixel inclusive box has x1 == x0
    bad = (b[:, 2] < b[:, 0] - slack) | (b[:, 3] < b[:, 1] - slack)
    if bad.any():
        raise ValueError(f"{name}: box {b[bad][0].tolist()} has x1 < x0 or y1 < y0 (expected x0, y0, x1, y1)")
    return b


def box_iou(a: ArrayLike, b: ArrayLike, plus_one: bool = False) -> np.ndarray:
    """Intersection over union (N, M) float64 of boxes ``a`` (N, 4) and ``b`` (M, 4), (x0, y0, x1, y1).

    ``plus_one=False``: continuous boxes, width x1 - x0. ``plus_one=True``: the Pascal VOC devkit
    convention for 1-based inclusive pixel boxes (VOCevaldet.m): width x1 - x0 + 1, intersection
    width min(x1) - max(x0) + 1, counted only when both intersection sides are > 0. A devkit box
    (x0, y0, x1, y1) covers the same pixels as the continuous box (x0 - 1, y0 - 1, x1, y1), and the
    continuous IoU of the converted boxes equals the devkit's +1 IoU. Disjoint or zero-area pairs
    give 0.
    """
    a, b = _boxes(a, "a", plus_one), _boxes(b, "b", plus_one)
    one = 1.0 if plus_one else 0.0
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + one
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + one
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_a = (a[:, 2] - a[:, 0] + one) * (a[:, 3] - a[:, 1] + one)
    area_b = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def ap_all_point(recall: ArrayLike, precision: ArrayLike) -> float:
    """VOCap.m (VOC2010+): area under the precision envelope.

    mrec = [0, recall, 1], mpre = [0, precision, 0]; mpre is made non-increasing from the right
    (mpre[i] = max(mpre[i], mpre[i+1])), then AP = sum of (mrec[i] - mrec[i-1]) * mpre[i] over the
    i where mrec changes. NaN precisions are skipped by the max, as in MATLAB.
    """
    mrec = np.concatenate([[0.0], np.asarray(recall, dtype=float), [1.0]])
    mpre = np.concatenate([[0.0], np.asarray(precision, dtype=float), [0.0]])
    mpre = np.fmax.accumulate(mpre[::-1])[::-1]  # fmax ignores NaN like MATLAB's max
    i = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[i] - mrec[i - 1]) * mpre[i]))


def ap_11_point(recall: ArrayLike, precision: ArrayLike) -> float:
    """VOC2007 11-point AP: mean over t in MATLAB's 0:0.1:1 of max(precision[recall >= t]), 0 if none.

    The thresholds are MATLAB's, bit for bit: the fourth is 0.30000000000000004, so a recall of
    exactly 0.3 does not reach it (see ``_VOC07_THRESHOLDS``).
    """
    rec, prec = np.asarray(recall, dtype=float), np.asarray(precision, dtype=float)
    total = 0.0
    for t in _VOC07_THRESHOLDS:
        p = prec[rec >= t]
        total += float(p.max()) if p.size else 0.0
    return total / 11.0


def _check_threshold(iou_threshold: float) -> None:
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")


def _descending(scores: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"detection scores must be finite, got {scores[~np.isfinite(scores)][0]}")
    return np.argsort(-scores, kind="stable")  # MATLAB sort(-confidence) keeps input order on ties


def _best_overlaps(image_ids: Sequence[Hashable], boxes: np.ndarray, order: np.ndarray,
                   gt_boxes: Mapping[Hashable, np.ndarray], plus_one: bool) -> tuple[np.ndarray, np.ndarray]:
    """For detections in ``order``: the max IoU over their image's gt boxes and its (first) index.

    Returns (D,) ovmax (-inf where the image has no gt box) and (D,) jmax (-1 there), in ``order``.
    """
    ovmax = np.full(len(order), -np.inf)
    jmax = np.full(len(order), -1)
    rows_of: dict[Hashable, list[int]] = {}
    for rank, d in enumerate(order):
        rows_of.setdefault(image_ids[d], []).append(rank)
    for image, ranks in rows_of.items():
        gt = gt_boxes.get(image)
        if gt is None or not len(gt):
            continue
        iou = box_iou(boxes[order[ranks]], gt, plus_one)  # (k, m)
        j = iou.argmax(axis=1)  # first maximum, as the devkit's strict `ov > ovmax`
        ovmax[ranks] = iou[np.arange(len(ranks)), j]
        jmax[ranks] = j
    return ovmax, jmax


def voc_ap(detections: Sequence[tuple[Hashable, float, ArrayLike]],
           ground_truth: Mapping[Hashable, Sequence[tuple[ArrayLike, bool]]], *,
           iou_threshold: float = 0.5, use_07_metric: bool = False, plus_one: bool = False) -> dict[str, Any]:
    """Pascal VOC devkit AP (VOCevaldet.m, VOCap.m): detections in descending score order (stable on ties)
    take the ground-truth box of maximal IoU in their image; IoU >= 0.5 on an undetected object is a true
    positive, on a difficult object is ignored, on an already detected object or below 0.5 is a false
    positive. AP is the area under the monotone precision envelope at every recall change (VOC2010+),
    or with use_07_metric the mean over recall thresholds 0:0.1:1 of the best precision at that recall
    or more (VOC2007).

    ``detections``: (image_id, score, box) of one class; ``ground_truth``: image_id -> [(box,
    difficult)] of that class (an image missing from it has no object; the devkit would raise on an
    image outside its test set). The maximal IoU is taken over every gt box of the image, difficult
    and already detected ones included. ``iou_threshold`` replaces the 0.5.

    Ignored detections are dropped before the curves are computed. The devkit keeps them as rows
    with tp = fp = 0, which repeat the previous (recall, precision) point, or give precision 0/0 =
    NaN at recall 0 before the first counted detection; neither changes VOCap (a repeated point adds
    zero width, MATLAB's max skips NaN), so AP is identical. The one exception: with use_07_metric and
    every detection ignored, the 2007 devkit returns NaN (max over NaNs), here 0.

    Returns ``ap``; ``recall``, ``precision``, ``tp``, ``fp`` (cumulative counts), one entry per
    counted detection in descending score order; ``n_positives`` (non-difficult gt objects);
    ``n_ignored``; ``detection_index`` and ``gt_index`` (which detection each counted row is, and the
    index of the gt box it detected in its image's list, -1 for a false positive). With no
    non-difficult gt, ``ap`` and ``recall`` are NaN and ``note`` says why.
    """
    _check_threshold(iou_threshold)
    image_ids = [d[0] for d in detections]
    scores = np.array([d[1] for d in detections], dtype=float)
    boxes = _boxes([d[2] for d in detections], "detections", plus_one)
    gt_boxes = {k: _boxes([g[0] for g in v], f"ground_truth[{k!r}]", plus_one) for k, v in ground_truth.items()}
    difficult = {k: np.array([bool(g[1]) for g in v], dtype=bool) for k, v in ground_truth.items()}
    npos = int(sum((~d).sum() for d in difficult.values()))

    order = _descending(scores)
    ovmax, jmax = _best_overlaps(image_ids, boxes, order, gt_boxes, plus_one)
    detected = {k: np.zeros(len(v), dtype=bool) for k, v in difficult.items()}
    status = np.zeros(len(order), dtype=np.int8)  # 1 true positive, 0 false positive, -1 ignored
    for rank, d in enumerate(order):
        if ovmax[rank] >= iou_threshold:
            image, j = image_ids[d], jmax[rank]
            if difficult[image][j]:
                status[rank] = -1
            elif not detected[image][j]:
                status[rank] = 1
                detected[image][j] = True

    counted = status[status >= 0]
    kept = status >= 0
    tp = np.cumsum(counted == 1)
    fp = np.cumsum(counted == 0)
    precision = tp / np.maximum(tp + fp, 1)  # tp + fp = rank >= 1 once ignored rows are gone
    out: dict[str, Any] = {"tp": tp, "fp": fp, "precision": precision, "n_positives": npos,
                           "n_ignored": int((status < 0).sum()),
                           # per counted detection: its index in ``detections`` and the gt box it
                           # detected (index in its image's list; -1 for a false positive)
                           "detection_index": order[kept], "gt_index": np.where(counted == 1, jmax[kept], -1)}
    if npos == 0:
        return out | {"ap": float("nan"), "recall": np.full(len(tp), np.nan), "note": "no non-difficult ground truth"}
    recall = tp / npos
    ap = ap_11_point(recall, precision) if use_07_metric else ap_all_point(recall, precision)
    return out | {"ap": ap, "recall": recall}


# --------------------------------------------------------------------------- PASCAL3D+ AVP


def _azimuth_bins(azimuth_deg: ArrayLike, n_bins: int) -> np.ndarray:
    """Vectorised :func:`azimuth_bin`: 1-based bins, same shape as ``azimuth_deg``."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    az = np.asarray(azimuth_deg, dtype=float)
    if not np.all(np.isfinite(az)):
        raise ValueError(f"azimuth must be finite, got {az[~np.isfinite(az)].ravel()[0]}")
    az = np.mod(az, 360.0)  # the one pre-step: the official code assumes [0, 360)
    # azimuth_interval = [0 (360/(n*2)):(360/n):360-(360/(n*2))], as (2k - 1) * 180 / n: exact for
    # n = 4, 8, 16, 24 (binary fractions), so it equals MATLAB's colon there.
    a = np.concatenate([[0.0], (2 * np.arange(1, n_bins + 1) - 1) * 180.0 / n_bins])
    # find_interval: i = first index (1-based) with azimuth < a(i), or numel(a) if none; ind = i - 1.
    # searchsorted(right) counts the edges <= azimuth, i.e. i - 1 when the loop breaks.
    ind = np.minimum(np.searchsorted(a, az, side="right"), n_bins)
    return np.where(az > a[-1], 1, ind)


def azimuth_bin(azimuth_deg: float, n_bins: int) -> int:
    """PASCAL3D+ ``find_interval``: the 1-based azimuth bin of n bins centred on 0 deg.

    Bin 1 is [0, 180/n) and (360 - 180/n, 360), bin k >= 2 is [(2k - 3) 180/n, (2k - 1) 180/n): an
    azimuth on an edge goes to the upper bin, except the last edge 360 - 180/n, which stays in bin n
    (the official loop ends without a break and ``azimuth > a(end)`` is false). The azimuth is first
    wrapped to [0, 360), which the official code assumes (a negative one would land in a bin 0).
    """
    return int(_azimuth_bins(azimuth_deg, n_bins))


def avp(detections: Sequence[tuple[Hashable, float, ArrayLike, float]],
        ground_truth: Mapping[Hashable, Sequence[tuple[ArrayLike, float, bool]]], n_bins: int, *,
        iou_threshold: float = 0.5, plus_one: bool = False) -> dict[str, Any]:
    """PASCAL3D+ AVP (VDPM compute_recall_precision_accuracy.m): difficult objects are removed, so a
    detection on one is a false positive; a detection is correct when its maximal-IoU object has IoU >=
    0.5 and is not yet detected, and view-correct when its azimuth also falls in the object's bin of n
    bins centred on 0 deg (bin 1 = [0, 180/n) and (360 - 180/n, 360); 360 - 180/n itself stays in bin n);
    AVP = VOCap(recall, cumulative view-correct / rank). Azimuths are wrapped to [0, 360) before binning,
    the one documented pre-step that the official code (which assumes [0, 360)) does not have.

    ``detections``: (image_id, score, box, azimuth_deg) of one class; ``ground_truth``: image_id ->
    [(box, azimuth_deg, difficult)] (the caller passes azimuth_coarse where the annotation's distance
    is 0, as the official code does, and clips predicted boxes to the image if it wants the VDPM
    clipping). Detections are matched in descending score order (stable); the official loop matches
    in file order within each image, which is the same when each image's detections are listed by
    descending score. precision(i) = correct(1..i) / i, view_precision(i) = view-correct(1..i) / i,
    recall(i) = correct(1..i) / n_positives; ``ap`` = VOCap(recall, precision), ``avp`` = VOCap(recall,
    view_precision). The official box_overlap uses the devkit's +1 convention on 1-based pixel boxes;
    our records store continuous boxes, for which ``plus_one=False`` is the same overlap (see
    :func:`box_iou`). With no non-difficult object, ``ap`` and ``avp`` are NaN and ``note`` says why.
    """
    _check_threshold(iou_threshold)
    image_ids = [d[0] for d in detections]
    scores = np.array([d[1] for d in detections], dtype=float)
    boxes = _boxes([d[2] for d in detections], "detections", plus_one)
    pred_bin = _azimuth_bins(np.array([d[3] for d in detections], dtype=float), n_bins)
    kept = {k: [g for g in v if not g[2]] for k, v in ground_truth.items()}  # official: clsinds(diff == 1) = []
    gt_boxes = {k: _boxes([g[0] for g in v], f"ground_truth[{k!r}]", plus_one) for k, v in kept.items()}
    gt_bin = {k: _azimuth_bins(np.array([g[1] for g in v], dtype=float), n_bins) for k, v in kept.items()}
    npos = int(sum(len(v) for v in kept.values()))

    order = _descending(scores)
    ovmax, jmax = _best_overlaps(image_ids, boxes, order, gt_boxes, plus_one)
    detected = {k: np.zeros(len(v), dtype=bool) for k, v in kept.items()}
    correct = np.zeros(len(order), dtype=bool)
    correct_view = np.zeros(len(order), dtype=bool)
    for rank, d in enumerate(order):
        image, j = image_ids[d], jmax[rank]
        if ovmax[rank] >= iou_threshold and not detected[image][j]:
            detected[image][j] = True
            correct[rank] = True
            correct_view[rank] = pred_bin[d] == gt_bin[image][j]

    ranks = np.arange(1, len(order) + 1)
    precision = np.cumsum(correct) / ranks
    view_precision = np.cumsum(correct_view) / ranks
    out: dict[str, Any] = {"precision": precision, "view_precision": view_precision, "n_positives": npos}
    if npos == 0:
        return out | {"ap": float("nan"), "avp": float("nan"), "recall": np.full(len(order), np.nan),
                      "note": "no non-difficult ground truth"}
    recall = np.cumsum(correct) / npos
    return out | {"ap": ap_all_point(recall, precision), "avp": ap_all_point(recall, view_precision),
                  "recall": recall}


def avp_table(detections: Sequence[tuple[Hashable, float, ArrayLike, float]],
              ground_truth: Mapping[Hashable, Sequence[tuple[ArrayLike, float, bool]]], *,
              bins: Sequence[int] = (4, 8, 16, 24), iou_threshold: float = 0.5,
              plus_one: bool = False) -> dict[int, float]:
    """AVP for each number of azimuth bins (PASCAL3D+ reports 4, 8, 16, 24): {n_bins: avp}."""
    return {n: avp(detections, ground_truth, n, iou_threshold=iou_threshold, plus_one=plus_one)["avp"]
            for n in bins}


# --------------------------------------------------------------------------- viewpoint


def _rot_z(a: np.ndarray) -> np.ndarray:
    """Passive rotation about z (MATLAB angle2dcm's R3), (..., 3, 3)."""
    c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, s, o], -1), np.stack([-s, c, o], -1), np.stack([o, o, i], -1)], -2)


def _rot_x(a: np.ndarray) -> np.ndarray:
    """Passive rotation about x (MATLAB angle2dcm's R1), (..., 3, 3)."""
    c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([i, o, o], -1), np.stack([o, c, s], -1), np.stack([o, -s, c], -1)], -2)


def viewpoint_rotation(azimuth_deg: ArrayLike, elevation_deg: ArrayLike, theta_deg: ArrayLike) -> np.ndarray:
    """Rotation (..., 3, 3) of PASCAL3D+ viewpoints (degrees, broadcast), Tulsiani & Malik 2015.

    MATLAB ``angle2dcm(theta, elevation - pi/2, -azimuth, 'ZXZ')`` in radians, i.e.
    R3(-azimuth) @ R1(elevation - pi/2) @ R3(theta) with passive elementary rotations
    R3(a) = [[cos a, sin a, 0], [-sin a, cos a, 0], [0, 0, 1]] and
    R1(a) = [[1, 0, 0], [0, cos a, sin a], [0, -sin a, cos a]].
    At elevation 90 deg (looking straight down) R1 is the identity and R = R3(theta - azimuth):
    azimuth and theta compose, so (azimuth + x, theta + x) is the same rotation.
    """
    az, el, th = (np.radians(np.asarray(v, dtype=float)) for v in (azimuth_deg, elevation_deg, theta_deg))
    az, el, th = np.broadcast_arrays(az, el, th)
    return _rot_z(-az) @ _rot_x(el - np.pi / 2) @ _rot_z(th)


def _viewpoints(x: ArrayLike, name: str) -> np.ndarray:
    v = np.asarray(x, dtype=float)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"{name} must be (N, 3) (azimuth, elevation, theta) in degrees, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite, got {v[~np.isfinite(v).all(axis=1)][0].tolist()}")
    return v


def geodesic_error_deg(pred: ArrayLike, gt: ArrayLike) -> np.ndarray:
    """Geodesic distance (N,) in degrees, in [0, 180], between viewpoint rotations.

    ``pred``, ``gt``: (N, 3) (azimuth, elevation, theta) in degrees, rotations by
    :func:`viewpoint_rotation`. Equals ||logm(R_pred^T R_gt)||_F / sqrt(2); computed as
    atan2(sin, cos) of the rotation angle of M = R_pred^T R_gt, with cos = (trace M - 1) / 2 and
    sin = |vee((M - M^T) / 2)|, which, unlike arccos of the clipped cosine, keeps full precision
    near 0 and 180 deg.
    """
    p, g = _viewpoints(pred, "pred"), _viewpoints(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt must have the same shape, got {p.shape} and {g.shape}")
    m = np.swapaxes(viewpoint_rotation(*p.T), -1, -2) @ viewpoint_rotation(*g.T)  # (N, 3, 3)
    cos = (np.trace(m, axis1=-2, axis2=-1) - 1.0) / 2.0
    axis = np.stack([m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], -1) / 2.0
    return np.degrees(np.arctan2(np.linalg.norm(axis, axis=-1), cos))


def viewpoint_metrics(pred: ArrayLike, gt: ArrayLike, threshold_deg: float = 30.0) -> dict[str, float]:
    """Geodesic error ||logm(R_pred^T R_gt)||_F / sqrt(2) in degrees between viewpoint rotations
    R = angle2dcm(theta, elevation - pi/2, -azimuth, 'ZXZ') (Tulsiani & Malik 2015); Acc@pi/6 is the
    fraction of objects with error < 30 deg (strict), reported with the median error.

    ``pred``, ``gt``: (N, 3) (azimuth, elevation, theta) in degrees. Returns ``acc_pi_6`` (the
    fraction below ``threshold_deg``, pi/6 unless changed), ``median_error_deg``, ``n`` and
    ``threshold_deg``; NaN values when N = 0.
    """
    err = geodesic_error_deg(pred, gt)
    if not len(err):
        return {"acc_pi_6": float("nan"), "median_error_deg": float("nan"), "n": 0,
                "threshold_deg": float(threshold_deg)}
    return {"acc_pi_6": float(np.mean(err < threshold_deg)), "median_error_deg": float(np.median(err)),
            "n": len(err), "threshold_deg": float(threshold_deg)}


# --------------------------------------------------------------------------- retrieval


def top_k_accuracy(query_labels: Sequence[Hashable], ranked_labels: Sequence[Sequence[Hashable]], k: int) -> float:
    """Fraction of queries with their own label among the first ``k`` ranked items (best first);
    an empty ranking is a miss. NaN when there are no queries."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if len(query_labels) != len(ranked_labels):
        raise ValueError(f"{len(query_labels)} query labels but {len(ranked_labels)} rankings: one ranking per query")
    if not len(query_labels):
        return float("nan")
    hits = [any(r == q for r in list(ranked)[:k]) for q, ranked in zip(query_labels, ranked_labels, strict=True)]
    return float(np.mean(hits))


def retrieval_top1(query_labels: Sequence[Hashable], ranked_labels: Sequence[Sequence[Hashable]]) -> float:
    """Fraction of queries whose first-ranked item carries the query's label; a query with an empty
    ranking counts as a miss.

    ``ranked_labels``: one sequence of item labels per query, best first. NaN without queries.
    """
    return top_k_accuracy(query_labels, ranked_labels, 1)
