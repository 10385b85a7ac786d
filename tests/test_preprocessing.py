"""Preprocessing equals torchvision's ImageNet eval transform; decoding; image errors."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import photo_paths
from PIL import Image

from keras_alexnet import (
    decode_predictions,
    eval_transform,
    imagenet_class_names,
    imagenet_eval_layers,
    load_image,
    preprocess_input,
)


@pytest.fixture(scope="module")
def torchvision_transform(torch_modules):
    _, torchvision = torch_modules
    return torchvision.models.AlexNet_Weights.IMAGENET1K_V1.transforms()


def _odd_sized_images():
    rng = np.random.default_rng(0)
    yield from (load_image(p) for p in photo_paths(per_class=2))  # real 100x100 photos
    for shape in [(300, 451), (480, 257), (97, 63)]:  # landscape, portrait, tiny
        yield Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8))


def test_eval_transform_is_bit_identical_to_torchvision(torchvision_transform):
    for image in _odd_sized_images():
        expected = torchvision_transform(image).numpy().transpose(1, 2, 0)
        np.testing.assert_array_equal(eval_transform(image), expected)


def test_keras_layers_match_torchvision_within_resize_rounding(torchvision_transform):
    layers = imagenet_eval_layers()
    for image in _odd_sized_images():
        expected = torchvision_transform(image).numpy().transpose(1, 2, 0)
        got = np.asarray(layers(np.asarray(image)[None]))[0]
        assert got.shape == (224, 224, 3)
        # PIL rounds resized pixels to uint8 and uses fixed-point filter weights;
        # TensorFlow keeps floats: differences stay within a few grey levels.
        assert np.abs(got - expected).max() < 4 / 255 / 0.225
        assert np.abs(got - expected).mean() < 0.5 / 255 / 0.225


def test_keras_layers_run_in_parallel_tf_data_pipelines():
    layers = imagenet_eval_layers()
    images = np.random.default_rng(1).integers(0, 256, (4, 120, 90, 3), dtype=np.uint8)
    for _ in range(2):  # a second pipeline reuses the same layers
        ds = tf.data.Dataset.from_tensor_slices(images).batch(2).map(layers, num_parallel_calls=2)
        assert [b.shape for b in ds] == [(2, 224, 224, 3)] * 2


def test_preprocess_input_normalises_with_imagenet_statistics():
    x = np.full((1, 2, 2, 3), 255.0)
    np.testing.assert_allclose(
        preprocess_input(x)[0, 0, 0], [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225], rtol=1e-6
    )
    with pytest.raises(ValueError, match="channels last"):
        preprocess_input(np.zeros((1, 3, 8, 8)))


def test_decode_predictions():
    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[207] == "golden retriever"
    preds = np.zeros((2, 1000))
    preds[0, 207], preds[0, 3] = 0.9, 0.1
    preds[1, 999] = 1.0
    decoded = decode_predictions(preds, top=2)
    assert decoded[0] == [(207, "golden retriever", 0.9), (3, names[3], 0.1)]
    assert decoded[1][0] == (999, names[999], 1.0)
    assert decode_predictions(np.array([[0.2, 0.8]]), top=1, class_names=["cat", "dog"]) == [[(1, "dog", 0.8)]]
    with pytest.raises(ValueError, match="class_names"):
        decode_predictions(np.zeros((1, 10)))


def test_image_modes_become_rgb(tmp_path):
    for mode in ("L", "P", "RGBA", "LA"):
        path = tmp_path / f"{mode}.png"
        Image.new(mode, (70, 80)).save(path)
        image = load_image(path)
        assert image.mode == "RGB" and image.size == (70, 80)


def test_corrupt_and_missing_images_name_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        load_image(bad)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ValueError, match="uint8"):
        eval_transform(np.zeros((10, 10, 3), np.float32))
