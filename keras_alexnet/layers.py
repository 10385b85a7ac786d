"""Custom layers, registered so that saved models load without ``safe_mode=False``."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_alexnet._utils.runtime import tensorflow_uses_gpu


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


def _same_padding(input_size, output_size, kernel_size, stride):
    """[before, after] zero padding of TensorFlow's "SAME" along one axis."""
    total = tf.maximum((output_size - 1) * stride + kernel_size - input_size, 0)
    return tf.stack([total // 2, total - total // 2])


def _kernel_gradient(inputs, output_gradient, kernel_size, strides, padding):
    """Gradient of a convolution's kernel, computed as a forward convolution.

    The kernel gradient correlates the input with the output gradient over the
    batch and output positions. Read with the batch as the channel axis, that
    is a forward convolution of the input (in_channels, H, W, batch) with the
    output gradient (out_h, out_w, batch, out_channels) as the filter, dilated
    by the stride. TensorFlow's oneDNN forward kernel runs it faster than
    ``Conv2DBackpropFilter`` on CPU for every AlexNet layer (benchmarks/ANALYSIS.md).
    """
    if padding == "same":
        input_shape, output_shape = tf.shape(inputs), tf.shape(output_gradient)
        rows = _same_padding(input_shape[1], output_shape[1], kernel_size[0], strides[0])
        cols = _same_padding(input_shape[2], output_shape[2], kernel_size[1], strides[1])
        inputs = tf.pad(inputs, tf.stack([[0, 0], rows, cols, [0, 0]]))
    correlation = tf.nn.conv2d(
        tf.transpose(inputs, [3, 1, 2, 0]),
        tf.transpose(output_gradient, [1, 2, 0, 3]),
        strides=1,
        padding="VALID",
        dilations=list(strides),
    )
    # Positions past the last window (input rows the convolution never reached) fall off.
    return tf.transpose(correlation[:, : kernel_size[0], : kernel_size[1], :], [1, 2, 0, 3])


def _conv2d_with_fast_gradients(inputs, kernel, strides, padding):
    """``tf.nn.conv2d`` (NHWC, no dilation, one group) whose gradients use forward convolutions."""
    kernel_size = tuple(kernel.shape[:2])
    flip_for_input_gradient = padding == "same" and strides == (1, 1) and all(size % 2 == 1 for size in kernel_size)

    @tf.custom_gradient
    def convolution(inputs, kernel):
        outputs = tf.nn.conv2d(inputs, kernel, strides=list(strides), padding=padding.upper())

        def gradient(output_gradient):
            if flip_for_input_gradient:
                # For a stride-1 "same" convolution with an odd kernel, the input gradient is the
                # forward convolution of the output gradient with the kernel flipped in space and
                # its channel axes swapped; Conv2DBackpropInput is about twice as slow on CPU.
                flipped = tf.transpose(tf.reverse(kernel, axis=[0, 1]), [0, 1, 3, 2])
                input_gradient = tf.nn.conv2d(output_gradient, flipped, strides=1, padding="SAME")
            else:
                input_gradient = tf.raw_ops.Conv2DBackpropInput(
                    input_sizes=tf.shape(inputs),
                    filter=kernel,
                    out_backprop=output_gradient,
                    strides=[1, *strides, 1],
                    padding=padding.upper(),
                )
            return input_gradient, _kernel_gradient(inputs, output_gradient, kernel_size, strides, padding)

        return outputs, gradient

    return convolution(inputs, kernel)


@keras.saving.register_keras_serializable(package="keras_alexnet")
class Conv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with faster gradients on CPU.

    Same weights, config and outputs as Keras's layer. On TensorFlow without a
    GPU, for undilated, ungrouped channels-last convolutions (all of AlexNet's),
    both gradients are computed by TensorFlow's forward convolution kernel: the
    kernel gradient always (see ``_kernel_gradient``), the input gradient for
    stride-1 ``"same"`` convolutions with odd kernels (conv2..conv5), where
    ``Conv2DBackpropInput`` is about twice as slow (benchmarks/ANALYSIS.md).
    Equal to Keras's gradients to float32 rounding. Elsewhere,
    including on GPUs (cuDNN's backward kernels), Keras's path runs unchanged.
    """

    def _uses_fast_gradients(self):
        return (
            keras.backend.backend() == "tensorflow"
            and tuple(self.dilation_rate) == (1, 1)
            and self.groups == 1
            and self.data_format == "channels_last"
            and not tensorflow_uses_gpu()
        )

    def convolution_op(self, inputs, kernel):
        if self._uses_fast_gradients():
            return _conv2d_with_fast_gradients(inputs, tf.convert_to_tensor(kernel), tuple(self.strides), self.padding)
        return super().convolution_op(inputs, kernel)


@tf.custom_gradient
def _matmul(inputs, kernel):
    outputs = tf.matmul(inputs, kernel)

    def gradient(output_gradient):
        # (kernel @ dy^T)^T rather than dy @ kernel^T: the same numbers, but
        # TensorFlow's CPU matmul with a transposed right operand is ~3x slower.
        input_gradient = tf.transpose(tf.matmul(kernel, output_gradient, transpose_b=True))
        kernel_gradient = tf.matmul(inputs, output_gradient, transpose_a=True)
        return input_gradient, kernel_gradient

    return outputs, gradient


@keras.saving.register_keras_serializable(package="keras_alexnet")
class Dense(keras.layers.Dense):
    """``keras.layers.Dense`` with a faster input gradient on TensorFlow.

    Same weights, config and outputs as Keras's layer. For 2-D inputs the input
    gradient is computed as ``(kernel @ dy^T)^T``, which TensorFlow's CPU
    kernels run several times faster than its own ``dy @ kernel^T``
    (benchmarks/ANALYSIS.md). Other inputs use Keras's path.
    """

    def call(self, inputs, training=None):
        if keras.backend.backend() != "tensorflow" or len(inputs.shape) != 2:
            return super().call(inputs, training=training)
        outputs = _matmul(inputs, tf.convert_to_tensor(self.kernel))
        if self.bias is not None:
            outputs = keras.ops.add(outputs, self.bias)
        return self.activation(outputs) if self.activation is not None else outputs


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


@keras.saving.register_keras_serializable(package="keras_alexnet")
class Temperature(keras.layers.Layer):
    """Divides the logits by a fitted temperature: ``softmax(z / T)`` from the softmax's output ``softmax(z)``.

    It follows fc8's softmax, computing ``softmax(log p / T)``, which equals ``softmax(z / T)``
    because ``log softmax(z)`` is ``z`` less a constant (``keras_alexnet.calibration``). fc8 keeps
    its logits (Grad-CAM reads them) and the predicted class never changes. ``temperature`` is
    fitted by ``train`` on the validation images; 1 leaves the probabilities as they are.
    """

    def __init__(self, temperature=1.0, **kwargs):
        kwargs.setdefault("name", "temperature")
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if not (isinstance(temperature, (int, float)) and 0 < temperature < float("inf")):
            raise ValueError(f"temperature={temperature!r}: use a positive, finite number.")
        self.temperature = float(temperature)

    def call(self, inputs):
        logs = keras.ops.log(keras.ops.maximum(keras.ops.cast(inputs, "float32"), 1e-30))
        return keras.ops.softmax(logs / self.temperature, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


def with_temperature(model, temperature):
    """``model`` (softmax outputs) followed by a ``Temperature`` layer (a new model, same layers);
    a model that has one gets its temperature replaced, not a second layer."""
    output = model.output
    last = model.layers[-1]
    names = class_names_of(model)
    if names is not None:  # keep the class names last
        last = model.layers[-2]
        output = last.output
    if isinstance(last, Temperature):
        output = last.input
    output = Temperature(temperature)(output)
    if names is not None:
        output = ClassNames(names)(output)
    return keras.Model(model.inputs, output, name=model.name)


def temperature_of(model):
    """The temperature of ``model``'s ``Temperature`` layer, or None when it has none."""
    for layer in reversed(model.layers):
        if isinstance(layer, Temperature):
            return layer.temperature
    return None


def attach_class_names(model, class_names):
    """``model`` with a ``ClassNames`` layer at the end (a new model, same layers)."""
    if model.output.shape[-1] != len(class_names):
        raise ValueError(
            f"the model has {model.output.shape[-1]} outputs but {len(class_names)} class names were given."
        )
    return keras.Model(model.inputs, ClassNames(class_names)(model.output), name=model.name)


def class_names_of(model):
    """The class names stored in ``model`` by ``attach_class_names``, or None."""
    for layer in reversed(model.layers):
        if isinstance(layer, ClassNames):
            return list(layer.class_names)
    return None
