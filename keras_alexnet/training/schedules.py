"""Learning-rate schedules as serializable Keras ``LearningRateSchedule``s.

- ``OneCycle``: warm-up then cosine annealing, the values of PyTorch's
  ``torch.optim.lr_scheduler.OneCycleLR`` (cosine, two phases) at every step.
- ``cosine_with_warmup``: Keras's own ``CosineDecay`` with its linear warm-up.

Both give the base rate; per-layer factors multiply it as they multiply a constant rate.
Momentum cycling (OneCycleLR's ``cycle_momentum``) is not offered: Keras's SGD reads its
momentum as a constant when the training step is traced.
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
        # float64 inside: float32 cosines drift 2e-6 (relative) from PyTorch's Python floats.
        # PyTorch's phase boundary is pct_start * total_steps - 1 (a float), the last step total_steps - 1;
        # steps past the last keep its rate (PyTorch refuses them).
        warmup_end = self.pct_start * self.total_steps - 1.0
        last = float(self.total_steps - 1)
        step = keras.ops.minimum(keras.ops.cast(step, "float64"), last)

        def cosine(start, end, fraction):
            return end + (start - end) / 2.0 * (keras.ops.cos(math.pi * fraction) + 1.0)

        rising = cosine(self.initial_lr, self.max_lr, step / warmup_end)
        falling = cosine(self.max_lr, self.min_lr, (step - warmup_end) / (last - warmup_end))
        return keras.ops.cast(keras.ops.where(step <= warmup_end, rising, falling), "float32")

    def get_config(self):
        return {
            "max_lr": self.max_lr,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "name": self.name,
        }


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
