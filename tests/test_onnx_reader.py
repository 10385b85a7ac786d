"""ONNX -> Keras: numerical parity with PyTorch and ONNX Runtime, and bad files."""

import numpy as np
import onnx
import pytest
from conftest import relative_error

from keras_alexnet import AlexNet
from keras_alexnet.conversion import export_onnx, run_onnxruntime, run_torch, torchvision_alexnet
from keras_alexnet.weights.onnx_reader import read_torch_layers

TOLERANCE = 1e-5  # max |a - b| / max |reference|, float32 on CPU


@pytest.fixture(scope="module")
def onnx_by_size(seeded_conversion, tmp_path_factory):
    """ONNX files for each test size (the exporter specialises spatial sizes)."""
    torch_model, onnx_224, _ = seeded_conversion
    files = {224: onnx_224}
    for size in (256, 63):
        files[size] = export_onnx(torch_model, tmp_path_factory.mktemp(f"onnx{size}") / "a.onnx", image_size=size)
    return files


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("size", [224, 256, 63])
def test_keras_equals_pytorch_and_onnxruntime(seeded_conversion, onnx_by_size, batch, size):
    torch_model, _, keras_model = seeded_conversion
    x = np.random.default_rng(size + batch).standard_normal((batch, 3, size, size)).astype(np.float32)
    expected = run_torch(torch_model, x)
    from_ort = run_onnxruntime(onnx_by_size[size], x)
    from_keras = np.asarray(keras_model(x.transpose(0, 2, 3, 1), training=False))
    assert from_keras.shape == expected.shape == (batch, 1000)
    assert relative_error(expected, from_keras) < TOLERANCE
    assert relative_error(expected, from_ort) < TOLERANCE
    assert relative_error(from_ort, from_keras) < TOLERANCE


def test_features_only_onnx_gives_pool5(seeded_state, tmp_path):
    features = torchvision_alexnet({k: v for k, v in seeded_state.items() if k.startswith("features")}, True)
    path = export_onnx(features, tmp_path / "f.onnx")
    model = AlexNet(weights=path, include_top=False)
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    expected = run_torch(features, x).transpose(0, 2, 3, 1)
    assert relative_error(expected, model(x.transpose(0, 2, 3, 1))) < TOLERANCE
    with pytest.raises(ValueError, match="only the convolution layers"):
        AlexNet(weights=path)


def test_matching_is_by_structure_not_names(seeded_conversion, tmp_path):
    _, onnx_path, keras_model = seeded_conversion
    proto = onnx.load(str(onnx_path))
    renames = {t.name: f"t{i}" for i, t in enumerate(proto.graph.initializer)}
    for tensor in proto.graph.initializer:
        tensor.name = renames[tensor.name]
    for node in proto.graph.node:
        node.name = ""
        node.input[:] = [renames.get(n, n) for n in node.input]
    anonymous = tmp_path / "anonymous.onnx"
    onnx.save(proto, str(anonymous))
    model = AlexNet(weights=anonymous, classifier_activation=None)
    for name in ("conv1", "fc6", "fc8"):
        for a, b in zip(model.get_layer(name).get_weights(), keras_model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_fc6_columns_are_reordered_from_chw_to_hwc(seeded_state, seeded_conversion):
    _, _, keras_model = seeded_conversion
    kernel = keras_model.get_layer("fc6").get_weights()[0]
    torch_weight = seeded_state["classifier.1.weight"]
    # Keras row (h, w, c) must be torch column (c, h, w)
    for h, w, c in [(0, 0, 0), (2, 5, 17), (5, 5, 255)]:
        np.testing.assert_array_equal(kernel[(h * 6 + w) * 256 + c], torch_weight[:, c * 36 + h * 6 + w])


def _mutated(onnx_path, tmp_path, mutate):
    proto = onnx.load(str(onnx_path))
    mutate(proto.graph)
    path = tmp_path / "bad.onnx"
    onnx.save(proto, str(path))
    return path


def test_missing_conv_is_named(seeded_conversion, tmp_path):
    def drop_last_conv(graph):
        convs = [n for n in graph.node if n.op_type == "Conv"]
        convs[-1].op_type = "Relu"

    path = _mutated(seeded_conversion[1], tmp_path, drop_last_conv)
    with pytest.raises(ValueError, match="4 Conv nodes, AlexNet has 5"):
        read_torch_layers(path)


def test_wrong_shape_is_named(seeded_conversion, tmp_path):
    def shrink_conv2(graph):
        conv2 = [n for n in graph.node if n.op_type == "Conv"][1]
        tensor = next(t for t in graph.initializer if t.name == conv2.input[1])
        arr = onnx.numpy_helper.to_array(tensor)[:100]
        tensor.CopyFrom(onnx.numpy_helper.from_array(arr, tensor.name))

    path = _mutated(seeded_conversion[1], tmp_path, shrink_conv2)
    with pytest.raises(ValueError, match=r"AlexNet conv2 needs \(192, 64, 5, 5\)"):
        read_torch_layers(path)


def test_not_an_onnx_file(tmp_path):
    path = tmp_path / "x.onnx"
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="not a readable ONNX file|Conv nodes"):
        AlexNet(weights=path, include_top=False)


def test_classes_mismatch_names_the_fix(seeded_conversion):
    with pytest.raises(ValueError, match="Pass classes=1000"):
        AlexNet(weights=seeded_conversion[1], classes=10)
