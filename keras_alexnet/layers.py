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
