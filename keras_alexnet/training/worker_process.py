"""The function each Ray Train worker of ``train --workers N`` runs (``on_workers``).

Ray pickles it by value (``trainable_loop``), so a worker's process imports nothing of keras-alexnet
before it runs: it first imports Keras as a command's process does (without the extras Keras loads
for features no run uses, TensorFlow's start-up lines hidden: ``runtime.quiet_tensorflow``), then
the worker's loop.
"""

from __future__ import annotations

from keras_alexnet._utils.ray_cluster import pickled_by_value
from keras_alexnet._utils.runtime import quiet_tensorflow


def trainable_loop():
    """``run``, pickled by value: what ``TensorflowTrainer`` takes as its loop."""
    return pickled_by_value(run)


def run(config):
    """One worker: Keras imported alone, then ``on_workers.worker_loop(config)``."""
    with quiet_tensorflow(own_process=True):
        from keras_alexnet.training.on_workers import worker_loop
    worker_loop(config)
