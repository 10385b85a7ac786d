"""Custom layers, registered so that saved models load without ``safe_mode=False``."""

from __future__ import annotations

import keras
import tensorflow as tf


def _averaging_matrix(in_size, out_size):
    """(out_size, in_size) matrix whose row i averages torch's adaptive-pool bin i.

    torch's bin i spans [floor(i * in / out), ceil((i + 1) * in / out)).
    """
    i = tf.range(out_size)
    start = (i * in_size) // out_size
    end = ((i + 1) * in_size + out_size - 1) // out_size
    positions = tf.range(in_size)[tf.newaxis, :]
    inside = (positions >= start[:, tf.newaxis]) & (positions < end[:, tf.newaxis])
    counts = tf.cast(end - start, tf.float32)[:, tf.newaxis]
    return tf.cast(inside, tf.float32) / counts


@keras.saving.register_keras_serializable(package="keras_alexnet")
class AdaptiveAveragePooling2D(keras.layers.Layer):
    """``torch.nn.AdaptiveAvgPool2d`` for channels-last inputs.

    Keras's own ``keras.layers.AdaptiveAveragePooling2D`` (TensorFlow backend)
    needs static spatial sizes and fails in graph mode when the input is smaller
    than the output (pool5 of a 63-pixel image is 1x1, pooled to 6x6). Written as
    two small averaging matrices, this works for any input size, known or not,
    under ``tf.function``, XLA and the TFLite converter.
    """

    def __init__(self, output_size=(6, 6), **kwargs):
        super().__init__(**kwargs)
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = tuple(int(s) for s in output_size)

    def call(self, inputs):
        out_h, out_w = self.output_size
        shape = tf.shape(inputs)
        rows = tf.cast(_averaging_matrix(shape[1], out_h), inputs.dtype)
        cols = tf.cast(_averaging_matrix(shape[2], out_w), inputs.dtype)
        return tf.einsum("oh,nhwc,pw->nopc", rows, inputs, cols)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size}


@keras.saving.register_keras_serializable(package="keras_alexnet")
class ClassNames(keras.layers.Layer):
    """Identity layer that carries the class names, so they travel with the saved model."""

    def __init__(self, class_names, **kwargs):
        kwargs.setdefault("name", "class_names")
        super().__init__(**kwargs)
        self.class_names = [str(name) for name in class_names]

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "class_names": self.class_names}


def attach_class_names(model, class_names):
    """``model`` with a ``ClassNames`` layer at the end (a new model, same layers)."""
    if model.output.shape[-1] != len(class_names):
        raise ValueError(f"the model has {model.output.shape[-1]} outputs but {len(class_names)} class names were given.")
    return keras.Model(model.inputs, ClassNames(class_names)(model.output), name=model.name)


def class_names_of(model):
    """The class names stored in ``model`` by ``attach_class_names``, or None."""
    for layer in reversed(model.layers):
        if isinstance(layer, ClassNames):
            return list(layer.class_names)
    return None
