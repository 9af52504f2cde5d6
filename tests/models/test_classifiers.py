"""Classifiers (seed 000 §V-A, Fig. 4): shapes, gradients, the Zigzag module, sizes."""

import pytest
import torch

from models.classifiers import AlexNetSmall, SqueezeNet11, ZigzagModule, ZigzagNet, build_classifier

NAMES = ["zigzagnet", "squeezenet", "alexnet"]


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("in_channels", [3, 6])
@pytest.mark.parametrize("size", [64, 96])
def test_shapes_and_gradient(name, in_channels, size):
    torch.manual_seed(0)
    net = build_classifier(name, in_channels=in_channels, num_classes=5, width=0.25)
    assert (net.in_channels, net.num_classes) == (in_channels, 5)
    x = torch.randn(2, in_channels, size, size)
    desc = net.embed(x)
    assert desc.shape == (2, net.embedding_dim)
    logits = net.classify(desc)
    assert logits.shape == (2, 5)
    net(x).sum().backward()
    first = next(net.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0


@pytest.mark.parametrize("size", [48, 224])
def test_size_range_ends(size):
    net = ZigzagNet(in_channels=3, num_classes=4, width=0.25).eval()
    assert net(torch.randn(1, 3, size, size)).shape == (1, 4)


def test_wrong_channels_and_unknown_name():
    with pytest.raises(ValueError, match=r"\(N, 6, H, W\)"):
        ZigzagNet(in_channels=6, width=0.25).embed(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="zigzagnet"):
        build_classifier("resnet", in_channels=3, num_classes=2)


def test_embedding_dims():
    assert ZigzagNet(width=1.0).embedding_dim == 512
    assert SqueezeNet11(width=0.5).embedding_dim == 256
    assert AlexNetSmall(width=0.25).embedding_dim == 256
    assert ZigzagNet(width=0.01).embedding_dim == 8  # channels never below 4


def test_zigzag_relu_after_sum():
    torch.manual_seed(0)
    module = ZigzagModule(8, 4, 6).eval()
    x = torch.randn(2, 8, 5, 5)
    out = module(x)
    assert out.shape == (2, 12, 5, 5)
    assert (out >= 0).all()
    with torch.no_grad():
        module.expand1[0].weight.zero_()
        module.expand3[0].weight.zero_()
        torch.testing.assert_close(module(x), torch.relu(module.bypass(x)))
        # ReLU after the sum, not on the expand branch: a negative expand output lowers the sum.
        module.bypass[0].weight.zero_()
        module.expand1[1].bias.fill_(-1.0)
        module.expand3[1].bias.fill_(-1.0)
        module.bypass[1].bias.fill_(0.5)
        assert (module(x) == 0).all()


def test_parameter_counts():
    counts = {name: n_params(build_classifier(name, in_channels=6, num_classes=10)) for name in NAMES}
    assert counts["alexnet"] > counts["zigzagnet"] > counts["squeezenet"], counts
