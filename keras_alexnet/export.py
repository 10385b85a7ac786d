"""Export to SavedModel (TF Serving) and TFLite, each verified against Keras on save.

The SavedModel's ``serving_default`` takes uint8 RGB images of any size,
batched, and does torchvision's eval preprocessing inside the graph; it returns
``probabilities``, ``class_index`` and ``class_name``. The TFLite model takes
uint8 images already resized to 224x224 (mobile code resizes) and returns
probabilities.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet.files import atomic_write
from keras_alexnet.layers import class_names_of
from keras_alexnet.preprocessing import CROP_SIZE, imagenet_eval_layers

TOLERANCE = 1e-4  # max |exported - Keras| on probabilities, float32 throughout


@dataclasses.dataclass
class ExportCheck:
    """How far the exported artifact's outputs are from the Keras model's."""

    path: Path
    max_abs_diff: float
    samples: int


def _check_images(seed=0, count=4, size=(173, 241)):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, *size, 3), dtype=np.uint8)


def export_savedmodel(model, path, check_images=None):
    """Write a SavedModel for TF Serving (atomically: a temporary folder renamed).

    Returns an ``ExportCheck`` after loading it back with ``tf.saved_model.load``;
    raises if its probabilities differ from Keras's by more than ``TOLERANCE``.
    """
    path = Path(path)
    names = class_names_of(model) or [str(i) for i in range(model.output.shape[-1])]
    preprocess = imagenet_eval_layers()
    table = tf.constant(names)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(preprocess)

    def serve(images):
        probabilities = model(preprocess(images), training=False)
        index = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"probabilities": probabilities, "class_index": index, "class_name": tf.gather(table, index)}

    archive.add_endpoint("serve", serve, input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8, name="images")])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=path.parent))
    try:
        archive.write_out(str(tmp), verbose=False)
        images = _check_images() if check_images is None else check_images
        expected = np.asarray(model(preprocess(images), training=False))
        loaded = tf.saved_model.load(str(tmp))
        got = loaded.signatures["serving_default"](images=tf.constant(images))["probabilities"].numpy()
        diff = float(np.max(np.abs(got - expected)))
        if diff > TOLERANCE:
            raise RuntimeError(f"SavedModel check failed: max |difference| {diff:.2e} > {TOLERANCE:.0e}")
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return ExportCheck(path, diff, len(images))


def export_tflite(model, path, image_size=CROP_SIZE, check_images=None):
    """Write a float32 TFLite model (uint8 224x224 RGB in, probabilities out), verified."""
    path = Path(path)
    normalize = keras.Sequential(imagenet_eval_layers().layers[-2:])  # rescale + normalise

    @tf.function(input_signature=[tf.TensorSpec((1, image_size, image_size, 3), tf.uint8, name="image")])
    def serve(image):
        return {"probabilities": model(normalize(tf.cast(image, tf.float32)), training=False)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model)
    flatbuffer = converter.convert()
    images = _check_images(size=(image_size, image_size)) if check_images is None else check_images
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    runner = interpreter.get_signature_runner()
    diff = 0.0
    for image in images:
        got = runner(image=image[None])["probabilities"]
        expected = np.asarray(model(normalize(tf.cast(image[None], tf.float32)), training=False))
        diff = max(diff, float(np.max(np.abs(got - expected))))
    if diff > TOLERANCE:
        raise RuntimeError(f"TFLite check failed: max |difference| {diff:.2e} > {TOLERANCE:.0e}")
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(flatbuffer))
    return ExportCheck(path, diff, len(images))
