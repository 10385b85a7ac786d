"""Data-parallel training under any ``tf.distribute`` strategy, multi-worker included.

``model.fit`` works with ``MirroredStrategy`` (several GPUs, one machine). With
``MultiWorkerMirroredStrategy`` Keras 3's ``fit`` fails on TensorFlow >= 2.16
(keras-team/keras#20585), so ``distributed_fit`` runs the same train step in a
small loop of its own: per-replica loss scaled by the global batch, gradients of
the trainable variables, ``optimizer.apply`` (which all-reduces across replicas
and applies the learning-rate factors and freezing exactly as in ``fit``). Per-example
weights (``datasets.class_weights.weighted``) enter the loss as Keras's ``sample_weight`` does.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet._utils.choices import BALANCED_ACCURACY, MACRO_F1, validation
from keras_alexnet.datasets.pipeline import without_autotune
from keras_alexnet.metrics import balanced_accuracy_of, macro_f1_of


def device_names(devices=None):
    """The TensorFlow device names ``devices`` means (see ``device_strategy``), or ``ValueError`` naming what
    the machine has."""
    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    if devices is None:
        return gpus
    if isinstance(devices, int) and not isinstance(devices, bool):
        if devices < 1:
            raise ValueError(f"devices={devices}: give 1 or more.")
        if devices > max(len(gpus), 1):
            raise ValueError(
                f"--devices {devices}: this machine shows TensorFlow {len(gpus)} GPU(s) "
                f"({', '.join(gpus) or 'none: the CPU is one device'}). Give at most {max(len(gpus), 1)}."
            )
        return gpus[:devices]
    return [str(name) for name in devices]


def device_strategy(devices=None):
    """``MirroredStrategy`` over several devices of this machine, or None for one device.

    ``devices``: None (every visible GPU; one or none: no strategy), a count of GPUs, or TensorFlow
    device names (``["/cpu:0", "/cpu:1"]`` with logical CPU devices, as the tests do). Keras's ``fit``
    then splits each global batch across them and averages the gradients; factors and freezing hold.
    """
    names = device_names(devices)
    return tf.distribute.MirroredStrategy(names) if len(names) > 1 else None


class DistributedSteps:
    """The train step of a compiled ``model`` under ``strategy``, traced once and run epoch after epoch.

    Per-replica loss scaled by the global batch, gradients of the trainable variables,
    ``optimizer.apply`` (which all-reduces across replicas and applies the learning-rate factors
    and freezing exactly as in ``fit``). A weight (a third element of the batch) scales its
    example's loss, summed and divided by the global batch size, as ``model.fit`` does with
    ``sample_weight``. A new optimizer (a recipe's next stage) needs a new ``DistributedSteps``.
    """

    def __init__(self, model, strategy):
        if not model.compiled:
            raise ValueError(
                "distributed training needs a compiled model (model.compile(optimizer, loss) under strategy.scope())."
            )
        self.model, self.strategy = model, strategy
        loss_fn = keras.losses.get(model.loss) if isinstance(model.loss, str) else model.loss
        reduction_free = (
            loss_fn.__class__.from_config({**loss_fn.get_config(), "reduction": None})
            if hasattr(loss_fn, "get_config")
            else loss_fn
        )
        optimizer = model.optimizer
        classes = int(model.outputs[0].shape[-1])

        def counted(labels, probabilities, weights):
            """(confusion matrix of the real examples, weighted hits, summed weight): what the epoch's accuracy,
            balanced accuracy and macro-F1 are computed from, as Keras's metrics compute them in ``fit``."""
            if labels.shape.rank == 2:  # soft targets (mixup, CutMix): their larger share, as metrics.py counts
                labels = tf.argmax(labels, axis=-1)
            labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
            predicted = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            real = tf.cast(weights > 0, tf.float32)  # a weight of 0 is padding (validation)
            confusion = tf.math.confusion_matrix(labels, predicted, classes, weights=real, dtype=tf.float32)
            hits = tf.cast(tf.equal(predicted, labels), tf.float32)
            return confusion, tf.reduce_sum(hits * weights), tf.reduce_sum(weights)

        def replica_step(images, labels, weights=None):
            with tf.GradientTape() as tape:
                probabilities = model(images, training=True)
                per_example = reduction_free(labels, probabilities)
                # Divides by (per-replica batch x replicas): summed over replicas, a mean.
                loss = tf.nn.compute_average_loss(per_example, sample_weight=weights)
            variables = model.trainable_variables
            optimizer.apply(tape.gradient(loss, variables), variables)
            ones = tf.ones(tf.shape(images)[:1], tf.float32)
            return (loss, *counted(labels, probabilities, ones if weights is None else weights))

        @tf.function
        def train_step(*batch):
            sums = strategy.run(replica_step, args=batch)
            return [strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) for value in sums]

        def replica_scores(images, labels, weights):
            probabilities = model(images, training=False)
            per_example = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
            return (tf.reduce_sum(tf.cast(per_example, tf.float32) * weights), *counted(labels, probabilities, weights))

        @tf.function
        def score_step(*batch):
            sums = strategy.run(replica_scores, args=batch)
            return [strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) for value in sums]

        self._train_step, self._score_step = train_step, score_step

    def scores(self, dataset_fn):
        """``val_loss``, ``val_accuracy``, ``val_balanced_accuracy`` and ``val_macro_f1`` (the names ``fit`` logs)
        over ``distribute_datasets_from_function(dataset_fn)``, every replica scoring its share: batches of
        (image, label, weight); a weight of 0 is padding, left out."""
        totals = None
        for batch in self.strategy.distribute_datasets_from_function(dataset_fn):
            values = [np.asarray(value, np.float64) for value in self._score_step(*batch)]
            totals = values if totals is None else [a + b for a, b in zip(totals, values)]
        loss, confusion, hits, weight = totals
        return {
            "val_loss": float(loss / max(weight, 1e-12)),
            **{validation(name): value for name, value in _scores(confusion, hits, weight).items()},
        }

    def epoch(self, dataset_fn, callbacks=None):
        """One pass over ``strategy.distribute_datasets_from_function(dataset_fn)``; the epoch's logs as ``fit``
        writes them (``loss``, ``accuracy``, ``balanced_accuracy``, ``macro_f1``).

        ``dataset_fn(context)`` gives this input pipeline's per-replica batches. ``callbacks`` (a Keras
        ``CallbackList``) get each global step's batch events, with the epoch's running loss and accuracy
        as ``fit``'s batch logs.
        """
        loss_total, steps, totals = 0.0, 0, None
        for batch in self.strategy.distribute_datasets_from_function(dataset_fn):
            if callbacks is not None:
                callbacks.on_train_batch_begin(steps)
            loss, *counts = [np.asarray(value, np.float64) for value in self._train_step(*batch)]
            totals = counts if totals is None else [a + b for a, b in zip(totals, counts)]
            loss_total, steps = loss_total + float(loss), steps + 1
            if callbacks is not None:
                running = {"loss": loss_total / steps, "accuracy": float(totals[1] / max(totals[2], 1e-12))}
                callbacks.on_train_batch_end(steps - 1, running)
        confusion, hits, weight = totals
        return {"loss": loss_total / max(steps, 1), **_scores(confusion, hits, weight)}


def _scores(confusion, hits, weight):
    """Accuracy (weighted, as Keras's with sample weights), balanced accuracy and macro-F1 from the counts."""
    return {
        "accuracy": float(hits / max(weight, 1e-12)),
        BALANCED_ACCURACY: float(keras.ops.convert_to_numpy(balanced_accuracy_of(confusion))),
        MACRO_F1: float(keras.ops.convert_to_numpy(macro_f1_of(confusion))),
    }


def distributed_fit(model, examples, strategy, global_batch_size, epochs=1):
    """Train a compiled ``model`` (built under ``strategy.scope()``) for ``epochs`` on ``examples``.

    Args:
        examples: an unbatched ``tf.data.Dataset`` of (image, label) or (image, label,
            weight). Each input pipeline (worker) reads every n-th example and batches
            ``global_batch_size / replicas`` of them, so one global step covers the
            same examples as one batch of ``global_batch_size`` on one device.
    Returns:
        The mean training loss of each epoch.
    """
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(f"global_batch_size={global_batch_size} must be a multiple of the {replicas} replicas.")

    def dataset_fn(context):
        shard = examples.shard(context.num_input_pipelines, context.input_pipeline_id)
        return without_autotune(
            shard.batch(context.get_per_replica_batch_size(global_batch_size)).prefetch(tf.data.AUTOTUNE)
        )

    steps = DistributedSteps(model, strategy)
    return [steps.epoch(dataset_fn)["loss"] for _ in range(epochs)]
