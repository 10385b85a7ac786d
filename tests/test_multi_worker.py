"""The workers' loop itself, in a process of its own (MultiWorkerMirroredStrategy is made once per process)."""

import subprocess
import sys

import pytest
from conftest import unpickled_in_a_fresh_process

# One worker without TF_CONFIG: the loop as every Ray Train worker runs it, without Ray.
SCRIPT = """
import sys
from pathlib import Path
import tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()
from keras_alexnet.datasets import generate_shapes
from keras_alexnet.options import TrainingOptions
from keras_alexnet.run_directory import RunDirectory
from keras_alexnet.training.multi_worker import train_worker
from keras_alexnet.training.sets import read_sets
folder = Path(sys.argv[1])
data = generate_shapes(folder / "data", per_class=6, size=72, seed=3)
options = TrainingOptions(
    architecture="tiny", weights=None, batch_size=8, report=False, recipe="frozen-features", epochs=2,
    val_split=0.3, cache_activations=True, cache_memory_limit=0,
)
train_set, val_set = read_sets(data, None, options)
run = RunDirectory(folder / "run")
run.path.mkdir()
fitted = train_worker(train_set, val_set, options, run.path, strategy, chief=True, verbose=0)
print(len(fitted.history["loss"]), sorted(p.name for p in run.activation_cache.rglob("*.npy")))
"""


@pytest.mark.slow
def test_the_workers_loop_trains_on_the_cached_activations(tmp_path):
    """--cache-activations on workers (issue 36): the frozen layers run once, into the cache (here on disk: a
    memory limit of 0), and the epochs train on it. The equality with one process is test_ray_cluster's."""
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[-2] == "2 ['train.activations.npy']", done.stdout[-2000:]


def test_a_ray_train_workers_process_loads_no_keras_before_its_loop_runs():
    """Ray pickles the workers' function by value (``worker_process.trainable_loop``): unpickled in a fresh
    process it loads neither Keras nor TensorFlow, so each worker imports Keras alone first (test_runtime.py)."""
    from keras_alexnet.training import worker_process

    assert unpickled_in_a_fresh_process(worker_process.trainable_loop()) == ["run", "False", "False"]
