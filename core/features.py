"""Frozen CNN features of rendered views and photos (seed 004 §3.2.2): the representation
shared by cross-domain retrieval, the adaptation φ and exemplar detection.

A feature is a box of an image seen through a layer of the ImageNet MobileNetV2
(core/pretrained.py) on the grey-scale image: the box's cells of the layer's map,
max-pooled to a ``grid x grid`` map and flattened in (channel, row, column) order, like
the seed's pool3/pool4 (conv features max-pooled with stride 2). The map is computed at
the scale that brings the box's longer side to ``image_size`` pixels, so boxes of any
size and aspect give features of one size (the seed resizes crops to 224²; the
aspect-ratio filter restores the shape). Views, training pairs and retrieval queries get
that scale exactly; detection proposals the nearest level of an image pyramid whose maps
are computed once per image (:meth:`FeatureExtractor.box_features`). The same definition
everywhere is what lets φ, trained on pairs, transfer to proposals.

Layers, shallow to deep (``models.mobilenet.MobileNetV2.features`` cut after entry
``cut - 1``):

=====  ====  ========  =======================================================
name   cut   channels  seed 004 analogue
=====  ====  ========  =======================================================
c3     7     32        pool3 (stride 8)
c4     14    96        pool4 (stride 16), the seed's best for retrieval
c5     18    320       pool5 (stride 32)
gap    19    1280      fc-like: the last 1x1 conv, averaged over the box
=====  ====  ========  =======================================================

MobileNetV2 block outputs are linear bottlenecks (they can be negative); the seed's
features come after a ReLU, so ``relu: true`` clamps them at zero.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from core.params import FeaturesParams
from models.mobilenet import MobileNet, MobileNetV2

log = logging.getLogger("cad2real.features")

# File names of the feature products: the view database's info (stage view_features), the
# adaptation's meta and its pair features (stage train_adaptation); read by core/detector.py.
VIEWS_INFO = "info.json"
ADAPTATION_META = "adaptation.json"
PAIRS = "pairs.npz"
LAYER_CUTS: dict[str, int] = {"c3": 7, "c4": 14, "c5": 18, "gap": 19}
LAYER_STRIDES: dict[str, int] = {"c3": 8, "c4": 16, "c5": 32, "gap": 32}
SAMPLES = 2  # bilinear samples per pooling bin and axis


def load_backbone(p: FeaturesParams, seed: int = 0) -> tuple[MobileNet, dict[str, Any]]:
    """The frozen backbone of ``p`` and where it came from. Without a weights file the
    network keeps a seeded random initialisation: the pipeline still runs end to end, the
    log says so loudly and ``info["source"]`` is ``"random-init"`` in every output."""
    from core.pretrained import BackboneNotFound, find_backbone

    try:
        net, info = find_backbone(p.backbone, p.weights)
    except BackboneNotFound as exc:
        log.warning("features: %s; using a RANDOMLY INITIALISED %s (seed %d): retrieval and detection "
                    "figures are then only a smoke test", exc, p.backbone, seed)
        torch.manual_seed(seed)
        net = MobileNetV2()
        info = {"backbone": p.backbone, "weights": None, "source": "random-init", "input_size": net.input_size,
                "embedding_dim": net.embedding_dim}
    return net.eval().requires_grad_(False), info


def _input(images: np.ndarray, net: MobileNet) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> the network's normalised float input."""
    x = (torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() - 128.0) / 128.0
    return x * net.input_scale.view(1, 3, 1, 1) + net.input_shift.view(1, 3, 1, 1)


class FeatureExtractor:
    """Features of ``layers`` (default: ``p.layers``) from one frozen backbone."""

    def __init__(self, p: FeaturesParams, layers: Sequence[str] | None = None, seed: int = 0,
                 backbone: tuple[MobileNet, dict[str, Any]] | None = None):
        self.p = p
        self.layers = tuple(layers or p.layers)
        unknown = [name for name in self.layers if name not in LAYER_CUTS]
        if unknown:
            raise ValueError(f"unknown feature layers {unknown}: one of {sorted(LAYER_CUTS)}")
        self.net, self.info = backbone or load_backbone(p, seed)
        self.cut = max(LAYER_CUTS[name] for name in self.layers)

    def maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised input (N, 3, H, W) -> the feature map of each layer, (N, C, h, w)."""
        out, cuts = {}, {LAYER_CUTS[name]: name for name in self.layers}
        for i, module in enumerate(self.net.features[: self.cut], start=1):
            x = module(x)
            if i in cuts:
                out[cuts[i]] = x
        return out

    def dims(self) -> dict[str, int]:
        """The feature dimension of each layer."""
        probe = self.box_features(np.zeros((32, 32, 3), np.uint8), np.array([[0.0, 0.0, 32.0, 32.0]]))
        return {name: int(v.shape[1]) for name, v in probe.items()}

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        """uint8 (H, W[, 3]) RGB -> (H, W, 3), grey replicated when ``grey``."""
        if image.ndim == 2:
            image = image[..., None]
        if image.shape[2] == 1:
            return np.repeat(image, 3, axis=2)
        if self.p.grey:
            return np.repeat(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        return image

    def _scaled_maps(self, image: np.ndarray, scale: float) -> dict[str, torch.Tensor]:
        h, w = image.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        scaled = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        maps = self.maps(_input(scaled[None], self.net))
        return {name: F.relu(m[0]) if self.p.relu else m[0] for name, m in maps.items()}

    def _pool_boxes(self, fmap: torch.Tensor, boxes: np.ndarray, layer: str) -> torch.Tensor:
        """Boxes (R, 4; pixels of the map's input) of ``fmap`` (C, h, w) pooled to (R, D):
        RoIAlign-style, ``SAMPLES`` x ``SAMPLES`` bilinear samples per bin at exact fractional
        positions (no rounding to cells, so a box gives the same feature wherever the cell
        grid falls), max over each bin's samples (``gap``: mean over the box)."""
        c, fh, fw = fmap.shape
        g = 1 if layer == "gap" else self.p.grid
        n = g * SAMPLES
        b = torch.from_numpy(np.asarray(boxes, np.float32).reshape(-1, 4)) / LAYER_STRIDES[layer]
        t = (torch.arange(n, dtype=torch.float32) + 0.5) / n  # sample positions in [0, 1]
        xs = b[:, 0:1] + t[None] * (b[:, 2:3] - b[:, 0:1])  # (R, n) in cells
        ys = b[:, 1:2] + t[None] * (b[:, 3:4] - b[:, 1:2])
        grid = torch.stack([(2 * xs / fw - 1)[:, None, :].expand(-1, n, -1),
                            (2 * ys / fh - 1)[:, :, None].expand(-1, -1, n)], dim=-1)  # (R, n, n, 2)
        sampled = F.grid_sample(fmap[None].expand(len(b), -1, -1, -1), grid, mode="bilinear",
                                padding_mode="border", align_corners=False)  # (R, C, n, n)
        if layer == "gap":
            return sampled.mean(dim=(2, 3))
        return F.max_pool2d(sampled, SAMPLES).flatten(1)

    @torch.inference_mode()
    def box_features(self, image: np.ndarray, boxes: np.ndarray, shared: bool = False) -> dict[str, np.ndarray]:
        """Features of ``boxes`` (R, 4; x0, y0, x1, y1 pixels) of one uint8 image: {layer: (R, D)}.

        The one definition of a feature in cad2real: a box's part of the layer's map of the
        image, computed at the scale that makes the box's longer side ``image_size`` pixels,
        pooled to grid x grid. Each box gets that scale exactly, so a box gives the same
        feature however it is computed: alone, on the image (or the box plus ``context`` of
        its size on every side: views, training pairs, retrieval queries), or with ``shared``, from one
        map of the whole image per distinct scale (detection proposals, whose longer sides
        take few values, and their calibration patches).
        """
        image = self._prepare(image)
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        h, w = image.shape[:2]
        longest = np.maximum(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), 1.0)
        scale = np.round(self.p.image_size / longest, 4)
        out: dict[str, list] = {name: [None] * len(boxes) for name in self.layers}
        if not shared:
            for i, box in enumerate(boxes):
                x0, y0, x1, y1 = 0, 0, w, h
                if self.p.context is not None:
                    mx, my = self.p.context * (box[2] - box[0]), self.p.context * (box[3] - box[1])
                    x0, y0 = max(0, math.floor(box[0] - mx)), max(0, math.floor(box[1] - my))
                    x1, y1 = min(w, math.ceil(box[2] + mx)), min(h, math.ceil(box[3] + my))
                maps = self._scaled_maps(image[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)], float(scale[i]))
                local = (box - np.array([x0, y0, x0, y0])) * scale[i]
                for name, fmap in maps.items():
                    out[name][i] = self._pool_boxes(fmap, local, name)[0]
        else:
            for s in np.unique(scale):
                chosen = np.nonzero(scale == s)[0]
                for name, fmap in self._scaled_maps(image, float(s)).items():
                    for i, v in zip(chosen, self._pool_boxes(fmap, boxes[chosen] * s, name), strict=True):
                        out[name][i] = v
        return {name: torch.stack(v).numpy() if len(v) else np.zeros((0, 0), np.float32) for name, v in out.items()}

    def many(self, items: Sequence[tuple[np.ndarray, Any]], desc: str | None = None) -> dict[str, np.ndarray]:
        """:meth:`box_features` of one box per image for (image, box) pairs, box None = the
        whole image: {layer: (N, D)}; a progress bar named ``desc`` when given."""
        out: dict[str, list[np.ndarray]] = {name: [] for name in self.layers}
        for image, box in tqdm(items, desc=desc, unit="img", mininterval=2.0, disable=desc is None):
            box = (0.0, 0.0, float(image.shape[1]), float(image.shape[0])) if box is None else box
            for name, f in self.box_features(image, np.asarray(box, np.float64)[None]).items():
                out[name].append(f)
        return {name: np.concatenate(v) if v else np.zeros((0, 0), np.float32) for name, v in out.items()}
