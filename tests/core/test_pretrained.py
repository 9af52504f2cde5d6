"""Pre-trained backbones: the TFLite conversion against the reference interpreter on real photos,
the torchvision state-dict mapping against a BatchNorm reference, the search and its errors."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from ai_edge_litert.interpreter import Interpreter
from PIL import Image
from torch import nn

from core.pretrained import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneNotFound,
    PretrainedError,
    find_backbone,
    imagenet_labels,
    load_tflite_mobilenet,
    load_torchvision_mobilenet_v2,
)
from models.mobilenet import V2_BLOCKS, MobileNetV1, MobileNetV2, from_uint8
from tests.conftest import shared_data

V2_FILE, V1_FILE = "mobilenet_v2_1.0_224_quant.tflite", "mobilenet_v1_0.25_128_quant.tflite"


# -- the TFLite files ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def photos() -> list[Path]:
    """The first 16 IKEA photos (sorted names)."""
    return sorted(shared_data("ikea", "IKEA", "Images").glob("*.jpg"))[:16]


def tflite_probabilities(path: Path, images: np.ndarray) -> np.ndarray:
    """(N, 1001) dequantised softmax of the reference interpreter for uint8 (N, S, S, 3) images."""
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    scale, zero_point = out["quantization"]
    probs = []
    for image in images:
        interpreter.set_tensor(inp["index"], image[None])
        interpreter.invoke()
        probs.append((interpreter.get_tensor(out["index"])[0].astype(np.float64) - zero_point) * scale)
    return np.stack(probs)


@pytest.mark.shared_data
@pytest.mark.parametrize(("file", "cls", "size", "dim", "min_agree"), [
    (V2_FILE, MobileNetV2, 224, 1280, 14), (V1_FILE, MobileNetV1, 128, 256, 12)])
def test_tflite_conversion_matches_reference_interpreter(file, cls, size, dim, min_agree, photos):
    """Same uint8 pixels for both; the float module sees (u - 128) / 128. Measured on these 16
    photos: top-1 16/16 (V1) and 15/16 (V2), Pearson of the probabilities 0.997 for both."""
    path = shared_data("weights", "coral", file)
    net = load_tflite_mobilenet(path)
    assert (type(net), net.input_size, net.embedding_dim) == (cls, size, dim)
    assert net.classifier.out_features == 1001
    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR))
                       for p in photos])  # (16, S, S, 3) uint8
    expected = tflite_probabilities(path, images)
    with torch.no_grad():
        probs = torch.softmax(net(from_uint8(torch.from_numpy(images).permute(0, 3, 1, 2))), 1).numpy()
    assert (probs.argmax(1) == expected.argmax(1)).sum() >= min_agree
    assert np.corrcoef(probs.ravel(), expected.ravel())[0, 1] >= 0.9


@pytest.mark.shared_data
def test_find_backbone_tflite_and_labels():
    path = shared_data("weights", "coral", V1_FILE)
    net, info = find_backbone("mobilenet_v1_025", str(path))
    assert isinstance(net, MobileNetV1) and net.alpha == 0.25
    assert info == {"backbone": "mobilenet_v1_025", "weights": str(path), "source": "tflite",
                    "input_size": 128, "embedding_dim": 256}
    wrong = re.escape(f"{V1_FILE}: holds a MobileNetV1 alpha 0.25, not mobilenet_v2")
    with pytest.raises(PretrainedError, match=wrong):
        find_backbone("mobilenet_v2", str(path))
    labels = imagenet_labels(shared_data("weights", "coral", "imagenet_labels.txt"))
    assert len(labels) == 1001 and labels[:2] == ["background", "tench, Tinca tinca"]


def test_unreadable_tflite_files(tmp_path):
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(PretrainedError, match=re.escape(f"{corrupt}: not a TFLite flatbuffer")):
        load_tflite_mobilenet(corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:4] + b"TFL3" + corrupt.read_bytes()[8:])
    with pytest.raises(PretrainedError, match=re.escape(f"{corrupt}: corrupt TFLite flatbuffer")):
        load_tflite_mobilenet(corrupt)
    with pytest.raises(PretrainedError, match=re.escape(f"{tmp_path / 'absent.tflite'}: cannot read")):
        load_tflite_mobilenet(tmp_path / "absent.tflite")


# -- torchvision state dicts -----------------------------------------------------------------

class TorchvisionConv(nn.Sequential):
    """torchvision's Conv2dNormActivation: bias-free conv, BatchNorm, ReLU6."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6())


class TorchvisionBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        layers = [TorchvisionConv(cin, hidden, 1)] if expansion != 1 else []
        self.conv = nn.Sequential(*layers, TorchvisionConv(hidden, hidden, 3, stride, hidden),
                                  nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class TorchvisionMobileNetV2(nn.Module):
    """The reference: torchvision's ``mobilenet_v2()`` layout and forward, BatchNorm unfolded."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers, cin = [TorchvisionConv(3, 32, stride=2)], 32
        for expansion, c, repeats, stride in V2_BLOCKS:
            for i in range(repeats):
                layers.append(TorchvisionBlock(cin, c, stride if i == 0 else 1, expansion))
                cin = c
        self.features = nn.Sequential(*layers, TorchvisionConv(cin, 1280, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def random_torchvision_state(path: Path) -> TorchvisionMobileNetV2:
    """A reference with random weights and BatchNorm statistics, its state dict saved at ``path``.

    Kaiming fan-in weights keep the signal alive through the 52 layers (PyTorch's default
    init lets it vanish: every input would give the same logits)."""
    torch.manual_seed(0)
    ref = TorchvisionMobileNetV2(num_classes=10).eval()
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in")
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ref.state_dict(), path)
    return ref


def test_torchvision_mapping_matches_reference(tmp_path):
    path = tmp_path / "mobilenet_v2-0123abcd.pth"
    ref = random_torchvision_state(path)
    assert {"features.0.0.weight", "features.1.conv.0.0.weight", "features.1.conv.1.weight",
            "features.2.conv.3.running_var", "features.18.0.weight",
            "classifier.1.bias"} <= set(ref.state_dict())
    net = load_torchvision_mobilenet_v2(path)
    stride_2 = net.features[2].conv[1][0]
    assert (stride_2.stride, stride_2.padding, stride_2.tf_same) == ((2, 2), (1, 1), False)  # as trained
    assert (net.input_size, net.classifier.out_features) == (224, 10)
    u = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = ref((u / 255.0 - mean) / std)
        got = net(from_uint8(u))
    assert (expected[0] - expected[1]).abs().max() > 0.1  # the logits depend on the pixels
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    reloaded = MobileNetV2(num_classes=10, padding="torch")
    reloaded.load_state_dict(net.state_dict())  # the input buffers travel with the weights
    torch.testing.assert_close(reloaded.eval()(from_uint8(u)), got)


def test_torchvision_errors(tmp_path):
    path = tmp_path / "mobilenet_v2-0123abcd.pth"
    ref = random_torchvision_state(path)
    state = ref.state_dict()
    del state["features.5.conv.1.1.running_var"]
    torch.save(state, path)
    with pytest.raises(PretrainedError, match="missing features.5.conv.1.1.running_var"):
        load_torchvision_mobilenet_v2(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(PretrainedError, match=re.escape(f"{path}: not a readable torch state dict")):
        load_torchvision_mobilenet_v2(path)


# -- find_backbone ---------------------------------------------------------------------------

def test_find_backbone_searches_the_torch_hub_cache(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert Path(torch.hub.get_dir()) == tmp_path / "torch" / "hub"
    pattern = tmp_path / "torch" / "hub" / "checkpoints" / "mobilenet_v2-*.pth"
    absent = tmp_path / "absent.tflite"
    searched = re.escape(f"mobilenet_v2: searched {absent}, {pattern}")
    with pytest.raises(BackboneNotFound, match=searched) as error:
        find_backbone("mobilenet_v2", str(absent))
    assert error.value.searched == [str(absent), str(pattern)]
    with pytest.raises(BackboneNotFound, match=r"mobilenet_v1_025: searched nowhere"):
        find_backbone("mobilenet_v1_025", None)
    with pytest.raises(ValueError, match="Unsupported backbone 'resnet50'"):
        find_backbone("resnet50", None)

    cached = tmp_path / "torch" / "hub" / "checkpoints" / "mobilenet_v2-7ebf99e0.pth"
    random_torchvision_state(cached)
    with caplog.at_level(logging.WARNING, logger="cad2real.pretrained"):
        net, info = find_backbone("mobilenet_v2", str(absent))
    assert f"{absent} not found; using {cached}" in caplog.text
    assert info == {"backbone": "mobilenet_v2", "weights": str(cached), "source": "torchvision",
                    "input_size": 224, "embedding_dim": 1280}
    assert find_backbone("mobilenet_v2", None)[1] == info
