"""A new classification head on a (pre-trained) backbone."""

from __future__ import annotations

import torch
from torch import nn


class FeatureClassifier(nn.Module):
    """``backbone.embed`` (e.g. ImageNet MobileNet pooled features) -> dropout -> linear.

    The backbone's own ImageNet classifier is dropped; ``embed``/``classify`` follow the
    convention of the other classifiers so the trainer and the evaluation treat it alike.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float = 0.2):
        super().__init__()
        backbone.classifier = nn.Identity()  # the 1001 ImageNet logits are not used
        self.backbone = backbone
        self.embedding_dim = int(backbone.embedding_dim)
        self.num_classes = num_classes
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.embedding_dim, num_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.embed(x)

    def classify(self, desc: torch.Tensor) -> torch.Tensor:
        return self.head(desc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(x))
