"""The adaptive average pooling layer equals torch's, for static and unknown shapes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet.layers import AdaptiveAveragePooling2D


@pytest.mark.parametrize("height, width", [(1, 1), (2, 9), (5, 6), (6, 6), (7, 13), (13, 13), (20, 31)])
def test_equals_torch_adaptive_avg_pool(torch_modules, height, width):
    torch, _ = torch_modules
    x = np.random.default_rng(height * 100 + width).normal(size=(2, height, width, 4)).astype(np.float32)
    expected = torch.nn.AdaptiveAvgPool2d((6, 6))(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    layer = AdaptiveAveragePooling2D((6, 6))
    np.testing.assert_allclose(layer(x), expected, rtol=1e-6, atol=1e-6)
    traced = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 4))])
    np.testing.assert_allclose(traced(x), expected, rtol=1e-6, atol=1e-6)


def test_config_round_trip():
    inp = keras.Input((None, None, 2))
    model = keras.Model(inp, AdaptiveAveragePooling2D(3)(inp))
    clone = keras.Model.from_config(model.get_config())
    assert clone.layers[-1].output_size == (3, 3)
