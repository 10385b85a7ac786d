"""AlexNet's architecture as one table: every fact about the network is written here once.

The builder (``keras_alexnet.model``), the ONNX and torchvision readers, the
weight-shape checks, torchvision path resolution and the heads all derive from
``ALEXNET``. ``TINY`` is the same graph with few channels, for fast tests.

A leaf module: it imports nothing from the package, Keras or TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools


@dataclasses.dataclass(frozen=True)
class Convolution:
    """One convolution of torchvision's ``features`` (ReLU after it, max-pool optional).

    ``padding`` is torchvision's symmetric zero padding; ``pool`` names the 3x3/2
    max-pool that follows, if any.
    """

    name: str
    filters: int
    kernel: int
    stride: int
    padding: int
    pool: str | None = None


@dataclasses.dataclass(frozen=True)
class Architecture:
    """torchvision's AlexNet: ``features`` (convolutions), ``avgpool``, ``classifier``."""

    convolutions: tuple[Convolution, ...]
    hidden_units: tuple[int, ...] = (4096, 4096)  # fc6, fc7
    dropout: float = 0.5
    pooled_size: int = 6  # avgpool's output side
    pool_kernel: int = 3
    pool_stride: int = 2
    channels: int = 3
    imagenet_classes: int = 1000

    # -- layer names ---------------------------------------------------------------------
    @property
    def conv_names(self) -> tuple[str, ...]:
        return tuple(conv.name for conv in self.convolutions)

    @property
    def hidden_names(self) -> tuple[str, ...]:
        return tuple(f"fc{len(self.convolutions) + 1 + i}" for i in range(len(self.hidden_units)))

    @property
    def output_name(self) -> str:
        """The last dense layer, the one a new head replaces (``fc8``)."""
        return f"fc{len(self.convolutions) + len(self.hidden_units) + 1}"

    @property
    def dense_names(self) -> tuple[str, ...]:
        return (*self.hidden_names, self.output_name)

    def dropout_name(self, dense_name) -> str:
        """The dropout before a hidden dense layer: ``drop6`` before ``fc6``."""
        return "drop" + dense_name[2:]

    @property
    def features_output(self) -> str:
        """The last layer of ``features`` (``pool5``): where every head starts."""
        return self.convolutions[-1].pool or self.convolutions[-1].name

    avgpool_name = "avgpool"
    flatten_name = "flatten"

    # -- sizes ---------------------------------------------------------------------------
    @property
    def features_channels(self) -> int:
        return self.convolutions[-1].filters

    @property
    def flat_features(self) -> int:
        """fc6's input size: avgpool's output flattened."""
        return self.pooled_size**2 * self.features_channels

    def input_channels(self, conv_name) -> int:
        index = self.conv_names.index(conv_name)
        return self.channels if index == 0 else self.convolutions[index - 1].filters

    def torch_shapes(self, classes) -> dict[str, tuple[int, ...]]:
        """Weight shapes in torchvision's layout: (out, in, kH, kW) and (out, in)."""
        shapes = {c.name: (c.filters, self.input_channels(c.name), c.kernel, c.kernel) for c in self.convolutions}
        inputs = self.flat_features
        for name, units in zip(self.dense_names, (*self.hidden_units, classes)):
            shapes[name] = (units, inputs)
            inputs = units
        return shapes

    def keras_shapes(self, classes) -> dict[str, tuple[int, ...]]:
        """Kernel shapes in Keras's layout: (kH, kW, in, out) and (in, out)."""
        return {
            name: (shape[2], shape[3], shape[1], shape[0]) if len(shape) == 4 else (shape[1], shape[0])
            for name, shape in self.torch_shapes(classes).items()
        }

    def features_size(self, side) -> int:
        """The side of ``features``' output (pool5) for an input side of ``side`` pixels."""
        for conv in self.convolutions:
            side = (side + 2 * conv.padding - conv.kernel) // conv.stride + 1
            if conv.pool:
                side = (side - self.pool_kernel) // self.pool_stride + 1
        return side

    @functools.cached_property
    def min_input_size(self) -> int:
        """The smallest input side for which pool5 is still at least 1x1 (63 for AlexNet)."""
        side = 1
        while self.features_size(side) < 1:
            side += 1
        return side

    # -- torchvision module paths --------------------------------------------------------
    @functools.cached_property
    def torchvision_modules(self) -> dict[str, str]:
        """torchvision module path -> Keras layer name. Each ReLU maps to the layer before it."""
        modules = {}
        for conv in self.convolutions:
            modules[f"features.{len(modules)}"] = conv.name
            modules[f"features.{len(modules)}"] = conv.name  # ReLU
            if conv.pool:
                modules[f"features.{len(modules)}"] = conv.pool
        modules["avgpool"] = self.avgpool_name
        index = 0
        for name in self.hidden_names:
            for layer in (self.dropout_name(name), name, name):  # Dropout, Linear, ReLU
                modules[f"classifier.{index}"] = layer
                index += 1
        modules[f"classifier.{index}"] = self.output_name
        return modules

    @functools.cached_property
    def group_sizes(self) -> dict[str, int]:
        """How many modules torchvision's ``features`` and ``classifier`` hold (13 and 7)."""
        sizes = {}
        for path in self.torchvision_modules:
            group, _, index = path.partition(".")
            if index:
                sizes[group] = max(sizes.get(group, 0), int(index) + 1)
        return sizes

    @functools.cached_property
    def state_dict_keys(self) -> dict[str, tuple[str, str]]:
        """Keras layer name -> (weight key, bias key) in torchvision's state dict."""
        keys = {}
        for path, layer in self.torchvision_modules.items():
            if layer in (*self.conv_names, *self.dense_names) and layer not in keys:
                keys[layer] = (f"{path}.weight", f"{path}.bias")
        return keys


ALEXNET = Architecture(
    convolutions=(
        Convolution("conv1", 64, 11, 4, 2, pool="pool1"),
        Convolution("conv2", 192, 5, 1, 2, pool="pool2"),
        Convolution("conv3", 384, 3, 1, 1),
        Convolution("conv4", 256, 3, 1, 1),
        Convolution("conv5", 256, 3, 1, 1, pool="pool5"),
    ),
)

# The same graph, names and torchvision paths with a few channels: a model of ~40k
# parameters that builds and trains in milliseconds, for tests where size is not the point.
TINY = dataclasses.replace(
    ALEXNET,
    convolutions=tuple(
        dataclasses.replace(conv, filters=filters) for conv, filters in zip(ALEXNET.convolutions, (8, 16, 16, 16, 16))
    ),
    hidden_units=(32, 32),
)

# The architectures by the name options and flags give them (TrainingOptions.architecture, --architecture).
ARCHITECTURES = {"alexnet": ALEXNET, "tiny": TINY}

KNOWN = tuple(ARCHITECTURES.values())


def architecture_of(model):
    """The table ``model`` was built from, recognised by its convolutions' widths."""
    for architecture in KNOWN:
        if all(model.get_layer(conv.name).filters == conv.filters for conv in architecture.convolutions):
            return architecture
    raise ValueError(f"model {model.name!r} was not built from a known AlexNet table (ALEXNET or TINY).")
