"""The layers an explanation reads: a convolution by name, and the class scores before the softmax."""

from __future__ import annotations

import keras
import numpy as np

from keras_alexnet._utils.text import printable
from keras_alexnet.layers import ClassNames, class_names_of
from keras_alexnet.preprocessing import imagenet_class_names


class LayerNameError(ValueError):
    """A layer name that does not exist, or is not the kind of layer asked for; the message lists the valid names."""


def convolution_names(model):
    """The names of the model's 2-D convolutions, input to output."""
    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def convolution(model, name="conv5"):
    """The convolution layer ``name`` of ``model``; a clear error listing the valid names otherwise."""
    valid = convolution_names(model)
    names = [layer.name for layer in model.layers]
    if name not in names:
        raise LayerNameError(f"layer {name!r} is not in the model: use one of its convolutions {valid}.")
    if name not in valid:
        kind = type(model.get_layer(name)).__name__
        raise LayerNameError(f"layer {name!r} is a {kind}, not a convolution: use one of {valid}.")
    return model.get_layer(name)


def layer_named(model, name):
    """Any layer with an output to look at (for activations); the error lists the names."""
    names = [layer.name for layer in model.layers if not isinstance(layer, (keras.layers.InputLayer, ClassNames))]
    if name not in names:
        raise LayerNameError(f"layer {name!r} is not in the model: use one of {names}.")
    return model.get_layer(name)


def score_layer(model):
    """The last Dense layer: its pre-activation outputs are the class scores (logits)."""
    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.Dense):
            return layer
    raise LayerNameError("the model has no Dense output layer to take class scores from.")


def class_names(model):
    """The names stored in the model (``train`` stores them), else ``class 0``, ``class 1``, ..."""
    names = class_names_of(model)
    if names is not None:
        return [printable(name) for name in names]  # text from a file: no escape sequences reach the terminal
    units = score_layer(model).units
    if units == 1000:
        return list(imagenet_class_names())
    return [f"class {i}" for i in range(units)]


def class_index(model, name_or_index):
    """A class given by name or index, checked against the model's classes."""
    names = class_names(model)
    if isinstance(name_or_index, (int, np.integer)) or (isinstance(name_or_index, str) and name_or_index.isdigit()):
        index = int(name_or_index)
        if not 0 <= index < len(names):
            raise ValueError(f"class index {index} is out of range: the model has {len(names)} classes.")
        return index
    if name_or_index not in names:
        shown = names if len(names) <= 20 else names[:20] + ["..."]
        raise ValueError(f"class {name_or_index!r} is not one of the model's classes: {shown}.")
    return names.index(name_or_index)


def scores_model(model, layer_names=()):
    """A model from the input to ``[*layer outputs, class-score layer input]``.

    Class scores are then ``input @ kernel + bias`` of ``score_layer``: the logits,
    before the softmax, as Grad-CAM and torchvision models use them.
    """
    outputs = [model.get_layer(name).output for name in layer_names] + [score_layer(model).input]
    return keras.Model(model.inputs[0], outputs if len(outputs) > 1 else outputs[0], name=f"{model.name}_scores")


def logits(model, features):
    """Class scores from the score layer's input (float32)."""
    dense = score_layer(model)
    kernel = keras.ops.cast(dense.kernel, "float32")
    return keras.ops.matmul(keras.ops.cast(features, "float32"), kernel) + keras.ops.cast(dense.bias, "float32")
