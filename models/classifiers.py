"""Classification sub-networks (seed 000 §V-A, Fig. 4): ZigzagNet and its baselines.

Every classifier maps images (N, in_channels, H, W), any H = W in 48-224 px, to a
descriptor ``embed(x)`` (N, embedding_dim), the penultimate layer "before the last inner
product" that the seed evaluates with a nearest-neighbour classifier, and logits
``classify(desc)`` (N, num_classes); ``forward(x) = classify(embed(x))``.

Two adaptations to our 64-128 px renders, shared by all three so that comparisons stay
fair: a stride-2 stem instead of the ImageNet stems (7x7 or 11x11 with stride 4, or a
stride-2 stem plus max-pool), and BatchNorm after every convolution (our addition: it keeps
training from scratch stable with small batches on CPU; the seed uses none).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

# SqueezeNet 1.1 stem and fire2..fire9 (squeeze, expand) channels, max-pools after fire3, fire5.
_STEM = 64
_SQUEEZE = (16, 16, 32, 32, 48, 48, 64, 64)
_EXPAND = (64, 64, 128, 128, 192, 192, 256, 256)
_POOL_AFTER = (2, 4)  # 1-based module index


def _scaled(channels: int, width: float) -> int:
    return max(4, round(channels * width))


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """Conv (no bias: BatchNorm follows) + BatchNorm [+ ReLU]; 'same' padding for odd kernels."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                               nn.BatchNorm2d(c_out)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class FireModule(nn.Module):
    """SqueezeNet's Fire module: 1x1 squeeze + ReLU, then 1x1 and 3x3 expands + ReLU, concatenated.

    (N, in_channels, H, W) -> (N, 2 * expand_channels, H, W).
    """

    def __init__(self, in_channels: int, squeeze_channels: int, expand_channels: int) -> None:
        super().__init__()
        self.squeeze = _conv_bn(in_channels, squeeze_channels, 1)
        self.expand1 = _conv_bn(squeeze_channels, expand_channels, 1)
        self.expand3 = _conv_bn(squeeze_channels, expand_channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        s = self.squeeze(x)
        return torch.cat([self.expand1(s), self.expand3(s)], dim=1)


class ZigzagModule(nn.Module):
    """The Zigzag module (seed 000 Fig. 4a): squeeze, expand, consolidate.

    A 1x1 squeeze conv + ReLU; parallel 1x1 and 3x3 expand convs on the squeezed map,
    concatenated (2 * expand_channels) with NO ReLU; a 1x1 "bypass consolidation" conv
    from the module input to 2 * expand_channels; the two are summed and the ReLU comes
    after the sum. Moving the expand ReLU behind the sum is what distinguishes it from a
    bypassed Fire module: both branches enter the sum on the same (linear) scale.

    (N, in_channels, H, W) -> (N, 2 * expand_channels, H, W), non-negative.
    """

    def __init__(self, in_channels: int, squeeze_channels: int, expand_channels: int) -> None:
        super().__init__()
        self.squeeze = _conv_bn(in_channels, squeeze_channels, 1)
        self.expand1 = _conv_bn(squeeze_channels, expand_channels, 1, relu=False)
        self.expand3 = _conv_bn(squeeze_channels, expand_channels, 3, relu=False)
        self.bypass = _conv_bn(in_channels, 2 * expand_channels, 1, relu=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        s = self.squeeze(x)
        expanded = torch.cat([self.expand1(s), self.expand3(s)], dim=1)
        return self.relu(expanded + self.bypass(x))


class Classifier(nn.Module):
    """Base of the classifiers: ``features`` gives the descriptor, ``head`` the logits."""

    features: nn.Module  # (N, in_channels, H, W) -> (N, embedding_dim)
    head: nn.Module  # (N, embedding_dim) -> (N, num_classes)

    def __init__(self, in_channels: int, num_classes: int, embedding_dim: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.embedding_dim = embedding_dim

    def embed(self, x: Tensor) -> Tensor:
        """Descriptor (N, embedding_dim) of images (N, in_channels, H, W)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} expects (N, {self.in_channels}, H, W) input, "
                             f"got {tuple(x.shape)}")
        return self.features(x)

    def classify(self, desc: Tensor) -> Tensor:
        """Logits (N, num_classes) of descriptors (N, embedding_dim)."""
        return self.head(desc)

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(self.embed(x))


def _module_stack(module: type[nn.Module], in_channels: int, width: float) -> tuple[nn.Sequential, int]:
    """Stem (3x3 stride 2) + 8 modules of SqueezeNet 1.1's widths + global average pool.

    Total stride 8 (stem, two max-pools): a 64 px input ends on an 8x8 map.
    """
    channels = _scaled(_STEM, width)
    layers: list[nn.Module] = [_conv_bn(in_channels, channels, 3, stride=2)]
    for index, (squeeze, expand) in enumerate(zip(_SQUEEZE, _EXPAND), start=1):
        layers.append(module(channels, _scaled(squeeze, width), _scaled(expand, width)))
        channels = 2 * _scaled(expand, width)
        if index in _POOL_AFTER:
            layers.append(nn.MaxPool2d(3, stride=2, ceil_mode=True))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), channels


class _ModuleStackNet(Classifier):
    """Stem + 8 modules of type ``module`` with SqueezeNet 1.1's widths (``_module_stack``);
    descriptor: the global-average-pooled last module; head: dropout + Linear."""

    module: type[nn.Module]

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: float = 1.0,
                 dropout: float = 0.5) -> None:
        features, dim = _module_stack(self.module, in_channels, width)
        super().__init__(in_channels, num_classes, dim)
        self.features = features
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, num_classes))


class ZigzagNet(_ModuleStackNet):
    """ZigzagNet (seed 000 Fig. 4b): SqueezeNet 1.1's depth with Zigzag modules.

    Descriptor: the global-average-pooled output of the last Zigzag module (512 x width).
    Head: dropout + Linear, the same linear map as SqueezeNet's final 1x1 conv followed by
    global average pooling, so the net stays free of fully connected feature layers.
    """

    module = ZigzagModule


class SqueezeNet11(_ModuleStackNet):
    """SqueezeNet 1.1 with plain Fire modules; stem, descriptor and head as in ``ZigzagNet``."""

    module = FireModule


class AlexNetSmall(Classifier):
    """AlexNet-style net for 32-224 px inputs.

    Five convs (64-192-384-256-256 x width; the first 5x5 stride 2 instead of 11x11
    stride 4) with three 3x3/2 max-pools, adaptive average pooling to 3x3, then two FC
    layers of 1024 x width, each after dropout and followed by ReLU, as in torchvision's
    AlexNet. Descriptor: the second FC's ReLU output (fc7, the penultimate layer; dropout
    makes it stochastic in training mode). Head: Linear to the classes.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: float = 1.0,
                 dropout: float = 0.5) -> None:
        c1, c2, c3, c4, c5 = (_scaled(c, width) for c in (64, 192, 384, 256, 256))
        fc = _scaled(1024, width)
        super().__init__(in_channels, num_classes, fc)
        self.features = nn.Sequential(
            _conv_bn(in_channels, c1, 5, stride=2), nn.MaxPool2d(3, stride=2),
            _conv_bn(c1, c2, 5), nn.MaxPool2d(3, stride=2),
            _conv_bn(c2, c3, 3), _conv_bn(c3, c4, 3), _conv_bn(c4, c5, 3), nn.MaxPool2d(3, stride=2),
            nn.AdaptiveAvgPool2d(3), nn.Flatten(),  # (N, 9 * c5) for any input >= 32 px
            nn.Dropout(dropout), nn.Linear(9 * c5, fc), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(fc, fc), nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(fc, num_classes)


CLASSIFIERS: dict[str, type[Classifier]] = {"zigzagnet": ZigzagNet, "squeezenet": SqueezeNet11,
                                            "alexnet": AlexNetSmall}


def build_classifier(name: str, in_channels: int, num_classes: int, width: float = 1.0,
                     dropout: float = 0.5) -> Classifier:
    """The classifier called ``name`` (one of ``CLASSIFIERS``), freshly initialised."""
    if name not in CLASSIFIERS:
        raise ValueError(f"Unknown classifier {name!r}: one of {sorted(CLASSIFIERS)} expected")
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    return CLASSIFIERS[name](in_channels=in_channels, num_classes=num_classes, width=width, dropout=dropout)
