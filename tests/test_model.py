"""The builder: architecture, shapes, argument validation, serialization."""

import json
import zipfile

import keras
import numpy as np
import pytest
from conftest import solid_image
from harness import run_model_saving_test

from keras_alexnet import TORCHVISION_MODULES, AlexNet, apply_recipe, replace_head
from keras_alexnet.architecture import ALEXNET, TINY
from keras_alexnet.cli import main
from keras_alexnet.model import load_model

SHAPES = {"per_class": 4, "size": 64, "seed": 2}  # conftest.shapes_dir


def test_full_model_matches_torchvision_architecture(torch_modules):
    torch, torchvision = torch_modules
    model = AlexNet(weights=None)
    reference = torchvision.models.alexnet(weights=None)
    assert model.count_params() == sum(p.numel() for p in reference.parameters()) == 61_100_840
    assert [layer.name for layer in model.layers if layer.weights] == [
        "conv1",
        "conv2",
        "conv3",
        "conv4",
        "conv5",
        "fc6",
        "fc7",
        "fc8",
    ]
    assert model.get_layer("drop6").rate == model.get_layer("drop7").rate == 0.5
    for path, module in reference.named_modules():
        if path in TORCHVISION_MODULES and hasattr(module, "weight"):
            layer = model.get_layer(TORCHVISION_MODULES[path])
            assert int(np.prod(layer.kernel.shape)) == module.weight.numel(), path


@pytest.mark.parametrize("size, pool5", [(63, 1), (224, 6), (256, 7), (300, 8)])
def test_any_input_of_at_least_63_pixels(size, pool5):
    features = AlexNet(weights=None, include_top=False)
    assert features(np.zeros((1, size, size, 3), "float32")).shape == (1, pool5, pool5, 256)
    full = AlexNet(weights=None, classes=7, classifier_activation=None)
    assert full(np.zeros((2, size, size + 5, 3), "float32")).shape == (2, 7)


@pytest.mark.parametrize("pooling, shape", [(None, (1, 6, 6, 256)), ("avg", (1, 256)), ("max", (1, 256))])
def test_pooling_options(pooling, shape):
    model = AlexNet(weights=None, include_top=False, pooling=pooling, input_shape=(224, 224, 3))
    assert model(np.ones((1, 224, 224, 3), "float32")).shape == shape


def test_softmax_head_sums_to_one():
    model = AlexNet(weights=None, classes=5, input_shape=(96, 96, 3))
    probs = np.asarray(model(np.random.default_rng(0).normal(size=(3, 96, 96, 3)).astype("float32")))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_input_tensor_is_used():
    inp = keras.Input((128, 128, 3))
    model = AlexNet(weights=None, include_top=False, input_tensor=inp)
    assert model.inputs[0] is inp


def test_torch_like_initialisation_bounds():
    model = AlexNet(weights=None)
    for name, fan_in in [("conv1", 3 * 121), ("conv2", 64 * 25), ("fc6", 9216), ("fc8", 4096)]:
        kernel, bias = model.get_layer(name).get_weights()
        bound = 1 / np.sqrt(fan_in)
        assert max(np.abs(kernel).max(), np.abs(bias).max()) <= bound * (1 + 1e-6)  # float32 rounding
        # U(-b, b) has std b/sqrt(3); a wrong initialiser would miss by far more than 10%
        assert abs(kernel.std() - bound / np.sqrt(3)) < 0.1 * bound


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(weights="imagenet", include_top=True, classes=10), "classes=10"),
        (dict(weights="nonsense"), "does not exist"),
        (dict(weights=3), "weights=3"),
        (dict(weights=None, input_shape=(62, 224, 3)), "at least 63"),
        (dict(weights=None, input_shape=(224, 224)), "(height, width, channels)"),
        (dict(weights="imagenet", include_top=False, input_shape=(224, 224, 1)), "1 channels"),
        (dict(weights=None, include_top=False, pooling="mean"), "pooling='mean'"),
        (dict(weights=None, include_top=True, pooling="avg"), "include_top=False"),
        (dict(weights=None, classes=0), "classes=0"),
    ],
)
def test_bad_arguments_get_clear_errors(kwargs, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message.replace("(", r"\(").replace(")", r"\)")):
        AlexNet(**kwargs)


def test_grayscale_from_scratch_is_allowed():
    model = AlexNet(weights=None, include_top=False, input_shape=(64, 64, 1))
    assert model.get_layer("conv1").kernel.shape == (11, 11, 1, 64)


@pytest.mark.parametrize("architecture", [ALEXNET, TINY], ids=["alexnet", "tiny"])
def test_keras_file_round_trip(tmp_path, architecture):
    model = AlexNet(weights=None, classes=3, input_shape=(80, 80, 3), architecture=architecture)
    x = np.random.default_rng(1).normal(size=(2, 80, 80, 3)).astype("float32")
    loaded = run_model_saving_test(model, x, tmp_path, rtol=0, atol=0)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_replaced_and_recipe_heads_round_trip(tmp_path):
    x = np.random.default_rng(4).normal(size=(2, 70, 70, 3)).astype("float32")
    features = AlexNet(weights=None, include_top=False, input_shape=(70, 70, 3), architecture=TINY)
    custom = replace_head(features, layers=[keras.layers.Dense(3, activation="softmax", name="mine")], name="custom")
    run_model_saving_test(custom, x, tmp_path)
    recipe = apply_recipe(
        AlexNet(weights=None, include_top=False, input_shape=(70, 70, 3), architecture=TINY), "matlab", 4
    )
    run_model_saving_test(recipe, x, tmp_path)


def test_weights_file_round_trip(tmp_path):
    model = AlexNet(weights=None, classes=4, input_shape=(70, 70, 3))
    x = np.random.default_rng(2).normal(size=(2, 70, 70, 3)).astype("float32")
    path = tmp_path / "a.weights.h5"
    model.save_weights(path)
    loaded = AlexNet(weights=path, classes=4, input_shape=(70, 70, 3))
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    features = AlexNet(weights=path, include_top=False)  # conv layers out of a full file
    np.testing.assert_array_equal(
        features.get_layer("conv5").get_weights()[0], model.get_layer("conv5").get_weights()[0]
    )
    with pytest.raises(ValueError, match="classes=4"):
        AlexNet(weights=path, classes=5)


def test_foreign_and_damaged_model_files_are_named_in_one_line(model_file, shapes_dir, tmp_path, capsys):
    foreign = tmp_path / "foreign.keras"
    plain = keras.Sequential([keras.Input((224, 224, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    plain.save(foreign)
    image = str(next(shapes_dir.rglob("*.png")))
    commands = [
        ["predict", "--model", str(foreign), image],
        ["evaluate", "--model", str(foreign), "--data", str(shapes_dir)],
        ["export", "--model", str(foreign), "--format", "savedmodel", "--out", str(tmp_path / "sm")],
        ["explain", "--model", str(foreign), image, "--out", str(tmp_path / "x")],
    ]
    for argv in commands:
        assert main(argv) == 2, argv
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "not an AlexNet keras-alexnet made" in error, error
    assert not (tmp_path / "sm").exists() and not (tmp_path / "x").exists()
    truncated = tmp_path / "truncated.keras"
    data = model_file.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    assert main(["predict", "--model", str(truncated), image]) == 2
    assert "is damaged: a truncated .keras archive" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a .keras model"):
        load_model(solid_image(tmp_path / "picture.png"))


def test_safe_mode_still_refuses_a_lambda_layer(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        load_model(tmp_path / "lambda.keras")


@pytest.mark.parametrize("target", [("os", "system"), ("subprocess", "Popen")])
def test_a_tampered_keras_config_is_refused_in_one_line(model_file, tmp_path, target, capsys):
    with zipfile.ZipFile(model_file) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    layer = config["config"]["layers"][1]
    layer["module"], layer["class_name"], layer["registered_name"] = target[0], target[1], None
    files["config.json"] = json.dumps(config).encode()
    tampered = tmp_path / "tampered.keras"
    with zipfile.ZipFile(tampered, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    image = str(solid_image(tmp_path / "x.png"))
    assert main(["predict", "--model", str(tampered), image]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "is refused: Keras could not rebuild its config safely" in error
    assert target[1] in error


def test_a_keras_archive_whose_config_declares_more_than_a_model_needs_is_refused_before_reading(tmp_path):
    from keras_alexnet.model import MAX_ARCHIVE_TEXT_BYTES

    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", "{}")
        archive.writestr("config.json", "{" + " " * (MAX_ARCHIVE_TEXT_BYTES + 1) + "}")
    assert path.stat().st_size < 1_000_000  # 64 MB of spaces, compressed
    with pytest.raises(ValueError, match="config.json declares 67,108,867 bytes uncompressed"):
        load_model(path)
