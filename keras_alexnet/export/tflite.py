"""The TFLite (LiteRT) file: uint8 crops of the model's size in (batch 1), probabilities out; float32,
float16, dynamic-range or full-integer (int8), with the class names and temperature in its metadata."""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet.deployment import CLASS_NAMES_KEY, TEMPERATURE_KEY, add_tflite_metadata
from keras_alexnet.export.artifact import Artifact
from keras_alexnet.layers import class_names_of, temperature_of
from keras_alexnet.preprocessing import CROP_SIZE, imagenet_eval_layers


def build(model, image_size=CROP_SIZE, quantize=None, representative=None, **_):
    """The TFLite ``Artifact`` of ``model``: converted from a SavedModel of the same graph (converting the
    concrete function directly left the variables out: a 15 KB file of zeros). ``quantize``: None,
    ``"float16"`` (half the size), ``"dynamic"`` (int8 weights, a quarter) or ``"int8"`` (int8 weights
    and activations, calibrated on ``representative``: uint8 crops of training images)."""
    normalize = keras.Sequential(
        [keras.Input((None, None, 3)), *imagenet_eval_layers().layers[-2:]]
    )  # rescale, normalise

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(normalize)
    archive.add_endpoint(
        "serve",
        lambda image: {"probabilities": model(normalize(tf.cast(image, tf.float32)), training=False)},
        input_signature=[tf.TensorSpec((1, image_size, image_size, 3), tf.uint8, name="image")],
    )
    with tempfile.TemporaryDirectory(prefix="keras-alexnet-tflite-") as workdir:
        archive.write_out(workdir, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(workdir)
        if quantize is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            if quantize == "float16":
                converter.target_spec.supported_types = [tf.float16]
            if quantize == "int8":
                crops = [np.asarray(crop, np.uint8)[None] for crop in representative]
                converter.representative_dataset = lambda: ([crop] for crop in crops)
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.inference_input_type = tf.uint8
        flatbuffer = converter.convert()
    names = class_names_of(model) or [str(i) for i in range(model.output.shape[-1])]
    content = add_tflite_metadata(flatbuffer, {CLASS_NAMES_KEY: names, TEMPERATURE_KEY: temperature_of(model)})
    return Artifact(
        write=lambda path: Path(path).write_bytes(content),
        prepare=lambda images: normalize(tf.cast(images, tf.float32)),
        crops=True,
    )
