"""Input handling equal to torchvision's ImageNet evaluation transform, and decoding.

torchvision's ``AlexNet_Weights.IMAGENET1K_V1.transforms()`` resizes the shorter
side to 256 (bilinear, antialiased), center-crops 224, scales to [0, 1] and
normalises with the ImageNet mean/std. ``eval_transform`` does exactly that on
PIL images (bit-identical: both use PIL's resize); ``imagenet_eval_layers``
does it inside a Keras model or a tf.data pipeline with TensorFlow's resize.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps, UnidentifiedImageError

from keras_alexnet._utils.choices import TTA_BETA

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_SIZE = 256
CROP_SIZE = 224
CLASS_NAMES_FILE = Path(__file__).parent / "assets" / "imagenet_classes.txt"


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of any image PIL reads, with the values it shows.

    Palette, 1-bit, grayscale, grey+alpha, RGBA and CMYK convert as PIL does (alpha
    dropped); 16- and 32-bit grayscale is scaled to 8 bits instead of being clipped,
    which turned such images white.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        if image.mode == "I" and values.max() <= 65535:
            top = 65535.0 if values.max() > 255 else 255.0
        grey = np.clip(np.rint(values / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def load_image(path) -> Image.Image:
    """Open an image file as 8-bit RGB: the one decoder for training, evaluation and prediction.

    Images are turned upright by their EXIF orientation (phone photos), as viewers show them.
    Every format PIL reads works (JPEG, PNG including 16-bit, BMP including 1-bit and
    palette, GIF's first frame, TIFF, WebP, CMYK JPEG); see ``to_rgb``. A missing,
    corrupt or non-image file, or one over PIL's decompression-bomb limit, raises ``ValueError``
    naming the path.
    """
    try:
        with Image.open(path) as image:
            check_resized_pixels(image.size, path)
            image.load()
            # A phone photo's pixels are stored as the sensor saw them; its EXIF orientation says
            # how to turn them upright (as every viewer shows it).
            return to_rgb(ImageOps.exif_transpose(image))
    except FileNotFoundError:
        raise FileNotFoundError(f"image file {os.fspath(path)!r} does not exist") from None
    except ImageTooLarge:
        raise
    except Image.DecompressionBombError as error:
        raise ValueError(
            f"{os.fspath(path)!r} is over PIL's decompression-bomb limit ({error}); resize it, or, if you trust "
            "the file, raise PIL.Image.MAX_IMAGE_PIXELS."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(
            f"{os.fspath(path)!r} is not a readable image ({error}); remove or replace the file."
        ) from None


# Pixels an image may have after torchvision's resize (shorter side to 256), PIL's bomb limit:
# a 1 x 100,000 PNG of 467 bytes becomes 256 x 25,600,000 pixels (6.5 GB) there.
RESIZED_PIXEL_LIMIT = 89_478_485


class ImageTooLarge(ValueError):
    """An image too large to resize in bounded memory; the message names it and its size."""


def check_resized_pixels(size, path, resize_size=RESIZE_SIZE):
    """Refuse an image whose aspect ratio makes it too large once resized (``RESIZED_PIXEL_LIMIT``)."""
    width, height = size
    if min(width, height) < 1:
        raise ImageTooLarge(f"{os.fspath(path)!r} is {width} x {height} pixels: an empty image; remove the file.")
    resized = resized_size(height, width, resize_size)
    if resized[0] * resized[1] > RESIZED_PIXEL_LIMIT:
        raise ImageTooLarge(
            f"{os.fspath(path)!r} is {width} x {height} pixels: resized to a shorter side of {resize_size} it would "
            f"be {resized[1]} x {resized[0]} ({resized[0] * resized[1] * 3 / 2**30:.1f} GB); crop it to a less "
            "extreme aspect ratio, or remove it."
        )


def decode_rgb(path) -> np.ndarray:
    """``load_image`` as a uint8 (height, width, 3) array (what the tf.data pipelines decode with)."""
    return np.asarray(load_image(path), dtype=np.uint8)


def resized_size(height, width, size=RESIZE_SIZE):
    """(height, width) after torchvision's ``Resize(size)``: shorter side to ``size``."""
    if width <= height:
        return int(size * height / width), size
    return size, int(size * width / height)


def eval_crop(image, resize_size=RESIZE_SIZE, crop_size=CROP_SIZE) -> np.ndarray:
    """torchvision's resize and centre crop of one image, as uint8 (crop_size, crop_size, 3): what an
    exported TFLite or ONNX model takes (it normalises inside).

    Args:
        image: a PIL image, a path, or a uint8 HxWx3 array.
    """
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(
                f"the eval transform takes uint8 arrays of shape (H, W, 3); got {image.dtype} "
                f"{image.shape}. Pass a PIL image or a path for other formats."
            )
        image = Image.fromarray(image)
    height, width = resized_size(image.height, image.width, resize_size)
    image = image.convert("RGB").resize((width, height), Image.BILINEAR)
    top = int(round((height - crop_size) / 2.0))
    left = int(round((width - crop_size) / 2.0))
    return np.asarray(image.crop((left, top, left + crop_size, top + crop_size)), dtype=np.uint8)


def tta_crops(image, resize_size=RESIZE_SIZE, crop_size=CROP_SIZE) -> np.ndarray:
    """Test-time augmentation's views of one image, uint8 (6, crop_size, crop_size, 3).

    After torchvision's eval resize: the centre crop, its mirror image, and the centre crop
    moved by half the margin (16 pixels for 256/224) left, right, up and down (``TTA_VIEWS``),
    each kept inside the image. The eval transform is the first view.
    """
    image = load_image(image) if isinstance(image, (str, os.PathLike)) else image
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    height, width = resized_size(image.height, image.width, resize_size)
    resized = np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR), dtype=np.uint8)
    top, left = int(round((height - crop_size) / 2.0)), int(round((width - crop_size) / 2.0))
    shift = max((resize_size - crop_size) // 2, 1)

    def crop(row, column):
        row = min(max(row, 0), height - crop_size)
        column = min(max(column, 0), width - crop_size)
        return resized[row : row + crop_size, column : column + crop_size]

    centre = crop(top, left)
    views = [
        centre,
        centre[:, ::-1],
        crop(top, left - shift),
        crop(top, left + shift),
        crop(top - shift, left),
        crop(top + shift, left),
    ]
    return np.stack(views)


def tta_blend(view_probabilities, beta=TTA_BETA):
    """(images, classes) from (images, views, classes) of ``tta_crops``' views: ``beta`` of the first view (the
    plain prediction), the rest from the other views' mean, as fastai's ``Learner.tta``."""
    views = np.asarray(view_probabilities, np.float64)
    if views.shape[1] == 1:
        return views[:, 0]
    return beta * views[:, 0] + (1.0 - beta) * views[:, 1:].mean(axis=1)


def eval_transform(image, resize_size=RESIZE_SIZE, crop_size=CROP_SIZE) -> np.ndarray:
    """torchvision's ImageNet eval transform on one image, channels last.

    Args:
        image: a PIL image, a path, or a uint8 HxWx3 array.
    Returns:
        float32 array (crop_size, crop_size, 3), normalised with the ImageNet mean/std.
    """
    return preprocess_input(eval_crop(image, resize_size, crop_size).astype(np.float32))


def preprocess_input(x):
    """Scale RGB values in [0, 255] to [0, 1] and normalise with ImageNet mean/std.

    Takes an array or tensor of already resized images, channels last (``...x3``),
    like ``keras.applications.*.preprocess_input``. Returns float32.
    """
    x = np.asarray(x, dtype=np.float32) if not tf.is_tensor(x) else tf.cast(x, tf.float32)
    if x.shape[-1] != 3:
        raise ValueError(f"preprocess_input expects RGB images, channels last; got shape {tuple(x.shape)}.")
    return (x / 255.0 - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)


@keras.saving.register_keras_serializable(package="keras_alexnet")
class ResizeShorterSide(keras.layers.Layer):
    """Resize so the shorter side equals ``size``, keeping the aspect ratio.

    The bilinear, antialiased resize of torchvision's ``Resize(size)``. Takes
    batches (N, H, W, C) or single images (H, W, C) of any dtype; returns float32.
    """

    def __init__(self, size=RESIZE_SIZE, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)

    def call(self, images):
        shape = tf.shape(images)
        height = tf.cast(shape[-3], tf.float32)
        width = tf.cast(shape[-2], tf.float32)
        size = tf.constant(float(self.size))
        # Same integer truncation as torchvision for the longer side.
        new_height = tf.where(width <= height, tf.floor(size * height / width), size)
        new_width = tf.where(width <= height, size, tf.floor(size * width / height))
        new_size = tf.cast(tf.stack([new_height, new_width]), tf.int32)
        return tf.image.resize(tf.cast(images, tf.float32), new_size, method="bilinear", antialias=True)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-3], None, None, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


def imagenet_eval_layers(resize_size=RESIZE_SIZE, crop_size=CROP_SIZE, name="imagenet_eval"):
    """The eval transform as a Keras model of built-in layers: uint8/float RGB in [0, 255]
    of any size in, normalised (crop_size, crop_size, 3) float32 out. Usable inside a
    model (e.g. a serving graph) or in ``tf.data`` ``map``.
    """
    variance = [s * s for s in IMAGENET_STD]
    # Built eagerly (Input first): a model first built inside one tf.data map would
    # hold that graph's tensors and fail in a second pipeline.
    return keras.Sequential(
        [
            keras.Input((None, None, 3)),
            ResizeShorterSide(resize_size, name="resize_shorter_side"),
            keras.layers.CenterCrop(crop_size, crop_size, name="center_crop"),
            keras.layers.Rescaling(1.0 / 255.0, name="to_unit_range"),
            keras.layers.Normalization(mean=list(IMAGENET_MEAN), variance=variance, name="imagenet_normalize"),
        ],
        name=name,
    )


@functools.cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names in torchvision's order."""
    names = tuple(CLASS_NAMES_FILE.read_text(encoding="utf-8").splitlines())
    assert len(names) == 1000, f"{CLASS_NAMES_FILE} is damaged: {len(names)} names"
    return names


def decode_predictions(preds, top=5, class_names=None):
    """Top-``top`` (class_index, class_name, score) triples for each row of ``preds``.

    Args:
        preds: array (batch, classes) of probabilities or logits.
        class_names: names for the columns; default the 1000 ImageNet classes.
    """
    preds = np.asarray(preds)
    names = tuple(class_names) if class_names is not None else imagenet_class_names()
    if preds.ndim != 2 or preds.shape[1] != len(names):
        raise ValueError(
            f"decode_predictions expects a batch of shape (samples, {len(names)}); got "
            f"{preds.shape}. Pass class_names for a model with other classes."
        )
    top = min(top, preds.shape[1])
    results = []
    for row in preds:
        order = np.argsort(-row, kind="stable")[:top]
        results.append([(int(i), names[i], float(row[i])) for i in order])
    return results
