"""Seed 002's hybrid gradient on a tiny differentiable generator, β's space, RMSprop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core import generation_search as gs
from core.params import Params, parse_params



@pytest.fixture(autouse=True)
def _float64():
    """Finite differences need the precision; the default comes back after each test."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


class TinyBackbone(nn.Module):
    """A smooth stand-in for the frozen CNN: conv, softplus, global mean."""

    embedding_dim = 5

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, self.embedding_dim, 3, padding=1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(self.conv(x)).mean(dim=(2, 3)) * 4.0


D, N, S, CLASSES = 3, 6, 4, 3
A = np.random.default_rng(1).normal(size=(N, D, S * S * 3))
C = np.random.default_rng(2).uniform(60, 200, size=(N, S * S * 3))


def tiny_f(beta: np.ndarray) -> np.ndarray:
    """A differentiable generator: N "images" (S, S, 3), pixels 128 + 80 tanh(A_i β) + C_i - 128."""
    return np.stack([(C[i] + 60.0 * np.tanh(beta @ A[i])).reshape(S, S, 3) for i in range(N)])


def tiny_f_torch(beta: torch.Tensor) -> torch.Tensor:
    a, c = torch.from_numpy(A), torch.from_numpy(C)
    return (c + 60.0 * torch.tanh(torch.einsum("d,ndp->np", beta, a))).reshape(N, S, S, 3)


def setup() -> tuple[gs.SearchNet, gs.Weights, gs.ValSet, np.ndarray]:
    net = gs.SearchNet(TinyBackbone(), CLASSES)
    g = torch.Generator().manual_seed(3)
    w = (torch.randn(CLASSES, 5, generator=g) * 0.3, torch.zeros(CLASSES))
    val = gs.ValSet(torch.randn(12, 5, generator=g) * 2 + 3, torch.arange(12) % CLASSES, "val", "test")
    labels = np.arange(N) % CLASSES
    return net, w, val, labels


def loss_of_beta(beta: torch.Tensor, net: gs.SearchNet, w: gs.Weights, val: gs.ValSet, labels: np.ndarray,
                 k: int, lr: float) -> torch.Tensor:
    x = (tiny_f_torch(beta).permute(0, 3, 1, 2) - 128.0) / 128.0
    return val.loss(gs.unroll(w, net.features(x), torch.from_numpy(labels), k, lr))


def test_backprop_through_unrolled_sgd_matches_finite_differences_in_the_pixels():
    """∂L/∂X of eq. 7-9 (torch.func through k SGD steps and the backbone) against central
    differences of L in single pixels."""
    net, w, val, labels = setup()
    images = tiny_f(np.array([0.2, -0.1, 0.3]))
    x = net.to_input(images).requires_grad_(True)
    loss = val.loss(gs.unroll(w, net.features(x), torch.from_numpy(labels), 3, 0.7))
    (analytic,) = torch.autograd.grad(loss, x)
    assert analytic.abs().max() > 1e-6, "the gradient must not vanish on this problem"

    def loss_at(xx: torch.Tensor) -> float:
        with torch.no_grad():
            return float(val.loss(gs.unroll(w, net.features(xx), torch.from_numpy(labels), 3, 0.7)))

    eps = 1e-5
    for idx in [(0, 0, 0, 0), (1, 2, 3, 1), (4, 1, 2, 2), (5, 0, 3, 3)]:
        xp, xm = x.detach().clone(), x.detach().clone()
        xp[idx] += eps
        xm[idx] -= eps
        numeric = (loss_at(xp) - loss_at(xm)) / (2 * eps)
        assert numeric == pytest.approx(float(analytic[idx]), rel=1e-4, abs=1e-9)


def test_hybrid_gradient_matches_the_true_gradient_of_a_differentiable_generator():
    """With many antithetic directions and a small σ, eq. 11 times eq. 7 is the gradient of
    L(β): compared with autograd through the generator and with central differences."""
    net, w, val, labels = setup()
    beta = np.array([0.2, -0.1, 0.3])
    k, lr, sigma = 3, 0.7, 1e-3
    deltas = np.random.default_rng(4).normal(0.0, sigma, (4000, D))
    est, w_new, loss = gs.hybrid_gradient(net, w, tiny_f(beta), labels, lambda d: tiny_f(beta + d), deltas,
                                          sigma, val, k, lr)
    b = torch.tensor(beta, requires_grad=True)
    true_loss = loss_of_beta(b, net, w, val, labels, k, lr)
    (true,) = torch.autograd.grad(true_loss, b)
    assert loss == pytest.approx(float(true_loss.detach()))
    numeric = np.array([(float(loss_of_beta(torch.tensor(beta + e), net, w, val, labels, k, lr))
                         - float(loss_of_beta(torch.tensor(beta - e), net, w, val, labels, k, lr))) / 2e-6
                        for e in np.eye(D) * 1e-6])
    np.testing.assert_allclose(true.numpy(), numeric, rtol=1e-4, atol=1e-8)
    cosine = est @ numeric / (np.linalg.norm(est) * np.linalg.norm(numeric))
    assert cosine > 0.99
    assert np.linalg.norm(est) == pytest.approx(np.linalg.norm(numeric), rel=0.1)
    # The weights come back trained: exactly k plain SGD steps on consecutive slices.
    feats = net.features(net.to_input(tiny_f(beta))).detach()
    manual = [w[0].clone().requires_grad_(True), w[1].clone().requires_grad_(True)]
    for f, y in zip(feats.chunk(k), torch.from_numpy(labels).chunk(k), strict=True):
        g = torch.autograd.grad(gs.train_loss(tuple(manual), f, y), manual)
        manual = [(m - lr * gi).detach().requires_grad_(True) for m, gi in zip(manual, g, strict=True)]
    torch.testing.assert_close(w_new[0], manual[0].detach())
    torch.testing.assert_close(w_new[1], manual[1].detach())


def test_a_few_directions_still_point_downhill_on_average():
    net, w, val, labels = setup()
    beta, sigma = np.array([0.2, -0.1, 0.3]), 1e-3
    b = torch.tensor(beta, requires_grad=True)
    (true,) = torch.autograd.grad(loss_of_beta(b, net, w, val, labels, 2, 0.7), b)
    rng = np.random.default_rng(5)
    cosines = []
    for _ in range(50):
        est, _, _ = gs.hybrid_gradient(net, w, tiny_f(beta), labels, lambda d: tiny_f(beta + d),
                                       rng.normal(0.0, sigma, (4, D)), sigma, val, 2, 0.7)
        cosines.append(est @ true.numpy() / (np.linalg.norm(est) * float(true.norm())))
    assert np.mean(cosines) > 0.3


def test_rmsprop_steps_against_the_gradient_and_clips_to_the_box():
    opt = gs.RMSprop(2, lr=0.1, decay=0.9)
    u = opt.step(np.array([0.5, 0.02]), np.array([1.0, 1.0]))
    # first step: v = 0.1 g², step = lr g / sqrt(v) = lr / sqrt(0.1)
    assert u[0] == pytest.approx(0.5 - 0.1 / np.sqrt(0.1), rel=1e-6)
    assert u[1] == 0.0
    assert gs.RMSprop(1, lr=0.1).step(np.array([0.99]), np.array([-5.0]))[0] == 1.0


def test_beta_space_round_trip_and_params():
    space = gs.BetaSpace(["chair", "sofa"])
    assert space.dim == 2 * len(gs.GRAMMAR_FIELDS) + len(gs.SCENE_COMPONENTS)
    params = Params()
    u = space.default(params)
    values = space.overrides(u)
    assert values["render.distance.lo"] == pytest.approx(params.render.distance.lo)
    assert values["composite.object_scale.hi"] == pytest.approx(params.composite.object_scale.hi)
    assert values["catalog.procedural.grammar.chair.choice_temperature"] == pytest.approx(1.0)
    assert values["catalog.procedural.grammar.sofa.dim_log_std"] == 0.0
    # The hand-set β applied to the params changes nothing but adds neutral grammar entries.
    applied = space.params(params.model_dump(mode="json"), u)
    assert applied.render == params.render and applied.composite == params.composite
    assert applied.catalog.procedural.grammar_for("bed") is None
    assert applied.catalog.procedural.grammar_for("chair") is not None
    # Out of the box: clipped; a crossed lo/hi pair is put back in order.
    u2 = u.copy()
    u2[space.keys.index("render.distance.lo")] = 1.0  # 2.2
    u2[space.keys.index("render.distance.hi")] = 0.0  # 1.6
    u2[0] = 7.0
    v2 = space.overrides(u2)
    assert v2["render.distance.lo"] == pytest.approx(1.6) and v2["render.distance.hi"] == pytest.approx(2.2)
    assert v2[space.keys[0]] == space.components[0].hi
    space.params(params.model_dump(mode="json"), u2)  # validates


def test_generation_search_params_refuse_a_test_split_and_unknown_classes():
    with pytest.raises(ValueError, match="test split"):
        parse_params({"generation_search": {"validation": "ikea_test"}})
    with pytest.raises(ValueError, match="unknown categories"):
        parse_params({"generation_search": {"categories": ["chair", "unicorn"]}})
    with pytest.raises(ValueError, match="need the fixed method"):
        parse_params({"generation_search": {"methods": ["hybrid"], "chosen": "hybrid"}})


def test_budget_charges_every_searching_method_the_same():
    b = gs.Budget(k=4, batch=8, directions=4)
    assert b.n == 32 and b.samples_per_step == 32 * 9
