"""The real -> rendered feature adaptation φ of seed 004 §4.2 and its loss.

φ maps the features of a photo (here: a render composited on a photo background) towards
the features of the clean rendered view of the same object. Variants (§4.4.2, Fig. 4.8):

- ``none``: the identity (no adaptation);
- ``affine``: φ(x) = Ax + b;
- ``affine_relu``: φ(x) = ReLU(Ax + b), eq. 4.2, the seed's best;
- ``conv1x1`` / ``conv3x3``: ReLU of a convolution over the (C, g, g) feature map, limited
  spatial support (translation-invariant adaptation);
- ``two_layer``: two fully-connected layers with ReLUs.

Every trainable variant starts at the identity (A = I, b = 0; the centre tap of a
convolution), so training moves away from "no adaptation" only as far as the data asks.
Input and output: (N, D) features, D = channels * grid * grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

VARIANTS = ("none", "affine", "affine_relu", "conv1x1", "conv3x3", "two_layer")


def _identity_linear(dim: int) -> nn.Linear:
    layer = nn.Linear(dim, dim)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(dim))
        layer.bias.zero_()
    return layer


def _identity_conv(channels: int, kernel: int) -> nn.Conv2d:
    layer = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[:, :, kernel // 2, kernel // 2].copy_(torch.eye(channels))
        layer.bias.zero_()
    return layer


class Adaptation(nn.Module):
    """φ of one ``variant`` for features of ``channels`` x ``grid`` x ``grid``."""

    def __init__(self, variant: str, channels: int, grid: int):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown adaptation variant {variant!r}: one of {VARIANTS}")
        self.variant, self.channels, self.grid = variant, channels, grid
        dim = channels * grid * grid
        if variant == "none":
            self.body: nn.Module = nn.Identity()
        elif variant == "affine":
            self.body = _identity_linear(dim)
        elif variant == "affine_relu":
            self.body = nn.Sequential(_identity_linear(dim), nn.ReLU())
        elif variant == "two_layer":
            self.body = nn.Sequential(_identity_linear(dim), nn.ReLU(), _identity_linear(dim), nn.ReLU())
        else:
            kernel = 1 if variant == "conv1x1" else 3
            self.body = nn.Sequential(nn.Unflatten(1, (channels, grid, grid)), _identity_conv(channels, kernel),
                                      nn.ReLU(), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def squared_cosine_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Seed 004 §4.2.2: the mean over rows of (1 - cos(a, b))², i.e. -S with the
    squared-cosine similarity S(a, b) = -(1 - aᵀb / (‖a‖‖b‖))²."""
    return ((1.0 - F.cosine_similarity(a, b, dim=1, eps=1e-8)) ** 2).mean()
