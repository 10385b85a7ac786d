"""The adaptive average pooling layer equals torch's, for static and unknown shapes."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness import run_model_saving_test

from keras_alexnet.layers import AdaptiveAveragePooling2D, Temperature, temperature_of


@pytest.mark.parametrize("height, width", [(1, 1), (2, 9), (5, 6), (6, 6), (7, 13), (13, 13), (20, 31)])
def test_equals_torch_adaptive_avg_pool(torch_modules, height, width):
    torch, _ = torch_modules
    x = np.random.default_rng(height * 100 + width).normal(size=(2, height, width, 4)).astype(np.float32)
    expected = (
        torch.nn.AdaptiveAvgPool2d((6, 6))(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    )
    layer = AdaptiveAveragePooling2D((6, 6))
    np.testing.assert_allclose(layer(x), expected, rtol=1e-6, atol=1e-6)
    traced = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 4))])
    np.testing.assert_allclose(traced(x), expected, rtol=1e-6, atol=1e-6)


def test_config_round_trip():
    inp = keras.Input((None, None, 2))
    model = keras.Model(inp, AdaptiveAveragePooling2D(3)(inp))
    clone = keras.Model.from_config(model.get_config())
    assert clone.layers[-1].output_size == (3, 3)


def _gradients(layer, x, jit):
    @tf.function(jit_compile=jit)
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.cos(y))  # a non-trivial output gradient
        return [y, *tape.gradient(loss, [x, *layer.trainable_variables])]

    return [t.numpy() for t in run(tf.constant(x))]


def _twin(ours, keras_cls, shape, **config):
    """Our layer and Keras's, built on ``shape`` with the same random weights."""
    theirs = keras_cls(**config)
    ours.build(shape)
    theirs.build(shape)
    rng = np.random.default_rng(0)
    for a, b in zip(ours.weights, theirs.weights):
        value = rng.normal(scale=0.1, size=a.shape).astype(np.float32)
        a.assign(value)
        b.assign(value)
    return theirs


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize(
    "kernel, strides, padding, size",
    [
        (3, 1, "same", 23),
        (5, 1, "same", 23),
        (11, 4, "valid", 23),
        (11, 4, "valid", 26),
        (3, 2, "same", 23),
        (4, 2, "same", 24),
        (3, 2, "valid", 24),
    ],
)
def test_conv2d_outputs_and_gradients_equal_keras(kernel, strides, padding, size, jit):
    # size 26 with an 11-pixel kernel at stride 4 leaves input rows no window reaches.
    from keras_alexnet.layers import Conv2D

    config = dict(filters=6, kernel_size=kernel, strides=strides, padding=padding, activation="relu")
    ours = Conv2D(**config)
    theirs = _twin(ours, keras.layers.Conv2D, (2, size, size, 4), **config)
    x = np.random.default_rng(1).normal(size=(2, size, size, 4)).astype(np.float32)
    assert ours._uses_fast_gradients()
    for got, want in zip(_gradients(ours, x, jit), _gradients(theirs, x, jit)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("jit", [False, True])
def test_dense_outputs_and_gradients_equal_keras(jit):
    from keras_alexnet.layers import Dense

    ours = Dense(7, activation="relu")
    theirs = _twin(ours, keras.layers.Dense, (3, 40), units=7, activation="relu")
    x = np.random.default_rng(2).normal(size=(3, 40)).astype(np.float32)
    for got, want in zip(_gradients(ours, x, jit), _gradients(theirs, x, jit)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_alexnet_uses_the_fast_gradient_layers_and_they_save(tmp_path):
    from keras_alexnet import AlexNet
    from keras_alexnet.layers import Conv2D, Dense

    model = AlexNet(weights=None, classes=3, input_shape=(63, 63, 3))
    assert all(isinstance(model.get_layer(f"conv{i}"), Conv2D) for i in range(1, 6))
    assert all(isinstance(model.get_layer(f"fc{i}"), Dense) for i in range(6, 9))
    x = np.random.default_rng(0).normal(size=(2, 63, 63, 3)).astype(np.float32)
    loaded = run_model_saving_test(model, x, tmp_path)
    assert isinstance(loaded.get_layer("conv3"), Conv2D) and isinstance(loaded.get_layer("fc7"), Dense)


def test_temperature_layer_is_the_logits_divided_and_survives_saving(tmp_path):
    inputs = keras.Input((3,))
    probabilities = keras.layers.Dense(4, activation="softmax", name="fc8")(inputs)
    model = keras.Model(inputs, Temperature(1.7)(probabilities))
    x = np.random.default_rng(0).normal(size=(6, 3)).astype("float32")
    dense = model.get_layer("fc8")
    logits = x @ keras.ops.convert_to_numpy(dense.kernel) + keras.ops.convert_to_numpy(dense.bias)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), keras.ops.convert_to_numpy(keras.ops.softmax(logits / 1.7)), atol=1e-6
    )
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert temperature_of(loaded) == pytest.approx(1.7)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-7)
    with pytest.raises(ValueError, match="positive, finite"):
        Temperature(0.0)
