"""Reconstructors (seed 000 §IV) and the conjugate network (Fig. 1a)."""

import pytest
import torch

from models.classifiers import build_classifier
from models.conjugate import ConjugateNet
from models.losses import softmax_loss
from models.reconstruction import VariationalCoder, build_reconstructor

NAMES = ["vc", "fcn", "deconvnet"]


@pytest.mark.parametrize("name", NAMES)
def test_shapes_range_and_latent(name):
    torch.manual_seed(0)
    net = build_reconstructor(name, in_channels=3, out_channels=3, width=8, latent_channels=4)
    out = net(torch.randn(2, 3, 64, 96))
    assert out.recon.shape == (2, 3, 64, 96)
    assert out.recon.min() >= 0 and out.recon.max() <= 1
    if name == "vc":
        assert out.mu.shape == out.logvar.shape == (2, 4, 4, 6)
    else:
        assert out.mu is None and out.logvar is None
    out.recon.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_size_not_divisible_by_16(name):
    net = build_reconstructor(name, width=4, latent_channels=2)
    with pytest.raises(ValueError, match="72x64"):
        net(torch.randn(1, 3, 72, 64))


def test_unknown_name():
    with pytest.raises(ValueError, match="deconvnet"):
        build_reconstructor("unet")


def test_vc_eval_deterministic_training_stochastic():
    torch.manual_seed(0)
    vc = VariationalCoder(width=8, latent_channels=4)
    x = torch.randn(2, 3, 64, 64)
    vc.eval()
    torch.testing.assert_close(vc(x).recon, vc(x).recon, rtol=0, atol=0)
    vc.train()
    assert not torch.equal(vc(x).recon, vc(x).recon)
    a = vc(x, generator=torch.Generator().manual_seed(3)).recon
    b = vc(x, generator=torch.Generator().manual_seed(3)).recon
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_conjugate_needs_six_channels():
    rec = build_reconstructor("vc", width=4, latent_channels=2)
    with pytest.raises(ValueError, match="in_channels=3"):
        ConjugateNet(rec, build_classifier("zigzagnet", in_channels=3, num_classes=4, width=0.25))


@pytest.mark.parametrize("feedback", [True, False])
def test_conjugate_feedback(feedback):
    torch.manual_seed(0)
    net = ConjugateNet(build_reconstructor("vc", width=4, latent_channels=2),
                       build_classifier("zigzagnet", in_channels=6, num_classes=4, width=0.25), feedback=feedback)
    x = torch.randn(3, 3, 64, 64)
    out = net(x, rec_input=x + 0.1, cls_input=x - 0.1, generator=torch.Generator().manual_seed(0))
    assert out.logits.shape == (3, 4) and out.descriptor.shape == (3, net.classifier.embedding_dim)
    assert out.recon.shape == (3, 3, 64, 64) and out.mu is not None
    softmax_loss(out.logits, torch.tensor([0, 1, 2])).backward()
    grad = sum(p.grad.abs().sum() for p in net.reconstructor.parameters() if p.grad is not None)
    assert (grad > 0) == feedback
    assert all(p.grad is not None for p in net.classifier.parameters())


def test_recon_to_input():
    torch.testing.assert_close(ConjugateNet.recon_to_input(torch.tensor([0.0, 0.5, 1.0])),
                               torch.tensor([-2.0, 0.0, 2.0]))
