"""Coordinate-training noise (seed 000 eq. 8-10)."""

import math

import torch

from models.noise import apply_noise, batch_variance, coupled_r_cls, noise_ratios


def test_eq9_values():
    r_rec, r_cls = noise_ratios(0.0, 2.0)
    assert r_rec.item() == 0.0
    assert math.isclose(r_cls.item(), math.tanh(1.0), rel_tol=1e-6)
    r_rec, r_cls = noise_ratios(torch.tensor(3.0, dtype=torch.float64), 3.0, m_noise=0.0)
    assert math.isclose(r_rec.item(), math.tanh(0.25), rel_tol=1e-12)
    assert math.isclose(r_cls.item(), math.tanh(1 - math.tanh(2.0)), rel_tol=1e-12)


def test_eq9_no_grad():
    var = torch.tensor(0.5, requires_grad=True)
    r_rec, r_cls = noise_ratios(var * 2, 1.0)
    assert not r_rec.requires_grad and not r_cls.requires_grad


def test_eq10_equals_eq9():
    var_recon = torch.linspace(0.0, 3.0, 31, dtype=torch.float64)
    r_rec, r_cls = noise_ratios(var_recon, 1.5, alpha=0.25, beta=2.0, m_noise=0.0)
    torch.testing.assert_close(coupled_r_cls(r_rec, 0.25, 2.0), r_cls)


def test_batch_variance():
    t = torch.tensor([[[1.0, 3.0]], [[5.0, 7.0]]])
    assert batch_variance(t).item() == 5.0  # mean 4, squared deviations 9, 1, 1, 9


def test_apply_noise_ends():
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(apply_noise(x, 0.0), x, rtol=0, atol=0)
    expected = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    noised = apply_noise(x, torch.tensor(1.0), generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(noised, expected, rtol=0, atol=0)
    mixed = apply_noise(x, 0.25, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(mixed, 0.25 * expected + 0.75 * x)
