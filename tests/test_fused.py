"""Fused TF update kernels take the same steps as Keras's own optimizers."""

import keras
import numpy as np
import pytest

from keras_alexnet.optimizers import with_lr_factors
from keras_alexnet.optimizers.fused import fused_kernel_name

OPTIMIZERS = {
    "sgd": (lambda: keras.optimizers.SGD(0.1), "ResourceApplyGradientDescent"),
    "momentum": (lambda: keras.optimizers.SGD(0.1, momentum=0.9), "ResourceApplyKerasMomentum"),
    "nesterov": (lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True), "ResourceApplyKerasMomentum"),
    "adam": (lambda: keras.optimizers.Adam(0.01), "ResourceApplyAdam"),
    "adamw": (lambda: keras.optimizers.AdamW(0.01, weight_decay=0.05), "ResourceApplyAdam"),
    "amsgrad": (lambda: keras.optimizers.Adam(0.01, amsgrad=True), None),
    "rmsprop": (lambda: keras.optimizers.RMSprop(0.01), None),
}


def _train(optimizer, steps, jit):
    """Weights after ``steps`` steps of a small model; ``optimizer(model)`` makes the optimizer."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    outputs = keras.layers.Dense(3, name="out")(keras.layers.Dense(8, activation="tanh", name="hidden")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer(model), "mse", jit_compile=jit)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 5)).astype("float32"), rng.normal(size=(16, 3)).astype("float32")
    model.fit(x, y, batch_size=4, epochs=steps // 4, shuffle=False, verbose=0)
    return [w.numpy() for w in model.weights]


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_factored_steps_equal_keras_steps(name, jit):
    make, kernel = OPTIMIZERS[name]
    assert fused_kernel_name(with_lr_factors(make(), {}, keras.Sequential())) == kernel
    expected = _train(lambda model: make(), 8, jit)
    got = _train(lambda model: with_lr_factors(make(), {"hidden": 1.0}, model), 8, jit)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
