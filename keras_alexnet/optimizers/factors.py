"""Per-parameter learning-rate and L2 factors for any Keras optimizer, as MATLAB means them.

MATLAB's ``WeightLearnRateFactor``/``BiasLearnRateFactor`` multiply the global
learning rate for one layer's weights/biases; ``WeightL2Factor``/``BiasL2Factor``
multiply the global L2 regularisation. Here the optimizer carries the factors,
keyed by variable path (``"fc8/kernel"``), and scales the **learning rate of each
update step**, schedules included. That is exact for every optimizer, Adam
included, whose step does not change when the gradient is scaled: a factor on the
gradient would do nothing there.

A factor of 0 means the variable is never touched (no step, no decay); given the
model, such variables are also marked non-trainable so no gradient is computed.
Factors are part of the optimizer's config: they survive ``model.save`` and
``keras.models.load_model`` and work under ``jit_compile`` and ``tf.distribute``.

Nothing here knows AlexNet: keys are a model's layer names, variable paths or
regular expressions over variable paths, for any Keras model.
``keras_alexnet.transfer.with_lr_factors`` adds torchvision's module paths.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re

import keras

from keras_alexnet import _keras_compat
from keras_alexnet.optimizers.fused import fused_kernel_name, fused_update

# The fused kernels that take a momentum (SGD) or beta_1 (Adam) per step.
MOMENTUM_KERNELS = ("ResourceApplyKerasMomentum", "ResourceApplyAdam")


@dataclasses.dataclass(frozen=True)
class Factors:
    """MATLAB's four per-layer factors."""

    weight_lr: float = 1.0
    bias_lr: float = 1.0
    weight_l2: float = 1.0
    bias_l2: float = 1.0

    @classmethod
    def of(cls, value):
        """A number means both learning-rate factors; a pair is (weight, bias)."""
        if isinstance(value, Factors):
            return value
        if isinstance(value, numbers.Real):
            return cls(weight_lr=float(value), bias_lr=float(value))
        if isinstance(value, dict):
            return cls(**value)
        if isinstance(value, (tuple, list)) and len(value) == 2:
            return cls(weight_lr=float(value[0]), bias_lr=float(value[1]))
        raise ValueError(
            f"learning-rate factor {value!r} is not understood: use a number, a "
            "(weight, bias) pair, or Factors(weight_lr=, bias_lr=, weight_l2=, bias_l2=)."
        )

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{field.name}={value!r}: factors must be >= 0 and finite.")


class LearningRateFactorsMixin:
    """Adds per-variable learning-rate and L2 factors to a Keras optimizer class.

    Use ``with_lr_factors`` rather than this class directly.
    """

    def __init__(
        self, *args, lr_factors=None, l2_factors=None, l2_regularization=0.0, momentum_schedule=None, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.lr_factors = {str(k): float(v) for k, v in (lr_factors or {}).items()}
        self.l2_factors = {str(k): float(v) for k, v in (l2_factors or {}).items()}
        self.l2_regularization = float(l2_regularization)
        if not (self.l2_regularization >= 0 and math.isfinite(self.l2_regularization)):
            raise ValueError(f"l2_regularization={l2_regularization!r}: use a number >= 0 and finite (e.g. 1e-4).")
        if isinstance(momentum_schedule, dict):
            momentum_schedule = keras.optimizers.schedules.deserialize(momentum_schedule)
        if momentum_schedule is not None and fused_kernel_name(self) not in MOMENTUM_KERNELS:
            raise ValueError(
                "a momentum schedule needs SGD with momentum > 0 or Adam/AdamW without amsgrad (TensorFlow "
                f"backend), not this {type(self).__name__.removeprefix('Factored')}: use sgdm or adam, or no "
                "momentum schedule."
            )
        self.momentum_schedule = momentum_schedule

    def factor_of(self, path):
        """(learning-rate factor, L2 factor) of the variable at ``path``."""
        return self.lr_factors.get(path, 1.0), self.l2_factors.get(path, 1.0)

    def _frozen(self, variable):
        return self.lr_factors.get(getattr(variable, "path", None), 1.0) == 0.0

    def build(self, variables):
        # A reloaded model has every variable trainable again: re-freeze the
        # zero-factor ones so the slots match the saved optimizer's and no gradient
        # is computed for them.
        kept = []
        for variable in variables:
            if self._frozen(variable):
                variable.trainable = False
            else:
                kept.append(variable)
        super().build(kept)

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is not None:
            pairs = [(g, v) for g, v in zip(grads, trainable_variables) if not self._frozen(v)]
            grads, trainable_variables = [g for g, _ in pairs], [v for _, v in pairs]
        return super().apply(grads, trainable_variables)

    def _update_model_variables_moving_average(self, trainable_variables):
        # TensorFlow's ExponentialMovingAverage(num_updates=step) warm-up: a short fine-tuning run's
        # average would otherwise keep most of the untrained weights it started from. The averages
        # start at zero (Keras's slots): the first step copies the weights, as Keras's own does.
        if not self.use_ema:
            return
        step = keras.ops.cast(self.iterations, "float32")
        decay = keras.ops.minimum(self.ema_momentum, (1.0 + step) / (10.0 + step)) * keras.ops.cast(step > 0, "float32")
        for variable, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is not None:
                rate = keras.ops.cast(decay, variable.dtype)
                average.assign(rate * average + (1.0 - rate) * variable)

    def _apply_weight_decay(self, variables):
        # Decoupled weight decay happens per variable in update_step, with factors.
        return None

    def update_step(self, gradient, variable, learning_rate):
        # In the TF backend `variable` is the raw (maybe per-replica) tf.Variable;
        # its index leads back to the Keras variable and its path.
        keras_variable = _keras_compat.optimizer_variables(self)[_keras_compat.variable_index(self, variable)]
        lr_factor, l2_factor = self.factor_of(keras_variable.path)
        if lr_factor == 0.0:
            return  # MATLAB: a zero factor freezes the parameter, decay included
        if self.l2_regularization and l2_factor:
            # MATLAB's L2Regularization: added to the gradient (coupled).
            gradient = gradient + (self.l2_regularization * l2_factor) * keras.ops.cast(variable, gradient.dtype)
        learning_rate = learning_rate * lr_factor
        if self.weight_decay and l2_factor and _keras_compat.uses_weight_decay(self, keras_variable):
            decay = keras.ops.cast(self.weight_decay * l2_factor, variable.dtype)
            self.assign_sub(variable, variable * decay * keras.ops.cast(learning_rate, variable.dtype))
        if self.momentum_schedule is not None:
            # Keras's own step reads momentum as a constant: the fused kernels take it per step.
            momentum = self.momentum_schedule(self.iterations)
            if not fused_update(self, gradient, variable, learning_rate, momentum=momentum):
                raise ValueError(f"{keras_variable.path}: a momentum schedule needs dense gradients.")
        elif not fused_update(self, gradient, variable, learning_rate):
            super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {
            **super().get_config(),
            "lr_factors": dict(self.lr_factors),
            "l2_factors": dict(self.l2_factors),
            "l2_regularization": self.l2_regularization,
            "momentum_schedule": (
                None if self.momentum_schedule is None else keras.optimizers.schedules.serialize(self.momentum_schedule)
            ),
        }


_FACTORED_CLASSES = {}


def factored_optimizer_class(base):
    """The registered subclass of optimizer class ``base`` that understands factors."""
    if issubclass(base, LearningRateFactorsMixin):
        return base
    if base not in _FACTORED_CLASSES:
        cls = type(
            f"Factored{base.__name__}",
            (LearningRateFactorsMixin, base),
            {"__doc__": f"{base.__name__} with per-variable learning-rate and L2 factors.", "__module__": __name__},
        )
        _FACTORED_CLASSES[base] = keras.saving.register_keras_serializable(package="keras_alexnet")(cls)
    return _FACTORED_CLASSES[base]


# Registered at import so that saved models load with keras.models.load_model.
for _name in ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam", "Ftrl", "Lion", "Lamb"):
    if hasattr(keras.optimizers, _name):
        factored_optimizer_class(getattr(keras.optimizers, _name))


def _variables_named(model, key):
    """The variables ``key`` names: a layer of ``model``, a variable path, or a path pattern."""
    names = {layer.name for layer in model.layers}
    if key in names:
        return list(model.get_layer(key).weights)
    exact = [v for v in model.weights if v.path == key]
    if exact:
        return exact
    try:
        pattern = re.compile(key)
    except re.error:
        pattern = None
    matched = [v for v in model.weights if pattern is not None and pattern.fullmatch(v.path)]
    if not matched:
        weighted = [layer.name for layer in model.layers if layer.weights]
        raise ValueError(
            f"unknown layer {key!r}: model {model.name!r} has no layer, variable path or path pattern by "
            "that name. Use a layer name "
            f"({', '.join(weighted)}), a variable path such as {model.weights[0].path!r}, or a "
            "regular expression over variable paths such as 'conv.*/kernel'."
        )
    return matched


def variable_factors(model, factors):
    """Resolve ``{key: factor}`` to ``({path: lr}, {path: l2})`` for ``model``'s variables.

    A key is a layer name, a variable path (``"fc8/kernel"``) or a regular expression
    matched against whole variable paths (``"conv[45]/.*"``). Later keys win.
    """
    lr, l2 = {}, {}
    for key, value in factors.items():
        value = Factors.of(value)
        for variable in _variables_named(model, key):
            is_bias = variable.name == "bias" or len(variable.shape) == 1
            lr[variable.path] = value.bias_lr if is_bias else value.weight_lr
            l2[variable.path] = value.bias_l2 if is_bias else value.weight_l2
    return lr, l2


def with_lr_factors(optimizer, factors, model, l2_regularization=0.0):
    """A copy of ``optimizer`` that applies per-layer learning-rate and L2 factors.

    Args:
        optimizer: any Keras optimizer instance (its config is copied, state is not).
        factors: ``{key: factor}``. A key is a layer name of ``model`` (``"fc8"``), a
            variable path (``"fc8/kernel"``) or a regular expression over variable paths
            (``"block[12]_.*"``). A factor is a number (weights and biases), a
            ``(weight, bias)`` pair, or ``Factors(...)``. Variables not named keep factor 1.
        model: any Keras model whose variables the keys refer to. Variables with a zero
            factor are made non-trainable, so no gradient is computed for them.
        l2_regularization: MATLAB's global L2Regularization (coupled, added to the
            gradient), scaled per variable by the L2 factors. For decoupled decay
            use the optimizer's own ``weight_decay`` (e.g. AdamW); it is scaled by
            the L2 factors and the effective learning rate.

    Returns:
        A new optimizer; pass it to ``model.compile``.
    """
    lr, l2 = variable_factors(model, factors)
    if isinstance(optimizer, LearningRateFactorsMixin):
        lr = {**optimizer.lr_factors, **lr}
        l2 = {**optimizer.l2_factors, **l2}
        l2_regularization = l2_regularization or optimizer.l2_regularization
    config = optimizer.get_config()
    for key in ("lr_factors", "l2_factors", "l2_regularization"):
        config.pop(key, None)
    cls = factored_optimizer_class(type(optimizer))
    factored = cls.from_config({**config, "lr_factors": lr, "l2_factors": l2, "l2_regularization": l2_regularization})
    _mark_zero_factors(model, lr)
    return factored


def with_momentum_schedule(optimizer, schedule):
    """A copy of ``optimizer`` whose momentum (SGD) or beta_1 (Adam) follows ``schedule`` step by step.

    PyTorch's ``OneCycleLR(cycle_momentum=True)`` and fastai's ``fit_one_cycle`` do this;
    Keras's optimizers read their momentum once, when the step is traced. ``schedule`` is
    a Keras ``LearningRateSchedule`` of the step (e.g. ``OneCycle(...).momentum()``). Needs SGD
    with momentum or Adam/AdamW on the TensorFlow backend; factors already set are kept.
    """
    config = {**optimizer.get_config(), "momentum_schedule": schedule}
    return factored_optimizer_class(type(optimizer)).from_config(config)


# Set on a variable that a zero factor made non-trainable, so that the next optimizer, whose
# factors may differ, can give it back: what trains is what the optimizer in use says.
_FROZEN_BY_FACTOR = "_keras_alexnet_frozen_by_factor"


def _mark_zero_factors(model, lr):
    """Make zero-factor variables non-trainable (no gradient computed) and undo an earlier optimizer's."""
    for variable in model.weights:
        if lr.get(variable.path) == 0.0:
            if variable.trainable:
                variable.trainable = False
                setattr(variable, _FROZEN_BY_FACTOR, True)
        elif getattr(variable, _FROZEN_BY_FACTOR, False):
            variable.trainable = True
            delattr(variable, _FROZEN_BY_FACTOR)


def factors_of(optimizer, variable_path):
    """(learning-rate factor, L2 factor) that ``optimizer`` applies to a variable."""
    if isinstance(optimizer, LearningRateFactorsMixin):
        return optimizer.factor_of(variable_path)
    return 1.0, 1.0
