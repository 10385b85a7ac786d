"""tf.data image pipelines: decoding, torchvision's eval crop and augmentations, normalisation."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from keras_alexnet._utils.choices import AUGMENTATIONS
from keras_alexnet.preprocessing import CROP_SIZE, IMAGENET_MEAN, IMAGENET_STD, RESIZE_SIZE, decode_rgb


def decode(path, label):
    """(path, label) -> (uint8 RGB image, label) with ``preprocessing.decode_rgb``.

    PIL decodes, not ``tf.io.decode_image``: one decoder for the folder check, training,
    evaluation and prediction, so every file that passes the check trains as it looks
    (TensorFlow crashed mid-epoch on TIFF and 1-bit BMP, read palette BMP as grey
    indices and 16-bit PNG as white).
    """

    def read(file_name):
        file_name = file_name.item() if hasattr(file_name, "item") else file_name  # a 0-d numpy array
        return decode_rgb(os.fsdecode(file_name))

    image = tf.numpy_function(read, [path], tf.uint8, stateful=False)
    image.set_shape((None, None, 3))
    return image, label


def normalize(image):
    """[0, 255] RGB -> ImageNet-normalised float32."""
    return (tf.cast(image, tf.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD


def eval_crop(image, image_size=CROP_SIZE):
    """torchvision's eval resize (shorter side to 256/224 of the crop) and center crop."""
    resize = int(round(image_size * RESIZE_SIZE / CROP_SIZE))
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = resize / tf.reduce_min(shape)
    size = tf.cast(tf.floor(shape * scale), tf.int32)
    size = tf.maximum(size, resize)  # the shorter side is exactly `resize`
    image = tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear", antialias=True)
    top = (size[0] - image_size + 1) // 2
    left = (size[1] - image_size + 1) // 2
    return image[top : top + image_size, left : left + image_size]


def random_resized_crop(image, seed, image_size=CROP_SIZE, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """torchvision's RandomResizedCrop: a random area/aspect crop resized to the output."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.zeros((1, 0, 4)),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=ratio,
        area_range=scale,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    crop = tf.slice(image, begin, size)
    return tf.image.resize(tf.cast(crop, tf.float32), (image_size, image_size), method="bilinear", antialias=True)


def without_autotune(ds):
    """``ds`` with tf.data's autotuner off; ``AUTOTUNE`` maps then use min(16, cores) threads.

    Why: with the autotuner on, TensorFlow 2.21 can hold the end of a Keras
    epoch until the autotuner thread's next wake-up, and that period doubles
    from 10 ms up to a minute (benchmarks/ANALYSIS.md has the measurement).
    Every pipeline this package builds ends here.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def epoch_order(count, seed, epoch):
    """The order of ``count`` examples in ``epoch``: a permutation drawn from (seed, epoch) alone."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(count)


def balanced_order(labels, seed, epoch):
    """An epoch of ``len(labels)`` examples drawn evenly over the classes, from (seed, epoch) alone.

    Rounds of one example of each class, in a random order within the round: any run of
    consecutive examples, hence any batch, holds each class within one of its share. Each
    class goes through its examples in a random order, repeated where it has fewer than its
    share (oversampled) and cut where it has more (undersampled within the epoch).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng([int(seed), int(epoch), 1])
    classes = np.unique(labels)
    rounds = -(-len(labels) // len(classes))
    columns = []
    for name in classes:
        members = np.flatnonzero(labels == name)
        draws = np.concatenate([rng.permutation(members) for _ in range(-(-rounds // len(members)))])
        columns.append(draws[:rounds])
    table = np.stack(columns, axis=1)
    table = np.take_along_axis(table, np.argsort(rng.random(table.shape), axis=1), axis=1)
    return table.reshape(-1)[: len(labels)]


def epochs_of(count, seed, epochs, start_epoch, make_epoch, balanced_labels=None):
    """One pipeline for epochs ``start_epoch`` .. ``epochs - 1``, each built by ``make_epoch(epoch, order)``.

    Every epoch's order (and, through ``make_epoch``, its augmentation) depends on the
    seed and the epoch number only, so a run resumed at epoch k sees the batches the
    uninterrupted run saw. Fit it with ``steps_per_epoch=ceil(count / batch_size)``.
    ``balanced_labels``: the examples' labels, to draw every batch evenly over the classes
    (``balanced_order``) instead of a permutation.
    """
    if not 0 <= start_epoch < epochs:
        raise ValueError(f"start_epoch={start_epoch} must be in [0, epochs={epochs}).")
    # Each epoch's order is drawn when the epoch starts: "--epochs 1000000000 --patience 3" costs
    # nothing up front (precomputed orders took the memory of every epoch before the first step).
    if balanced_labels is not None:
        labels = np.asarray(balanced_labels)

        def draw(epoch):
            return balanced_order(labels, seed, int(epoch)).astype(np.int64)
    else:

        def draw(epoch):
            return epoch_order(count, seed, int(epoch)).astype(np.int64)

    def with_order(epoch):
        order = tf.numpy_function(draw, [epoch], tf.int64, stateful=False)
        order.set_shape((count,))
        return make_epoch(epoch, order)

    ds = tf.data.Dataset.range(start_epoch, epochs).flat_map(with_order)
    return without_autotune(ds.prefetch(tf.data.AUTOTUNE))


def shard_of(order, count, batch_size, shard):
    """A worker's rows of an epoch's ``order``: every ``workers``-th example from ``index``, so that its batches
    of ``batch_size`` are its rows of each global batch of ``batch_size * workers``. ``shard``: ``(workers,
    index)``, or None for the whole order. Every worker must take as many steps: a last global batch of
    fewer examples than workers is left out."""
    shards, index = shard or (1, 0)
    global_batch = batch_size * shards
    usable = count - (count % global_batch if 0 < count % global_batch < shards else 0)
    return order[:usable][index::shards]


def augmented_batches(ds, batch_size, training, augment, seed, image_size=CROP_SIZE, first_index=0, stride=1):
    """Decoded (uint8 image, label) pairs -> augmented/cropped, normalised batches (no prefetch).

    Example ``i`` of the stream is example ``first_index + i * stride`` of the epochs' numbering,
    augmented with the seed (seed, that number): reproducible, and different every epoch when
    epochs number their examples on. (A worker's share of an epoch, every ``stride``-th example,
    is augmented as those examples are in the whole epoch.)
    """
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment={augment!r}: use one of {', '.join(AUGMENTATIONS)}.")
    augment = augment if training else "none"

    def transform(position, example):
        image, label = example
        index = tf.cast(first_index, tf.int64) + position * stride
        pair_seed = tf.stack([tf.cast(seed, tf.int64), index])
        if augment == "resized-crop":
            image = random_resized_crop(image, pair_seed, image_size)
        else:
            image = eval_crop(image, image_size)
        if augment in ("flip", "resized-crop"):
            image = tf.image.stateless_random_flip_left_right(image, seed=pair_seed + 1)
        return normalize(image), label

    ds = ds.enumerate().map(transform, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size)


def image_pipeline(ds, batch_size, training, augment, seed, image_size=CROP_SIZE):
    """Decoded (uint8 image, label) pairs -> augmented/cropped, normalised, prefetched batches.

    A per-example counter seeds augmentation: reproducible, different every epoch
    because the counter keeps running across repeats of the shuffled dataset.
    """
    return without_autotune(
        augmented_batches(ds, batch_size, training, augment, seed, image_size).prefetch(tf.data.AUTOTUNE)
    )
