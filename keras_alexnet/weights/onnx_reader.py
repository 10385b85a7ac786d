"""Read torchvision AlexNet weights out of an ONNX file.

Tensors are found by graph structure, not by name: the Conv nodes in order are
conv1..conv5 and the Gemm (or MatMul + Add) nodes in order are fc6..fc8, so
files from any exporter work whether or not it kept torchvision's names.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from keras_alexnet.architecture import ALEXNET
from keras_alexnet.weights.readers import torch_to_keras


@dataclasses.dataclass
class TorchLayer:
    """A layer's weight and bias in torchvision's layout, and where they came from."""

    weight: np.ndarray
    bias: np.ndarray
    node: str


def _constants(graph):
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
        elif node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    return values


def _attr(node, name, default):
    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def _node_label(node, index):
    return f"{node.op_type} node #{index} ({node.name or node.output[0]!r})"


def _conv_layers(graph, constants, path):
    convs = [(i, n) for i, n in enumerate(graph.node) if n.op_type == "Conv"]
    if len(convs) != len(ALEXNET.conv_names):
        raise ValueError(
            f"{path} is not torchvision AlexNet: it has {len(convs)} Conv nodes, "
            f"AlexNet has {len(ALEXNET.conv_names)} (conv1..conv5)."
        )
    found = {}
    shapes = ALEXNET.torch_shapes(classes=None)
    for conv, (index, node) in zip(ALEXNET.convolutions, convs):
        name, label = conv.name, _node_label(node, index)
        shape, stride, pad = shapes[name], conv.stride, conv.padding
        if node.input[1] not in constants:
            raise ValueError(f"{path}: {label} takes its weight from a computed tensor, not a constant.")
        weight = constants[node.input[1]]
        if weight.shape != shape:
            raise ValueError(f"{path}: {label} has weight shape {weight.shape}; AlexNet {name} needs {shape}.")
        strides, pads = _attr(node, "strides", [1, 1]), _attr(node, "pads", [0, 0, 0, 0])
        if list(strides) != [stride] * 2 or list(pads) != [pad] * 4:
            raise ValueError(
                f"{path}: {label} has strides {strides} and pads {pads}; AlexNet "
                f"{name} uses stride {stride} and padding {pad}."
            )
        bias = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if bias is None:
            bias = np.zeros(shape[0], np.float32)
        found[name] = TorchLayer(weight, bias, label)
    return found


def _dense_layers(graph, constants, path):
    found = []
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for index, node in enumerate(graph.node):
        label = _node_label(node, index)
        if node.op_type == "Gemm":
            weight = constants.get(node.input[1])
            if weight is None:
                raise ValueError(f"{path}: {label} takes its weight from a computed tensor.")
            if _attr(node, "transA", 0) or _attr(node, "alpha", 1.0) != 1.0 or _attr(node, "beta", 1.0) != 1.0:
                raise ValueError(f"{path}: {label} uses transA/alpha/beta, which AlexNet's Linear layers do not.")
            if not _attr(node, "transB", 0):
                weight = weight.T
            bias = constants.get(node.input[2]) if len(node.input) > 2 else None
            found.append(TorchLayer(weight, bias if bias is not None else np.zeros(weight.shape[0], np.float32), label))
        elif node.op_type == "MatMul" and node.input[1] in constants:
            weight = constants[node.input[1]].T
            bias = np.zeros(weight.shape[0], np.float32)
            for consumer in consumers.get(node.output[0], []):
                if consumer.op_type == "Add":
                    other = [n for n in consumer.input if n != node.output[0]]
                    if other and other[0] in constants:
                        bias = constants[other[0]]
            found.append(TorchLayer(weight, bias, label))
    if not found:
        return {}
    if len(found) != len(ALEXNET.dense_names):
        raise ValueError(
            f"{path} is not torchvision AlexNet: it has {len(found)} fully connected "
            f"(Gemm/MatMul) nodes, AlexNet has 3 (fc6, fc7, fc8) or none (features only)."
        )
    shapes = ALEXNET.torch_shapes(classes=None)
    layers = dict(zip(ALEXNET.dense_names, found))
    for name in ALEXNET.hidden_names:
        shape = shapes[name]
        if layers[name].weight.shape != shape:
            raise ValueError(
                f"{path}: {layers[name].node} has weight shape {layers[name].weight.shape}; "
                f"AlexNet {name} needs {shape} (out, in)."
            )
    output = layers[ALEXNET.output_name]
    if output.weight.shape[1] != ALEXNET.hidden_units[-1]:
        raise ValueError(
            f"{path}: {output.node} has weight shape {output.weight.shape}; AlexNet "
            f"{ALEXNET.output_name} needs (classes, {ALEXNET.hidden_units[-1]})."
        )
    return layers


def read_torch_layers(path) -> dict[str, TorchLayer]:
    """The AlexNet layers of an ONNX file, in torchvision's layout.

    Returns conv1..conv5, plus fc6..fc8 when the file has the classifier.
    Raises ``ValueError`` naming what is missing or of the wrong shape.
    """
    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as error:  # onnx raises DecodeError, OSError, ...
        raise ValueError(f"{path} is not a readable ONNX file: {error}") from None
    constants = _constants(model.graph)
    layers = _conv_layers(model.graph, constants, path)
    layers.update(_dense_layers(model.graph, constants, path))
    return layers


def read_onnx(path) -> dict[str, list[np.ndarray]]:
    """The AlexNet layers of an ONNX file as Keras ``[kernel, bias]`` arrays."""
    return {name: torch_to_keras(name, layer.weight, layer.bias) for name, layer in read_torch_layers(path).items()}
