"""Torch networks as saved models: an architecture description (JSON) that rebuilds the
module, and the ``torch`` predictor kind that serves it.

A torch model folder is ``predictor.json`` (kind ``torch``, categories, ``arch``, input
normalisation) plus ``weights.npz`` (the state dict as plain arrays, fixed timestamps):
loading it runs no code from the file, and the same weights give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.predictors import PredictorError, load_weights, register, save_predictor, to_input
from models.classifiers import build_classifier
from models.conjugate import ConjugateNet
from core.pretrained import BACKBONES
from models.heads import FeatureClassifier
from models.reconstruction import build_reconstructor

KIND = "torch"


def build_network(arch: dict[str, Any], num_classes: int) -> torch.nn.Module:
    """The module ``arch`` describes (``type``: classifier | conjugate | pretrained)."""
    kind = arch["type"]
    if kind == "classifier":
        return build_classifier(arch["classifier"], 3, num_classes, width=arch["width"], dropout=arch["dropout"])
    if kind == "conjugate":
        rec = build_reconstructor(arch["reconstructor"], 3, 3, width=arch["rec_width"],
                                  latent_channels=arch["latent_channels"])
        cls = build_classifier(arch["classifier"], 6, num_classes, width=arch["width"], dropout=arch["dropout"])
        return ConjugateNet(rec, cls, feedback=arch["feedback"])
    if kind == "pretrained":
        make, alpha = BACKBONES[arch["backbone"]]
        prior = arch.get("prior") or {}
        backbone = make(alpha=alpha, num_classes=prior.get("imagenet_classes", 1001), padding=arch["padding"])
        return FeatureClassifier(backbone, num_classes, dropout=arch["dropout"],
                                 head=arch.get("head", "linear"), prior_columns=prior.get("columns"),
                                 prior_weight=prior.get("weight", 1.0))
    raise ValueError(f"unknown architecture type {kind!r}")


def logits_of(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class logits of any of our networks in eval mode."""
    out = net(x)
    return out.logits if hasattr(out, "logits") else out


def state_arrays(net: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}


def model_size_mb(net: torch.nn.Module) -> float:
    """Size of the float32 weights on disk, in MB (10^6 bytes)."""
    return round(sum(v.numel() * v.element_size() for v in net.state_dict().values()) / 1e6, 2)


class TorchPredictor:
    """A torch network behind the :class:`core.predictors.Predictor` interface."""

    def __init__(self, net: torch.nn.Module, categories: Sequence[str], info: dict[str, Any]):
        self.net = net.eval()
        self.categories = tuple(categories)
        self.info = info
        self.size = int(info["input"]["size"])
        self.mean, self.std = float(info["input"]["mean"]), float(info["input"]["std"])
        self.resize = str(info["input"].get("resize", "pad"))

    def batch(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        x = np.stack([to_input(im, self.size, self.resize) for im in images]).astype(np.float32)
        return torch.from_numpy(((x / 255.0 - self.mean) / self.std).transpose(0, 3, 1, 2).copy())

    @torch.no_grad()
    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        if not len(images):
            return np.zeros((0, len(self.categories)))
        return torch.softmax(logits_of(self.net, self.batch(images)), dim=1).double().numpy()

    def predict_viewpoint(self, images: Sequence[np.ndarray]) -> None:
        return None

    def save(self, folder: str | Path) -> Path:
        info = {**self.info, "kind": KIND, "categories": list(self.categories)}
        return save_predictor(folder, info, state_arrays(self.net))


@register(KIND)
def load(folder: Path, info: dict[str, Any]) -> TorchPredictor:
    for key in ("arch", "input"):
        if key not in info:
            raise PredictorError(f"{folder / 'predictor.json'}: field {key!r} is missing")
    net = build_network(info["arch"], len(info["categories"]))
    arrays = load_weights(folder)
    try:
        net.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
    except RuntimeError as exc:
        raise PredictorError(f"{folder / 'weights.npz'}: weights do not fit the architecture: "
                             f"{' '.join(str(exc).split())[:400]}") from None
    return TorchPredictor(net, info["categories"], info)
