"""Retrieval and exemplar detection against a database of rendered views (seed 004 §3.2-3.3,
§4.3): the pure computations, no I/O.

Conventions: features are rows (N, D) float32; a view database is ``Y`` (V, D) with per-view
``aspect`` (height / width of its bounding box), model and category; boxes are
(x0, y0, x1, y1) pixels with x1/y1 exclusive; scores are "higher is more similar".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.metrics import box_iou

EPS = 1e-12


# --------------------------------------------------------------------------- similarity
def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), EPS)


def similarity(queries: np.ndarray, views: np.ndarray, kind: str) -> np.ndarray:
    """(Q, V) similarities of eq. 3.1-3.3: ``l2`` = -||a - b||², ``dot`` = a·b, ``cos``."""
    a, b = np.asarray(queries, np.float32), np.asarray(views, np.float32)
    if kind == "dot":
        return a @ b.T
    if kind == "cos":
        return normalise(a) @ normalise(b).T
    if kind == "l2":
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
        return -np.maximum(sq, 0.0)
    raise ValueError(f"unknown similarity {kind!r}: l2, dot or cos")


def aspect_compatible(query_aspect: np.ndarray, view_aspect: np.ndarray, tau: float) -> np.ndarray:
    """Eq. 3.4, (Q, V) bool: tau < AR(q) / AR(r) < 1 / tau. ``tau`` 0 keeps every pair."""
    q = np.asarray(query_aspect, np.float64)[:, None]
    r = np.asarray(view_aspect, np.float64)[None, :]
    if tau <= 0:
        return np.ones((q.shape[0], r.shape[1]), bool)
    ratio = q / r
    return (ratio > tau) & (ratio < 1.0 / tau)


def masked(scores: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``scores`` with the pairs outside ``mask`` set to -inf."""
    return scores if mask is None else np.where(mask, scores, -np.inf)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(Q, k) column indices of the k best scores per row, best first (ties: lower index)."""
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, :k]


# --------------------------------------------------------------------------- multi-view
def model_scores(scores: np.ndarray, view_model: np.ndarray, n_models: int) -> np.ndarray:
    """Eq. 3.5: s_n^m = max over the views v of model m of s_n^{m,v}; (N, M), -inf for a
    model with no (compatible) view. ``view_model``: (V,) model index of every view."""
    out = np.full((scores.shape[0], n_models), -np.inf, np.float64)
    for m in range(n_models):
        cols = view_model == m
        if cols.any():
            out[:, m] = scores[:, cols].max(axis=1)
    return out


def multiview_choice(scores: np.ndarray, view_model: np.ndarray, n_models: int) -> tuple[int, np.ndarray]:
    """Eq. 3.9 and 3.10 for N images of one object: the model m̂ = argmax_m Σ_n max_v s_n^{m,v}
    (a model missing from an image's compatible views scores -inf there) and, per image,
    the view v̂_n = argmax_v s_n^{m̂,v} (an index into the V views)."""
    per_model = model_scores(scores, view_model, n_models)
    total = per_model.sum(axis=0)
    if not np.isfinite(total).any():  # no model compatible with every image: drop the filter's -inf
        total = np.where(np.isfinite(per_model), per_model, 0.0).sum(axis=0)
    m_hat = int(np.argmax(total))
    cols = np.nonzero(view_model == m_hat)[0]
    views = cols[np.argmax(scores[:, cols], axis=1)]
    return m_hat, views


# --------------------------------------------------------------------------- calibration
def calibration(random_scores: np.ndarray, percentile: float = 99.99) -> tuple[np.ndarray, np.ndarray]:
    """Per-view affine calibration s' = c s + d (seed 004 §4.3.1, Aubry et al.): from the
    (P, V) scores of P random patches, c and d (V,) such that the mean patch score maps to
    -1 and the ``percentile`` one to 0 (an expected false-positive rate of 0.01% at s' = 0)."""
    s = np.asarray(random_scores, np.float64)
    mean = s.mean(axis=0)
    high = np.percentile(s, percentile, axis=0)
    span = np.maximum(high - mean, 1e-6)
    c = 1.0 / span
    return c.astype(np.float32), (-high * c).astype(np.float32)


# --------------------------------------------------------------------------- proposals
def geometric(lo: float, hi: float, step: float) -> np.ndarray:
    """lo, lo*step, lo*step², ... up to hi (inclusive, with a little tolerance)."""
    n = int(np.floor(np.log(hi / lo) / np.log(step) + 1e-9)) + 1
    return lo * step ** np.arange(max(n, 1))


def sliding_windows(width: int, height: int, sizes: Sequence[float], aspects: Sequence[float],
                    stride: float) -> np.ndarray:
    """A sliding-window pyramid (R, 4): for every relative size (longer side = size x the
    image's shorter side) and aspect (height / width), windows inside the image stepped by
    ``stride`` times their own width/height, the last one flush with the border. The longer
    sides take only ``len(sizes)`` values, so features need one map per size."""
    side = min(width, height)
    out = []
    for size in sizes:
        longest = side * size
        for aspect in aspects:
            w, h = (longest / aspect, longest) if aspect >= 1 else (longest, longest * aspect)
            if w > width + 1e-6 or h > height + 1e-6:
                continue
            xs = _positions(width, w, stride * w)
            ys = _positions(height, h, stride * h)
            gx, gy = np.meshgrid(xs, ys)
            out.append(np.stack([gx.ravel(), gy.ravel(), gx.ravel() + w, gy.ravel() + h], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 4))


def _positions(extent: float, size: float, step: float) -> np.ndarray:
    last = max(extent - size, 0.0)
    n = int(np.ceil(last / step)) + 1 if last > 0 else 1
    return np.linspace(0.0, last, n)


def box_aspect(boxes: np.ndarray) -> np.ndarray:
    """height / width of each box (R,)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.maximum(b[:, 3] - b[:, 1], EPS) / np.maximum(b[:, 2] - b[:, 0], EPS)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression: indices kept, best score first."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    while len(order):
        i = int(order[0])
        keep.append(i)
        if len(order) == 1:
            break
        overlap = box_iou(boxes[i : i + 1], boxes[order[1:]])[0]
        order = order[1:][overlap <= iou]
    return np.asarray(keep, int)


# --------------------------------------------------------------------------- detection
def azimuth_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Absolute azimuth differences in degrees, in [0, 180]."""
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) % 360.0
    return np.minimum(d, 360.0 - d)


def errors_at_recall(correct: np.ndarray, errors: np.ndarray, n_positives: int, recall: float) -> np.ndarray:
    """Fig. 4.9: the errors of the correct detections among the best-ranked ones that
    reach ``recall`` (detections sorted by score, best first; ``correct`` and ``errors``
    aligned with them). Fewer when the detector never reaches that recall."""
    correct = np.asarray(correct, bool)
    need = int(np.ceil(recall * n_positives))
    idx = np.nonzero(correct)[0][:need]
    return np.asarray(errors, np.float64)[idx]
