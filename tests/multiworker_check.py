"""Run by test_distribute.py: one worker of a two-process MultiWorkerMirroredStrategy
cluster on loopback, trained with keras_alexnet.training.distributed.distributed_fit. Each worker
reads half of every global batch of 16, so the averaged gradients equal one device's
and so must the trained weights (compared with model.fit on one device)."""

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

from keras_alexnet.training.distributed import distributed_fit  # noqa: E402

rng = np.random.default_rng(0)
x, y = rng.normal(size=(64, 6)).astype("float32"), rng.integers(0, 3, 64)
examples = tf.data.Dataset.from_tensor_slices((x, y))

with strategy.scope():
    distributed = build_factored()
initial_a = distributed.get_layer("a").kernel.numpy().copy()
distributed_fit(distributed, examples, strategy, global_batch_size=16, epochs=3)

single = build_factored()
single.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=3, verbose=0)
print(
    json.dumps(
        {
            "workers": strategy.num_replicas_in_sync,
            "a_unchanged": bool(np.array_equal(distributed.get_layer("a").kernel.numpy(), initial_a)),
            "max_diff": max(
                float(np.max(np.abs(u.numpy() - v.numpy()))) for u, v in zip(single.weights, distributed.weights)
            ),
        }
    )
)
