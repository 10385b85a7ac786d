"""Freezing and unfreezing layers, safely with compiled models.

Keras only honours a ``trainable`` change at the next ``compile``: after a
``fit`` it is silently ignored. ``freeze``/``unfreeze`` therefore recompile a
compiled model themselves, and ``TrainableStateGuard`` (used by
``keras_alexnet.training``) refuses to train a model whose trainable flags were
changed by hand since its optimizer was built.
"""

from __future__ import annotations

import keras

from keras_alexnet import _keras_compat
from keras_alexnet.transfer.names import layer_range, resolve_layers


def recompile(model):
    """Compile ``model`` again with its own compile config, so trainable changes count.

    The optimizer is rebuilt from its config (factors kept, slot state reset),
    as Keras does on any recompile.
    """
    if model.compiled:
        model.compile_from_config(model.get_compile_config())
    return model


def _set_trainable(model, value, layers, up_to, start):
    if layers is None and up_to is None and start is None:
        names = [layer.name for layer in model.layers]
    elif layers is not None:
        names = resolve_layers(model, layers)
    else:
        names = layer_range(model, up_to=up_to, start=start)
    for name in names:
        layer = model.get_layer(name)
        layer.trainable = value
        # Only the variables the layer trains by design: batch norm's moving statistics stay
        # non-trainable whatever the layer's flag.
        for variable in _keras_compat.trainable_by_design(layer):
            variable.trainable = value
    recompile(model)
    return names


def freeze(model, layers=None, *, up_to=None, start=None):
    """Make layers non-trainable and recompile if the model is compiled.

    Args:
        layers: a Keras name (``"conv1"``), torchvision path (``"features.3"``),
            slice (``"features[0:5]"``), group (``"features"``) or a list of them.
        up_to / start: an inclusive range of layers instead (``up_to="conv3"``); with no
            selection at all the whole model is frozen.
    Returns:
        The names of the layers changed.
    """
    return _set_trainable(model, False, layers, up_to, start)


def unfreeze(model, layers=None, *, up_to=None, start=None):
    """Make layers trainable again (see ``freeze``) and recompile if compiled."""
    return _set_trainable(model, True, layers, up_to, start)


def trainable_state_is_stale(model):
    """True if the trainable variables differ from those the optimizer was built for."""
    optimizer = getattr(model, "optimizer", None)
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if inner is None or not inner.built:
        return False  # Keras reads the flags at the first fit: nothing is stale yet
    built_for = {id(v) for v in _keras_compat.optimizer_variables(inner)}
    # Variables with learning-rate factor 0 are left out of the optimizer on purpose.
    excluded = getattr(inner, "_frozen", lambda variable: False)
    return built_for != {id(v) for v in model.trainable_variables if not excluded(v)}


class TrainableStateGuard(keras.callbacks.Callback):
    """Stops ``fit`` from silently ignoring ``layer.trainable`` changes made after training."""

    def on_train_begin(self, logs=None):
        if trainable_state_is_stale(self.model):
            raise RuntimeError(
                "The model's trainable flags changed after it was trained, and Keras would "
                "ignore the change. Use keras_alexnet.freeze()/unfreeze(), or call "
                "keras_alexnet.transfer.recompile(model) before fit."
            )
