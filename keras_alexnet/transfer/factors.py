"""Learning-rate factors keyed by AlexNet's names: Keras layers or torchvision paths.

``keras_alexnet.optimizers.with_lr_factors`` works for any Keras model; this adds
torchvision's module paths, slices and groups (``"classifier.6"``,
``"features[0:5]"``, ``"features"``) as keys.
"""

from __future__ import annotations

from keras_alexnet import optimizers
from keras_alexnet.transfer.names import resolve_layers


def with_lr_factors(optimizer, factors, model, l2_regularization=0.0):
    """``keras_alexnet.optimizers.with_lr_factors`` with torchvision names as keys too.

    Args:
        factors: ``{layer: factor}``. Layers are Keras names (``"fc8"``),
            torchvision paths (``"classifier.6"``, ``"features[0:5]"``), group
            names (``"features"``, ``"classifier"``), variable paths or patterns.
            A factor is a number (weights and biases), a ``(weight, bias)`` pair,
            or ``Factors(...)``. Layers not named keep factor 1.
        See ``keras_alexnet.optimizers.with_lr_factors`` for the rest.
    """
    by_layer = {}
    for key, value in factors.items():
        for name in resolve_layers(model, key, allow_paths=True):
            by_layer[name] = value
    return optimizers.with_lr_factors(optimizer, by_layer, model, l2_regularization=l2_regularization)
