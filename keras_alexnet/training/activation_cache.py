"""Train on cached activations of the frozen part of a model (the activation cache).

When the first layers are frozen (the most common recipe), their output is the
same every epoch: computing it again is waste. ``split_frozen_prefix`` cuts the
model after its last leading frozen layer; ``cache_activations`` runs the frozen
part once over a dataset, keeping the activations in memory or, past a memory
budget, in a file on disk (optionally float16). The rest of the model shares its
layers with the full model, so training the rest trains the full model.

Rule for augmentation: random augmentation changes the frozen part's input every
epoch, so cached features would freeze one random draw. Caching is refused
unless the pipeline is deterministic (augment "none").
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet import _keras_compat
from keras_alexnet._utils.files import atomic_write
from keras_alexnet._utils.runtime import process_alive
from keras_alexnet.datasets.pipeline import epochs_of, shard_of, without_autotune
from keras_alexnet.options import DEFAULT_CACHE_MEMORY_LIMIT


def split_frozen_prefix(model):
    """(prefix, rest) around the last layer of the leading frozen chain, or None.

    The prefix is the chain of frozen layers from the input (each feeding the next,
    no dropout); the rest is the model from the prefix's output on, sharing its layers
    with ``model``. The cut is the last point of that chain through which everything
    after it passes: pool5 for AlexNet's own classifier as for a head with branches.
    """
    layers = model.layers[1:]  # after the InputLayer
    chain = []
    previous = model.inputs[0]
    for layer in layers:
        if layer.weights and (layer.trainable and any(v.trainable for v in layer.weights)):
            break
        if isinstance(layer, keras.layers.Dropout):
            break  # dropout draws randomness each epoch
        if _keras_compat.inbound_node_count(layer) != 1 or layer.input is not previous:
            break  # the chain branches or joins here
        chain.append(layer)
        previous = layer.output
    for cut in reversed(chain):
        if cut is layers[-1]:
            continue
        try:
            rest = keras.Model(cut.output, model.outputs, name=f"{model.name}_rest")
        except ValueError:  # something after the cut needs a tensor from before it
            continue
        prefix = keras.Model(model.inputs, cut.output, name=f"{model.name}_frozen")
        return prefix, rest
    return None


@dataclasses.dataclass
class CachedActivations:
    """Activations of the frozen prefix with their labels."""

    features: np.ndarray  # may be a np.memmap on disk
    labels: np.ndarray
    on_disk: bool

    @property
    def nbytes(self):
        return int(self.features.nbytes)

    def dataset(self, batch_size, training, seed=0, epochs=None, start_epoch=0, balanced=False, shard=None):
        """A tf.data pipeline over the cache, shuffled like the image pipeline.

        With ``epochs`` (training), epochs ``start_epoch`` .. ``epochs - 1`` in the
        orders ``ImageFolder.dataset`` uses for the same seed: cached and uncached
        training see the same batches, and a resumed run the ones it would have seen.
        ``balanced`` (with ``epochs``): every batch drawn evenly over the classes, as there.
        ``shard`` (with ``epochs``): ``(workers, index)``, this worker's rows of each global batch of
        ``batch_size * workers``, as ``ImageFolder.dataset`` shards the images.
        """
        count = len(self.labels)
        features, labels = self.features, self.labels
        shape = features.shape[1:]

        def fetch(indices):
            return features[indices].astype(np.float32), labels[indices]

        def batches(indices):
            ds = indices.batch(batch_size).map(
                lambda i: tf.numpy_function(fetch, [i], (tf.float32, tf.int32)), num_parallel_calls=tf.data.AUTOTUNE
            )
            return ds.map(lambda x, y: (tf.ensure_shape(x, (None, *shape)), tf.ensure_shape(y, (None,))))

        if training and epochs is not None:
            return epochs_of(
                count,
                seed,
                epochs,
                start_epoch,
                lambda epoch, order: batches(
                    tf.data.Dataset.from_tensor_slices(shard_of(order, count, batch_size, shard))
                ),
                self.labels if balanced else None,
            )
        if shard is not None:
            raise ValueError("shard splits training epochs: give training=True and epochs.")
        if self.on_disk:
            # Stream from the memory-mapped file instead of copying it into a tensor.
            def rows():
                yield from range(count)

            ds = tf.data.Dataset.from_generator(rows, output_signature=tf.TensorSpec((), tf.int64))
            # A generator's length is unknown to Keras, which then reads past its end once per
            # validation and warns "Your input ran out of data; interrupting training".
            ds = ds.apply(tf.data.experimental.assert_cardinality(count))
        else:
            ds = tf.data.Dataset.range(count)
        if training:
            ds = ds.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        return without_autotune(batches(ds).prefetch(tf.data.AUTOTUNE))


def cache_activations(
    prefix,
    images,
    labels_dtype=np.int32,
    dtype="float32",
    memory_limit=DEFAULT_CACHE_MEMORY_LIMIT,
    directory=None,
    name="train",
    count=None,
):
    """Run ``prefix`` once over an unshuffled (image, label) batch dataset.

    Memory: at most ``memory_limit`` bytes of activations in RAM; a larger cache
    goes to ``directory/<name>.activations.npy`` (required then). float16 halves it.
    ``count``: the number of examples, if known (else the labels are counted first).
    The activations' shape comes from the first batch, so prefixes whose output size
    depends on the input size (pool5 of a model with any input size) work.
    """
    if count is None:
        count = int(sum(int(y.shape[0]) for _, y in images))
    features = labels = None
    on_disk = False
    position = 0
    for x, y in images:
        batch = np.asarray(prefix(x, training=False))
        if features is None:
            features, on_disk = _allocate((count, *batch.shape[1:]), dtype, memory_limit, directory, name)
            labels = np.empty(count, labels_dtype)
        n = int(y.shape[0])
        features[position : position + n] = batch.astype(dtype)
        labels[position : position + n] = np.asarray(y)
        position += n
    if features is None:
        raise ValueError("the activation cache got no batches: the data set is empty.")
    if on_disk:
        features.flush()
    return CachedActivations(features, labels, on_disk)


def _allocate(shape, dtype, memory_limit, directory, name):
    """An array for the cache: in memory up to ``memory_limit`` bytes, else a file in ``directory``."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if nbytes <= memory_limit:
        return np.empty(shape, dtype), False
    if directory is None:
        raise ValueError(
            f"the activation cache needs {nbytes / 2**20:.0f} MiB, over the {memory_limit / 2**20:.0f} MiB memory "
            "limit: give a directory for the on-disk cache."
        )
    Path(directory).mkdir(parents=True, exist_ok=True)
    path = Path(directory) / f"{name}.activations.npy"
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape), True


def _shared_paths(directory, key):
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:24]
    return Path(directory) / f"{digest}.features.npy", Path(directory) / f"{digest}.labels.npy"


# A process computing a shared cache holds "<digest>.computing" (its host and PID): others wait for the
# cache instead of computing it too (two trials of a comparison that start together). A lock whose
# process is gone, or older than this, is taken over (its node was lost).
STALE_LOCK_SECONDS = 15 * 60


def claim_shared_activations(directory, key, poll=0.5):
    """``(cache, None)`` when another process saved the cache under ``key`` (waiting while one computes it),
    else ``(None, lock)``: this process computes it, saves it, then removes ``lock``."""
    features_path, _ = _shared_paths(directory, key)
    lock = features_path.with_name(features_path.name.replace(".features.npy", ".computing"))
    Path(directory).mkdir(parents=True, exist_ok=True)
    me = f"{socket.gethostname()} {os.getpid()}"
    while True:
        found = load_shared_activations(directory, key)
        if found is not None:
            return found, None
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _stale(lock):
                lock.unlink(missing_ok=True)
            else:
                time.sleep(poll)
            continue
        with os.fdopen(handle, "w") as file:
            file.write(me)
        return None, lock


def _stale(lock):
    try:
        host, pid = lock.read_text().split()
        age = time.time() - lock.stat().st_mtime
    except (OSError, ValueError):
        return False  # being written, or gone already
    if host == socket.gethostname() and not process_alive(int(pid)):
        return True
    return age > STALE_LOCK_SECONDS


def save_shared_activations(directory, key, activations):
    """Keep a cache in ``directory`` for other processes (labels last: their file marks it complete)."""
    features_path, labels_path = _shared_paths(directory, key)
    atomic_write(features_path, lambda tmp: np.save(tmp, np.asarray(activations.features)))
    atomic_write(labels_path, lambda tmp: np.save(tmp, activations.labels))


def load_shared_activations(directory, key):
    """A cache another process saved under ``key`` (memory-mapped), or None."""
    features_path, labels_path = _shared_paths(directory, key)
    if not labels_path.exists():
        return None
    return CachedActivations(np.load(features_path, mmap_mode="r"), np.load(labels_path), on_disk=True)
