"""Optimizers by MATLAB's solver names (``sgdm``, ``adam``, ...), as recipes and the CLI name them."""

from __future__ import annotations

import keras

from keras_alexnet._utils.choices import SOLVERS


def make_optimizer(name, learning_rate):
    """``sgdm`` (SGD, momentum 0.9 as MATLAB), ``sgd``, ``adam``, ``adamw``, ``rmsprop``."""
    makers = {
        "sgdm": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9),
        "sgd": lambda: keras.optimizers.SGD(learning_rate),
        "adam": lambda: keras.optimizers.Adam(learning_rate),
        "adamw": lambda: keras.optimizers.AdamW(learning_rate),
        "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate),
    }
    if name not in makers:
        raise ValueError(f"optimizer {name!r} is not known: use one of {', '.join(SOLVERS)}.")
    return makers[name]()
