"""Reconstruction sub-networks (seed 000 §IV): image -> 3 semantic channels in [0, 1].

``VariationalCoder`` is the seed's pixel-wise generative model (VC, eq. 4, 12-14); the
deterministic ``FCNReconstructor`` and ``DeconvNetReconstructor`` are the pixel-wise
coding baselines it is compared with (FCN [13], DeconvNet [15]). All three share one
encoder: 4 stride-2 blocks of width, 2w, 4w, 4w channels, each a 3x3 stride-2 conv and a
3x3 conv, both with BatchNorm + ReLU, so inputs must have H and W divisible by 16.
Every reconstructor returns a ``ReconOutput``; ``forward(x, generator=None)``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_STRIDE = 16  # 4 stride-2 stages


class ReconOutput(NamedTuple):
    """recon: (N, out_channels, H, W) in [0, 1] (sigmoid). mu, logvar: (N, latent_channels,
    H/16, W/16), the mean and log variance of Q(z|X), or None for deterministic reconstructors."""

    recon: Tensor
    mu: Tensor | None
    logvar: Tensor | None


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


def _down(c_in: int, c_out: int) -> nn.Sequential:
    """Halves H and W: 3x3 stride-2 conv, then a 3x3 conv (widens the receptive field)."""
    return nn.Sequential(*_conv_bn_relu(c_in, c_out, 3, stride=2), *_conv_bn_relu(c_out, c_out, 3))


def _up(c_in: int, c_out: int) -> nn.Sequential:
    """Doubles H and W: 4x4 stride-2 transposed conv, then a 3x3 conv; mirrors ``_down``."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True), *_conv_bn_relu(c_out, c_out, 3))


class _Encoder(nn.Module):
    """(N, in_channels, H, W) -> the 4 stage outputs at 1/2, 1/4, 1/8, 1/16 resolution."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.channels = (width, 2 * width, 4 * width, 4 * width)
        self.stages = nn.ModuleList(_down(a, b) for a, b in zip((in_channels, *self.channels[:-1]), self.channels))

    def forward(self, x: Tensor) -> list[Tensor]:
        height, width = x.shape[-2:]
        if height % _STRIDE or width % _STRIDE:
            raise ValueError(f"reconstructor input size {height}x{width} is not divisible by {_STRIDE} "
                             f"(4 stride-2 stages): resize or crop to a multiple of {_STRIDE}, e.g. 64 or 128")
        stages = []
        for stage in self.stages:
            x = stage(x)
            stages.append(x)
        return stages


def _decoder(in_channels: int, width: int, out_channels: int) -> nn.Sequential:
    """(N, in_channels, H/16, W/16) -> (N, out_channels, H, W) in [0, 1]; the encoder mirrored."""
    channels = (4 * width, 2 * width, width, width)
    ups = [_up(a, b) for a, b in zip((in_channels, *channels[:-1]), channels)]
    return nn.Sequential(*ups, nn.Conv2d(width, out_channels, 1), nn.Sigmoid())


class VariationalCoder(nn.Module):
    """The variational coder (VC, seed 000 §IV-A, §VII): encoder q(X) -> Q(z|X) -> generator p(z).

    The latent is spatial, (N, latent_channels, H/16, W/16): it keeps where the object is,
    and P(z) = N(0, I) holds per latent element (eq. 12 sums over all of them). In training
    mode z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) (the reparameterisation of eq. 14,
    one sample, L = 1); in eval mode z = mu, so predictions are deterministic.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 32,
                 latent_channels: int = 32) -> None:
        super().__init__()
        self.encoder = _Encoder(in_channels, width)
        self.mu = nn.Conv2d(4 * width, latent_channels, 1)
        self.logvar = nn.Conv2d(4 * width, latent_channels, 1)
        self.decoder = _decoder(latent_channels, width, out_channels)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> ReconOutput:
        """x: (N, in_channels, H, W), H and W multiples of 16; ``generator`` draws eps (training)."""
        h = self.encoder(x)[-1]  # (N, 4w, H/16, W/16)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu
        if self.training:
            eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
            z = mu + torch.exp(0.5 * logvar) * eps
        return ReconOutput(self.decoder(z), mu, logvar)


class FCNReconstructor(nn.Module):
    """FCN-style pixel-wise coding baseline: deterministic 1x1 bottleneck, skip fusion.

    Scores (1x1 convs to out_channels) of the bottleneck (1/16) are upsampled bilinearly
    and summed with scores of the 1/8 and 1/4 encoder stages (FCN-8s' two skip fusions;
    fixed bilinear upsampling instead of learned deconvolutions), then upsampled 4x to the
    input size and squashed by a sigmoid. ``generator`` is accepted and unused.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 32,
                 latent_channels: int = 32) -> None:
        super().__init__()
        self.encoder = _Encoder(in_channels, width)
        self.bottleneck = nn.Sequential(*_conv_bn_relu(4 * width, latent_channels, 1))
        self.score16 = nn.Conv2d(latent_channels, out_channels, 1)
        self.score8 = nn.Conv2d(4 * width, out_channels, 1)
        self.score4 = nn.Conv2d(2 * width, out_channels, 1)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> ReconOutput:
        _, f4, f8, f16 = self.encoder(x)
        score = self.score16(self.bottleneck(f16))  # (N, out, H/16, W/16)
        score = _resize(score, f8) + self.score8(f8)
        score = _resize(score, f4) + self.score4(f4)  # (N, out, H/4, W/4)
        return ReconOutput(torch.sigmoid(_resize(score, x)), None, None)


def _resize(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class DeconvNetReconstructor(nn.Module):
    """DeconvNet-style baseline: the VC's encoder and decoder with a deterministic 1x1
    bottleneck instead of the latent. DeconvNet's max-unpooling (with switches) is
    replaced by the transposed convs of the mirrored decoder. ``generator`` is unused."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 32,
                 latent_channels: int = 32) -> None:
        super().__init__()
        self.encoder = _Encoder(in_channels, width)
        self.bottleneck = nn.Sequential(*_conv_bn_relu(4 * width, latent_channels, 1))
        self.decoder = _decoder(latent_channels, width, out_channels)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> ReconOutput:
        return ReconOutput(self.decoder(self.bottleneck(self.encoder(x)[-1])), None, None)


RECONSTRUCTORS: dict[str, type[nn.Module]] = {"vc": VariationalCoder, "fcn": FCNReconstructor,
                                              "deconvnet": DeconvNetReconstructor}


def build_reconstructor(name: str, in_channels: int = 3, out_channels: int = 3, width: int = 32,
                        latent_channels: int = 32) -> nn.Module:
    """The reconstructor called ``name`` (one of ``RECONSTRUCTORS``), freshly initialised."""
    if name not in RECONSTRUCTORS:
        raise ValueError(f"Unknown reconstructor {name!r}: one of {sorted(RECONSTRUCTORS)} expected")
    return RECONSTRUCTORS[name](in_channels=in_channels, out_channels=out_channels, width=width,
                                latent_channels=latent_channels)
