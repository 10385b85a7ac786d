"""The learning-rate finder (fastai's ``lr_find``): sweep the base rate, watch the loss, suggest a rate.

The base rate grows exponentially from ``start_lr`` to ``end_lr`` over at most
``steps`` training steps; each layer keeps its factor, so the sweep finds the base
rate of the optimizer as compiled. The loss is smoothed (an exponential moving
average with bias correction) and the sweep stops once it exceeds ``4x`` its
minimum. Afterwards the model's weights and the optimizer's state are exactly as
before. With frozen leading layers the sweep trains on their cached activations.

As in fastai, the finder is a callback on the training loop (``LRFinder`` on Keras's ``model.fit``, one
step per epoch so that each logged loss is its own batch's), not a loop of its own.

Suggestions, as fastai names them: ``valley`` (a point a third into the longest
stretch of falling loss, fastai's default) and ``steep`` (the steepest descent of
the smoothed loss against log rate).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path

import keras
import numpy as np

from keras_alexnet._utils.files import atomic_write
from keras_alexnet._utils.plotting import log_x_axis, pyplot
from keras_alexnet.datasets.class_weights import class_weights, weighted
from keras_alexnet.options import AUTO, SWEEP, TrainingOptions
from keras_alexnet.training.callbacks import random_states, restore_random_states
from keras_alexnet.training.rule import with_named_recipe
from keras_alexnet.training.sets import read_sets
from keras_alexnet.training.setup import activation_pipelines, build_model, configure


@dataclasses.dataclass
class LRFindResult:
    """The sweep's rates and smoothed losses, and the suggested base rates."""

    learning_rates: list
    losses: list  # smoothed
    raw_losses: list
    valley: float
    steep: float
    plot_path: Path | None = None

    def __str__(self):
        return f"suggested base learning rate: {self.valley:.2e} (valley); steepest descent at {self.steep:.2e}"


def _snapshot(variables):
    return [keras.ops.convert_to_numpy(v).copy() for v in variables]


def _restore(variables, values):
    for variable, value in zip(variables, values):
        variable.assign(value)


def valley(learning_rates, losses):
    """fastai's "valley": the longest run of decreasing loss; a rate a third of the way down its slope.

    Finds, for every step, the longest chain of earlier steps with higher loss (a longest
    decreasing subsequence), takes the longest such chain, and returns the rate a bit past
    its first third, where the loss still falls steadily.
    """
    count = len(losses)
    longest = [1] * count
    best_end = 0
    for i in range(1, count):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[i] > longest[best_end]:
            best_end = i
    best_start = best_end - longest[best_end] + 1
    third = (best_end - best_start) / 3
    return float(learning_rates[min(best_start + int(third) + int(third / 2), count - 1)])


def steepest(learning_rates, losses):
    """The rate where the smoothed loss falls fastest against the log of the rate.

    Only the descent counts: the first tenth of the sweep (the moving average still warms
    up) and everything after the lowest loss (where it diverges) are left out.
    """
    skip = len(losses) // 10
    end = int(np.argmin(losses)) + 1
    if end - skip < 3:
        return float(learning_rates[min(skip, len(losses) - 1)])
    slopes = np.gradient(np.asarray(losses[skip:end]), np.log(np.asarray(learning_rates[skip:end])))
    return float(learning_rates[skip + int(np.argmin(slopes))])


def lr_find(
    model,
    data,
    *,
    start_lr=SWEEP.start_lr,
    end_lr=SWEEP.end_lr,
    steps=SWEEP.steps,
    smoothing=0.98,
    divergence=4.0,
    plot=None,
    verbose=True,
):
    """Sweep the base learning rate of compiled ``model`` over batches of ``data``.

    Args:
        model: a compiled Keras model whose optimizer has a constant learning rate
            (factors, frozen layers and L2 apply as in training).
        data: a ``tf.data.Dataset`` (or iterable) of (inputs, labels) or (inputs, labels, weights) batches; it is
            repeated if shorter than ``steps``.
        start_lr / end_lr / steps: the exponential sweep (fastai: 1e-7, 10, 100).
        smoothing: the moving-average weight of the loss (fastai's 0.98).
        divergence: stop once the smoothed loss exceeds this multiple of its minimum.
        plot: a PNG path for loss against rate with the suggestions marked.
    Returns:
        ``LRFindResult``. The model's weights and the optimizer's state are restored.
    """
    if not model.compiled or model.optimizer is None:
        raise ValueError("lr_find needs a compiled model (model.compile(optimizer, loss)), e.g. from apply_recipe.")
    if not (0 < start_lr < end_lr and math.isfinite(end_lr)):
        raise ValueError(f"start_lr={start_lr!r}, end_lr={end_lr!r}: use 0 < start_lr < end_lr, both finite.")
    if not (isinstance(steps, int) and steps >= 3):
        raise ValueError(f"steps={steps!r}: use a whole number of at least 3 (fastai: 100).")
    optimizer = model.optimizer
    if isinstance(optimizer.learning_rate, keras.optimizers.schedules.LearningRateSchedule) or not hasattr(
        optimizer.learning_rate, "assign"
    ):
        raise ValueError("lr_find sweeps a constant learning rate: compile with a number, not a schedule.")
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    weights, state = _snapshot(model.weights), _snapshot(optimizer.variables)
    draws = random_states(model)  # dropout's draws: training after the sweep is as without it
    finder = LRFinder(start_lr, end_lr, steps, smoothing, divergence)
    try:
        # One step per epoch: the epoch's logged loss is that batch's own (Keras averages within an epoch).
        model.fit(_batches(data), epochs=steps, steps_per_epoch=1, callbacks=[finder], verbose=0, shuffle=False)
    finally:
        _restore(model.weights, weights)
        _restore(optimizer.variables, state)
        restore_random_states(model, draws)
    rates, raw, smoothed = finder.rates, finder.raw_losses, finder.losses
    if not raw:
        raise ValueError("lr_find got no batches: the data is empty.")
    swept = list(map(float, rates[: len(smoothed)]))
    if len(smoothed) < 3:
        raise ValueError(
            f"the loss diverged within {len(smoothed)} steps from start_lr={start_lr:g}: start lower (e.g. start_lr=1e-9)."
        )
    result = LRFindResult(swept, smoothed, raw, valley(swept, smoothed), steepest(swept, smoothed))
    if plot is not None:
        result.plot_path = plot_lr_find(result, plot)
    if verbose:
        print(result)
    return result


class LRFinder(keras.callbacks.Callback):
    """fastai's ``LRFinder`` as a Keras callback: before each epoch of one step it sets the optimizer's rate
    to the next of an exponential sweep; after it, it keeps the step's loss, smoothed (an exponential moving
    average with bias correction), and stops training once the loss is not finite, the smoothed loss exceeds
    ``divergence`` times its minimum, or the sweep is done. ``lr_find`` runs it on ``model.fit``."""

    def __init__(self, start_lr, end_lr, steps, smoothing=0.98, divergence=4.0):
        super().__init__()
        self.rates = start_lr * (end_lr / start_lr) ** (np.arange(steps) / (steps - 1))
        self.smoothing, self.divergence = smoothing, divergence
        self.raw_losses, self.losses = [], []
        self._average, self._best = 0.0, math.inf

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate.assign(float(self.rates[epoch]))

    def on_epoch_end(self, epoch, logs=None):
        if not logs or "loss" not in logs:  # the data ran out (Keras stops the fit)
            self.model.stop_training = True
            return
        loss = float(logs["loss"])
        self.raw_losses.append(loss)
        if not math.isfinite(loss):
            self.model.stop_training = True
            return
        self._average = self.smoothing * self._average + (1 - self.smoothing) * loss
        value = self._average / (1 - self.smoothing ** (epoch + 1))
        self.losses.append(value)
        self._best = min(self._best, value)
        if value > self.divergence * self._best:
            self.model.stop_training = True


def _batches(data):
    """``data`` without end: a ``tf.data.Dataset`` repeated, any other iterable read again and again."""
    return data.repeat() if hasattr(data, "repeat") and hasattr(data, "element_spec") else _repeat(data)


def _repeat(data):
    while True:
        empty = True
        for batch in data:
            empty = False
            yield batch
        if empty:
            raise ValueError("lr_find got no batches: the data is empty.")


def plot_lr_find(result, path):
    """Smoothed loss against learning rate (log scale), the suggestions marked, as a PNG."""
    plt = pyplot()

    figure, axis = plt.subplots(figsize=(8, 5))
    axis.plot(result.learning_rates, result.losses, color="tab:blue", label="smoothed training loss")
    for rate, label, style in ((result.valley, "valley", "o"), (result.steep, "steep", "s")):
        index = int(np.argmin(np.abs(np.asarray(result.learning_rates) - rate)))
        axis.plot(
            rate,
            result.losses[index],
            style,
            color="tab:red" if label == "valley" else "tab:orange",
            markersize=9,
            label=f"{label}: {rate:.1e}",
        )
    log_x_axis(axis)
    # The divergence that ends the sweep would flatten the rest: scale to the points before it.
    shown = result.losses[: max(3, len(result.losses) - 5)]
    spread = max(shown) - min(shown)
    axis.set_ylim(min(shown) - 0.05 * spread, max(shown) + 0.2 * spread)
    axis.set_xlabel("base learning rate (log scale)")
    axis.set_ylabel("loss")
    axis.set_title("Learning-rate finder")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    plt.close(figure)
    return Path(path)


def lr_find_on_folder(
    data,
    options=None,
    *,
    plot=None,
    steps=SWEEP.steps,
    start_lr=SWEEP.start_lr,
    end_lr=SWEEP.end_lr,
    verbose=True,
    **changes,
):
    """``lr_find`` for a recipe on a folder of images (what ``keras-alexnet lr-find`` runs).

    The model, optimizer and activation cache are set up as ``train`` sets them up
    (``training.setup``: recipe, weights, factors). With frozen leading layers and no
    augmentation, their activations are computed once and the sweep trains the rest on
    them: seconds instead of minutes.
    """
    options = TrainingOptions.of(options, **changes)
    if options.recipe == AUTO:
        raise ValueError("lr_find sweeps the rate of one recipe: give a recipe's name, not 'auto'.")
    configure(options)
    folder, _ = read_sets(data, None, options)  # the training part, as train would split it
    options, _ = with_named_recipe(options, folder, verbose)  # no recipe: the one train would take
    model = build_model(options, len(folder.class_names))
    sweep = {"start_lr": start_lr, "end_lr": end_lr, "steps": steps, "plot": plot, "verbose": verbose}
    with tempfile.TemporaryDirectory(prefix="keras-alexnet-lr-find-") as cache_dir:
        cache = None
        if options.augment == "none":
            cache = activation_pipelines(model, options, folder, None, cache_dir, required=False)
        if cache is None:
            batches = folder.dataset(options.batch_size, training=True, augment=options.augment, seed=options.seed)
            weights = class_weights(options.class_weight, folder.labels, folder.class_names)
            return lr_find(model, weighted(batches, weights), **sweep)
        cache["model"].compile(optimizer=model.optimizer, loss=model.loss, jit_compile=model.jit_compile)
        return lr_find(cache["model"], cache["train"], **sweep)
