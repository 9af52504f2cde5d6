"""Coordinate training (seed 000 §VI-A): adaptive noise on the inputs of both sub-networks.

The noise ratios follow the variance of the reconstruction M' relative to the semantic
target M in the current batch: early on M' is nearly constant (the average mask), so
R_rec is small (the reconstructor sees the image) and R_cls large (the classifier must
use the reconstructed channels); as M' gains variance the roles shift (eq. 9).
"""

from __future__ import annotations

import torch
from torch import Tensor


def batch_variance(t: Tensor) -> Tensor:
    """Var(.) of eq. 9: the population variance of all elements of the batch tensor ``t``
    (every sample, channel and pixel together), a 0-dim tensor."""
    return t.var(correction=0)


def noise_ratios(var_recon: float | Tensor, var_target: float | Tensor, alpha: float = 0.25, beta: float = 2.0,
                 m_noise: float = 1e-6) -> tuple[Tensor, Tensor]:
    """(R_rec, R_cls) of eq. 9, computed without gradient:

    R_rec = tanh(alpha Var(M') / (Var(M) + m_noise)),
    R_cls = tanh(1 - tanh(beta Var(M') / (Var(M) + m_noise))).
    The seed's (alpha, beta) = (0.25, 2).
    """
    with torch.no_grad():
        ratio = torch.as_tensor(var_recon).detach() / (torch.as_tensor(var_target).detach() + m_noise)
        return torch.tanh(alpha * ratio), torch.tanh(1 - torch.tanh(beta * ratio))


def coupled_r_cls(r_rec: float | Tensor, alpha: float, beta: float) -> Tensor:
    """Eq. 10, R_cls from R_rec: tanh(1 - tanh(beta / alpha * arctanh(R_rec))); equals eq. 9's
    R_cls when m_noise = 0."""
    return torch.tanh(1 - torch.tanh(beta / alpha * torch.atanh(torch.as_tensor(r_rec))))


def apply_noise(x: Tensor, ratio: float | Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Eq. 8: ratio * Ran + (1 - ratio) * x, Ran ~ N(0, 1) of x's shape.

    x is a normalised image (roughly zero mean, unit variance), so standard normal noise
    is on its scale. ``ratio`` is a float or 0-dim tensor in [0, 1]; ``generator`` draws Ran.
    """
    ratio = torch.as_tensor(ratio, dtype=x.dtype, device=x.device)
    if ratio.dim() != 0:
        raise ValueError(f"ratio must be a float or a 0-dim tensor, got shape {tuple(ratio.shape)}")
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return ratio * noise + (1 - ratio) * x
