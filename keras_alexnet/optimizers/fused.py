"""TensorFlow's fused, in-place update kernels for Keras's SGD and Adam steps.

Keras 3 writes an optimizer step as a chain of tensor ops (``m += (g - m) *
(1 - beta_1)``, ...). On the TensorFlow backend every op in that chain allocates
a full-size temporary and walks memory once more: for AlexNet's 58M-parameter
classifier that is many passes over 58M floats per step (benchmarks/ANALYSIS.md
has the measured cost). The ``ResourceApply*`` kernels that tf.keras 2 used do the same arithmetic in one
in-place pass. ``fused_update`` routes a step to them when the arithmetic is
the same and reports ``False`` otherwise, so the caller falls back to Keras.
"""

from __future__ import annotations

import keras

from keras_alexnet import _keras_compat


def _update_step_owner(optimizer):
    """The Keras class whose ``update_step`` the optimizer would run."""
    for cls in type(optimizer).__mro__:
        if cls.__module__.startswith("keras.") and "update_step" in vars(cls):
            return cls
    return None


def fused_kernel_name(optimizer):
    """Name of the TF kernel that ``fused_update`` uses for ``optimizer``, or None.

    Adam and AdamW (decoupled decay is applied apart) without ``amsgrad`` use
    ``ResourceApplyAdam``; SGD uses ``ResourceApplyGradientDescent`` or, with
    momentum, ``ResourceApplyKerasMomentum`` (Keras's momentum formula, Nesterov
    included). Other optimizers keep Keras's own step.
    """
    if keras.backend.backend() != "tensorflow":
        return None
    owner = _update_step_owner(optimizer)
    if owner is keras.optimizers.Adam and not optimizer.amsgrad:
        return "ResourceApplyAdam"
    if owner is keras.optimizers.SGD:
        return "ResourceApplyKerasMomentum" if optimizer.momentum else "ResourceApplyGradientDescent"
    return None


def _handle(variable):
    # A Keras variable wraps a tf.Variable (a per-device component inside a
    # tf.distribute update, where `.handle` resolves to this device's copy).
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


def fused_update(optimizer, gradient, variable, learning_rate, momentum=None):
    """Apply one update step with a fused TF kernel; False if none applies.

    Args:
        optimizer: the Keras optimizer whose step is taken (its slots are used).
        gradient: dense gradient for ``variable``.
        variable: the tf.Variable being updated, as Keras's ``update_step`` gets it.
        learning_rate: the step's learning rate (factors already applied).
        momentum: this step's momentum (SGD) or beta_1 (Adam), a tensor; None: the optimizer's.
    """
    kernel = fused_kernel_name(optimizer)
    if kernel is None:
        return False
    import tensorflow as tf

    if isinstance(gradient, tf.IndexedSlices):
        return False
    dtype = variable.dtype
    gradient = tf.cast(gradient, dtype)
    learning_rate = tf.cast(learning_rate, dtype)
    index = _keras_compat.variable_index(optimizer, variable)
    if kernel == "ResourceApplyAdam":
        first_moment, velocity = _keras_compat.adam_slots(optimizer, index)
        step = tf.cast(optimizer.iterations + 1, dtype)
        beta_1 = tf.cast(optimizer.beta_1 if momentum is None else momentum, dtype)
        beta_2 = tf.cast(optimizer.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(first_moment),
            v=_handle(velocity),
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=learning_rate,
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(optimizer.epsilon, dtype),
            grad=gradient,
        )
    elif kernel == "ResourceApplyKerasMomentum":
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=_handle(variable),
            accum=_handle(_keras_compat.sgd_momentum(optimizer, index)),
            lr=learning_rate,
            grad=gradient,
            momentum=tf.cast(optimizer.momentum if momentum is None else momentum, dtype),
            use_nesterov=bool(optimizer.nesterov),
        )
    else:
        tf.raw_ops.ResourceApplyGradientDescent(var=_handle(variable), alpha=learning_rate, delta=gradient)
    return True
