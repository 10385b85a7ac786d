"""Run by test_distributed.py: one worker of a two-process MultiWorkerMirroredStrategy
cluster on loopback, trained with keras_alexnet.training.distributed.distributed_fit. Each worker
reads half of every global batch of 16, so the averaged gradients equal one device's
and so must the trained weights (compared with model.fit on one device), with per-example
class weights (``--class-weight``) in the examples."""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ports, index = sys.argv[1].split(","), int(sys.argv[2])
os.environ["TF_CONFIG"] = json.dumps(
    {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

strategy = tf.distribute.MultiWorkerMirroredStrategy()

from tiny_model import build_factored  # noqa: E402

from keras_alexnet.datasets.class_weights import class_weights, weighted  # noqa: E402
from keras_alexnet.training.distributed import distributed_fit  # noqa: E402

rng = np.random.default_rng(0)
x, y = rng.normal(size=(64, 6)).astype("float32"), rng.choice(3, 64, p=[0.7, 0.2, 0.1])
weights = class_weights("auto", y, ["a", "b", "c"])
examples = weighted(tf.data.Dataset.from_tensor_slices((x, y)), weights)

with strategy.scope():
    distributed = build_factored()
initial_a = distributed.get_layer("a").kernel.numpy().copy()
distributed_fit(distributed, examples, strategy, global_batch_size=16, epochs=3)

single = build_factored()
single.fit(weighted(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), weights), epochs=3, verbose=0)
unweighted = build_factored()
unweighted.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=3, verbose=0)
print(
    json.dumps(
        {
            "workers": strategy.num_replicas_in_sync,
            "a_unchanged": bool(np.array_equal(distributed.get_layer("a").kernel.numpy(), initial_a)),
            "max_diff": max(
                float(np.max(np.abs(u.numpy() - v.numpy()))) for u, v in zip(single.weights, distributed.weights)
            ),
            "weights_matter": max(
                float(np.max(np.abs(u.numpy() - v.numpy()))) for u, v in zip(single.weights, unweighted.weights)
            ),
        }
    )
)
