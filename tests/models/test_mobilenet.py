"""MobileNet V1/V2 modules: shapes, embedding sizes, gradients, TF 'SAME' vs PyTorch padding."""

import pytest
import torch

from models.mobilenet import Conv, MobileNetV1, MobileNetV2, from_uint8, make_divisible, same_padding


@pytest.mark.parametrize(("cls", "alpha", "padding", "dim", "depth"), [
    (MobileNetV1, 0.25, "tf", 256, 14), (MobileNetV1, 1.0, "torch", 1024, 14),
    (MobileNetV2, 1.0, "tf", 1280, 19), (MobileNetV2, 1.0, "torch", 1280, 19),
    (MobileNetV2, 0.35, "tf", 1280, 19)])
def test_shapes_and_gradient(cls, alpha, padding, dim, depth):
    torch.manual_seed(0)
    net = cls(alpha, num_classes=7, padding=padding)
    assert (net.embedding_dim, len(net.features), net.input_size) == (dim, depth, 224)
    x = torch.rand(2, 3, 48, 32) * 2 - 1  # any size, not only the native one
    desc = net.embed(x)
    assert desc.shape == (2, dim)
    assert net.classify(desc).shape == (2, 7)
    net(x).sum().backward()
    assert net.features[0][0].weight.grad.abs().sum() > 0


def test_v2_residuals_and_widths():
    net = MobileNetV2()
    residual = [block.residual for block in net.features[1:-1]]
    assert sum(residual) == 10  # 17 blocks, 7 change shape
    assert net.features[0][0].out_channels == 32 and net.features[-2].conv[-1][0].out_channels == 320
    assert [make_divisible(c) for c in (11.2, 5.6, 448.0, 1792.0)] == [16, 8, 448, 1792]
    with torch.device("meta"):
        assert MobileNetV2(1.4).embedding_dim == 1792  # widths above 1 widen the last layer too


def test_same_padding_differs_from_torch_on_stride_2():
    """A 3x3/2 sum over a 4x4 ramp: 'SAME' pads only right/bottom, PyTorch both sides."""
    x = torch.arange(16.0).view(1, 1, 4, 4)
    sums = {}
    for padding in ("tf", "torch"):
        conv = Conv(1, 1, 3, stride=2, padding=padding)
        with torch.no_grad():
            conv.weight.fill_(1.0)
            conv.bias.zero_()
        sums[padding] = conv(x)[0, 0].tolist()
    assert sums["tf"] == [[45.0, 39.0], [66.0, 50.0]]  # rows/cols {0,1,2},{2,3}
    assert sums["torch"] == [[10.0, 24.0], [51.0, 90.0]]  # rows/cols {0,1},{1,2,3}
    assert same_padding((4, 4), 3, 2) == (0, 1, 0, 1)
    assert same_padding((5, 6), 3, 2) == (0, 1, 1, 1)  # odd size: symmetric, as in PyTorch
    assert same_padding((7, 7), 3, 1) == (1, 1, 1, 1)


def test_tf_and_torch_padding_differ_only_on_even_stride_2_inputs():
    torch.manual_seed(0)
    tf, pt = MobileNetV1(0.25, padding="tf"), MobileNetV1(0.25, padding="torch")
    pt.load_state_dict(tf.state_dict())
    odd = torch.rand(1, 3, 97, 97) * 2 - 1  # every stride-2 input odd: 97, 49, 25, 13, 7
    assert torch.allclose(tf.embed(odd), pt.embed(odd), atol=1e-6)
    even = odd[..., :96, :96]
    assert not torch.allclose(tf.embed(even), pt.embed(even), atol=1e-3)
    with pytest.raises(ValueError, match="'tf' or 'torch'"):
        Conv(3, 8, 3, padding="valid")


def test_input_mapping():
    u = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1)
    assert from_uint8(u).flatten().tolist() == [-1.0, 0.0, 127 / 128]
    net = MobileNetV2()
    assert net.input_scale.tolist() == [1.0] * 3 and net.input_shift.tolist() == [0.0] * 3
