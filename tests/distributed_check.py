"""Run by test_distribute.py in a fresh process: MirroredStrategy over two logical CPU
devices trains with learning-rate factors exactly like one device does."""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from keras_alexnet.lr_factors import with_lr_factors  # noqa: E402


def build():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,))
    x = keras.layers.Dense(5, activation="tanh", name="a")(inp)
    x = keras.layers.Dense(4, activation="tanh", name="b")(x)
    model = keras.Model(inp, keras.layers.Dense(3, name="c")(x))
    optimizer = with_lr_factors(keras.optimizers.SGD(0.05, momentum=0.9), {"a": 0.0, "b": (3.0, 0.5), "c": 20.0}, model)
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=sys.argv[1] == "jit")
    return model


rng = np.random.default_rng(0)
x, y = rng.normal(size=(64, 6)).astype("float32"), rng.integers(0, 3, 64)
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)

single = build()
initial_a = single.get_layer("a").kernel.numpy().copy()
single.fit(data, epochs=3, verbose=0)

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    mirrored = build()
mirrored.fit(data, epochs=3, verbose=0)

print(json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "a_unchanged": bool(np.array_equal(mirrored.get_layer("a").kernel.numpy(), initial_a)),
    "max_diff": max(float(np.max(np.abs(u.numpy() - v.numpy()))) for u, v in zip(single.weights, mirrored.weights)),
    "moved": float(np.max(np.abs(mirrored.get_layer("c").kernel.numpy() - build().get_layer("c").kernel.numpy()))),
}))
