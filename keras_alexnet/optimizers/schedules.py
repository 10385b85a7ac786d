"""Learning-rate schedules as serializable Keras ``LearningRateSchedule``s.

- ``OneCycle``: warm-up then cosine annealing, the values of PyTorch's
  ``torch.optim.lr_scheduler.OneCycleLR`` (cosine, two phases) at every step.
- ``cosine_with_warmup``: Keras's own ``CosineDecay`` with its linear warm-up.

Both give the base rate; per-layer factors multiply it as they multiply a constant rate.

- ``OneCycleMomentum``: OneCycleLR's ``cycle_momentum``, momentum (SGD) or beta_1 (Adam)
  falling from 0.95 to 0.85 while the rate rises, and back. Keras's optimizers read their
  momentum as a constant when the step is traced; the factored optimizers
  (``keras_alexnet.optimizers.with_momentum_schedule``) read it from the schedule every step.
"""

from __future__ import annotations

import math

import keras


@keras.saving.register_keras_serializable(package="keras_alexnet")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """PyTorch's ``OneCycleLR`` (``anneal_strategy="cos"``, ``three_phase=False``).

    The rate rises from ``max_lr / div_factor`` to ``max_lr`` over the first
    ``pct_start`` of ``total_steps`` and falls to ``max_lr / div_factor / final_div_factor``
    by the last step, both along half a cosine. Step ``i`` of the optimizer (its
    ``iterations`` before the update) gets the rate PyTorch's scheduler gives after
    ``i`` calls of ``step()``.
    """

    def __init__(self, max_lr, total_steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4, name="one_cycle"):
        if not (isinstance(total_steps, int) and total_steps >= 2):
            raise ValueError(f"total_steps={total_steps!r}: use a whole number of at least 2 (epochs x batches).")
        if not 0 < pct_start < 1:
            raise ValueError(f"pct_start={pct_start!r}: use a fraction strictly between 0 and 1 (fastai: 0.25-0.3).")
        if not (max_lr > 0 and math.isfinite(max_lr)):
            raise ValueError(f"max_lr={max_lr!r}: use a positive, finite number.")
        self.max_lr = float(max_lr)
        self.total_steps = int(total_steps)
        self.pct_start = float(pct_start)
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)
        self.name = name

    @property
    def initial_lr(self):
        return self.max_lr / self.div_factor

    @property
    def min_lr(self):
        return self.initial_lr / self.final_div_factor

    def __call__(self, step):
        return _one_cycle(step, self.initial_lr, self.max_lr, self.min_lr, self.total_steps, self.pct_start)

    def momentum(self, base_momentum=0.85, max_momentum=0.95):
        """The momentum schedule PyTorch's ``OneCycleLR`` runs beside this rate (``cycle_momentum``)."""
        return OneCycleMomentum(self.total_steps, self.pct_start, base_momentum, max_momentum)

    def get_config(self):
        return {
            "max_lr": self.max_lr,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="keras_alexnet")
class OneCycleMomentum(keras.optimizers.schedules.LearningRateSchedule):
    """PyTorch's ``OneCycleLR`` momentum: ``max_momentum`` to ``base_momentum`` and back.

    It mirrors the rate (``OneCycle`` with the same ``total_steps`` and ``pct_start``):
    high momentum while the rate is low, low while it peaks. For SGD it is the momentum,
    for Adam beta_1 (fastai's ``moms=(0.95, 0.85, 0.95)``). Use it with
    ``keras_alexnet.optimizers.with_momentum_schedule``.
    """

    def __init__(self, total_steps, pct_start=0.3, base_momentum=0.85, max_momentum=0.95, name="one_cycle_momentum"):
        if not (isinstance(total_steps, int) and total_steps >= 2):
            raise ValueError(f"total_steps={total_steps!r}: use a whole number of at least 2 (epochs x batches).")
        if not 0 < pct_start < 1:
            raise ValueError(f"pct_start={pct_start!r}: use a fraction strictly between 0 and 1 (fastai: 0.25-0.3).")
        if not 0 <= base_momentum <= max_momentum < 1:
            raise ValueError(
                f"base_momentum={base_momentum!r}, max_momentum={max_momentum!r}: use 0 <= base <= max < 1 "
                "(PyTorch: 0.85 and 0.95)."
            )
        self.total_steps = int(total_steps)
        self.pct_start = float(pct_start)
        self.base_momentum = float(base_momentum)
        self.max_momentum = float(max_momentum)
        self.name = name

    def __call__(self, step):
        high, low = self.max_momentum, self.base_momentum
        return _one_cycle(step, high, low, high, self.total_steps, self.pct_start)

    def get_config(self):
        return {
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "base_momentum": self.base_momentum,
            "max_momentum": self.max_momentum,
            "name": self.name,
        }


def _one_cycle(step, start, peak, end, total_steps, pct_start):
    """``start`` to ``peak`` over the first ``pct_start`` of the steps, then to ``end``, along half cosines."""
    # float64 inside: float32 cosines drift 2e-6 (relative) from PyTorch's Python floats.
    # PyTorch's phase boundary is pct_start * total_steps - 1 (a float), the last step total_steps - 1;
    # steps past the last keep its value (PyTorch refuses them).
    warmup_end = pct_start * total_steps - 1.0
    last = float(total_steps - 1)
    step = keras.ops.minimum(keras.ops.cast(step, "float64"), last)

    def cosine(first, final, fraction):
        return final + (first - final) / 2.0 * (keras.ops.cos(math.pi * fraction) + 1.0)

    rising = cosine(start, peak, step / warmup_end)
    falling = cosine(peak, end, (step - warmup_end) / (last - warmup_end))
    return keras.ops.cast(keras.ops.where(step <= warmup_end, rising, falling), "float32")


def cosine_with_warmup(learning_rate, total_steps, warmup_fraction=0.1, final_fraction=0.0):
    """Keras's ``CosineDecay``: linear warm-up from 0 to ``learning_rate``, then cosine to ``final_fraction`` of it."""
    if not (isinstance(total_steps, int) and total_steps >= 2):
        raise ValueError(f"total_steps={total_steps!r}: use a whole number of at least 2 (epochs x batches).")
    warmup = int(round(warmup_fraction * total_steps))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=total_steps - warmup,
        alpha=final_fraction,
        warmup_target=float(learning_rate),
        warmup_steps=warmup,
    )
