"""The architecture table: the one place AlexNet's facts are written, checked against torchvision."""

import pytest

from keras_alexnet import AlexNet
from keras_alexnet.architecture import ALEXNET, TINY, architecture_of


def test_derived_facts():
    assert ALEXNET.conv_names == ("conv1", "conv2", "conv3", "conv4", "conv5")
    assert ALEXNET.dense_names == ("fc6", "fc7", "fc8")
    assert ALEXNET.features_output == "pool5"
    assert ALEXNET.flat_features == 9216
    assert ALEXNET.group_sizes == {"features": 13, "classifier": 7}
    assert ALEXNET.min_input_size == 63 and ALEXNET.features_size(63) == 1 and ALEXNET.features_size(62) == 0
    assert ALEXNET.features_size(224) == 6
    assert ALEXNET.state_dict_keys["conv5"] == ("features.10.weight", "features.10.bias")
    assert ALEXNET.state_dict_keys["fc8"] == ("classifier.6.weight", "classifier.6.bias")


@pytest.mark.torch
def test_table_is_torchvision_alexnet(torch_modules):
    """Module paths, kinds and weight shapes equal torchvision's own model."""
    torch, torchvision = torch_modules
    model = torchvision.models.alexnet(weights=None, num_classes=7)
    modules = dict(model.named_modules())
    expected_kind = {
        "conv": torch.nn.Conv2d,
        "pool": torch.nn.MaxPool2d,
        "drop": torch.nn.Dropout,
        "fc": (torch.nn.Linear, torch.nn.ReLU),
        "avgpool": torch.nn.AdaptiveAvgPool2d,
    }
    assert set(ALEXNET.torchvision_modules) == {
        p for p in modules if p.count(".") <= 1 and p not in ("", "features", "classifier")
    }
    for path, layer in ALEXNET.torchvision_modules.items():
        kind = next(k for k in expected_kind if layer.startswith(k))
        allowed = expected_kind[kind] if kind != "conv" else (torch.nn.Conv2d, torch.nn.ReLU)
        assert isinstance(modules[path], allowed), path
    state = model.state_dict()
    for layer, shape in ALEXNET.torch_shapes(classes=7).items():
        weight_key, bias_key = ALEXNET.state_dict_keys[layer]
        assert tuple(state[weight_key].shape) == shape and state[bias_key].shape[0] == shape[0], layer
    for conv in ALEXNET.convolutions:
        module = modules[ALEXNET.state_dict_keys[conv.name][0].rsplit(".", 1)[0]]
        assert (module.stride[0], module.padding[0], module.kernel_size[0]) == (conv.stride, conv.padding, conv.kernel)


@pytest.mark.parametrize("architecture", [ALEXNET, TINY], ids=["alexnet", "tiny"])
def test_the_builder_follows_the_table(architecture):
    model = AlexNet(weights=None, classes=5, architecture=architecture, input_shape=(96, 96, 3))
    names = [layer.name for layer in model.layers]
    assert set(architecture.torchvision_modules.values()) <= set(names)
    for name, shape in architecture.keras_shapes(classes=5).items():
        assert tuple(model.get_layer(name).kernel.shape) == shape, name
    assert architecture_of(model) is architecture


def test_tiny_is_small():
    assert AlexNet(weights=None, classes=2, architecture=TINY).count_params() < 50_000
    assert TINY.torchvision_modules == ALEXNET.torchvision_modules
    assert TINY.min_input_size == ALEXNET.min_input_size
