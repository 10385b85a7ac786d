"""The activation cache's batches: the orders of the image pipeline, and each worker's rows of them."""

import numpy as np
import pytest

from keras_alexnet.training.activation_cache import CachedActivations


def _cache(count):
    features = np.arange(count, dtype=np.float32).reshape(count, 1)  # each row holds its own index
    return CachedActivations(features, np.arange(count, dtype=np.int32) % 2, on_disk=False)


@pytest.mark.parametrize("count", [13, 14])
def test_two_workers_take_the_rows_of_each_global_batch_one_process_takes(count):
    """Issue 36: --cache-activations on workers. Worker i's k-th batch is every second row of one process's
    k-th global batch, starting at row i; a last global batch of fewer rows than workers is left out."""
    cache, workers, per_worker = _cache(count), 2, 3
    whole = [
        batch[0].numpy().ravel() for batch in cache.dataset(per_worker * workers, True, seed=5, epochs=2, start_epoch=1)
    ]
    shares = [
        [
            batch[0].numpy().ravel()
            for batch in cache.dataset(per_worker, True, seed=5, epochs=2, start_epoch=1, shard=(workers, index))
        ]
        for index in range(workers)
    ]
    assert len(shares[0]) == len(shares[1]) == (2 if count == 13 else 3)  # 13 rows: the 1-row batch is left out
    for step, global_batch in enumerate(whole[: len(shares[0])]):
        for index in range(workers):
            np.testing.assert_array_equal(shares[index][step], global_batch[index::workers])
    assert sorted(np.concatenate(whole)) == list(range(count))  # one process: every row once in the epoch
    with pytest.raises(ValueError, match="shard splits training epochs"):
        cache.dataset(3, False, shard=(2, 0))
