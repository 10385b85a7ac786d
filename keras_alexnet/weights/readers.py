"""Readers of AlexNet weight files. Each returns ``{layer name: [kernel, bias]}`` in Keras's layout.

- ``read_keras_weights``: a ``.weights.h5`` from ``model.save_weights`` or ``keras-alexnet convert``;
- ``read_state_dict_npz``: a torchvision state dict saved as ``.npz`` (no pickle);
- ``read_onnx`` (``keras_alexnet.weights.onnx_reader``): an ONNX export of torchvision's AlexNet;
- a ``.pth`` goes through ``keras_alexnet.conversion`` (it needs torch).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from keras_alexnet._utils.hdf5 import open_hdf5
from keras_alexnet.architecture import ALEXNET


def torch_to_keras(name, weight, bias, architecture=ALEXNET):
    """[kernel, bias] for Keras layer ``name`` from torchvision's (weight, bias)."""
    weight = np.asarray(weight, np.float32)
    bias = np.asarray(bias, np.float32)
    if weight.ndim == 4:  # OIHW -> HWIO
        return [weight.transpose(2, 3, 1, 0), bias]
    if name == architecture.hidden_names[0] and weight.shape[1] == architecture.flat_features:
        # torch flattens avgpool's output as (C, H, W); Keras flattens (H, W, C).
        side, channels, out = architecture.pooled_size, architecture.features_channels, weight.shape[0]
        weight = weight.reshape(out, channels, side, side).transpose(2, 3, 1, 0).reshape(-1, out)
        return [weight, bias]
    return [weight.T, bias]


def state_dict_to_keras(state, source, architecture=ALEXNET):
    """Keras arrays from a torchvision AlexNet state dict (``features.0.weight``, ...).

    Returns the convolutions, plus fc6..fc8 when the dict has the classifier.
    """
    arrays = {}
    for layer, (weight_key, bias_key) in architecture.state_dict_keys.items():
        present = [key in state for key in (weight_key, bias_key)]
        if not any(present) and layer in architecture.dense_names:
            continue
        if not all(present):
            missing = weight_key if not present[0] else bias_key
            raise ValueError(f"{source} is not a torchvision AlexNet state dict: {missing!r} ({layer}) is missing.")
        arrays[layer] = torch_to_keras(layer, state[weight_key], state[bias_key], architecture)
    dense = [name for name in architecture.dense_names if name in arrays]
    if dense and len(dense) != len(architecture.dense_names):
        raise ValueError(
            f"{source} has only part of the classifier ({', '.join(dense)}); AlexNet's has fc6, fc7 and fc8."
        )
    return arrays


def read_state_dict_npz(path, architecture=ALEXNET):
    """A torchvision state dict saved with ``numpy.savez``, as Keras arrays."""
    return state_dict_to_keras(load_npz(path), path, architecture)


def load_npz(path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (no pickle involved)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable .npz state dict: {error}") from None


def _keras_order(group_name):
    # Keras names weight groups after the layer class with a counter: conv2d, conv2d_1, ...
    match = re.fullmatch(r"(.*?)(?:_(\d+))?", group_name)
    return match.group(1), int(match.group(2) or 0)


def _check_declared_sizes(path, datasets, architecture):
    """Before any dataset is read: every array is one of AlexNet's (at most the largest layer's size, 2-D or 4-D
    kernels and 1-D biases), and together they declare no more bytes than the file holds (Keras writes them
    uncompressed; an HDF5 file can declare gigabytes it never stored)."""
    # fc6, or an fc8 of 100,000 classes
    largest = max(architecture.flat_features * architecture.hidden_units[0], architecture.hidden_units[-1] * 100_000)
    declared = 0
    for dataset in datasets:
        shape = getattr(dataset, "shape", None)
        if shape is None or len(shape) not in (1, 2, 4) or int(np.prod(shape, dtype=np.int64)) > largest:
            raise ValueError(
                f"{path} does not hold AlexNet weights: {dataset.name} declares shape {shape}, which no AlexNet layer "
                "has; nothing of it was read."
            )
        declared += int(np.prod(shape, dtype=np.int64)) * dataset.dtype.itemsize
    size = Path(path).stat().st_size
    if declared > size:
        raise ValueError(
            f"{path} declares {declared:,} bytes of weights but holds {size:,}: it is damaged or not a Keras weights "
            "file; nothing of it was read."
        )


def read_keras_weights(path, architecture=ALEXNET):
    """The AlexNet layers of a Keras 3 ``.weights.h5`` file.

    Keras stores weights by layer class and position, not by layer name: the 4-D
    kernels in order are conv1..conv5 and the 2-D ones fc6..fc8.
    """
    groups = []
    try:
        with open_hdf5(path) as handle:
            if "layers" not in handle:
                raise ValueError(
                    f"{path} is an HDF5 file but not a Keras 3 weights file (no 'layers' "
                    "group). Save weights with model.save_weights('x.weights.h5')."
                )
            datasets = []
            for name, group in handle["layers"].items():
                variables = group.get("vars")
                if variables is not None and len(variables):
                    datasets.append((_keras_order(name), name, [variables[str(i)] for i in range(len(variables))]))
            _check_declared_sizes(path, [item for _, _, items in datasets for item in items], architecture)
            groups = [(order, name, [np.asarray(item) for item in items]) for order, name, items in datasets]
    except OSError as error:
        raise ValueError(
            f"{path} is not a readable HDF5 weights file ({error}). Pass a .weights.h5 "
            "file written by model.save_weights or keras-alexnet convert, or an .onnx file."
        ) from None
    groups.sort()
    convs = [arrays for _, _, arrays in groups if arrays[0].ndim == 4]
    dense = [arrays for _, _, arrays in groups if arrays[0].ndim == 2]
    others = [name for _, name, arrays in groups if arrays[0].ndim not in (2, 4)]
    if len(convs) != len(architecture.conv_names) or len(dense) not in (0, len(architecture.dense_names)) or others:
        raise ValueError(
            f"{path} does not hold AlexNet weights: found {len(convs)} convolution kernels and "
            f"{len(dense)} dense kernels{f' and other weights ({others})' if others else ''}; "
            f"expected {len(architecture.conv_names)} and 0 or {len(architecture.dense_names)}."
        )
    arrays = dict(zip(architecture.conv_names, convs))
    arrays.update(zip(architecture.dense_names, dense))
    return arrays
