"""A new classification head on a (pre-trained) backbone."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

HeadKind = Literal["linear", "ncm"]


class NearestClassMean(nn.Module):
    """Nearest class mean on the cosine similarity: logits = scale * cos(desc, mean_c).

    The class means are a buffer set once from training descriptors (``set_means``), so
    every class counts the same however many renders it has; ``log_scale`` is the one
    trainable parameter (a softmax temperature: it changes the confidences, not the argmax).

    (N, D) descriptors -> (N, C) logits.
    """

    def __init__(self, embedding_dim: int, num_classes: int, scale: float = 10.0):
        super().__init__()
        self.register_buffer("means", torch.zeros(num_classes, embedding_dim))
        self.log_scale = nn.Parameter(torch.tensor(float(scale)).log())

    @torch.no_grad()
    def set_means(self, desc: torch.Tensor, labels: torch.Tensor) -> None:
        """Means of the L2-normalised descriptors per class; a class without any is an error."""
        desc = F.normalize(desc.float(), dim=1)
        counts = torch.bincount(labels, minlength=len(self.means))
        if (counts == 0).any():
            raise ValueError(f"nearest class mean: no descriptor of class index {int((counts == 0).nonzero()[0])}")
        sums = torch.zeros_like(self.means).index_add_(0, labels, desc.to(self.means.dtype))
        self.means.copy_(F.normalize(sums / counts[:, None], dim=1))

    def forward(self, desc: torch.Tensor) -> torch.Tensor:
        return self.log_scale.exp() * F.normalize(desc, dim=1) @ self.means.T


class FeatureClassifier(nn.Module):
    """``backbone.embed`` (e.g. ImageNet MobileNet pooled features) -> a new head: dropout
    + linear, or the nearest class mean (``head="ncm"``).

    The backbone's own ImageNet classifier is dropped; ``embed``/``classify`` follow the
    convention of the other classifiers so the trainer and the evaluation treat it alike.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float = 0.2, head: HeadKind = "linear"):
        super().__init__()
        backbone.classifier = nn.Identity()  # the 1001 ImageNet logits are not used
        self.backbone = backbone
        self.embedding_dim = int(backbone.embedding_dim)
        self.num_classes = num_classes
        if head == "ncm":
            self.head: nn.Module = NearestClassMean(self.embedding_dim, num_classes)
        elif head == "linear":
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.embedding_dim, num_classes))
        else:
            raise ValueError(f"unknown head {head!r}: linear or ncm")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.embed(x)

    def classify(self, desc: torch.Tensor) -> torch.Tensor:
        return self.head(desc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(x))
