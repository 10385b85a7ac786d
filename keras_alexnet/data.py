"""Datasets as streaming tf.data pipelines: image folders, Fashion-MNIST, augmentation.

``ImageFolder`` is torchvision's ImageFolder / MATLAB's
``imageDatastore(..., 'LabelSource', 'foldernames')``: one sub-folder per class,
class names sorted. Files are checked once when the folder is read; a corrupt or
non-image file is reported with its path and skipped (or raises with
``on_bad_file="raise"``), so no epoch crashes half-way.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from keras_alexnet.files import keras_home
from keras_alexnet.preprocessing import CROP_SIZE, IMAGENET_MEAN, IMAGENET_STD, RESIZE_SIZE

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
AUGMENTATIONS = ("none", "flip", "resized-crop")
log = logging.getLogger("keras_alexnet.data")


class DatasetError(ValueError):
    """A dataset that cannot be used as given; the message says why and what to do."""


def check_image(path):
    """None if ``path`` decodes as an image, else the reason it does not."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (64, 64))  # JPEG: decode at reduced scale, still reads all data
            image.load()
        return None
    except Exception as error:  # PIL raises many types for bad files
        return f"{type(error).__name__}: {error}"


@dataclasses.dataclass
class ImageFolder:
    """Image paths with integer labels and the class names they index."""

    paths: list
    labels: list
    class_names: list
    skipped: list = dataclasses.field(default_factory=list)  # (path, reason)

    @classmethod
    def read(cls, directory, on_bad_file="skip", class_names=None):
        """Read a folder-per-class tree (JPEG, PNG, BMP, GIF).

        Args:
            on_bad_file: ``"skip"`` (log the path and reason, leave it out) or ``"raise"``.
            class_names: fix the classes (e.g. a test set read with a model's classes).
        """
        directory = Path(directory)
        if on_bad_file not in ("skip", "raise"):
            raise ValueError(f"on_bad_file={on_bad_file!r}: use 'skip' or 'raise'.")
        if not directory.is_dir():
            raise DatasetError(f"{directory} is not a folder. Give a folder with one sub-folder of images per class.")
        found = sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
        names = list(class_names) if class_names is not None else found
        if class_names is not None and set(names) - set(found):
            raise DatasetError(f"{directory} lacks the class folders {sorted(set(names) - set(found))}.")
        if len(names) < 2:
            raise DatasetError(
                f"{directory} has {len(names)} class folder(s) {names}; classification needs at "
                "least 2, one sub-folder of images per class."
            )
        paths, labels, skipped = [], [], []
        for label, name in enumerate(names):
            files = sorted(p for p in (directory / name).rglob("*") if p.is_file() and not p.name.startswith("."))
            good = 0
            for path in files:
                reason = (
                    f"not an image file (suffix {path.suffix!r})"
                    if path.suffix.lower() not in IMAGE_SUFFIXES
                    else check_image(path)
                )
                if reason:
                    if on_bad_file == "raise":
                        raise DatasetError(f"{path}: {reason}. Remove or replace it, or use on_bad_file='skip'.")
                    log.warning("skipping %s: %s", path, reason)
                    skipped.append((str(path), reason))
                    continue
                paths.append(str(path))
                labels.append(label)
                good += 1
            if good == 0:
                raise DatasetError(f"class folder {directory / name} has no readable images ({', '.join(IMAGE_SUFFIXES)}).")
        return cls(paths, labels, names, skipped)

    def __len__(self):
        return len(self.paths)

    def counts(self):
        """Images per class name."""
        return {name: int(np.sum(np.asarray(self.labels) == i)) for i, name in enumerate(self.class_names)}

    def split(self, fraction, seed=0):
        """Stratified random split, like MATLAB ``splitEachLabel(imds, fraction, 'randomized')``.

        Each class contributes ``round(fraction * n)`` images to the first part.
        """
        if not 0 < fraction < 1:
            raise ValueError(f"fraction={fraction!r}: use a number strictly between 0 and 1.")
        rng = np.random.default_rng(seed)
        labels = np.asarray(self.labels)
        first, second = [], []
        for label in range(len(self.class_names)):
            members = np.flatnonzero(labels == label)
            rng.shuffle(members)
            cut = int(round(fraction * len(members)))
            first += members[:cut].tolist()
            second += members[cut:].tolist()
        return self._subset(sorted(first)), self._subset(sorted(second))

    def _subset(self, indices):
        return ImageFolder([self.paths[i] for i in indices], [self.labels[i] for i in indices], list(self.class_names))

    def dataset(self, batch_size=32, training=False, augment="none", seed=0, image_size=CROP_SIZE):
        """A batched, prefetched tf.data pipeline of (normalised image, label).

        Training pipelines reshuffle every epoch (MATLAB Shuffle 'every-epoch').
        Evaluation uses torchvision's ImageNet eval transform.
        """
        ds = tf.data.Dataset.from_tensor_slices((self.paths, np.asarray(self.labels, np.int32)))
        if training:
            ds = ds.shuffle(len(self.paths), seed=seed, reshuffle_each_iteration=True)
        return image_pipeline(ds.map(_decode, num_parallel_calls=tf.data.AUTOTUNE), batch_size, training, augment, seed, image_size)


def _decode(path, label):
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
    from 10 ms up to a minute. Measured on 2 cores: 8-step ``fit`` calls whose
    last step ended at 10.5-10.8 s returned at 20.47 s, in 2 of 6 calls; with
    the autotuner off, 0 of 6. Every pipeline this package builds ends here.
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


FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path):
    """An IDX array (the MNIST file format), gzipped or not."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DatasetError(f"{path} is truncated: header says {shape}, found {body.size} bytes of data.")
    return body.reshape(shape)


def fashion_mnist_folder():
    """Where Keras keeps Fashion-MNIST: ``$KERAS_HOME/datasets/fashion-mnist``."""
    return keras_home() / "datasets" / "fashion-mnist"


def _find(folder, stem):
    for name in (stem + ".gz", stem):
        if (folder / name).exists():
            return folder / name
    raise DatasetError(
        f"{folder} has no {stem}(.gz). Put the four Fashion-MNIST IDX files there "
        "(keras.datasets.fashion_mnist.load_data() downloads them to this folder)."
    )


def fashion_mnist(split="train", folder=None, batch_size=32, training=None, augment="none", seed=0, image_size=CROP_SIZE):
    """Fashion-MNIST as a tf.data pipeline of 224x224 RGB, ImageNet-normalised.

    The 28x28 grayscale digits are kept as uint8 (47 MB for the training split);
    resizing to RGB happens per batch inside the pipeline.
    """
    if split not in FASHION_MNIST_FILES:
        raise ValueError(f"split={split!r}: use 'train' or 'test'.")
    folder = Path(folder) if folder else fashion_mnist_folder()
    images = read_idx(_find(folder, FASHION_MNIST_FILES[split][0]))
    labels = read_idx(_find(folder, FASHION_MNIST_FILES[split][1]))
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise DatasetError(f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match.")
    training = split == "train" if training is None else training
    ds = tf.data.Dataset.from_tensor_slices((images[..., np.newaxis], labels.astype(np.int32)))
    if training:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda x, y: (tf.image.grayscale_to_rgb(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return image_pipeline(ds, batch_size, training, augment, seed, image_size)
