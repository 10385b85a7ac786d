"""The tf.data pipelines (datasets/pipeline.py): balanced sampling's order."""

import numpy as np

from keras_alexnet.datasets.pipeline import balanced_order


def test_balanced_order_evens_every_batch_and_repeats_from_seed_and_epoch():
    labels = np.array([0] * 100 + [1] * 10)
    order = balanced_order(labels, seed=3, epoch=2)
    assert len(order) == len(labels)
    for start in range(0, len(order) - 8, 8):  # any batch of 8: 4 of each class
        assert np.bincount(labels[order[start : start + 8]], minlength=2).tolist() == [4, 4]
    assert set(order[labels[order] == 1]) == set(range(100, 110))  # every minority image, repeated
    np.testing.assert_array_equal(order, balanced_order(labels, seed=3, epoch=2))
    assert not np.array_equal(order, balanced_order(labels, seed=3, epoch=3))
