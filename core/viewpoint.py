"""Viewpoint estimation and joint detection (seed 004 chapter 5, §5.3-5.4).

A viewpoint model sees a box of an image through the frozen ImageNet MobileNetV2
(:mod:`core.features`: the ``viewpoint.layer`` map pooled to ``viewpoint.grid`` cells) and
a small trainable network: a shared convolutional trunk (the seed's layers up to pool5),
then fully connected branches, one per task, whose last layer is shared by nothing: one
estimator per class, sharing all but that last layer (§5.3).

Pose representations of an angle a (azimuth, elevation and in-plane θ alike):

==============  =====================================================================
representation  output per class, loss, decoding
==============  =====================================================================
reg2d           (cos a, sin a); Huber loss per component (eq. 5.1-5.2); atan2
reg3d           (cos(a-π/3), cos a, cos(a+π/3)); Huber; the closest point of the curve
classif         Nv bins centred on 0, bins·k; cross-entropy (eq. 5.3); argmax (eq. 5.4)
geom            360 bins, cross-entropy weighted by exp(-d/σ) to every bin (eq. 5.5)
==============  =====================================================================

Methods (``viewpoint.methods``; ``<method>_real`` adds the user's real annotated photos):

- ``reg2d``, ``reg3d``, ``classif``, ``geom``: pose only, trained on object boxes; their
  detections come from the independent detector (:data:`DETECTOR`, the fixed detector of
  Table 5.1), whose weights travel in the model folder so ``c2r predict`` can classify.
- ``joint_reg2d``, ``joint_reg3d`` (eq. 5.6): a detection branch (Nc + 1 classes, cross
  entropy) and a pose branch sharing the trunk, L = Ldet + λ Lreg.
- ``joint_classif`` (eq. 5.7-5.8): the azimuth output of every class and bin plus one
  background value, normalised together; a class's score is the sum over its bins.

Elevation and θ use the method's representation as separate per-class heads
(``joint_classif``: direct classification), so every model predicts a full viewpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.predictors import PredictorError, load_weights, register, save_predictor

KIND = "viewpoint"
ANGLES = ("azimuth", "elevation", "theta")
REPRESENTATIONS = ("reg2d", "reg3d", "classif", "geom")
DETECTOR = "detector"
BASE_METHODS = ("reg2d", "reg3d", "classif", "geom", "joint_reg2d", "joint_reg3d", "joint_classif")
REAL_SUFFIX = "_real"
_S3 = math.sin(math.pi / 3)
REG_BASIS = {"reg2d": np.array([[1.0, 0.0], [0.0, 1.0]]),
             # cos(a - pi/3), cos a, cos(a + pi/3) as rows times (cos a, sin a)
             "reg3d": np.array([[0.5, _S3], [1.0, 0.0], [0.5, -_S3]])}


@dataclass(frozen=True)
class Method:
    """What a method name means: its pose representation, whether detection is trained
    with it (``joint``), and whether real annotated photos join the renders (``real``)."""

    name: str
    representation: str | None  # None: the detector alone
    joint: bool
    real: bool

    @property
    def needs_detector(self) -> bool:
        """Pose-only methods get their boxes and classes from the independent detector."""
        return self.representation is not None and not self.joint


def parse_method(name: str) -> Method:
    """``classif``, ``joint_reg3d_real``, ``detector``, ... -> :class:`Method`."""
    base, real = (name[: -len(REAL_SUFFIX)], True) if name.endswith(REAL_SUFFIX) else (name, False)
    if base == DETECTOR:
        return Method(name, None, True, real)
    if base not in BASE_METHODS:
        raise ValueError(f"unknown viewpoint method {name!r}: one of {list(BASE_METHODS)} "
                         f"(optionally with {REAL_SUFFIX!r}: add real annotated photos), or {DETECTOR!r}")
    joint = base.startswith("joint_")
    return Method(name, base.removeprefix("joint_"), joint, real)


# --------------------------------------------------------------------------- angles


def wrap180(deg: np.ndarray | float) -> np.ndarray:
    """Degrees to (-180, 180]."""
    d = np.mod(np.asarray(deg, float), 360.0)
    return np.where(d > 180.0, d - 360.0, d)


def flip_viewpoint(azimuth: np.ndarray, elevation: np.ndarray, theta: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The viewpoint of the horizontally mirrored image: azimuth -> 360 - azimuth, θ -> -θ,
    elevation unchanged (PASCAL3D+ convention; the mirror of a symmetric object)."""
    return np.mod(-np.asarray(azimuth, float), 360.0), np.asarray(elevation, float), wrap180(-np.asarray(theta))


def to_bins(deg: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each angle among ``n_bins`` bins centred on 0, 360/n, ... (PASCAL3D+'s)."""
    width = 360.0 / n_bins
    return np.mod(np.floor(np.mod(np.asarray(deg, float), 360.0) / width + 0.5), n_bins).astype(np.int64)


def bin_centres(bins: np.ndarray, n_bins: int) -> np.ndarray:
    return np.asarray(bins, float) * (360.0 / n_bins)


def encode_regression(deg: np.ndarray, representation: str) -> np.ndarray:
    """F(a) of eq. 5.1: (N,) degrees -> (N, Nd)."""
    a = np.radians(np.asarray(deg, float))
    return np.stack([np.cos(a), np.sin(a)], axis=-1) @ REG_BASIS[representation].T


def decode_regression(y: np.ndarray, representation: str) -> np.ndarray:
    """The angle of the closest point of the curve F to each output (N, Nd), in degrees
    [0, 360). For both curves ``M^T M`` is a multiple of the identity, so the closest point
    is the direction of ``M^T y`` (exact, no search)."""
    u = np.asarray(y, float) @ REG_BASIS[representation]
    return np.mod(np.degrees(np.arctan2(u[..., 1], u[..., 0])), 360.0)


def geometric_weights(target_bin: torch.Tensor, n_bins: int, sigma: float) -> torch.Tensor:
    """exp(-d(v, θ̃)/σ) of eq. 5.5 for every bin v: d is the circular distance between bin
    centres, in bins (1° with the seed's 360 bins). (N,) -> (N, n_bins)."""
    v = torch.arange(n_bins, device=target_bin.device)
    d = (v[None, :] - target_bin[:, None]).abs()
    return torch.exp(-torch.minimum(d, n_bins - d).float() / sigma)


def huber(z: torch.Tensor) -> torch.Tensor:
    """H(z) of eq. 5.2 (the smooth L1 with threshold 1), elementwise."""
    a = z.abs()
    return torch.where(a < 1.0, 0.5 * z * z, a - 0.5)


# --------------------------------------------------------------------------- network


@dataclass(frozen=True)
class Config:
    """Everything that shapes a viewpoint network (stored in ``predictor.json``)."""

    method: str
    categories: tuple[str, ...]
    channels: int
    grid: int
    bins: int = 36
    geom_bins: int = 360
    geom_sigma: float = 3.0
    width: int = 128
    hidden: int = 512
    dropout: float = 0.5

    @property
    def m(self) -> Method:
        return parse_method(self.method)

    @property
    def pose_dim(self) -> int:
        """Outputs per class of each angle's head."""
        rep = self.m.representation
        if rep in REG_BASIS:
            return len(REG_BASIS[rep])
        return self.geom_bins if rep == "geom" else self.bins


def _branch(inputs: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout))


class ViewpointNet(nn.Module):
    """Trunk (two 3x3 convolutions over the pooled map, the "pool5" the branches share) and
    the method's branches. ``forward`` returns a dict: ``det`` (N, Nc + 1) logits with the
    background last (detector and joint regression), ``joint`` (N, Nc·Nv + 1) for
    ``joint_classif`` (background last), and one (N, Nc, dim) tensor per angle."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        m, nc, c, w = cfg.m, len(cfg.categories), cfg.channels, cfg.width
        self.register_buffer("scale", torch.ones(c))
        self.trunk = nn.Sequential(nn.Conv2d(c, w, 3, padding=1), nn.ReLU(inplace=True),
                                   nn.Conv2d(w, w, 3, stride=2, padding=1), nn.ReLU(inplace=True), nn.Flatten())
        flat = w * ((cfg.grid + 1) // 2) ** 2
        if m.representation is None or (m.joint and m.representation != "classif"):
            self.det_branch = _branch(flat, cfg.hidden, cfg.dropout)
            self.det = nn.Linear(cfg.hidden, nc + 1)
        if m.representation is not None:
            self.pose_branch = _branch(flat, cfg.hidden, cfg.dropout)
            heads = {}
            for angle in ANGLES:
                if m.joint and m.representation == "classif":
                    heads[angle] = nn.Linear(cfg.hidden, nc * cfg.bins + (1 if angle == "azimuth" else 0))
                else:
                    heads[angle] = nn.Linear(cfg.hidden, nc * cfg.pose_dim)
            self.heads = nn.ModuleDict(heads)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, nc = self.cfg, len(self.cfg.categories)
        x = x.view(len(x), cfg.channels, cfg.grid, cfg.grid) * self.scale.view(1, -1, 1, 1)
        h = self.trunk(x)
        out = {}
        if hasattr(self, "det"):
            out["det"] = self.det(self.det_branch(h))
        if hasattr(self, "heads"):
            p = self.pose_branch(h)
            for angle, head in self.heads.items():
                y = head(p)
                if angle == "azimuth" and cfg.m.joint and cfg.m.representation == "classif":
                    out["joint"] = y
                    y = y[:, :-1]
                out[angle] = y.view(len(y), nc, -1)
        return out


def angle_targets(deg: torch.Tensor, cfg: Config) -> torch.Tensor:
    """The training target of one angle in the method's representation (bins as int64)."""
    rep = cfg.m.representation
    if rep in REG_BASIS:
        return torch.from_numpy(encode_regression(deg.numpy(), rep)).float()
    return torch.from_numpy(to_bins(deg.numpy(), cfg.geom_bins if rep == "geom" else cfg.bins))


def pose_loss(out: torch.Tensor, target: torch.Tensor, cls: torch.Tensor, cfg: Config) -> torch.Tensor:
    """Mean per object of eq. 5.1 (regression), 5.3 (classif) or 5.5 (geom) on the outputs
    of each object's own class. ``out`` (N, Nc, dim), ``cls`` (N,) class indices >= 0."""
    rows = out[torch.arange(len(cls)), cls]  # (N, dim)
    rep = cfg.m.representation
    if rep in REG_BASIS:
        return huber(rows - target).sum(dim=1).mean()
    logp = F.log_softmax(rows, dim=1)
    if rep == "geom":
        return -(geometric_weights(target, cfg.geom_bins, cfg.geom_sigma) * logp).sum(dim=1).mean()
    return F.nll_loss(logp, target)


def loss(net: ViewpointNet, x: torch.Tensor, cls: torch.Tensor, targets: dict[str, torch.Tensor],
         lam: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The method's training loss on a batch; ``cls`` is -1 for background windows.

    detector: Ldet (cross entropy over Nc + 1); pose only: the pose losses of the three
    angles on the objects; joint regression: Ldet + λ Lreg (eq. 5.6); joint classification:
    eq. 5.7 over (class, azimuth bin) + background, plus the elevation/θ classification."""
    cfg, nc = net.cfg, len(net.cfg.categories)
    out = net(x)
    obj = cls >= 0
    parts: dict[str, torch.Tensor] = {}
    if "det" in out:
        parts["det"] = F.cross_entropy(out["det"], torch.where(obj, cls, torch.full_like(cls, nc)))
    if "joint" in out:
        joint_target = torch.where(obj, cls * cfg.bins + targets["azimuth"].clamp(min=0), torch.full_like(cls, nc * cfg.bins))
        parts["joint"] = F.cross_entropy(out["joint"], joint_target)
    if cfg.m.representation is not None and obj.any():
        angles = ANGLES[1:] if "joint" in out else ANGLES
        reg = sum(pose_loss(out[a][obj], targets[a][obj], cls[obj], cfg) for a in angles)
        parts["pose"] = (lam if "det" in out else 1.0) * reg
    total = sum(parts.values())
    return total, {k: float(v.detach()) for k, v in parts.items()}


def joint_class_proba(logits: torch.Tensor, n_classes: int, n_bins: int) -> np.ndarray:
    """Eq. 5.7-5.8: (N, Nc·Nv + 1) joint logits (background last) normalised globally; a
    class's probability is the sum over its bins. -> (N, Nc + 1), background last."""
    p = torch.softmax(logits.double(), dim=1)
    return torch.cat([p[:, :-1].reshape(len(p), n_classes, n_bins).sum(dim=2), p[:, -1:]], dim=1).numpy()


@torch.no_grad()
def infer(net: ViewpointNet, x: torch.Tensor) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Class probabilities (N, Nc + 1; background last) when the net detects, and the
    viewpoint of every class (N, Nc, 3) in degrees (azimuth [0, 360), elevation and θ
    (-180, 180]) when it estimates pose."""
    cfg = net.cfg
    out = net.eval()(x)
    proba = None
    if "det" in out:
        proba = torch.softmax(out["det"], dim=1).double().numpy()
    if "joint" in out:
        proba = joint_class_proba(out["joint"], len(cfg.categories), cfg.bins)
    if cfg.m.representation is None:
        return proba, None
    views = []
    for angle in ANGLES:
        y = out[angle].double().numpy()
        rep = cfg.m.representation
        if rep in REG_BASIS:
            deg = decode_regression(y, rep)
        else:
            n = y.shape[-1]
            deg = bin_centres(y.argmax(axis=-1), n)
        views.append(deg if angle == "azimuth" else wrap180(deg))
    return proba, np.stack(views, axis=-1)


# --------------------------------------------------------------------------- predictor


class ViewpointModel:
    """A trained viewpoint method with its feature extractor: the ``viewpoint`` predictor
    kind (``c2r predict`` on object crops: class from the detector part, then that
    class's viewpoint) and what the evaluation calls on boxes of whole images."""

    def __init__(self, pose: ViewpointNet | None, detector: ViewpointNet, extractor: Any, layer: str,
                 info: dict[str, Any]):
        self.pose, self.detector, self.extractor, self.layer = pose, detector, extractor, layer
        self.info = info
        self.categories = tuple(info["categories"])

    def features(self, image: np.ndarray, boxes: np.ndarray, shared: bool = False) -> torch.Tensor:
        f = self.extractor.box_features(image, boxes, shared=shared)[self.layer]
        return torch.from_numpy(np.ascontiguousarray(f, np.float32))

    def score(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """(R, Nc + 1) class probabilities and (R, Nc, 3) viewpoints of feature rows."""
        proba, views = infer(self.detector, x)
        if self.pose is not None and self.pose is not self.detector:
            views = infer(self.pose, x)[1]
        return proba, views

    def _whole(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        probas, views = [], []
        for image in images:
            box = np.array([[0.0, 0.0, float(image.shape[1]), float(image.shape[0])]])
            p, v = self.score(self.features(image, box))
            probas.append(p)
            views.append(v)
        return np.concatenate(probas), None if views[0] is None else np.concatenate(views)

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Each image is one object: the class probabilities without the background."""
        if not len(images):
            return np.zeros((0, len(self.categories)))
        p = self._whole(images)[0][:, :-1]
        return p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)

    def predict_viewpoint(self, images: Sequence[np.ndarray]) -> np.ndarray | None:
        """(N, 3) azimuth, elevation, θ of the most probable class of each object image."""
        if not len(images):
            return np.zeros((0, 3))
        p, v = self._whole(images)
        if v is None:
            return None
        best = p[:, :-1].argmax(axis=1)
        return v[np.arange(len(best)), best]

    def save(self, folder: str | Path) -> Path:
        arrays = {f"detector.{k}": v.detach().cpu().numpy() for k, v in self.detector.state_dict().items()}
        if self.pose is not None and self.pose is not self.detector:
            arrays |= {f"pose.{k}": v.detach().cpu().numpy() for k, v in self.pose.state_dict().items()}
        arrays |= {f"backbone.{k}": v.detach().cpu().numpy() for k, v in self.extractor.net.state_dict().items()
                   if _in_cut(k, self.extractor.cut)}
        return save_predictor(folder, {**self.info, "kind": KIND, "categories": list(self.categories)}, arrays)


def _in_cut(key: str, cut: int) -> bool:
    """Backbone state keys the features need: ``features.<i>`` with i < cut, and buffers."""
    parts = key.split(".")
    return parts[0] != "features" and parts[0] != "classifier" or (parts[0] == "features" and int(parts[1]) < cut)


def config_from(info: dict[str, Any], key: str) -> Config:
    c = dict(info[key])
    c["categories"] = tuple(c["categories"])
    return Config(**c)


def _net(cfg: Config, arrays: dict[str, np.ndarray], prefix: str, path: Path) -> ViewpointNet:
    net = ViewpointNet(cfg)
    state = {k[len(prefix):]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith(prefix)}
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise PredictorError(f"{path}: {prefix[:-1]} weights do not fit the {cfg.method} network: "
                             f"{' '.join(str(exc).split())[:300]}") from None
    return net.eval()


@register(KIND)
def load(folder: Path, info: dict[str, Any]) -> ViewpointModel:
    from core.features import FeatureExtractor
    from core.params import FeaturesParams
    from models.mobilenet import MobileNetV2

    for key in ("detector_config", "features", "layer"):
        if key not in info:
            raise PredictorError(f"{folder / 'predictor.json'}: field {key!r} is missing")
    arrays = load_weights(folder)
    path = folder / "weights.npz"
    detector = _net(config_from(info, "detector_config"), arrays, "detector.", path)
    pose = _net(config_from(info, "pose_config"), arrays, "pose.", path) if info.get("pose_config") else None
    if pose is None and detector.cfg.m.representation is not None:
        pose = detector
    backbone = MobileNetV2()
    state = backbone.state_dict()
    state.update({k[len("backbone."):]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("backbone.")})
    backbone.load_state_dict(state)
    fp = FeaturesParams(**info["features"])
    extractor = FeatureExtractor(fp, layers=[info["layer"]], backbone=(backbone.eval().requires_grad_(False),
                                                                        {"source": info.get("weights_source")}))
    return ViewpointModel(pose, detector, extractor, info["layer"], info)
