"""Read torchvision AlexNet weights out of an ONNX file and put them into Keras.

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

from keras_alexnet.model import CONV_LAYERS, DENSE_LAYERS

# torchvision layout: (out, in, kH, kW), stride, padding
CONV_SPECS = {
    "conv1": ((64, 3, 11, 11), 4, 2),
    "conv2": ((192, 64, 5, 5), 1, 2),
    "conv3": ((384, 192, 3, 3), 1, 1),
    "conv4": ((256, 384, 3, 3), 1, 1),
    "conv5": ((256, 256, 3, 3), 1, 1),
}
POOL5_CHANNELS, POOL5_SIZE = 256, 6


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
    if len(convs) != len(CONV_LAYERS):
        raise ValueError(
            f"{path} is not torchvision AlexNet: it has {len(convs)} Conv nodes, "
            f"AlexNet has {len(CONV_LAYERS)} (conv1..conv5)."
        )
    found = {}
    for name, (index, node) in zip(CONV_LAYERS, convs):
        label = _node_label(node, index)
        shape, stride, pad = CONV_SPECS[name]
        if node.input[1] not in constants:
            raise ValueError(f"{path}: {label} takes its weight from a computed tensor, not a constant.")
        weight = constants[node.input[1]]
        if weight.shape != shape:
            raise ValueError(
                f"{path}: {label} has weight shape {weight.shape}; AlexNet {name} "
                f"needs {shape}."
            )
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
    if len(found) != len(DENSE_LAYERS):
        raise ValueError(
            f"{path} is not torchvision AlexNet: it has {len(found)} fully connected "
            f"(Gemm/MatMul) nodes, AlexNet has 3 (fc6, fc7, fc8) or none (features only)."
        )
    expected = {"fc6": (4096, POOL5_CHANNELS * POOL5_SIZE**2), "fc7": (4096, 4096)}
    layers = dict(zip(DENSE_LAYERS, found))
    for name, shape in expected.items():
        if layers[name].weight.shape != shape:
            raise ValueError(
                f"{path}: {layers[name].node} has weight shape {layers[name].weight.shape}; "
                f"AlexNet {name} needs {shape} (out, in)."
            )
    if layers["fc8"].weight.shape[1] != 4096:
        raise ValueError(
            f"{path}: {layers['fc8'].node} has weight shape {layers['fc8'].weight.shape}; "
            "AlexNet fc8 needs (classes, 4096)."
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


def to_keras_arrays(name, layer: TorchLayer) -> list[np.ndarray]:
    """[kernel, bias] for the Keras layer ``name`` from torchvision's layout."""
    weight = np.asarray(layer.weight, np.float32)
    bias = np.asarray(layer.bias, np.float32)
    if weight.ndim == 4:  # OIHW -> HWIO
        return [weight.transpose(2, 3, 1, 0), bias]
    if name == "fc6":
        # torch flattens pool output as (C, H, W); Keras flattens (H, W, C).
        out = weight.shape[0]
        weight = weight.reshape(out, POOL5_CHANNELS, POOL5_SIZE, POOL5_SIZE)
        weight = weight.transpose(2, 3, 1, 0).reshape(-1, out)
        return [weight, bias]
    return [weight.T, bias]


def load_onnx_weights(model, path):
    """Fill an AlexNet Keras model from an ONNX export of torchvision's AlexNet."""
    layers = read_torch_layers(path)
    has_top = any(layer.name == "fc8" for layer in model.layers)
    if has_top and "fc8" not in layers:
        raise ValueError(
            f"{path} holds only the convolution layers; build the model with "
            "include_top=False, then add a head with keras_alexnet.replace_head."
        )
    if has_top:
        classes = layers["fc8"].weight.shape[0]
        if model.get_layer("fc8").units != classes:
            raise ValueError(
                f"{path} has fc8 with {classes} classes but the model was built with "
                f"classes={model.get_layer('fc8').units}. Pass classes={classes}."
            )
    names = CONV_LAYERS + (DENSE_LAYERS if has_top else ())
    for name in names:
        model.get_layer(name).set_weights(to_keras_arrays(name, layers[name]))
