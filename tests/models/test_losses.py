"""Losses (seed 000 eq. 4-7, 11, 12): closed forms, the corrected eq. 7, hand cases."""

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence as torch_kl

from models.losses import (kl_divergence, multi_triplet_loss, pairwise_loss, reconstruction_loss, softmax_loss,
                           total_loss, triplet_gradients, triplet_terms)


def test_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    reference = torch_kl(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).flatten(1).sum(1).mean()
    torch.testing.assert_close(kl_divergence(mu, logvar, per_element=False), reference)
    torch.testing.assert_close(kl_divergence(mu, logvar), reference / 32)


def test_kl_zero_at_prior():
    assert kl_divergence(torch.zeros(2, 5), torch.zeros(2, 5)).item() == 0.0


def test_reconstruction_loss():
    recon, target = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    target[1] = 3.0
    assert reconstruction_loss(recon, target, per_element=False).item() == (4 + 36) / 2
    assert reconstruction_loss(recon, target).item() == (1 + 9) / 2
    with pytest.raises(ValueError, match="same shape"):
        reconstruction_loss(recon, target[:, :, :1])


def test_triplet_hand_computed():
    f_i, f_j = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]])
    # D_ij = 1, m = 1; D_ik = 0.25 -> ln(2 - 0.125); D_ik = 1 -> ln 1.5; D_ik = 2 -> clamped, 0
    negs = torch.tensor([[[0.0, 0.5], [0.0, 1.0], [1.0, 1.0]]])
    expected = torch.tensor([[math.log(1.875), math.log(1.5), 0.0]])
    torch.testing.assert_close(triplet_terms(f_i, f_j, negs, margin=1.0), expected)
    torch.testing.assert_close(triplet_terms(f_i, f_j, negs[:, 1], margin=1.0), expected[:, 1])


@pytest.mark.parametrize("active", [True, False])
@pytest.mark.parametrize("k", [None, 3])
def test_autograd_equals_corrected_eq7(active, k):
    gen = torch.Generator().manual_seed(1)
    n, d = 5, 4
    f_i = torch.randn(n, d, generator=gen, dtype=torch.float64)
    f_j = f_i + 0.3 * torch.randn(n, d, generator=gen, dtype=torch.float64)
    shape = (n, d) if k is None else (n, k, d)
    # Negatives near the reference: u > 1 (active); far away: u < 1 (clamped).
    f_k = (f_i if k is None else f_i[:, None]) + (0.2 if active else 10.0) * torch.randn(
        shape, generator=gen, dtype=torch.float64)
    f_i, f_j, f_k = (t.clone().requires_grad_() for t in (f_i, f_j, f_k))
    terms = triplet_terms(f_i, f_j, f_k, margin=0.5)
    assert ((terms > 0).all() if active else (terms == 0).all())
    terms.sum().backward()
    g_i, g_j, g_k = triplet_gradients(f_i.detach(), f_j.detach(), f_k.detach(), margin=0.5)
    if k is not None:
        g_i, g_j = g_i.sum(1), g_j.sum(1)
    for auto, analytic in [(f_i.grad, g_i), (f_j.grad, g_j), (f_k.grad, g_k)]:
        torch.testing.assert_close(auto, analytic, rtol=1e-10, atol=1e-12)
    if not active:
        assert not g_i.any() and not g_j.any() and not g_k.any()


def test_multi_triplet_pairwise_term():
    torch.manual_seed(0)
    f_ref, f_pos, f_negs = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 3, 8)
    with_pair, parts = multi_triplet_loss(f_ref, f_pos, f_negs, margin=1.0)
    without_pair, parts_without = multi_triplet_loss(f_ref, f_pos, f_negs, margin=1.0, pairwise=False)
    torch.testing.assert_close(with_pair - without_pair, pairwise_loss(f_ref, f_pos))
    torch.testing.assert_close(parts["triplet"], triplet_terms(f_ref, f_pos, f_negs, 1.0).sum(1).mean())
    assert set(parts) == set(parts_without) == {"pair", "triplet"}
    torch.testing.assert_close(parts_without["pair"], parts["pair"])
    torch.testing.assert_close(total_loss(parts), with_pair)
    torch.testing.assert_close(without_pair, parts["triplet"])


def test_total_loss_weights():
    parts = {"enc_gen": torch.tensor(1.0), "pair": torch.tensor(2.0), "softmax": torch.tensor(4.0)}
    assert total_loss(parts).item() == 7.0
    assert total_loss(parts, {"pair": 0.5, "softmax": 0.0, "tri": 9.0}).item() == 2.0
    with pytest.raises(ValueError):
        total_loss({})


def test_softmax_loss():
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    expected = (math.log(2) + math.log(1 + math.exp(-2))) / 2
    assert math.isclose(softmax_loss(logits, torch.tensor([1, 0])).item(), expected, rel_tol=1e-6)
