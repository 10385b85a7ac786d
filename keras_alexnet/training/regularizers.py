"""The field's regularizers: label smoothing, mixup, CutMix and a moving average of the weights.

- Label smoothing (Szegedy et al.; Keras's ``CategoricalCrossentropy(label_smoothing=...)``, fastai's
  ``LabelSmoothingCrossEntropy``): the target puts ``1 - eps`` on the true class and spreads
  ``eps`` evenly over all classes. ``SoftCrossentropy`` takes the sparse labels the pipelines make,
  or the soft targets mixup makes.
- mixup (Zhang et al.) and CutMix (Yun et al.) on the augmented training batches, as fastai's
  ``MixUp``/``CutMix`` callbacks: each batch is blended with a shuffled copy of itself by a
  fraction drawn from Beta(alpha, alpha) (mixup keeps the larger share on the original image, as
  fastai does), and the labels become the same blend of one-hot targets. With both, each batch
  takes one of them at even odds (timm's ``Mixup`` switch). Draws come from (seed, step), so a
  resumed run mixes exactly as the lost one would have.
- EMA: Keras optimizers' ``use_ema``, with TensorFlow's ``ExponentialMovingAverage(num_updates=...)``
  warm-up (decay ``min(ema, (1 + step) / (10 + step))``; see ``optimizers.factors``) so that short
  fine-tuning runs do not average in the untrained head. Validation, the output network's checkpoint
  and the final model all see the averaged weights; backups keep the raw ones, so a resumed run
  continues exactly.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf
from keras import ops

from keras_alexnet import _keras_compat
from keras_alexnet.metrics import soft_targets

EPSILON = 1e-7  # Keras's clip for probabilities in its cross-entropies


@keras.saving.register_keras_serializable(package="keras_alexnet")
class SoftCrossentropy(keras.losses.Loss):
    """Cross-entropy of predicted probabilities against sparse labels or soft targets, with label smoothing.

    With ``label_smoothing=0`` and sparse labels it equals ``sparse_categorical_crossentropy``.
    """

    def __init__(self, label_smoothing=0.0, name="soft_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        classes = y_pred.shape[-1]
        targets = soft_targets(y_true, classes)
        if self.label_smoothing:
            targets = targets * (1.0 - self.label_smoothing) + self.label_smoothing / classes
        probabilities = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
        probabilities = ops.clip(probabilities, EPSILON, 1.0 - EPSILON)
        return -ops.sum(targets * ops.log(probabilities), axis=-1)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def uses_soft_loss(options):
    """Whether the options train with ``SoftCrossentropy`` (label smoothing, mixup or CutMix)."""
    return bool(options.label_smoothing or options.mixup or options.cutmix)


def loss_for(options):
    """The loss the options train with: ``SoftCrossentropy`` where a regularizer needs it, else Keras's own."""
    if uses_soft_loss(options):
        return SoftCrossentropy(options.label_smoothing)
    return "sparse_categorical_crossentropy"


def averaged(optimizer, decay):
    """A copy of ``optimizer`` that keeps a moving average of the weights (``decay``: e.g. 0.99)."""
    config = {**optimizer.get_config(), "use_ema": True, "ema_momentum": float(decay)}
    return type(optimizer).from_config(config)


def mixed(ds, classes, *, mixup=0.0, cutmix=0.0, seed=0, first_step=0):
    """Training batches ``(x, y[, weight])`` blended by mixup and/or CutMix, labels as soft targets.

    ``first_step``: the global index of the pipeline's first batch (``start_epoch * steps_per_epoch``),
    so that every batch's draw depends on (seed, step) alone.
    """
    if not (mixup or cutmix):
        return ds

    def mix(step, batch):
        x, y, *rest = batch
        step = tf.cast(step, tf.int64) + first_step
        seeds = [tf.stack([tf.cast(seed, tf.int64), 4 * step + k]) for k in range(4)]
        count = tf.shape(x)[0]
        order = tf.argsort(tf.random.stateless_uniform([count], seeds[0]))
        share = _beta(mixup or cutmix, seeds[1])
        use_cutmix = tf.constant(bool(cutmix))
        if mixup and cutmix:
            use_cutmix = tf.random.stateless_uniform([], seeds[2]) < 0.5
            share = tf.where(use_cutmix, _beta(cutmix, seeds[1]), _beta(mixup, seeds[3]))
        x_mixed, share = tf.cond(
            use_cutmix,
            lambda: _cut(x, tf.gather(x, order), share, seeds[2]),
            lambda: _blend(x, tf.gather(x, order), tf.maximum(share, 1.0 - share)),
        )
        targets = soft_targets(y, classes)
        y_mixed = share * targets + (1.0 - share) * tf.gather(targets, order)
        mixed_rest = [share * w + (1.0 - share) * tf.gather(w, order) for w in rest]
        return (x_mixed, y_mixed, *mixed_rest)

    return ds.enumerate().map(mix, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _beta(alpha, seed):
    gammas = tf.random.stateless_gamma([2], seed, alpha=tf.constant([alpha, alpha], tf.float32))
    return gammas[0] / (gammas[0] + gammas[1])


def _blend(x, other, share):
    share = tf.cast(share, x.dtype)
    return share * x + (1.0 - share) * other, tf.cast(share, tf.float32)


def _cut(x, other, share, seed):
    """CutMix: a box of ``1 - share`` of the area from ``other``; the share is then the kept area's."""
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    ratio = tf.sqrt(1.0 - share)
    box_h = tf.cast(tf.cast(height, tf.float32) * ratio, tf.int32)
    box_w = tf.cast(tf.cast(width, tf.float32) * ratio, tf.int32)
    centre = tf.random.stateless_uniform([2], seed, minval=0.0, maxval=1.0)
    cy = tf.cast(centre[0] * tf.cast(height, tf.float32), tf.int32)
    cx = tf.cast(centre[1] * tf.cast(width, tf.float32), tf.int32)
    top, bottom = tf.clip_by_value(cy - box_h // 2, 0, height), tf.clip_by_value(cy + box_h // 2, 0, height)
    left, right = tf.clip_by_value(cx - box_w // 2, 0, width), tf.clip_by_value(cx + box_w // 2, 0, width)
    rows = tf.range(height)
    columns = tf.range(width)
    inside = ((rows >= top) & (rows < bottom))[:, None] & ((columns >= left) & (columns < right))[None, :]
    cut = tf.where(inside[None, :, :, None], other, x)
    kept = 1.0 - tf.cast((bottom - top) * (right - left), tf.float32) / tf.cast(height * width, tf.float32)
    return cut, kept


def averages_of(optimizer):
    """[(model variable, its moving average)] of an optimizer with ``use_ema`` (empty without, or unbuilt)."""
    if optimizer is None or not getattr(optimizer, "use_ema", False) or not optimizer.built:
        return []
    return _keras_compat.moving_averages(optimizer)


@contextlib.contextmanager
def averaged_weights(optimizer):
    """The optimizer's moving averages in the model's variables for the ``with`` block; the raw weights after."""
    pairs = averages_of(optimizer)
    raw = [tf.identity(variable.value) for variable, _ in pairs]
    for variable, average in pairs:
        variable.assign(average)
    try:
        yield
    finally:
        for (variable, _), value in zip(pairs, raw):
            variable.assign(value)


class ValidateAveragedWeights(keras.callbacks.Callback):
    """During ``fit``, validation scores the moving average of the weights (what the run ships), and
    the output network's checkpoint (``inner``, called inside) saves it; the backup keeps the raw weights."""

    def __init__(self, optimizer, checkpoint=None):
        super().__init__()
        self.optimizer = optimizer
        self.checkpoint = checkpoint
        self._fitting = False
        self._swap = None

    def set_model(self, model):
        super().set_model(model)
        if self.checkpoint is not None:
            self.checkpoint.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        if self.checkpoint is not None:
            self.checkpoint.set_params(params)

    def on_train_begin(self, logs=None):
        self._fitting = True
        if self.checkpoint is not None:
            self.checkpoint.on_train_begin(logs)

    def on_train_end(self, logs=None):
        self._fitting = False
        if self.checkpoint is not None:
            self.checkpoint.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        if self.checkpoint is not None:
            self.checkpoint.on_epoch_begin(epoch, logs)

    def on_test_begin(self, logs=None):
        if self._fitting:
            self._swap = averaged_weights(self.optimizer)
            self._swap.__enter__()

    def on_test_end(self, logs=None):
        if self._swap is not None:
            self._swap.__exit__(None, None, None)
            self._swap = None

    def on_epoch_end(self, epoch, logs=None):
        if self.checkpoint is not None:
            with averaged_weights(self.optimizer):
                self.checkpoint.on_epoch_end(epoch, logs)
