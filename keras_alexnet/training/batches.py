"""A stage's training batches, for every engine: the images of (seed, epoch), weighted by class, mixed by
mixup or CutMix from (seed, step); on several workers, this worker's rows of each global batch."""

from __future__ import annotations

import math

import tensorflow as tf

from keras_alexnet.datasets.class_weights import weighted
from keras_alexnet.training.regularizers import mixed


def training_batches(train_set, options, weights, *, epochs, start_epoch, shard=None):
    """Epochs ``start_epoch`` .. ``epochs - 1`` of ``train_set``'s training batches.

    ``weights``: per-class weights (``setup.balancing``) or None. ``shard``: ``(workers, index,
    per-replica batch)`` on several workers: without mixup or CutMix each worker decodes only its rows
    (every ``workers``-th image of the epoch); with them every worker reads the whole global batch, mixes
    the pairs one process mixes and keeps its rows, so the run equals one process's.
    """
    steps_per_epoch = math.ceil(len(train_set) / options.batch_size)
    mixing = {
        "mixup": options.mixup,
        "cutmix": options.cutmix,
        "seed": options.seed,
        "first_step": start_epoch * steps_per_epoch,
    }
    epoch_batches = {
        "training": True,
        "augment": options.augment,
        "seed": options.seed,
        "epochs": epochs,
        "start_epoch": start_epoch,
        "balanced": options.balanced_sampling,
    }
    classes = len(train_set.class_names)
    if shard is None or not (options.mixup or options.cutmix):
        batch, split = (options.batch_size, None) if shard is None else (shard[2], shard[:2])
        return mixed(weighted(train_set.dataset(batch, shard=split, **epoch_batches), weights), classes, **mixing)
    workers, index, _ = shard
    whole = mixed(weighted(train_set.dataset(options.batch_size, **epoch_batches), weights), classes, **mixing)
    whole = whole.filter(lambda images, *rest: tf.shape(images)[0] >= workers)  # as the shards leave it out
    return whole.map(lambda *batch: tuple(part[index::workers] for part in batch))
