"""The ONNX file: uint8 crops of the model's size in (any batch), probabilities out, the class names and
temperature in its metadata; converted with tf2onnx, the converter Keras's own ONNX export calls."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet.deployment import CLASS_NAMES_KEY, TEMPERATURE_KEY, MissingRuntime, onnx_session
from keras_alexnet.export.artifact import Artifact
from keras_alexnet.export.checks import max_difference
from keras_alexnet.layers import class_names_of, temperature_of
from keras_alexnet.preprocessing import CROP_SIZE, IMAGENET_MEAN, IMAGENET_STD

OPSET = 17


def build(model, image_size=CROP_SIZE, **_):
    """The ONNX ``Artifact`` of ``model``: the scaling to [0, 1] and the ImageNet normalisation inside the
    graph, a dynamic batch (checked at batch 1 besides the shared check's batch)."""
    import onnx

    try:
        import tf2onnx  # noqa: F401  (Keras's ONNX export calls it)
    except ImportError:
        raise MissingRuntime(
            "ONNX export needs tf2onnx, which is not installed: pip install tf2onnx (or pip install "
            "'keras-alexnet[onnx]')."
        ) from None
    # One per-channel scale and offset: (x / 255 - mean) / std. (The Normalization layer's
    # statistics reach tf2onnx as captured tensors it leaves as inputs of the graph.)
    normalize = keras.layers.Rescaling(
        scale=[1.0 / (255.0 * s) for s in IMAGENET_STD],
        offset=[-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)],
        name="imagenet_normalize",
    )
    images_in = keras.Input((image_size, image_size, 3), dtype="uint8", name="images")
    serving = keras.Model(images_in, model(normalize(keras.ops.cast(images_in, "float32"))), name=f"{model.name}_uint8")
    serving(np.zeros((1, image_size, image_size, 3), np.uint8), training=False)  # Keras exports only a called model
    proto = _tf2onnx(serving, image_size)
    names = class_names_of(model) or [str(i) for i in range(model.output.shape[-1])]
    properties = {CLASS_NAMES_KEY: json.dumps(list(names))}
    if temperature_of(model) is not None:
        properties[TEMPERATURE_KEY] = json.dumps(float(temperature_of(model)))
    onnx.helper.set_model_props(proto, properties)
    content = proto.SerializeToString()

    def batch_of_one(path, images, expected):
        return max_difference(onnx_probabilities(Path(path).read_bytes(), images[:1]), expected[:1], "ONNX")

    return Artifact(
        write=lambda path: Path(path).write_bytes(content),
        prepare=lambda images: normalize(keras.ops.cast(images, "float32")),
        crops=True,
        extra_check=batch_of_one,
    )


def _tf2onnx(serving, image_size):
    """The ONNX model of a Keras model from uint8 images to probabilities, with tf2onnx's graph conversion.

    Keras's ``model.export(format="onnx")`` runs tf2onnx with all its ONNX optimizers: for AlexNet
    they took 13.8 GB of memory (and were killed beside the test suite); without them the
    conversion takes 4.3 GB, and ONNX Runtime optimizes the graph itself when it loads it.
    """
    import tf2onnx.tfonnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    function = tf.function(lambda images: serving(images, training=False))
    concrete = function.get_concrete_function(tf.TensorSpec((None, image_size, image_size, 3), tf.uint8, "images"))
    frozen = convert_variables_to_constants_v2(concrete)
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(frozen.graph.as_graph_def(), name="")
    inputs, outputs = [t.name for t in frozen.inputs], [t.name for t in frozen.outputs]
    onnx_graph = tf2onnx.tfonnx.process_tf_graph(graph, opset=OPSET, input_names=inputs, output_names=outputs)
    proto = onnx_graph.make_model("keras-alexnet")
    # The contract's names ("images" in, "probabilities" out) instead of TensorFlow's tensor names.
    renames = {inputs[0]: "images", outputs[0]: "probabilities"}
    for value in [*proto.graph.input, *proto.graph.output]:
        value.name = renames.get(value.name, value.name)
    for node in proto.graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]
    return proto


def onnx_probabilities(model, images):
    """Probabilities of an ONNX model (a file or its bytes) from ONNX Runtime on uint8 ``images``."""
    session = onnx_session(model)
    return session.run(None, {session.get_inputs()[0].name: np.asarray(images, np.uint8)})[0]
