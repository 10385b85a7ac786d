"""Fashion-MNIST from its IDX files, as a 224x224 RGB tf.data pipeline."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_alexnet._utils.files import keras_home
from keras_alexnet.datasets.folders import DatasetError
from keras_alexnet.datasets.pipeline import image_pipeline
from keras_alexnet.preprocessing import CROP_SIZE

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
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


def fashion_mnist(
    split="train", folder=None, batch_size=32, training=None, augment="none", seed=0, image_size=CROP_SIZE
):
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
