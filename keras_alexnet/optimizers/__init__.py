"""Optimizers for any Keras model: per-variable learning-rate and L2 factors, fused updates, the
learning-rate and momentum schedules (one-cycle, cosine with warm-up), and the solvers by name.

``with_lr_factors(optimizer, {"block5_conv1": 0.1, "dense/.*": 20}, model)`` wraps any
Keras optimizer; keys are layer names, variable paths or path patterns. Nothing here
knows AlexNet (``keras_alexnet.transfer.with_lr_factors`` adds torchvision paths).

Loaded lazily, like the package root: ``keras_alexnet.optimizers.solvers`` (the solvers' table,
which options and the CLI's parser read) loads no Keras; each public name is imported on first use.
"""

import importlib

# Public name -> the module that defines it.
_EXPORTS = {
    "Factors": "factors",
    "LearningRateFactorsMixin": "factors",
    "factored_optimizer_class": "factors",
    "factors_of": "factors",
    "variable_factors": "factors",
    "with_lr_factors": "factors",
    "with_momentum_schedule": "factors",
    "fused_kernel_name": "fused",
    "fused_update": "fused",
    "OneCycle": "schedules",
    "OneCycleMomentum": "schedules",
    "cosine_with_warmup": "schedules",
    "SOLVERS": "solvers",
    "SOLVER_TABLE": "solvers",
    "Solver": "solvers",
    "make_optimizer": "solvers",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_alexnet.optimizers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"keras_alexnet.optimizers.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__})
