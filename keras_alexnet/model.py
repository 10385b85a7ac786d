"""AlexNet with torchvision's exact architecture, as a Keras 3 functional model.

The graph is built from ``keras_alexnet.architecture.ALEXNET``: ``features``
(five convolutions, three max-pools), ``avgpool`` (adaptive average pooling to
6x6) and ``classifier`` (dropout, fc6, dropout, fc7, fc8). Validate, build, then
load weights as the last step, as ``keras.applications`` builders do.
"""

from __future__ import annotations

import math
import os
import warnings
import zipfile
from pathlib import Path

import keras
import numpy as np
from keras import layers

from keras_alexnet import saving  # noqa: F401  (registers every class a saved model may name)
from keras_alexnet._utils import errors
from keras_alexnet._utils.checks import is_count
from keras_alexnet.architecture import ALEXNET
from keras_alexnet.layers import AdaptiveAveragePooling2D, Conv2D, Dense
from keras_alexnet.weights import load_weights

TORCHVISION_MODULES = ALEXNET.torchvision_modules  # public API since 0.1


def torch_default_initializers(fan_in):
    """Initializers that draw like torch.nn.Conv2d/Linear's ``reset_parameters``.

    torch uses kaiming_uniform(a=sqrt(5)) for the kernel, i.e. U(-1/sqrt(fan_in),
    1/sqrt(fan_in)), and the same bound for the bias.
    """
    bound = 1.0 / math.sqrt(fan_in)
    kernel = keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")
    bias = keras.initializers.RandomUniform(-bound, bound)
    return kernel, bias


def _features(x, architecture):
    """torchvision's ``features``: each convolution with its ReLU, and max-pools."""
    for index, conv in enumerate(architecture.convolutions, start=1):
        kernel_init, bias_init = torch_default_initializers(x.shape[-1] * conv.kernel**2)
        # For stride-1 convolutions with an odd kernel, "same" is exactly torchvision's
        # symmetric zero padding of (k - 1) / 2; otherwise pad explicitly.
        same = conv.stride == 1 and conv.kernel % 2 == 1 and conv.padding == (conv.kernel - 1) // 2
        if not same and conv.padding:
            x = layers.ZeroPadding2D(conv.padding, name=f"pad{index}")(x)
        x = Conv2D(
            conv.filters,
            conv.kernel,
            strides=conv.stride,
            padding="same" if same else "valid",
            activation="relu",
            kernel_initializer=kernel_init,
            bias_initializer=bias_init,
            name=conv.name,
        )(x)
        if conv.pool:
            x = layers.MaxPooling2D(architecture.pool_kernel, strides=architecture.pool_stride, name=conv.pool)(x)
    return x


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


def pooled_features(x, architecture=ALEXNET):
    """torchvision's ``avgpool`` and the flattening before the classifier."""
    side = architecture.pooled_size
    x = AdaptiveAveragePooling2D((side, side), name=architecture.avgpool_name)(x)
    return layers.Flatten(name=architecture.flatten_name)(x)


def classifier_layers(x, classes, classifier_activation="softmax", architecture=ALEXNET):
    """torchvision's ``avgpool`` + ``classifier`` on top of a pool5 tensor."""
    x = pooled_features(x, architecture)
    for name, units in zip(architecture.hidden_names, architecture.hidden_units):
        x = layers.Dropout(architecture.dropout, name=architecture.dropout_name(name))(x)
        x = dense(units, x.shape[-1], name, activation="relu")(x)
    return output_layer(classes, x.shape[-1], classifier_activation, architecture)(x)


def output_layer(classes, fan_in, activation="softmax", architecture=ALEXNET):
    """A new fc8: ``Dense(classes)`` initialised like torch, float32 under mixed precision."""
    return dense(classes, fan_in, architecture.output_name, activation=activation, output=True)


def _validate(weights, include_top, input_shape, pooling, classes, min_size):
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
        raise ValueError(f"pooling={pooling!r} only applies when include_top=False; the full model always ends in fc8.")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling={pooling!r} is not allowed: use None, 'avg' or 'max'.")
    if input_shape is not None:
        if len(input_shape) != 3:
            raise ValueError(
                f"input_shape={input_shape!r} must be (height, width, channels), channels last, e.g. (224, 224, 3)."
            )
        height, width, channels = input_shape
        for side in (height, width):
            if side is not None and side < min_size:
                raise ValueError(
                    f"input_shape={tuple(input_shape)!r} is too small: AlexNet needs "
                    f"height and width of at least {min_size} pixels "
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
    architecture=ALEXNET,
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
        architecture: the table to build from (``keras_alexnet.architecture``);
            ``TINY`` is the same graph with few channels, for tests.

    Returns:
        A ``keras.Model`` taking images preprocessed by ``preprocess_input``.
    """
    min_size = architecture.min_input_size
    _validate(weights, include_top, input_shape, pooling, classes, min_size)
    if input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor):
            input_tensor = keras.Input(tensor=input_tensor)
        img_input = input_tensor
        _validate(weights, include_top, tuple(img_input.shape[1:]), pooling, classes, min_size)
    else:
        img_input = keras.Input(shape=input_shape or (None, None, architecture.channels), name="image")

    x = _features(img_input, architecture)
    if include_top:
        x = classifier_layers(x, classes, classifier_activation, architecture)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="global_avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="global_max_pool")(x)

    inputs = keras.utils.get_source_inputs(input_tensor) if input_tensor is not None else img_input
    model = keras.Model(inputs, x, name=name)

    if weights is not None:
        load_weights(model, weights, include_top=include_top)
    return model


SUPPORTED_MODELS = (
    "keras-alexnet predicts, evaluates, explains, reports on and exports the AlexNet models it writes "
    "(train's model.keras, AlexNet(...).save(...)), with either head."
)
CONVOLUTIONS = ALEXNET.conv_names


def is_alexnet(model):
    """Whether ``model`` holds AlexNet's five convolutions by their names (any model this package builds)."""
    names = set()
    stack = [model]
    while stack:
        layer = stack.pop()
        names.add(layer.name)
        stack += getattr(layer, "layers", [])
    return set(CONVOLUTIONS) <= names


# What a .keras archive may declare before Keras reads it (an archive's sizes are the file's word: a few
# compressed megabytes can declare gigabytes). AlexNet's config is about 20 KB; its weights 228 MB, about
# 0.9 GB with an optimizer's state.
MAX_ARCHIVE_TEXT_BYTES = 64 << 20
MAX_ARCHIVE_ENTRY_BYTES = 4 << 30


def check_archive_sizes(path):
    """Refuse a ``.keras`` archive whose entries declare more than Keras should read into memory."""
    with zipfile.ZipFile(path) as archive:
        for entry in archive.infolist():
            text = entry.filename.endswith(".json")
            limit = MAX_ARCHIVE_TEXT_BYTES if text else MAX_ARCHIVE_ENTRY_BYTES
            if entry.file_size > limit:
                raise ValueError(
                    f"{path} is refused before reading it: its {entry.filename} declares {entry.file_size:,} bytes "
                    f"uncompressed ({entry.compress_size:,} stored), over the {limit:,} a keras-alexnet model "
                    f"{'config' if text else 'file'} can need. {SUPPORTED_MODELS}"
                )


def load_model(path, alexnet_only=True):
    """A model saved by this package (``model.keras``), with clear errors.

    Every class the package registers with Keras is registered first (``keras_alexnet.saving``), so
    any saved model of this package loads; a missing file, one that is not a ``.keras``
    archive or a truncated one is named as such (Keras would call the first two "not found").
    ``alexnet_only``: refuse a model without AlexNet's convolutions (what every command needs);
    False reads any Keras model, with the same checks of its optimizer state and weights.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file {path} does not exist (train one with `keras-alexnet train`).")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a .keras model: give the model.keras of a run.")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as handle:
            zipped = handle.read(4) == b"PK\x03\x04"
        if zipped:  # a zip archive's directory is at its end: a cut-off copy has none
            raise ValueError(
                f"{path} is damaged: a truncated .keras archive (its end is missing, as after an interrupted copy or "
                "a full disk). Copy it again, or train again."
            )
        raise ValueError(f"{path} is not a .keras model (a zip archive): give the model.keras of a run.")
    check_archive_sizes(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = keras.models.load_model(path)
        except (zipfile.BadZipFile, EOFError, KeyError, OSError) as error:
            raise ValueError(
                f"{path} is damaged ({type(error).__name__}: {error}): copy it again, or train again."
            ) from None
        except (TypeError, ValueError, AttributeError) as error:
            # Keras's safe mode refuses a config naming a function or class outside Keras (os.system,
            # subprocess.Popen, a Lambda's code); its messages run to many lines.
            raise ValueError(
                f"{path} is refused: Keras could not rebuild its config safely ({errors.root_cause(error)}). A .keras file "
                f"from elsewhere is data; nothing of its code ran. {SUPPORTED_MODELS}"
            ) from None
    for warning in caught:
        message = str(warning.message)
        # Keras only warns when a saved optimizer's state does not fit the model, and training then
        # goes on from a fresh state. An optimizer saved before its first step has 2 variables
        # (iterations, learning rate) and nothing to restore.
        if "Skipping variable loading for optimizer" in message and not message.rstrip(". ").endswith(
            "has 2 variables"
        ):
            raise ValueError(
                f"{path}: the saved optimizer state does not fit the model ({message.strip()}). Training it further "
                "would silently restart the optimizer: load it with keras.models.load_model(path, compile=False) "
                "and compile a new optimizer, or save it again with the optimizer it was trained with."
            )
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if alexnet_only and not is_alexnet(model):
        raise ValueError(
            f"{path} is a Keras model but not an AlexNet keras-alexnet made (it has no conv1-conv5 layers). "
            f"{SUPPORTED_MODELS} Load others with keras.models.load_model."
        )
    for variable in model.weights:
        if not np.all(np.isfinite(keras.ops.convert_to_numpy(variable))):
            raise ValueError(
                f"{path} has non-finite weights (NaN or infinity) in {variable.path}: it comes from a diverged "
                "run. Train again with a lower learning rate."
            )
    return model
