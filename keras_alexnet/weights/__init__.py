"""AlexNet weights: sources declared as data, readers per file format, one loader.

``load_weights(model, weights, include_top)`` resolves ``"imagenet"`` through the
source registry, reads the file with the reader for its format, and hands the
``{layer: [kernel, bias]}`` arrays to ``apply_weights``, the one place that checks
them against the model (classifier present? fc8 classes? every shape).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_alexnet.architecture import ALEXNET
from keras_alexnet.weights.onnx_reader import read_onnx
from keras_alexnet.weights.readers import (
    load_npz,
    read_keras_weights,
    read_state_dict_npz,
    state_dict_to_keras,
    torch_to_keras,
)
from keras_alexnet.weights.sources import (
    IMAGENET,
    IMAGENET_FEATURES,
    SOURCES,
    WeightsSource,
    imagenet_weights_path,
    keras_cache_dir,
    sha256_of,
)
from keras_alexnet.weights.state_dicts import load_state_dict


def read_weights(path, architecture=ALEXNET) -> dict[str, list[np.ndarray]]:
    """``{layer: [kernel, bias]}`` from a ``.weights.h5``, ``.onnx``, ``.npz`` or ``.pth`` file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return read_onnx(path)
    if suffix == ".npz":
        return read_state_dict_npz(path, architecture)
    if suffix in (".pth", ".pt"):
        state, _ = load_state_dict(path, progress=lambda *_: None)
        return state_dict_to_keras(state, path, architecture)
    return read_keras_weights(path, architecture)


def apply_weights(model, arrays, source, architecture=ALEXNET):
    """Put ``{layer: [kernel, bias]}`` into ``model``, after checking that they fit.

    The model's classifier needs the file's (with fc8 of the same size); a model
    without one takes the convolutions of any AlexNet file. A shape that differs
    is reported with the first layer where it does, before any weight is set.
    """
    names = {layer.name for layer in model.layers}
    output = architecture.output_name
    has_top = output in names
    if has_top and output not in arrays:
        raise ValueError(
            f"{source} holds only the convolution layers ({', '.join(architecture.conv_names)}). Build the "
            "model with include_top=False, then add a classifier with "
            "keras_alexnet.replace_head(model, classes)."
        )
    if has_top:
        classes, file_classes = model.get_layer(output).units, arrays[output][0].shape[-1]
        if classes != file_classes:
            raise ValueError(
                f"{source} has {output} with {file_classes} classes but the model was built "
                f"with classes={classes}. Pass classes={file_classes}."
            )
    wanted = [
        name for name in (*architecture.conv_names, *architecture.dense_names) if name in names and name in arrays
    ]
    if not has_top:
        wanted = [name for name in wanted if name in architecture.conv_names]
    for name in wanted:
        expected = [tuple(v.shape) for v in model.get_layer(name).weights]
        got = [tuple(np.shape(a)) for a in arrays[name]]
        if expected != got:
            raise ValueError(
                f"{source} does not fit this model: layer {name} has kernel/bias shapes {got} in the "
                f"file, the model needs {expected}. The file is not torchvision AlexNet's (or was built "
                "for another architecture)."
            )
    for name in wanted:
        model.get_layer(name).set_weights(arrays[name])
    return wanted


def load_weights(model, weights, include_top):
    """Fill ``model`` (built by ``AlexNet``) from ``"imagenet"`` or a weights file."""
    path = imagenet_weights_path(include_top) if weights == "imagenet" else Path(weights)
    return apply_weights(model, read_weights(path), path)


__all__ = [
    "IMAGENET",
    "IMAGENET_FEATURES",
    "SOURCES",
    "WeightsSource",
    "apply_weights",
    "imagenet_weights_path",
    "keras_cache_dir",
    "load_npz",
    "load_state_dict",
    "load_weights",
    "read_keras_weights",
    "read_weights",
    "sha256_of",
    "state_dict_to_keras",
    "torch_to_keras",
]
