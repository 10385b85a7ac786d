"""tf.data image pipelines: decoding, torchvision's eval crop and augmentations, normalisation."""

from __future__ import annotations

import tensorflow as tf

from keras_alexnet.preprocessing import CROP_SIZE, IMAGENET_MEAN, IMAGENET_STD, RESIZE_SIZE

AUGMENTATIONS = ("none", "flip", "resized-crop")


def decode(path, label):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
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


def image_pipeline(ds, batch_size, training, augment, seed, image_size=CROP_SIZE):
    """Decoded (uint8 image, label) pairs -> augmented/cropped, normalised batches."""
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment={augment!r}: use one of {', '.join(AUGMENTATIONS)}.")
    augment = augment if training else "none"

    def transform(index, example):
        image, label = example
        pair_seed = tf.stack([tf.cast(seed, tf.int64), index])
        if augment == "resized-crop":
            image = random_resized_crop(image, pair_seed, image_size)
        else:
            image = eval_crop(image, image_size)
        if augment in ("flip", "resized-crop"):
            image = tf.image.stateless_random_flip_left_right(image, seed=pair_seed + 1)
        return normalize(image), label

    # A per-example counter seeds augmentation: reproducible, different every epoch
    # because the counter keeps running across repeats of the shuffled dataset.
    ds = ds.enumerate().map(transform, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return without_autotune(ds.batch(batch_size).prefetch(tf.data.AUTOTUNE))
