"""Keras metrics for imbalanced classes: balanced accuracy and macro-F1, streamed over batches.

Both read one confusion matrix accumulated batch by batch (one-hot products, so XLA and
``tf.distribute`` compile them), and equal scikit-learn's ``balanced_accuracy_score`` and
``f1_score(average="macro")`` over the whole epoch, not a mean of per-batch values. ``train``
compiles them beside accuracy, so they are in ``log.csv``, ``history.json`` and TensorBoard as
``balanced_accuracy``/``macro_f1`` and ``val_balanced_accuracy``/``val_macro_f1``.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_alexnet._utils.choices import BALANCED_ACCURACY, MACRO_F1


def soft_targets(y_true, classes):
    """``y_true`` as (batch, classes) float targets: soft targets as they are, sparse labels one-hot."""
    if len(y_true.shape) >= 2 and y_true.shape[-1] == classes and classes > 1:
        return ops.cast(y_true, "float32")
    return ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), classes, dtype="float32")


@keras.saving.register_keras_serializable(package="keras_alexnet")
class Accuracy(keras.metrics.MeanMetricWrapper):
    """Accuracy against sparse labels or soft targets (a mixed batch counts its larger share's class)."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(_accuracy, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


def _accuracy(y_true, y_pred):
    classes = y_pred.shape[-1]
    truth = ops.argmax(soft_targets(y_true, classes), axis=-1)
    return ops.cast(ops.equal(truth, ops.argmax(y_pred, axis=-1)), "float32")


class _ConfusionMetric(keras.metrics.Metric):
    """A metric computed from the epoch's confusion matrix (rows: true class, columns: predicted)."""

    def __init__(self, classes, name, **kwargs):
        super().__init__(name=name, **kwargs)
        self.classes = int(classes)
        self.confusion = self.add_variable(
            shape=(self.classes, self.classes), initializer="zeros", dtype="float32", name="confusion"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        # Unweighted counts: a class weight scales a class's row, which leaves its recall as it is.
        if len(y_true.shape) >= 2 and y_true.shape[-1] == self.classes:  # soft targets (mixup): their larger share
            y_true = ops.argmax(y_true, axis=-1)
        actual = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), self.classes, dtype="float32")
        predicted = ops.one_hot(ops.argmax(y_pred, axis=-1), self.classes, dtype="float32")
        self.confusion.assign_add(ops.matmul(ops.transpose(actual), predicted))

    def reset_state(self):
        self.confusion.assign(ops.zeros((self.classes, self.classes), dtype="float32"))

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}


def _per_class(confusion):
    confusion = ops.cast(confusion, "float32")
    correct = ops.diagonal(confusion)
    actual = ops.sum(confusion, axis=1)
    predicted = ops.sum(confusion, axis=0)
    return actual, predicted, ops.divide_no_nan(correct, actual), ops.divide_no_nan(correct, predicted)


def balanced_accuracy_of(confusion):
    """The mean recall over the classes that have examples, from a confusion matrix (rows: true class)."""
    actual, _, recall, _ = _per_class(confusion)
    present = ops.cast(actual > 0, "float32")
    return ops.divide_no_nan(ops.sum(recall * present), ops.sum(present))


def macro_f1_of(confusion):
    """The mean F1 over the classes with examples or predictions, from a confusion matrix (rows: true class)."""
    actual, predicted, recall, precision = _per_class(confusion)
    f1 = ops.divide_no_nan(2 * precision * recall, precision + recall)
    present = ops.cast(actual + predicted > 0, "float32")
    return ops.divide_no_nan(ops.sum(f1 * present), ops.sum(present))


@keras.saving.register_keras_serializable(package="keras_alexnet")
class BalancedAccuracy(_ConfusionMetric):
    """The mean recall over the classes that have examples (scikit-learn's ``balanced_accuracy_score``)."""

    def __init__(self, classes, name=BALANCED_ACCURACY, **kwargs):
        super().__init__(classes, name=name, **kwargs)

    def result(self):
        return balanced_accuracy_of(self.confusion)


@keras.saving.register_keras_serializable(package="keras_alexnet")
class MacroF1(_ConfusionMetric):
    """The mean F1 over the classes with examples or predictions (scikit-learn's ``f1_score(average="macro")``)."""

    def __init__(self, classes, name=MACRO_F1, **kwargs):
        super().__init__(classes, name=name, **kwargs)

    def result(self):
        return macro_f1_of(self.confusion)


# The names in a fit's logs, training and validation (choices.validation(name)), beside "accuracy".
BALANCED_METRICS = (BALANCED_ACCURACY, MACRO_F1)


def training_metrics(classes, soft=False):
    """What ``train`` compiles: accuracy, balanced accuracy and macro-F1 for ``classes`` outputs.

    ``soft``: the training labels are soft targets (mixup, CutMix), the validation labels sparse.
    """
    if soft:
        return [Accuracy(), BalancedAccuracy(classes), MacroF1(classes)]
    return ["accuracy", BalancedAccuracy(classes), MacroF1(classes)]
