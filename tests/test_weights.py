"""The embedded ImageNet convolution weights and the weights-file loader."""

import numpy as np
import pytest
from conftest import SHARED_NPZ, photo_paths, relative_error

from keras_alexnet import AlexNet, eval_transform
from keras_alexnet.architecture import ALEXNET
from keras_alexnet.conversion import run_torch, torchvision_alexnet
from keras_alexnet.weights import IMAGENET_FEATURES, read_keras_weights, sha256_of


def test_embedded_file_is_the_declared_one():
    path = IMAGENET_FEATURES.path
    assert sha256_of(path) == IMAGENET_FEATURES.sha256
    assert IMAGENET_FEATURES.covers == "features"
    assert set(read_keras_weights(path)) == set(ALEXNET.conv_names)


def _embedded_as_torch_state():
    model = AlexNet(weights="imagenet", include_top=False)
    state = {}
    for index, name in zip((0, 3, 6, 8, 10), ("conv1", "conv2", "conv3", "conv4", "conv5")):
        kernel, bias = model.get_layer(name).get_weights()
        state[f"features.{index}.weight"] = kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        state[f"features.{index}.bias"] = bias
    return state


@pytest.mark.skipif(not SHARED_NPZ.exists(), reason="the source .npz lives in ../shared, not in a user's clone")
def test_embedded_weights_are_the_shared_torchvision_arrays():
    from keras_alexnet.weights import load_npz

    source = load_npz(SHARED_NPZ)
    for key, value in _embedded_as_torch_state().items():
        np.testing.assert_array_equal(value, source[key], err_msg=key)


@pytest.mark.torch
def test_embedded_weights_give_torchvision_pool5_on_real_photos():
    torch_features = torchvision_alexnet(_embedded_as_torch_state(), features_only=True)
    images = np.stack([eval_transform(p) for p in photo_paths(per_class=4)])
    expected = run_torch(torch_features, images.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    model = AlexNet(weights="imagenet", include_top=False)
    got = model.predict(images, verbose=0)
    assert got.shape == (8, 6, 6, 256)
    assert relative_error(expected, got) < 1e-5


def test_embedded_weights_are_trained_features():
    """Trained conv1 filters are smooth edge/colour detectors: far from torch's random init."""
    kernel = AlexNet(weights="imagenet", include_top=False).get_layer("conv1").get_weights()[0]
    assert kernel.shape == (11, 11, 3, 64)
    assert np.abs(kernel).max() > 0.3  # random init is bounded by 1/sqrt(363) = 0.052
    neighbours = np.corrcoef(kernel[:-1].ravel(), kernel[1:].ravel())[0, 1]
    assert neighbours > 0.5  # spatially smooth


def test_full_imagenet_weights_missing_names_the_command():
    with pytest.raises(FileNotFoundError, match="keras-alexnet convert"):
        AlexNet(weights="imagenet")


def test_full_imagenet_weights_from_the_cache(tmp_path, monkeypatch):
    from keras_alexnet.weights import keras_cache_dir

    model = AlexNet(weights=None)
    keras_cache_dir().mkdir(parents=True)
    model.save_weights(keras_cache_dir() / "alexnet_imagenet.weights.h5")
    loaded = AlexNet(weights="imagenet")
    np.testing.assert_array_equal(loaded.get_layer("fc8").get_weights()[0], model.get_layer("fc8").get_weights()[0])


def test_wrong_files_get_clear_errors(tmp_path):
    text = tmp_path / "notes.weights.h5"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        AlexNet(weights=text, include_top=False)
    other = tmp_path / "other.weights.h5"
    import keras

    inp = keras.Input((8,))
    keras.Model(inp, keras.layers.Dense(2)(inp)).save_weights(other)
    with pytest.raises(ValueError, match="does not hold AlexNet weights"):
        AlexNet(weights=other)
    features = IMAGENET_FEATURES.path
    with pytest.raises(ValueError, match="include_top=False"):
        AlexNet(weights=features)


def test_weights_of_another_five_convolution_network_name_the_first_layer_that_differs(tmp_path):
    other = tmp_path / "other_cnn.weights.h5"
    from keras_alexnet import TINY

    AlexNet(weights=None, include_top=False, architecture=TINY).save_weights(other)  # 5 convs, other widths
    with pytest.raises(ValueError) as refused:
        AlexNet(weights=other, include_top=False)
    message = str(refused.value)
    assert "layer conv1 has kernel/bias shapes [(11, 11, 3, 8), (8,)] in the file" in message
    assert "(11, 11, 3, 64)" in message and len(message.splitlines()) == 1 and len(message) < 400


def test_weights_load_into_the_tiny_table_from_its_own_file(tmp_path):
    from keras_alexnet import TINY

    source = AlexNet(weights=None, classes=3, architecture=TINY)
    source.save_weights(tmp_path / "tiny.weights.h5")
    loaded = AlexNet(weights=tmp_path / "tiny.weights.h5", classes=3, architecture=TINY)
    for a, b in zip(source.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize(
    ("shape", "refusal"),
    [((50_000, 25_000), "which no AlexNet layer has"), ((4096, 100_000), "bytes of weights but holds")],
    ids=["5-GB-shape", "1.6-GB-unwritten"],
)
def test_a_weights_file_that_declares_gigabytes_is_refused_before_any_dataset_is_read(shape, refusal, tmp_path):
    import resource

    import h5py

    path = tmp_path / "huge.weights.h5"
    with h5py.File(path, "w") as handle:  # one chunked dataset, never written: a few KB on disk
        handle.create_dataset("layers/dense/vars/0", shape=shape, dtype="float32", chunks=(64, 64))
    assert path.stat().st_size < 64_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match=refusal):
        read_keras_weights(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KB: nothing of it was allocated
