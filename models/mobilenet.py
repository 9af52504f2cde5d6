"""MobileNet V1 (Howard et al. 2017) and V2 (Sandler et al. 2018) as float torch modules whose
layers match the TF-slim ImageNet MobileNets one to one, so pre-trained weights load in graph
order (core/pretrained.py).

BatchNorm is folded: every convolution carries a bias and there is no BatchNorm layer, because
the TFLite files hold folded weights (torchvision checkpoints are folded on load). Fine-tuning
therefore trains conv weights and biases only.

Input: float (N, 3, H, W) RGB, ``x = (u - 128) / 128`` for uint8 pixels ``u`` (range
[-1, 127/128]): exactly what the quantised TFLite models' input quantisation (scale 1/128,
zero point 128) means, see :func:`from_uint8`. Weights trained on another normalisation
(torchvision's ImageNet mean/std) set the per-channel ``input_scale``/``input_shift`` buffers,
so every backbone takes the same input.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Padding = Literal["tf", "torch"]

# (channels, stride) of the 13 depthwise-separable blocks (Howard et al. 2017, Table 1).
V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
             (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
# (expansion t, channels c, repeats n, first stride s) (Sandler et al. 2018, Table 2).
V2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
             (6, 160, 3, 2), (6, 320, 1, 1))


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) RGB -> the float input of these modules, (u - 128) / 128."""
    return (images.float() - 128.0) / 128.0


def make_divisible(channels: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor``, never more than 10% down
    (the width rule of TF-slim's and torchvision's MobileNetV2)."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


def same_padding(size: tuple[int, int], kernel: int, stride: int) -> tuple[int, int, int, int]:
    """TensorFlow 'SAME' padding (left, right, top, bottom) for an (H, W) input: ceil(n / stride)
    outputs, the odd pixel of padding at the right/bottom."""
    pads = []
    for n in reversed(size):  # F.pad order: last dimension (W) first
        total = max((math.ceil(n / stride) - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return pads[0], pads[1], pads[2], pads[3]


class Conv(nn.Conv2d):
    """Square biased Conv2d (BatchNorm folded in), padded like TensorFlow 'SAME' (``"tf"``) or
    symmetrically by kernel // 2 (``"torch"``).

    The two differ only for stride 2 on even inputs: 'SAME' pads (0, 1), PyTorch (1, 1), and
    TF-trained weights reproduce TF's numbers only with TF's padding."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 padding: Padding = "tf"):
        if padding not in ("tf", "torch"):
            raise ValueError(f"Unsupported padding {padding!r}: 'tf' or 'torch' expected")
        tf_same = padding == "tf" and stride > 1  # with stride 1 'SAME' is symmetric
        super().__init__(cin, cout, kernel, stride, padding=0 if tf_same else kernel // 2,
                         groups=groups)
        self.tf_same = tf_same

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_same:
            x = F.pad(x, same_padding((x.shape[-2], x.shape[-1]), self.kernel_size[0],
                                      self.stride[0]))
        return super().forward(x)


class ConvAct(nn.Sequential):
    """Conv then ReLU6, or the conv alone (``act=False``: V2's linear bottleneck, logits)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: bool = True, padding: Padding = "tf"):
        super().__init__(Conv(cin, cout, kernel, stride, groups, padding),
                         *([nn.ReLU6()] if act else []))


class DepthwiseSeparable(nn.Sequential):
    """V1 block: 3x3 depthwise ConvAct (carries the stride), then 1x1 pointwise ConvAct."""

    def __init__(self, cin: int, cout: int, stride: int, padding: Padding = "tf"):
        super().__init__(ConvAct(cin, cin, 3, stride, groups=cin, padding=padding),
                         ConvAct(cin, cout, padding=padding))


class InvertedResidual(nn.Module):
    """V2 block: 1x1 expansion ConvAct (absent when t = 1), 3x3 depthwise ConvAct, linear 1x1
    projection; the input is added back when shapes allow (stride 1, cin == cout)."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int, padding: Padding = "tf"):
        super().__init__()
        hidden = make_divisible(cin * expansion) if expansion != 1 else cin
        expand = [ConvAct(cin, hidden, padding=padding)] if expansion != 1 else []
        self.conv = nn.Sequential(*expand,
                                  ConvAct(hidden, hidden, 3, stride, groups=hidden, padding=padding),
                                  ConvAct(hidden, cout, act=False, padding=padding))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNet(nn.Module):
    """Common head: ``features`` (nn.Sequential, freeze/unfreeze it), global average pooling,
    a linear ``classifier``.

    Attributes: ``alpha`` (width multiplier), ``embedding_dim`` (D), ``input_size`` (native
    square resolution in pixels; any size works, the loaders set the one the weights were
    trained at), buffers ``input_scale``/``input_shift`` (3,) applied per channel to the input
    (identity unless the weights expect another normalisation)."""

    def __init__(self, features: nn.Sequential, embedding_dim: int, num_classes: int,
                 alpha: float, input_size: int):
        super().__init__()
        self.features = features
        self.classifier = nn.Linear(embedding_dim, num_classes)
        self.alpha, self.embedding_dim, self.input_size = alpha, embedding_dim, input_size
        self.register_buffer("input_scale", torch.ones(3))
        self.register_buffer("input_shift", torch.zeros(3))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float, (u - 128) / 128 -> (N, D) pooled last feature map."""
        x = x * self.input_scale.view(1, 3, 1, 1) + self.input_shift.view(1, 3, 1, 1)
        return self.features(x).mean(dim=(2, 3))  # (N, D)

    def classify(self, desc: torch.Tensor) -> torch.Tensor:
        """(N, D) embeddings -> (N, num_classes) logits (ImageNet: 1001, class 0 'background')."""
        return self.classifier(desc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(x))


class MobileNetV1(MobileNet):
    """MobileNetV1: stem 3x3/2 conv, 13 depthwise-separable blocks; D = 1024 * alpha
    (256 for alpha 0.25). Widths follow TF-slim: max(int(c * alpha), 8)."""

    def __init__(self, alpha: float = 1.0, num_classes: int = 1001, padding: Padding = "tf",
                 input_size: int = 224):
        def width(c: int) -> int:
            return max(int(c * alpha), 8)

        layers: list[nn.Module] = [ConvAct(3, width(32), 3, 2, padding=padding)]
        cin = width(32)
        for c, stride in V1_BLOCKS:
            layers.append(DepthwiseSeparable(cin, width(c), stride, padding))
            cin = width(c)
        super().__init__(nn.Sequential(*layers), cin, num_classes, alpha, input_size)


class MobileNetV2(MobileNet):
    """MobileNetV2: stem 3x3/2 conv, 17 inverted residual blocks, 1x1 conv to
    D = make_divisible(1280 * max(alpha, 1)) (1280 for alpha <= 1). ``features`` has 19
    entries, indexed like torchvision's ``mobilenet_v2().features``."""

    def __init__(self, alpha: float = 1.0, num_classes: int = 1001, padding: Padding = "tf",
                 input_size: int = 224):
        cin = make_divisible(32 * alpha)
        layers: list[nn.Module] = [ConvAct(3, cin, 3, 2, padding=padding)]
        for expansion, c, repeats, stride in V2_BLOCKS:
            cout = make_divisible(c * alpha)
            for i in range(repeats):
                layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion,
                                               padding))
                cin = cout
        dim = make_divisible(1280 * max(alpha, 1.0))
        layers.append(ConvAct(cin, dim, padding=padding))
        super().__init__(nn.Sequential(*layers), dim, num_classes, alpha, input_size)
