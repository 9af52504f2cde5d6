"""The adaptation φ of seed 004 §4.2: variants start at the identity, the squared-cosine
loss, and SGD with the seed's settings learns a known linear map."""

from __future__ import annotations

import math

import pytest
import torch

from core.params import AdaptationParams
from models.adaptation import VARIANTS, Adaptation, squared_cosine_loss
from stages.train_adaptation import layer_shape, train_variant


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_starts_at_the_identity(variant: str):
    x = torch.rand(5, 8 * 2 * 2)  # non-negative, like post-ReLU features
    assert torch.allclose(Adaptation(variant, channels=8, grid=2)(x), x, atol=1e-6)


def test_unknown_variant_is_an_error():
    with pytest.raises(ValueError, match="unknown adaptation variant"):
        Adaptation("affine_tanh", 4, 1)


def test_squared_cosine_loss_values():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, -1.0]])
    # cosines 1, 0, -1: (1 - cos)² = 0, 1, 4
    assert math.isclose(float(squared_cosine_loss(a, b)), 5.0 / 3.0, rel_tol=1e-6)


def test_sgd_learns_a_known_affine_map():
    g = torch.Generator().manual_seed(0)
    dim = 12
    x = torch.rand(600, dim, generator=g)
    mix = torch.eye(dim) + 0.5 * torch.rand(dim, dim, generator=g)
    y = torch.relu(x @ mix.T)
    p = AdaptationParams(epochs=30, lr=1.0, lr_step_epochs=15, batch_size=64)
    phi, history = train_variant("affine_relu", dim, 1, x[:500], y[:500], x[500:], y[500:], p, seed=0)
    none = float(squared_cosine_loss(x[500:], y[500:]))
    assert history[-1]["val_loss"] < 0.2 * none
    assert history[-1]["lr"] == pytest.approx(0.1)  # x0.1 after 15 epochs
    assert phi.variant == "affine_relu"


def test_layer_shape():
    assert layer_shape("c4", 96 * 16, 4) == (96, 4)
    assert layer_shape("gap", 1280, 4) == (1280, 1)
    with pytest.raises(ValueError, match="not channels x 4 x 4"):
        layer_shape("c4", 100, 4)
