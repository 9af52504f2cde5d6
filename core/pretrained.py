"""ImageNet-pretrained MobileNets as torch modules, read offline from local files.

Two sources:
- the uint8-quantised TFLite MobileNets (``../shared/data/weights/coral``): each weight tensor
  is dequantised, ``(q - zero_point) * scale``, into the float modules of
  :mod:`models.mobilenet` with TF 'SAME' padding. The float module is the network the
  quantised one approximates, not a bit-exact copy (the file's activations are 8-bit).
- torchvision ``mobilenet_v2`` state dicts (the torch hub cache), BatchNorm folded into the
  convolutions, symmetric padding, and the ImageNet mean/std normalisation put in the
  module's input buffers so it takes the same input as the TFLite one.
"""

from __future__ import annotations

import logging
import pickle
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tflite
import torch

from models.mobilenet import Conv, ConvAct, InvertedResidual, MobileNet, MobileNetV1, MobileNetV2

log = logging.getLogger("cad2real.pretrained")

# name -> (module class, width multiplier); the names of PretrainedMethod.backbone.
BACKBONES: dict[str, tuple[type[MobileNet], float]] = {
    "mobilenet_v1_025": (MobileNetV1, 0.25), "mobilenet_v2": (MobileNetV2, 1.0)}
# File names torchvision's weights enums download to $TORCH_HOME/hub/checkpoints.
TORCHVISION_FILES = {"mobilenet_v2": "mobilenet_v2-*.pth"}
# Widths of the published ImageNet checkpoints, tried in turn to recognise a file.
ALPHAS = {MobileNetV1: (0.25, 0.5, 0.75, 1.0), MobileNetV2: (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)}
BN_EPS = 1e-5  # torchvision's BatchNorm2d default, used by mobilenet_v2
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

_OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if k.isupper()}
_ACT_NAMES = {v: k for k, v in vars(tflite.ActivationFunctionType).items() if k.isupper()}
_DTYPES = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.INT32: np.int32,
           tflite.TensorType.UINT8: np.uint8, tflite.TensorType.INT8: np.int8}
# Operators of a MobileNet graph that carry no weights (checked by position, not loaded).
_PASSIVE_OPS = {"ADD", "AVERAGE_POOL_2D", "RESHAPE", "SQUEEZE", "SOFTMAX"}


@dataclass(frozen=True)
class _Layer:
    """One CONV_2D / DEPTHWISE_CONV_2D of a TFLite graph, dequantised to torch layout."""

    op: str
    weight: np.ndarray  # (O, I / groups, KH, KW) float32
    bias: np.ndarray  # (O,) float32
    stride: int
    act: str  # fused activation: "NONE" | "RELU6"


class PretrainedError(ValueError):
    """A weights file that cannot become a backbone; message ``<file>: <problem>``."""


class BackboneNotFound(FileNotFoundError):
    """No weights file for a backbone; ``searched`` lists the paths and patterns looked at."""

    def __init__(self, name: str, searched: list[str]):
        where = ", ".join(searched) if searched else "nowhere (no weights path given)"
        super().__init__(f"no pre-trained weights for {name}: searched {where}")
        self.name, self.searched = name, searched


def find_backbone(name: str, weights: str | Path | None) -> tuple[MobileNet, dict[str, Any]]:
    """The pre-trained backbone ``name`` (``mobilenet_v1_025`` | ``mobilenet_v2``) and where it
    came from.

    ``weights``: a ``.tflite`` or torchvision ``.pth`` file (relative paths from the current
    directory). When None or missing, the torch hub cache (``torch.hub.get_dir()/checkpoints``)
    is searched for torchvision's file (first in sorted order, e.g. ``mobilenet_v2-7ebf99e0.pth``).
    Returns ``(module, {"backbone", "weights": path, "source": "tflite" | "torchvision",
    "input_size", "embedding_dim"})``. Raises BackboneNotFound naming the searched paths
    (the caller may fall back to training from scratch, recording source "none"), and
    PretrainedError when the file found is unreadable or holds another architecture.
    """
    if name not in BACKBONES:
        raise ValueError(f"Unsupported backbone {name!r}: one of {sorted(BACKBONES)} expected")
    searched, found = [], []
    if weights is not None:
        searched.append(str(weights))
        found = [Path(weights)] if Path(weights).is_file() else []
    if not found and name in TORCHVISION_FILES:
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        searched.append(str(cache / TORCHVISION_FILES[name]))
        found = sorted(cache.glob(TORCHVISION_FILES[name]))
        if found and weights is not None:
            log.warning("%s not found; using %s from the torch hub cache", weights, found[0])
    if not found:
        raise BackboneNotFound(name, searched)
    path = found[0]
    if path.suffix == ".tflite":
        model, source = load_tflite_mobilenet(path), "tflite"
    elif path.suffix in (".pth", ".pt"):
        model, source = load_torchvision_mobilenet_v2(path), "torchvision"
    else:
        raise PretrainedError(f"{path}: unsupported weights file type {path.suffix!r}: "
                              ".tflite or torchvision .pth expected")
    cls, alpha = BACKBONES[name]
    if type(model) is not cls or model.alpha != alpha:
        raise PretrainedError(f"{path}: holds a {type(model).__name__} alpha {model.alpha}, "
                              f"not {name} ({cls.__name__} alpha {alpha})")
    return model, {"backbone": name, "weights": str(path), "source": source,
                   "input_size": model.input_size, "embedding_dim": model.embedding_dim}


def imagenet_labels(path: str | Path) -> list[str]:
    """The class names of an ImageNet labels file, one a line (coral's: 1001, 0 = background)."""
    try:
        labels = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise PretrainedError(f"{path}: cannot read the labels file ({e.strerror})") from e
    if not labels:
        raise PretrainedError(f"{path}: the labels file is empty")
    return labels


def label_map_columns(labels: list[str], label_map: dict[str, Sequence[str]], categories: Sequence[str],
                      source: str = "imagenet.label_map") -> tuple[list[list[int]], list[str]]:
    """Per category, the indices (into ``labels``) of its mapped ImageNet classes, and the
    categories without an entry ("not applicable": an empty index list).

    A name matches a labels line whole or its first comma-separated name ("crib" matches
    "crib, cot"); a name that matches none is a PretrainedError naming ``source``.
    """
    index: dict[str, int] = {}
    for i, line in enumerate(labels):
        index.setdefault(line.strip(), i)
        index.setdefault(line.split(",")[0].strip(), i)
    columns, missing = [], []
    for category in categories:
        names = label_map.get(category, ())
        unknown = [n for n in names if n not in index]
        if unknown:
            raise PretrainedError(f"{source}.{category}: {unknown} are not ImageNet class names of the "
                                  f"labels file (e.g. {labels[1]!r}, {labels[-1]!r})")
        columns.append(sorted({index[n] for n in names}))
        if not names:
            missing.append(category)
    return columns, missing


# -- TFLite ------------------------------------------------------------------------------------

def load_tflite_mobilenet(path: str | Path) -> MobileNet:
    """A float MobileNetV1/V2 (``padding="tf"``) with the dequantised weights of a TFLite
    ImageNet MobileNet; architecture and width inferred from the graph's layer shapes,
    ``input_size`` from its input tensor.

    Checks that every conv's stride and fused activation (ReLU6 or none) and the number of
    residual ADDs match the module. The input mapping is exact for any input quantisation:
    the module's input buffers turn (u - 128) / 128 into the file's ``(q - zero_point) * scale``
    (identity for coral's files: scale 1/128, zero point 128). Raises PretrainedError
    naming the file for a missing, unreadable or unsupported file.
    """
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as e:
        raise PretrainedError(f"{path}: cannot read the TFLite file ({e.strerror})") from e
    if buf[4:8] != b"TFL3":
        raise PretrainedError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier at byte 4)")
    try:
        layers, adds, graph_input = _read_graph(tflite.Model.GetRootAsModel(buf, 0), path)
    except (struct.error, IndexError) as e:  # offsets past the end of the buffer
        raise PretrainedError(f"{path}: corrupt TFLite flatbuffer ({e})") from e
    net = _match_architecture(layers, path)
    if adds != sum(isinstance(m, InvertedResidual) and m.residual for m in net.modules()):
        raise PretrainedError(f"{path}: {adds} residual ADDs, not those of a "
                              f"{type(net).__name__} alpha {net.alpha}")
    convs = [m for m in net.modules() if isinstance(m, ConvAct)]
    with torch.no_grad():
        for i, (block, layer) in enumerate(zip(convs, layers)):
            if (layer.act == "RELU6") != (len(block) == 2):
                raise PretrainedError(
                    f"{path}: layer {i} ({layer.op}) has fused activation {layer.act}, "
                    f"the module {'ReLU6' if len(block) == 2 else 'none'}")
            block[0].weight.copy_(torch.from_numpy(layer.weight))
            block[0].bias.copy_(torch.from_numpy(layer.bias))
        logits = layers[-1]
        if logits.act != "NONE":
            raise PretrainedError(f"{path}: the logits convolution has fused activation {logits.act}")
        net.classifier.weight.copy_(torch.from_numpy(logits.weight[:, :, 0, 0]))
        net.classifier.bias.copy_(torch.from_numpy(logits.bias))
        net.input_scale.fill_(128 * graph_input["scale"])
        net.input_shift.fill_((128 - graph_input["zero_point"]) * graph_input["scale"])
    net.input_size = graph_input["size"]
    return net.eval()


def _read_graph(model: tflite.Model, path: Path) -> tuple[list[_Layer], int, dict[str, Any]]:
    """The conv layers in graph order (torch layout, dequantised), the number of ADDs, and the
    input ``{"size", "scale", "zero_point"}`` (zero point as for uint8 pixels)."""
    if model.SubgraphsLength() != 1:
        raise PretrainedError(f"{path}: {model.SubgraphsLength()} subgraphs, a MobileNet has 1")
    graph = model.Subgraphs(0)
    layers, adds, pool_at = [], 0, None
    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = _OP_NAMES.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            layers.append(_conv_layer(model, graph, op, name, path, k))
        elif name not in _PASSIVE_OPS:
            raise PretrainedError(f"{path}: operator {k} is {name}, unsupported in a MobileNet "
                                  f"(CONV_2D, DEPTHWISE_CONV_2D, {', '.join(sorted(_PASSIVE_OPS))})")
        if name == "ADD":
            act = _options(op, tflite.AddOptions()).FusedActivationFunction()
            if act != tflite.ActivationFunctionType.NONE:
                raise PretrainedError(f"{path}: operator {k} (ADD) has fused activation "
                                      f"{_ACT_NAMES.get(act)}, a MobileNetV2 residual none")
            adds += 1
        pool_at = len(layers) if name == "AVERAGE_POOL_2D" else pool_at
    if len(layers) < 2 or pool_at != len(layers) - 1:
        raise PretrainedError(f"{path}: expected convolutions, one AVERAGE_POOL_2D, then the "
                              f"1x1 logits convolution; got {len(layers)} convolutions "
                              f"and the pooling after {pool_at}")
    tensor = graph.Tensors(graph.Inputs(0))
    _, height, width, channels = tensor.ShapeAsNumpy()
    if height != width or channels != 3:
        raise PretrainedError(f"{path}: input shape {tensor.ShapeAsNumpy().tolist()}, "
                              "a square RGB (1, S, S, 3) expected")
    scale, zero_point = (float(v[0]) for v in _quantization(tensor))
    if tensor.Type() == tflite.TensorType.INT8:
        zero_point += 128  # int8 input q = u - 128
    elif tensor.Type() == tflite.TensorType.FLOAT32:
        scale, zero_point = 1 / 128, 128  # a float model takes [-1, 1] like its TF original
    elif tensor.Type() != tflite.TensorType.UINT8:
        raise PretrainedError(f"{path}: input tensor type {tensor.Type()}, uint8/int8/float32 expected")
    return layers, adds, {"size": int(height), "scale": scale, "zero_point": zero_point}


def _options(op: tflite.Operator, options: Any) -> Any:
    """``options`` (an empty ``tflite.*Options``) read from the operator's builtin options."""
    table = op.BuiltinOptions()
    options.Init(table.Bytes, table.Pos)
    return options


def _conv_layer(model: tflite.Model, graph: tflite.SubGraph, op: tflite.Operator, name: str,
                path: Path, k: int) -> _Layer:
    """One conv operator, after checking it is a MobileNet's (square stride, no dilation, ...)."""
    depthwise = name == "DEPTHWISE_CONV_2D"
    options = _options(op, tflite.DepthwiseConv2DOptions() if depthwise else tflite.Conv2DOptions())
    weight = _dequantize(model, graph, op.Inputs(1), path)  # conv (O, KH, KW, I); dw (1, KH, KW, C)
    weight = weight.transpose(3, 0, 1, 2) if depthwise else weight.transpose(0, 3, 1, 2)
    bias = _dequantize(model, graph, op.Inputs(2), path)
    stride, kernel = options.StrideH(), weight.shape[-1]
    problems = [
        f"stride {stride}x{options.StrideW()}" if stride != options.StrideW() else "",
        f"dilation {options.DilationHFactor()}x{options.DilationWFactor()}"
        if (options.DilationHFactor(), options.DilationWFactor()) != (1, 1) else "",
        "VALID padding" if options.Padding() != tflite.Padding.SAME and kernel > 1 else "",
        f"depth multiplier {options.DepthMultiplier()}"
        if depthwise and options.DepthMultiplier() != 1 else "",
        f"fused activation {_ACT_NAMES.get(options.FusedActivationFunction())}"
        if options.FusedActivationFunction() not in (tflite.ActivationFunctionType.NONE,
                                                     tflite.ActivationFunctionType.RELU6) else ""]
    if any(problems):
        raise PretrainedError(f"{path}: operator {k} ({name}) has "
                              f"{', '.join(p for p in problems if p)}, unsupported in a MobileNet")
    return _Layer(name, np.ascontiguousarray(weight), bias, stride,
                  _ACT_NAMES[options.FusedActivationFunction()])


def _quantization(tensor: tflite.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(scale, zero_point) arrays of a tensor: one value per tensor or per channel."""
    q = tensor.Quantization()
    if q is None or q.ScaleLength() == 0:
        return np.ones(1), np.zeros(1)
    zero_point = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(q.ScaleLength())
    return q.ScaleAsNumpy().astype(np.float64), np.asarray(zero_point, np.float64)


def _dequantize(model: tflite.Model, graph: tflite.SubGraph, index: int, path: Path) -> np.ndarray:
    """A constant tensor as float32, ``(q - zero_point) * scale`` along its quantised axis."""
    tensor = graph.Tensors(index)
    dtype = _DTYPES.get(tensor.Type())
    data = model.Buffers(tensor.Buffer()).DataAsNumpy()
    if dtype is None or isinstance(data, int):  # DataAsNumpy() returns 0 for an empty buffer
        raise PretrainedError(f"{path}: tensor {tensor.Name().decode()!r} has no "
                              f"{'data' if dtype else f'supported type ({tensor.Type()})'}")
    shape = tensor.ShapeAsNumpy()
    if data.size != np.prod(shape) * np.dtype(dtype).itemsize:
        raise PretrainedError(f"{path}: tensor {tensor.Name().decode()!r} holds {data.size} "
                              f"bytes for shape {shape.tolist()}")
    values = data.view(dtype).reshape(shape).astype(np.float64)
    if dtype is np.float32:
        return values.astype(np.float32)
    scale, zero_point = _quantization(tensor)
    axis = tensor.Quantization().QuantizedDimension() if scale.size > 1 else 0
    axis_shape = [-1 if d == axis else 1 for d in range(values.ndim)]
    return ((values - zero_point.reshape(axis_shape)) * scale.reshape(axis_shape)).astype(np.float32)


def _match_architecture(layers: list[_Layer], path: Path) -> MobileNet:
    """The freshly initialised MobileNet whose conv shapes and strides are the graph's."""
    wanted = [(layer.weight.shape, layer.stride) for layer in layers[:-1]]
    num_classes = layers[-1].weight.shape[0]
    for cls, alphas in ALPHAS.items():
        for alpha in alphas:
            with torch.device("meta"):  # shapes only, no memory or initialisation
                candidate = cls(alpha, num_classes)
            convs = [m for m in candidate.modules() if isinstance(m, Conv)]
            if [(tuple(c.weight.shape), c.stride[0]) for c in convs] == wanted:
                return cls(alpha, num_classes)
    raise PretrainedError(
        f"{path}: its {len(wanted)} convolutions (first {wanted[0][0]}) match no MobileNetV1 "
        f"alpha in {ALPHAS[MobileNetV1]} nor MobileNetV2 alpha in {ALPHAS[MobileNetV2]}")


# -- torchvision -------------------------------------------------------------------------------

def _torchvision_names(net: MobileNetV2) -> Iterator[tuple[Conv, str, str]]:
    """(our conv, torchvision conv weight key, torchvision BatchNorm prefix) in graph order.

    torchvision: ``features.0`` / ``features.18`` = (conv ``.0``, BatchNorm ``.1``, ReLU6);
    block ``features.i.conv`` = [expand (``.0.0``, ``.0.1``)], depthwise (``.k.0``, ``.k.1``),
    projection conv ``.k+1`` and its BatchNorm ``.k+2``.
    """
    last = len(net.features) - 1
    yield net.features[0][0], "features.0.0.weight", "features.0.1"
    for i in range(1, last):
        convs = [block[0] for block in net.features[i].conv]
        names = ([("conv.0.0", "conv.0.1"), ("conv.1.0", "conv.1.1"), ("conv.2", "conv.3")]
                 if len(convs) == 3 else [("conv.0.0", "conv.0.1"), ("conv.1", "conv.2")])
        for conv, (weight, bn) in zip(convs, names):
            yield conv, f"features.{i}.{weight}.weight", f"features.{i}.{bn}"
    yield net.features[last][0], f"features.{last}.0.weight", f"features.{last}.1"


def load_torchvision_mobilenet_v2(path: str | Path) -> MobileNetV2:
    """Our MobileNetV2 (``padding="torch"``, ``input_size`` 224) from a torchvision
    ``mobilenet_v2`` state dict (``torch.load(weights_only=True)``, runs no code from the file).

    Each BatchNorm (eval statistics, eps 1e-5) is folded into the conv before it:
    ``w * g / sqrt(var + eps)``, bias ``beta - mean * g / sqrt(var + eps)``. torchvision's
    input normalisation ((u / 255 - mean) / std) becomes the input buffers, so the module takes
    (u - 128) / 128 like every other backbone. The width is inferred from the tensor shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise PretrainedError(f"{path}: no such torchvision weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        raise PretrainedError(f"{path}: not a readable torch state dict ({e})") from e
    required = ("features.0.0.weight", "classifier.1.weight", "classifier.1.bias")
    if not isinstance(state, dict) or any(key not in state for key in required):
        raise PretrainedError(f"{path}: not a torchvision mobilenet_v2 state dict "
                              f"(needs {', '.join(required)})")
    num_classes = state["classifier.1.weight"].shape[0]
    for alpha in ALPHAS[MobileNetV2]:
        with torch.device("meta"):
            candidate = MobileNetV2(alpha, num_classes, padding="torch")
        if all(key in state and state[key].shape == conv.weight.shape
               for conv, key, _ in _torchvision_names(candidate)):
            break
    else:
        raise PretrainedError(f"{path}: tensor shapes match no torchvision mobilenet_v2 "
                              f"width_mult in {ALPHAS[MobileNetV2]}")
    net = MobileNetV2(alpha, num_classes, padding="torch")
    used = {"classifier.1.weight", "classifier.1.bias"}
    with torch.no_grad():
        for conv, key, bn in _torchvision_names(net):
            stats = [f"{bn}.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
            missing = [k for k in stats if k not in state]
            if missing:
                raise PretrainedError(f"{path}: missing {', '.join(missing)}")
            gamma, beta, mean, var = (state[k].double() for k in stats)
            factor = gamma / torch.sqrt(var + BN_EPS)
            conv.weight.copy_(state[key].double() * factor.view(-1, 1, 1, 1))
            conv.bias.copy_(beta - mean * factor)
            used |= {key, *stats, f"{bn}.num_batches_tracked"}
        net.classifier.weight.copy_(state["classifier.1.weight"])
        net.classifier.bias.copy_(state["classifier.1.bias"])
        # (u - 128) / 128 = x  ->  (u / 255 - mean) / std = x * 128 / (255 std) + (128 / 255 - mean) / std
        std = torch.tensor(IMAGENET_STD)
        net.input_scale.copy_(128 / (255 * std))
        net.input_shift.copy_((128 / 255 - torch.tensor(IMAGENET_MEAN)) / std)
    unused = sorted(set(state) - used)
    if unused:
        raise PretrainedError(f"{path}: unexpected keys for mobilenet_v2: {', '.join(unused[:5])}")
    net.input_size = 224
    return net.eval()
