"""Replacing AlexNet's head: a new fc8, a new classifier, or layers of your own."""

from __future__ import annotations

import keras

from keras_alexnet.architecture import ALEXNET, architecture_of
from keras_alexnet.model import classifier_layers, output_layer, pooled_features


def replace_head(model, classes=None, *, activation="softmax", layers=None, name=None):
    """A model with a new head on the same (shared) ``features`` layers.

    - With ``classes``: fc8 becomes a new ``Dense(classes)`` (torchvision
      ``classifier[6] = Linear(4096, classes)``, MATLAB ``layers(1:end-3)`` plus a
      new fullyConnectedLayer), keeping fc6/fc7 and their weights. On a model
      built with ``include_top=False`` the whole classifier (avgpool, fc6, fc7,
      fc8) is added, freshly initialised like torch's.
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
    if arch.features_output not in names:
        raise ValueError(
            f"replace_head needs an AlexNet built by keras_alexnet (no {arch.features_output!r} layer found)."
        )
    features = model.get_layer(arch.features_output).output
    last_hidden = arch.hidden_names[-1]
    if layers is not None:
        if arch.flatten_name in names:
            x = model.get_layer(arch.flatten_name).output
        else:
            x = pooled_features(features, arch)
        for layer in layers:
            x = layer(x)
    elif last_hidden in names:
        hidden = model.get_layer(last_hidden)
        x = output_layer(classes, hidden.units, activation, arch)(hidden.output)
    else:
        x = classifier_layers(features, classes, activation, architecture_of(model))
    return keras.Model(model.inputs, x, name=name or model.name)
