"""The SavedModel's serving graph: encoded images or uint8 arrays of any size in, torchvision's eval
transform inside, ``probabilities``, ``class_index`` and ``class_name`` out; the variables saved once."""

from __future__ import annotations

import io

import numpy as np
import tensorflow as tf

from keras_alexnet.deployment import CLASS_NAMES_KEY, TEMPERATURE_KEY
from keras_alexnet.export.artifact import Artifact
from keras_alexnet.export.checks import max_difference
from keras_alexnet.layers import class_names_of, temperature_of
from keras_alexnet.preprocessing import CROP_SIZE, imagenet_eval_layers
from keras_alexnet.saved_model_record import write_record

# encoded images (what TF Serving's REST clients send as {"b64": ...}), decoded arrays.
BYTES_SIGNATURE, IMAGES_SIGNATURE = "serving_default", "serving_images"


def build(model, image_size=CROP_SIZE, **_):
    """The SavedModel ``Artifact`` of ``model``.

    Signatures: ``serving_default`` takes encoded images (``image_bytes``, a batch of JPEG, PNG,
    GIF or BMP files: TF Serving's REST ``{"instances": [{"b64": ...}]}``), ``serving_images`` uint8
    arrays of any size (a batch of one size); both resize and crop as torchvision's eval transform
    and answer ``probabilities``, ``class_index`` and ``class_name``; ``class_names`` (and
    ``temperature`` for a calibrated model) read without an image.

    Keras's ``ExportArchive`` tracks the model and its variables' values side by side, which saves
    every variable twice (a SavedModel of 435 MB for 217 MB of AlexNet); here only the values are
    tracked, and the functions capture them.
    """
    names = class_names_of(model) or [str(i) for i in range(model.output.shape[-1])]
    preprocess = imagenet_eval_layers(crop_size=image_size)
    module = tf.Module()
    module.tracked = [variable.value for variable in [*model.variables, *preprocess.variables]]
    table = tf.constant(names)

    def answer(images):
        probabilities = model(images, training=False)
        index = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"probabilities": probabilities, "class_index": index, "class_name": tf.gather(table, index)}

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8, name="images")])
    def serve_images(images):
        return answer(preprocess(images))

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")])
    def serve_bytes(image_bytes):
        def one(data):
            # JPEG, PNG, GIF (first frame) or BMP; TensorFlow reads no EXIF orientation: send upright images.
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            image.set_shape((None, None, 3))
            return preprocess(image[None])[0]

        spec = tf.TensorSpec((image_size, image_size, 3), tf.float32)
        return answer(tf.map_fn(one, image_bytes, fn_output_signature=spec))

    module.serve_images, module.serve_bytes = serve_images, serve_bytes
    module.class_names = tf.function(lambda: {CLASS_NAMES_KEY: table}, input_signature=[])
    signatures = {BYTES_SIGNATURE: serve_bytes, IMAGES_SIGNATURE: serve_images, CLASS_NAMES_KEY: module.class_names}
    temperature = temperature_of(model)
    if temperature is not None:  # what `evaluate` reports as the file's calibration
        value = tf.constant(float(temperature))
        module.temperature = tf.function(lambda: {TEMPERATURE_KEY: value}, input_signature=[])
        signatures[TEMPERATURE_KEY] = module.temperature

    def graph_check(folder, images, expected):
        """The serving graph itself (what TF Serving runs; ``predict`` reads the record instead), on the arrays
        and on PNG-encoded images (lossless): the same answers as Keras's. Only this export's own folder,
        written a moment ago from ``model``, is ever loaded as a graph."""
        loaded = tf.saved_model.load(str(folder))
        arrays = np.concatenate(
            [
                loaded.signatures[IMAGES_SIGNATURE](images=tf.constant(np.asarray(image, np.uint8)[None]))[
                    "probabilities"
                ]
                for image in images
            ]
        )
        got = loaded.signatures[BYTES_SIGNATURE](image_bytes=tf.constant(_encoded(images)))["probabilities"]
        return max(
            max_difference(arrays, expected, "SavedModel (serving graph)"),
            max_difference(got.numpy(), expected, "SavedModel (encoded images)"),
        )

    def write(folder):
        tf.saved_model.save(module, str(folder), signatures=signatures)
        # What `predict` and `evaluate` read instead of running the graph (saved_model_record.py).
        write_record(folder, model, names, temperature, image_size, tracked="tracked")

    return Artifact(
        write=write,
        prepare=preprocess,
        crops=False,
        extra_check=graph_check,
    )


def _encoded(images):
    """uint8 images as PNG bytes."""
    from PIL import Image

    encoded = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return encoded
