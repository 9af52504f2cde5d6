"""Losses of seed 000: L_enc-gen (eq. 4, 12, 14), multi-triplet (eq. 5-7), softmax, total (eq. 11).

Descriptors are (N, D) float tensors; distances are squared Euclidean, as in the seed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _per_sample(values: Tensor, per_element: bool) -> Tensor:
    """Sum (or mean, ``per_element``) over all but the batch dimension, then mean over the batch."""
    flat = values.flatten(1)
    return (flat.mean(1) if per_element else flat.sum(1)).mean()


def kl_divergence(mu: Tensor, logvar: Tensor, per_element: bool = True) -> Tensor:
    """L_enc of eq. 4 in the closed form of eq. 12, D[N(mu, Sigma) || N(0, I)] with diagonal
    Sigma = exp(logvar): 1/2 sum(exp(logvar) + mu^2 - 1 - logvar) over the latent elements,
    averaged over the batch. mu, logvar: (N, ...) of equal shape.

    ``per_element`` (default) divides by the number of latent elements per sample, as
    ``reconstruction_loss`` does by the pixels: per-element means keep the four terms of
    eq. 11 on comparable scales whatever the latent and image sizes. ``per_element=False``
    is the plain sum of eq. 12.
    """
    return _per_sample(0.5 * (logvar.exp() + mu.pow(2) - 1 - logvar), per_element)


def reconstruction_loss(recon: Tensor, target: Tensor, per_element: bool = True) -> Tensor:
    """L_gen of eq. 4 / the log P(Y|z) term of eq. 14: -log P(Y|z) for the Gaussian
    P(Y|z) = N(p(z), sigma^2 I) is, up to constants, the squared Euclidean distance between
    the reconstruction and the target Y. Summed per sample (mean per element when
    ``per_element``), averaged over the batch. recon, target: (N, C, H, W) of equal shape.
    """
    if recon.shape != target.shape:
        raise ValueError(f"recon {tuple(recon.shape)} and target {tuple(target.shape)} must have the same shape")
    return _per_sample((recon - target).pow(2), per_element)


def _sq_dist(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).pow(2).sum(-1)


def pairwise_loss(f_ref: Tensor, f_pos: Tensor) -> Tensor:
    """L_pair of eq. 5, ||f(x_i) - f(x_j)||^2, averaged over the N sets. f_ref, f_pos: (N, D)."""
    return _sq_dist(f_ref, f_pos).mean()


def triplet_terms(f_ref: Tensor, f_pos: Tensor, f_neg: Tensor, margin: float) -> Tensor:
    """L_tri of eq. 6 per triplet: ln(max(1, 2 - D_ik / (D_ij + m))), D squared Euclidean.

    f_ref, f_pos: (N, D); f_neg: (N, D) -> (N,), or (N, K, D) for K negatives per set -> (N, K).
    The loss is ln 2 at D_ik = 0 and 0 once D_ik >= D_ij + m. ``margin`` > 0.
    """
    if margin <= 0:
        raise ValueError(f"triplet margin must be > 0 (it keeps D_ij + m away from 0), got {margin}")
    d_ij = _sq_dist(f_ref, f_pos)
    if f_neg.dim() == 3:
        f_ref, d_ij = f_ref.unsqueeze(1), d_ij.unsqueeze(1)
    d_ik = _sq_dist(f_ref, f_neg)
    return torch.log(torch.clamp(2 - d_ik / (d_ij + margin), min=1.0))


def multi_triplet_loss(f_ref: Tensor, f_pos: Tensor, f_negs: Tensor, margin: float = 1.0,
                       pairwise: bool = True) -> tuple[Tensor, dict[str, Tensor]]:
    """L_triplet of eq. 5 for N multi-triplet sets: L_pair(ref, pos) + sum_k L_tri(ref, pos, neg_k)
    per set, averaged over the sets.

    f_ref, f_pos: (N, D); f_negs: (N, K, D). Returns the total and its parts, each averaged
    over the sets: {"pair": ..., "triplet": ...}. "pair" is reported for monitoring even when
    ``pairwise`` is False; it is then left out of the total.
    """
    if f_negs.dim() != 3:
        raise ValueError(f"f_negs must be (N, K, D), got {tuple(f_negs.shape)}")
    parts = {"pair": pairwise_loss(f_ref, f_pos), "triplet": triplet_terms(f_ref, f_pos, f_negs, margin).sum(1).mean()}
    return (parts["pair"] + parts["triplet"] if pairwise else parts["triplet"]), parts


def triplet_gradients(f_i: Tensor, f_j: Tensor, f_k: Tensor, margin: float) -> tuple[Tensor, Tensor, Tensor]:
    """Analytic gradient of eq. 6 for each triplet: (dL/df_i, dL/df_j, dL/df_k).

    With s = D_ij + m and u = 2 - D_ik / s, where u > 1:
        dL/df_i = 2 [D_ik (f_i - f_j) - s (f_i - f_k)] / (u s^2)
        dL/df_j = 2 D_ik (f_j - f_i) / (u s^2)
        dL/df_k = 2 (f_i - f_k) / (u s)
    and 0 where max(1, u) clamps. The seed's printed eq. 7,
        dL/df_i = [D_ik (f_i - f_j) - (D_ij + m)(f_i - f_k)] / (L_tri (D_ij + m)^2), ...,
    has two slips: it drops the factor 2 from differentiating the squared distances, and
    divides by L_tri where the derivative of ln(u) divides by u, the log's argument.

    f_i, f_j: (N, D); f_k: (N, D) -> three (N, D), or (N, K, D) -> three (N, K, D), one
    gradient per triplet (sum over K for a set's gradient w.r.t. f_i and f_j).
    """
    if f_k.dim() == 3:
        f_i, f_j = f_i.unsqueeze(1), f_j.unsqueeze(1)
    d_ik = _sq_dist(f_i, f_k).unsqueeze(-1)
    s = _sq_dist(f_i, f_j).unsqueeze(-1) + margin
    u = 2 - d_ik / s
    # Clamped u in the denominator keeps inactive triplets (u <= 1, gradient 0) finite.
    c = 2 * (u > 1).to(u.dtype) / (u.clamp(min=1.0) * s)
    g_i = c * (d_ik * (f_i - f_j) / s - (f_i - f_k))
    g_j = c * d_ik * (f_j - f_i) / s
    g_k = c * (f_i - f_k)
    return g_i, g_j, g_k


def softmax_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """L_s of eq. 11: cross-entropy of logits (N, C) and int64 labels (N,), averaged."""
    return F.cross_entropy(logits, labels)


def total_loss(parts: dict[str, Tensor], weights: dict[str, float] | None = None) -> Tensor:
    """Eq. 11, L_total = L_enc-gen + L_pair + L_tri + L_s, as the weighted sum of whichever
    parts are present (a part without a weight weighs 1; weights of absent parts are ignored)."""
    if not parts:
        raise ValueError("total_loss needs at least one part")
    weights = weights or {}
    terms = [weights.get(name, 1.0) * value for name, value in parts.items()]
    return sum(terms[1:], terms[0])
