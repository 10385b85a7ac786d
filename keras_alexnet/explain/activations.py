"""Activations of any layer as a tiled grid (MATLAB ``activations`` + ``montage``), and the
first convolution's filters as one colour grid (the classic picture of AlexNet's conv1)."""

from __future__ import annotations

import math

import keras
import numpy as np

from keras_alexnet.explain.targets import convolution, layer_named


def activations(model, x, layer):
    """The output of ``layer`` for a batch of preprocessed images, as a NumPy array."""
    output = layer_named(model, layer).output
    probe = keras.Model(model.inputs[0], output, name=f"{model.name}_{layer}")
    return keras.ops.convert_to_numpy(probe(np.asarray(x, np.float32), training=False))


def grid_shape(count, columns=None):
    """(rows, columns) for ``count`` tiles, nearest to AlexNet's 8 x 12 (2:3) picture: 96 -> 8 x 12, 64 -> 8 x 8."""
    if columns is None:
        pairs = [(rows, count // rows) for rows in range(1, int(math.isqrt(count)) + 1) if count % rows == 0]
        rows, columns = min(pairs, key=lambda pair: abs(math.log(pair[0] / pair[1] / (2 / 3))))
        if rows / columns < 0.25:  # a count with no near-2:3 factors (a prime): leave the last row short
            columns = math.ceil(math.sqrt(count * 3 / 2))
    return math.ceil(count / columns), columns


def tile(tiles, columns=None, gap=1, background=1.0):
    """Tiles (N, h, w[, 3]) in [0, 1] laid out in a grid with ``gap`` pixels between them."""
    tiles = np.asarray(tiles, np.float32)
    count, h, w = tiles.shape[:3]
    rows, columns = grid_shape(count, columns)
    shape = (rows * (h + gap) - gap, columns * (w + gap) - gap, *tiles.shape[3:])
    grid = np.full(shape, background, np.float32)
    for index, item in enumerate(tiles):
        r, c = divmod(index, columns)
        grid[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = item
    return grid


def _unit_range(values, axes):
    low = values.min(axis=axes, keepdims=True)
    span = values.max(axis=axes, keepdims=True) - low
    return (values - low) / np.where(span > 0, span, 1.0)


def activation_grid(feature_maps, columns=None):
    """One image's activations (h, w, channels) as a grey grid, one tile per channel, each scaled to [0, 1]."""
    feature_maps = np.asarray(feature_maps, np.float32)
    if feature_maps.ndim != 3:
        raise ValueError(
            f"activation_grid takes one image's maps (h, w, channels), got shape {feature_maps.shape}; "
            "a dense layer's output has no spatial maps: choose a convolution or pooling layer."
        )
    channels_first = np.moveaxis(feature_maps, -1, 0)
    return tile(_unit_range(channels_first, (1, 2)), columns)


def filter_grid(model, layer="conv1", columns=None):
    """The RGB filters of a convolution on 3 channels as a colour grid, each filter scaled to [0, 1].

    torchvision's AlexNet has 64 conv1 filters (the paper's two GPUs had 96): an 8 x 8 grid.
    """
    conv = convolution(model, layer)
    kernel = keras.ops.convert_to_numpy(conv.kernel)  # (kh, kw, in, out)
    if kernel.shape[2] != 3:
        raise ValueError(
            f"layer {layer!r} has {kernel.shape[2]} input channels; a colour filter grid needs 3 (use conv1)."
        )
    filters = np.moveaxis(kernel, -1, 0)  # (out, kh, kw, 3)
    return tile(_unit_range(filters, (1, 2, 3)), columns)
