"""AlexNet with torchvision's exact architecture, as a Keras 3 functional model.

The graph mirrors ``torchvision.models.alexnet``: ``features`` (five convolutions,
three max-pools), ``avgpool`` (adaptive average pooling to 6x6) and ``classifier``
(dropout, fc6, dropout, fc7, fc8). Layers are named after the classic table
(``conv1`` .. ``fc8``); ``TORCHVISION_MODULES`` maps torchvision's module paths
onto them.
"""

from __future__ import annotations

import math
import os

import keras
from keras import layers

from keras_alexnet.checks import is_count
from keras_alexnet.layers import AdaptiveAveragePooling2D, Conv2D, Dense

MIN_INPUT_SIZE = 63  # smallest side for which pool5 is still at least 1x1

CONV_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
DENSE_LAYERS = ("fc6", "fc7", "fc8")
BACKBONE_OUTPUT = "pool5"

# torchvision module path -> Keras layer name. ReLUs are fused into the layer before.
TORCHVISION_MODULES = {
    "features.0": "conv1",
    "features.1": "conv1",
    "features.2": "pool1",
    "features.3": "conv2",
    "features.4": "conv2",
    "features.5": "pool2",
    "features.6": "conv3",
    "features.7": "conv3",
    "features.8": "conv4",
    "features.9": "conv4",
    "features.10": "conv5",
    "features.11": "conv5",
    "features.12": "pool5",
    "avgpool": "avgpool",
    "classifier.0": "drop6",
    "classifier.1": "fc6",
    "classifier.2": "fc6",
    "classifier.3": "drop7",
    "classifier.4": "fc7",
    "classifier.5": "fc7",
    "classifier.6": "fc8",
}


def torch_default_initializers(fan_in):
    """Initializers that draw like torch.nn.Conv2d/Linear's ``reset_parameters``.

    torch uses kaiming_uniform(a=sqrt(5)) for the kernel, i.e. U(-1/sqrt(fan_in),
    1/sqrt(fan_in)), and the same bound for the bias.
    """
    bound = 1.0 / math.sqrt(fan_in)
    kernel = keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
    )
    bias = keras.initializers.RandomUniform(-bound, bound)
    return kernel, bias


def _conv(x, filters, kernel, name, strides=1, padding="same"):
    kernel_init, bias_init = torch_default_initializers(x.shape[-1] * kernel * kernel)
    return Conv2D(
        filters,
        kernel,
        strides=strides,
        padding=padding,
        activation="relu",
        kernel_initializer=kernel_init,
        bias_initializer=bias_init,
        name=name,
    )(x)


def dense(units, fan_in, name, activation=None, output=False):
    """A Dense layer initialised like torch.nn.Linear(fan_in, units).

    ``output=True`` keeps the layer in float32 under a mixed-precision policy, so
    the softmax and the loss are computed at full precision.
    """
    kernel_init, bias_init = torch_default_initializers(fan_in)
    return Dense(
        units,
        activation=activation,
        kernel_initializer=kernel_init,
        bias_initializer=bias_init,
        name=name,
        dtype="float32" if output else None,
    )


def classifier_layers(x, classes, classifier_activation="softmax"):
    """torchvision's ``avgpool`` + ``classifier`` on top of a pool5 tensor."""
    x = AdaptiveAveragePooling2D((6, 6), name="avgpool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.5, name="drop6")(x)
    x = dense(4096, x.shape[-1], "fc6", activation="relu")(x)
    x = layers.Dropout(0.5, name="drop7")(x)
    x = dense(4096, 4096, "fc7", activation="relu")(x)
    return dense(classes, 4096, "fc8", activation=classifier_activation, output=True)(x)


def _validate(weights, include_top, input_shape, pooling, classes):
    if not (weights in (None, "imagenet") or isinstance(weights, (str, os.PathLike))):
        raise ValueError(
            f"weights={weights!r} is not allowed: use None (random init), "
            "'imagenet', or the path of a .weights.h5 or .onnx file."
        )
    if isinstance(weights, (str, os.PathLike)) and weights != "imagenet":
        if not os.path.exists(weights):
            raise FileNotFoundError(
                f"weights file {os.fspath(weights)!r} does not exist. Pass None, "
                "'imagenet', or the path of a .weights.h5 or .onnx file "
                "(make one with `keras-alexnet convert`)."
            )
    if not is_count(classes):
        raise ValueError(f"classes={classes!r} is not allowed: use a positive integer.")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(
            f"weights='imagenet' with include_top=True has 1000 classes, got "
            f"classes={classes}. Use include_top=False and "
            "keras_alexnet.replace_head(model, classes) for a new classifier."
        )
    if include_top and pooling is not None:
        raise ValueError(
            f"pooling={pooling!r} only applies when include_top=False; "
            "the full model always ends in fc8."
        )
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling={pooling!r} is not allowed: use None, 'avg' or 'max'.")
    if input_shape is not None:
        if len(input_shape) != 3:
            raise ValueError(
                f"input_shape={input_shape!r} must be (height, width, channels), "
                "channels last, e.g. (224, 224, 3)."
            )
        height, width, channels = input_shape
        for side in (height, width):
            if side is not None and side < MIN_INPUT_SIZE:
                raise ValueError(
                    f"input_shape={tuple(input_shape)!r} is too small: AlexNet needs "
                    f"height and width of at least {MIN_INPUT_SIZE} pixels "
                    "(pool5 would be empty)."
                )
        if weights is not None and channels != 3:
            raise ValueError(
                f"input_shape={tuple(input_shape)!r} has {channels} channels; pretrained "
                "weights need 3 (RGB). Convert images to RGB or use weights=None."
            )


def AlexNet(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="alexnet",
):
    """Build torchvision's AlexNet as a Keras functional model (channels last).

    Args:
        include_top: keep ``avgpool`` and the classifier (fc6..fc8). Without it the
            model ends at ``pool5`` (torchvision's ``model.features``).
        weights: None (torch-like random init), ``"imagenet"``, or a path to a
            ``.weights.h5`` file (from ``keras-alexnet convert`` or
            ``model.save_weights``) or an ``.onnx`` export of torchvision AlexNet.
            ``"imagenet"`` without the top uses the convolution weights shipped in
            this package; with the top it needs the file that
            ``keras-alexnet convert`` writes into the Keras cache.
        input_tensor: optional Keras tensor to use as the model input.
        input_shape: ``(height, width, channels)``; default ``(None, None, 3)``:
            any size of at least 63x63 works, as in torchvision.
        pooling: with ``include_top=False``: None (pool5 feature map), ``"avg"``
            or ``"max"`` (global pooling to a 256-vector).
        classes: number of outputs of fc8.
        classifier_activation: activation of fc8; None returns logits, which is
            what torchvision's model returns.
        name: model name.

    Returns:
        A ``keras.Model`` taking images preprocessed by ``preprocess_input``.
    """
    _validate(weights, include_top, input_shape, pooling, classes)
    if input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor):
            input_tensor = keras.Input(tensor=input_tensor)
        img_input = input_tensor
        _validate(weights, include_top, tuple(img_input.shape[1:]), pooling, classes)
    else:
        img_input = keras.Input(shape=input_shape or (None, None, 3), name="image")

    x = layers.ZeroPadding2D(2, name="pad1")(img_input)
    x = _conv(x, 64, 11, "conv1", strides=4, padding="valid")
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    # For stride-1 convolutions with an odd kernel, "same" is exactly torchvision's
    # symmetric zero padding of (k - 1) / 2.
    x = _conv(x, 192, 5, "conv2")
    x = layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    x = _conv(x, 384, 3, "conv3")
    x = _conv(x, 256, 3, "conv4")
    x = _conv(x, 256, 3, "conv5")
    x = layers.MaxPooling2D(3, strides=2, name=BACKBONE_OUTPUT)(x)

    if include_top:
        x = classifier_layers(x, classes, classifier_activation)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="global_avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="global_max_pool")(x)

    inputs = keras.utils.get_source_inputs(input_tensor) if input_tensor is not None else img_input
    model = keras.Model(inputs, x, name=name)

    if weights is not None:
        from keras_alexnet.weights import load_weights

        load_weights(model, weights, include_top=include_top)
    return model


def backbone_of(model):
    """The sub-model from the input to pool5, sharing layers with ``model``."""
    return keras.Model(model.inputs, model.get_layer(BACKBONE_OUTPUT).output)
