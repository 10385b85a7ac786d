"""An HDF5 file from elsewhere is data (_utils/hdf5.py): a weights file that points at another file is refused."""

import h5py
import keras
import numpy as np
import pytest

from keras_alexnet import TINY, AlexNet
from keras_alexnet._utils.hdf5 import references_elsewhere


def _weights_file(tmp_path):
    keras.utils.set_random_seed(0)
    model = AlexNet(weights=None, classes=2, architecture=TINY)
    path = tmp_path / "mine.weights.h5"
    model.save_weights(path)
    with h5py.File(path, "r") as handle:
        bias = next(name for name in _datasets(handle) if handle[name].ndim == 1)
    return path, bias


def _datasets(handle):
    found = []
    handle.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
    return found


@pytest.mark.parametrize("kind", ["external", "virtual", "link"])
def test_a_weights_file_that_points_at_another_file_is_refused(kind, tmp_path):
    path, bias = _weights_file(tmp_path)
    assert AlexNet(weights=str(path), classes=2, architecture=TINY)  # as saved, it loads
    secret = tmp_path / "secret.bin"
    with h5py.File(path, "a") as handle:
        size = handle[bias].shape[0]
        del handle[bias]
        if kind == "external":
            secret.write_bytes(b"secrets!" * size)
            handle.create_dataset(bias, shape=(size,), dtype="float32", external=[(str(secret), 0, 4 * size)])
        elif kind == "virtual":
            with h5py.File(secret, "w") as other:
                other["x"] = np.ones(size, np.float32)
            layout = h5py.VirtualLayout(shape=(size,), dtype="float32")
            layout[:] = h5py.VirtualSource(str(secret), "x", shape=(size,))
            handle.create_virtual_dataset(bias, layout)
        else:
            with h5py.File(secret, "w") as other:
                other["x"] = np.ones(size, np.float32)
            handle[bias] = h5py.ExternalLink(str(secret), "x")
    with h5py.File(path, "r") as handle:
        assert references_elsewhere(handle)[0][0] == f"/{bias}"
    with pytest.raises(ValueError, match=f"is refused: /{bias} is an? .*never another file"):
        AlexNet(weights=str(path), classes=2, architecture=TINY)
