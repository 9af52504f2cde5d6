"""A new classification head on a (pre-trained) backbone."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

HeadKind = Literal["linear", "ncm", "none", "linear_normalized"]


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


class LabelMapPrior(nn.Module):
    """log P(class) from an ImageNet classifier: softmax over its logits, the probabilities
    of each class's mapped ImageNet classes summed and renormalised over the classes.

    ``membership`` (K, C) is 1 where ImageNet class k belongs to class c; a class with no
    ImageNet class gets probability 0 (log ``EPS``): never predicted by the prior alone.
    (N, D) descriptors -> (N, C) log-probabilities.
    """

    EPS = 1e-8

    def __init__(self, classifier: nn.Linear, membership: torch.Tensor):
        super().__init__()
        self.classifier = classifier
        self.register_buffer("membership", membership.float())

    @classmethod
    def from_columns(cls, classifier: nn.Linear, columns: list[list[int]]) -> "LabelMapPrior":
        m = torch.zeros(classifier.out_features, len(columns))
        for c, rows in enumerate(columns):
            m[rows, c] = 1.0
        return cls(classifier, m)

    def forward(self, desc: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(self.classifier(desc), dim=1) @ self.membership
        return torch.log(p / p.sum(dim=1, keepdim=True).clamp_min(self.EPS) + self.EPS)


class NormalizedLinear(nn.Linear):
    """A linear layer on L2-normalised descriptors (the self-trained head of core.selftrain)."""

    def forward(self, desc: torch.Tensor) -> torch.Tensor:
        return super().forward(F.normalize(desc, dim=1))


class ZeroHead(nn.Module):
    """No head of its own (the ImageNet prior alone decides): zero logits."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, desc: torch.Tensor) -> torch.Tensor:
        return desc.new_zeros(len(desc), self.num_classes)


class FeatureClassifier(nn.Module):
    """``backbone.embed`` (e.g. ImageNet MobileNet pooled features) -> a new head: dropout
    + linear, or the nearest class mean (``head="ncm"``).

    The backbone's own ImageNet classifier is dropped, unless ``prior_columns`` (per class,
    its ImageNet class indices) ask for the ImageNet prior: in eval mode the logits are then
    ``head + prior_weight * log P_imagenet(class)`` (:class:`LabelMapPrior`), while training
    (train mode) sees the head alone, so the head learns from renders what it can and the
    prior is added to it only at inference. ``head="none"`` with the prior is the ImageNet
    classifier with a label map (no training). ``embed``/``classify`` follow the convention of
    the other classifiers so the trainer and the evaluation treat it alike.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float = 0.2, head: HeadKind = "linear",
                 prior_columns: list[list[int]] | None = None, prior_weight: float = 1.0):
        super().__init__()
        classifier = backbone.classifier
        backbone.classifier = nn.Identity()  # the ImageNet logits only through the prior
        self.backbone = backbone
        self.embedding_dim = int(backbone.embedding_dim)
        self.num_classes = num_classes
        if head == "ncm":
            self.head: nn.Module = NearestClassMean(self.embedding_dim, num_classes)
        elif head == "linear":
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.embedding_dim, num_classes))
        elif head == "none":
            self.head = ZeroHead(num_classes)
        elif head == "linear_normalized":
            self.head = NormalizedLinear(self.embedding_dim, num_classes)
        else:
            raise ValueError(f"unknown head {head!r}: linear, ncm, none or linear_normalized")
        if head == "none" and prior_columns is None:
            raise ValueError("head 'none' needs the ImageNet prior (prior_columns)")
        self.prior = None if prior_columns is None else LabelMapPrior.from_columns(classifier, prior_columns)
        self.prior_weight = float(prior_weight)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.embed(x)

    def classify(self, desc: torch.Tensor) -> torch.Tensor:
        logits = self.head(desc)
        if self.prior is not None and not self.training:
            logits = logits + self.prior_weight * self.prior(desc)
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(x))
