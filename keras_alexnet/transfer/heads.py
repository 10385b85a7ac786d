"""Replacing AlexNet's head: a new fc8, a new classifier, or layers of your own."""

from __future__ import annotations

import keras
from keras import layers as keras_layers

from keras_alexnet.architecture import ALEXNET, architecture_of
from keras_alexnet.model import classifier_layers, dense, output_layer, pooled_features
from keras_alexnet.recipes import head_named


def compact_head(features, classes, activation="softmax", hidden_units=512, architecture=ALEXNET):
    """fastai's head on a pool5 tensor: average and max pooling concatenated, batch norm,
    dropout 0.25, ``Dense(hidden_units)`` + ReLU, batch norm, dropout 0.5, then the classes.

    About 0.3M parameters instead of the classifier's 58M; the last layer keeps the
    output name (``fc8``), so recipes' factors on it apply. Batch norm uses torch's
    momentum and epsilon, as fastai does.
    """
    layers = keras_layers
    x = layers.Concatenate(name="head_concat_pool")(
        [
            layers.GlobalAveragePooling2D(name="head_avg_pool")(features),
            layers.GlobalMaxPooling2D(name="head_max_pool")(features),
        ]
    )
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="head_bn1")(x)
    x = layers.Dropout(0.25, name="head_drop1")(x)
    x = dense(hidden_units, x.shape[-1], "head_fc", activation="relu")(x)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="head_bn2")(x)
    x = layers.Dropout(0.5, name="head_drop2")(x)
    return output_layer(classes, hidden_units, activation, architecture)(x)


def alexnet_head(model, features, classes, activation, architecture):
    """The ``"alexnet"`` head: a new fc8 on the model's fc7 where it has one, else a fresh avgpool, fc6, fc7, fc8."""
    last_hidden = architecture.hidden_names[-1]
    if last_hidden in {layer.name for layer in model.layers}:
        hidden = model.get_layer(last_hidden)
        return output_layer(classes, hidden.units, activation, architecture)(hidden.output)
    return classifier_layers(features, classes, activation, architecture)


def compact_head_of(model, features, classes, activation, architecture):
    """The ``"compact"`` head's builder (``compact_head`` on the model's pool5)."""
    return compact_head(features, classes, activation, architecture=architecture)


def replace_head(model, classes=None, *, activation="softmax", layers=None, name=None, head="alexnet"):
    """A model with a new head on the same (shared) ``features`` layers.

    - With ``classes``: fc8 becomes a new ``Dense(classes)`` (torchvision
      ``classifier[6] = Linear(4096, classes)``, MATLAB ``layers(1:end-3)`` plus a
      new fullyConnectedLayer), keeping fc6/fc7 and their weights. On a model
      built with ``include_top=False`` the whole classifier (avgpool, fc6, fc7,
      fc8) is added, freshly initialised like torch's.
    - With ``head="compact"``: fastai's small head (``compact_head``) on pool5
      instead of AlexNet's classifier; any name in ``keras_alexnet.recipes.HEADS``
      builds that head.
    - With ``layers``: a list of Keras layers replaces the whole classifier and is
      applied to the flattened 6x6x256 avgpool output (torchvision
      ``model.classifier = nn.Sequential(...)``).
    """
    names = {layer.name for layer in model.layers}
    arch = ALEXNET
    if (classes is None) == (layers is None):
        raise ValueError("replace_head needs exactly one of classes=N or layers=[...].")
    if classes is not None and (not isinstance(classes, int) or classes < 1):
        raise ValueError(f"classes={classes!r}: use a positive integer.")
    entry = head_named(head)
    if arch.features_output not in names:
        raise ValueError(
            f"replace_head needs an AlexNet built by keras_alexnet (no {arch.features_output!r} layer found)."
        )
    features = model.get_layer(arch.features_output).output
    if layers is not None:
        if arch.flatten_name in names:
            x = model.get_layer(arch.flatten_name).output
        else:
            x = pooled_features(features, arch)
        for layer in layers:
            x = layer(x)
    else:
        x = entry.build(model, features, classes, activation, architecture_of(model))
    return keras.Model(model.inputs, x, name=name or model.name)
