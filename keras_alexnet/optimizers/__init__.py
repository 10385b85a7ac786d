"""Optimizers for any Keras model: per-variable learning-rate and L2 factors, fused updates, and
the learning-rate and momentum schedules (one-cycle, cosine with warm-up).

``with_lr_factors(optimizer, {"block5_conv1": 0.1, "dense/.*": 20}, model)`` wraps any
Keras optimizer; keys are layer names, variable paths or path patterns. Nothing here
knows AlexNet (``keras_alexnet.transfer.with_lr_factors`` adds torchvision paths).
"""

from keras_alexnet.optimizers.factors import (
    Factors,
    LearningRateFactorsMixin,
    factored_optimizer_class,
    factors_of,
    variable_factors,
    with_lr_factors,
    with_momentum_schedule,
)
from keras_alexnet.optimizers.fused import fused_kernel_name, fused_update
from keras_alexnet.optimizers.schedules import OneCycle, OneCycleMomentum, cosine_with_warmup
from keras_alexnet.optimizers.solvers import SOLVERS, make_optimizer

__all__ = [
    "Factors",
    "LearningRateFactorsMixin",
    "OneCycle",
    "OneCycleMomentum",
    "SOLVERS",
    "cosine_with_warmup",
    "factored_optimizer_class",
    "factors_of",
    "fused_kernel_name",
    "fused_update",
    "make_optimizer",
    "variable_factors",
    "with_lr_factors",
    "with_momentum_schedule",
]
