"""Data sets as streaming tf.data pipelines: image folders, Fashion-MNIST, the MATLAB shapes.

``ImageFolder`` is torchvision's ImageFolder / MATLAB's ``imageDatastore`` with
``splitEachLabel``; ``image_pipeline`` adds torchvision's eval crop or
augmentations and the ImageNet normalisation.
"""

from keras_alexnet.datasets.fashion_mnist import FASHION_MNIST_CLASSES, fashion_mnist, fashion_mnist_folder, read_idx
from keras_alexnet.datasets.folders import IMAGE_SUFFIXES, DatasetError, ImageFolder, check_image
from keras_alexnet.datasets.pipeline import (
    AUGMENTATIONS,
    eval_crop,
    image_pipeline,
    normalize,
    random_resized_crop,
    without_autotune,
)
from keras_alexnet.datasets.shapes import SHAPE_CLASSES, draw_shape, generate_shapes

__all__ = [
    "AUGMENTATIONS",
    "DatasetError",
    "FASHION_MNIST_CLASSES",
    "IMAGE_SUFFIXES",
    "ImageFolder",
    "SHAPE_CLASSES",
    "check_image",
    "draw_shape",
    "eval_crop",
    "fashion_mnist",
    "fashion_mnist_folder",
    "generate_shapes",
    "image_pipeline",
    "normalize",
    "random_resized_crop",
    "read_idx",
    "without_autotune",
]
