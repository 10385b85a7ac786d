"""Run by test_distributed.py in a fresh process: MirroredStrategy over two logical CPU
devices trains with learning-rate factors and per-example class weights exactly like one
device does."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from tiny_model import build_factored  # noqa: E402

from keras_alexnet.datasets.class_weights import class_weights, weighted  # noqa: E402

rng = np.random.default_rng(0)
x, y = rng.normal(size=(64, 6)).astype("float32"), rng.choice(3, 64, p=[0.7, 0.2, 0.1])
data = weighted(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), class_weights("auto", y, ["a", "b", "c"]))

single = build_factored()
initial_a = single.get_layer("a").kernel.numpy().copy()
single.fit(data, epochs=3, verbose=0)

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    mirrored = build_factored()
mirrored.fit(data, epochs=3, verbose=0)

print(
    json.dumps(
        {
            "replicas": strategy.num_replicas_in_sync,
            "a_unchanged": bool(np.array_equal(mirrored.get_layer("a").kernel.numpy(), initial_a)),
            "max_diff": max(
                float(np.max(np.abs(u.numpy() - v.numpy()))) for u, v in zip(single.weights, mirrored.weights)
            ),
            "moved": float(
                np.max(np.abs(mirrored.get_layer("c").kernel.numpy() - build_factored().get_layer("c").kernel.numpy()))
            ),
        }
    )
)
