"""Every use of a private Keras attribute, in one place.

Keras has no public API for an optimizer's per-variable slots, a layer's inbound
nodes or ``BackupAndRestore``'s bookkeeping, and this package needs all three.
Each access goes through a function here, and ``tests/test_keras_compat.py``
checks every name in ``PRIVATE_ATTRIBUTES`` on the installed Keras, so a Keras
release that renames one fails a test instead of training silently wrong. The
``keras`` dependency carries an upper bound for the same reason.
"""

from __future__ import annotations

import keras

# (owner, attribute) pairs this package reads or overrides.
PRIVATE_ATTRIBUTES = {
    "optimizer": (
        "_trainable_variables",
        "_get_variable_index",
        "_apply_weight_decay",
        "_use_weight_decay",
        "_model_variables_moving_average",
        "_update_model_variables_moving_average",
    ),
    "adam": ("_momentums", "_velocities"),
    "layer": ("_inbound_nodes", "_trainable_variables"),
    "backup_and_restore": (
        "_training_metadata_path",
        "_weights_path",
        "_current_epoch",
        "_last_batch_seen",
        "_save_model",
    ),
}


def optimizer_variables(optimizer):
    """The variables ``optimizer`` was built for, in slot order."""
    return optimizer._trainable_variables


def moving_averages(optimizer):
    """[(model variable, its moving average)] of an optimizer built with ``use_ema``."""
    return [
        (variable, average)
        for variable, average in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average)
        if average is not None
    ]


def variable_index(optimizer, variable):
    """The slot index of ``variable`` (a Keras variable or the backend variable inside it)."""
    return optimizer._get_variable_index(variable)


def adam_slots(optimizer, index):
    """(first moment, second moment) variables of Adam's slot ``index``."""
    return optimizer._momentums[index], optimizer._velocities[index]


def sgd_momentum(optimizer, index):
    """SGD's momentum variable of slot ``index`` (public in Keras, listed for completeness)."""
    return optimizer.momentums[index]


def uses_weight_decay(optimizer, variable):
    """Whether ``optimizer``'s ``weight_decay`` applies to ``variable`` (its exclusion lists)."""
    return optimizer._use_weight_decay(variable)


def trainable_by_design(layer):
    """The variables ``layer`` created as trainable (not, e.g., batch norm's moving statistics),
    whatever its ``trainable`` flag says now."""
    return list(layer._trainable_variables)


def inbound_node_count(layer):
    """How many times ``layer`` was called in functional models."""
    return len(layer._inbound_nodes)


class BackupState:
    """Read/write access to a ``keras.callbacks.BackupAndRestore``'s private bookkeeping."""

    def __init__(self, callback):
        self.callback = callback

    @property
    def metadata_path(self):
        return self.callback._training_metadata_path

    @property
    def weights_path(self):
        return self.callback._weights_path

    @weights_path.setter
    def weights_path(self, value):
        self.callback._weights_path = value

    @property
    def epoch(self):
        return self.callback._current_epoch

    @property
    def batch(self):
        return self.callback._last_batch_seen


def keras_version():
    """The installed Keras version as a tuple of ints (major, minor, patch)."""
    return tuple(int(part) for part in keras.__version__.split(".")[:3] if part.isdigit())
