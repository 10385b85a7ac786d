"""keras-alexnet: torchvision's AlexNet in Keras 3, for transfer learning.

Public API only. Importing the package registers its custom layers and factored
optimizers, so ``keras.models.load_model`` can read models saved with them, and
asks TensorFlow for its pooling CPU allocator (``keras_alexnet._utils.runtime``;
set ``TF_CPU_ALLOCATOR_USE_BFC=false`` to opt out).

Vocabulary (one word per concept, used everywhere in code, docs and the CLI):

- **features**: torchvision's ``features`` group, conv1..pool5. ``AlexNet(include_top=False)``
  is the features; their output is pool5.
- **classifier**: torchvision's ``avgpool`` + ``classifier`` group, fc6..fc8 (AlexNet's own head).
- **head**: whatever maps pool5 to the classes: the classifier, or one that ``replace_head`` builds.
- **convolution weights**: the ImageNet weights of conv1..conv5 that ship in the package
  (``weights.IMAGENET_FEATURES``); the **full weights** add fc6..fc8 (``keras-alexnet convert``).
- **activation cache**: stored outputs of a model's frozen leading layers, so later
  epochs train only the rest (``TrainingOptions.cache_activations``).
- **factor**: a per-variable multiplier of the learning rate or the L2 regularisation.
- **recipe**: a named way to set up transfer learning (what is frozen, factors, optimizer, rate).
- **run directory**: where one training run writes its options, model, logs, plots and backup.

Layout: ``architecture`` (the one table), ``model`` (builder), ``layers``, ``weights``
(sources, readers, loader), ``preprocessing``, ``conversion`` (torch -> ONNX -> Keras; the
only part that needs torch), ``optimizers`` (factors for any Keras model), ``transfer``
(freeze, heads, recipes, layer table), ``training`` (options, fit, callbacks, activation
cache, distributed), ``datasets``, ``evaluation``, ``export``, ``cli``.
"""

import importlib
import os
import sys

from keras_alexnet._utils.runtime import prefer_pooled_cpu_allocator

prefer_pooled_cpu_allocator()  # before any TensorFlow op runs

__version__ = "0.2.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "ALEXNET": "keras_alexnet.architecture",
    "TINY": "keras_alexnet.architecture",
    "Architecture": "keras_alexnet.architecture",
    "AdaptiveAveragePooling2D": "keras_alexnet.layers",
    "ClassNames": "keras_alexnet.layers",
    "class_names_of": "keras_alexnet.layers",
    "AlexNet": "keras_alexnet.model",
    "TORCHVISION_MODULES": "keras_alexnet.model",
    "load_model": "keras_alexnet.model",
    "Factors": "keras_alexnet.optimizers",
    "ResizeShorterSide": "keras_alexnet.preprocessing",
    "decode_predictions": "keras_alexnet.preprocessing",
    "eval_transform": "keras_alexnet.preprocessing",
    "imagenet_class_names": "keras_alexnet.preprocessing",
    "imagenet_eval_layers": "keras_alexnet.preprocessing",
    "load_image": "keras_alexnet.preprocessing",
    "preprocess_input": "keras_alexnet.preprocessing",
    "TrainingOptions": "keras_alexnet.training",
    "RECIPES": "keras_alexnet.transfer",
    "apply_recipe": "keras_alexnet.transfer",
    "freeze": "keras_alexnet.transfer",
    "print_layer_table": "keras_alexnet.transfer",
    "replace_head": "keras_alexnet.transfer",
    "unfreeze": "keras_alexnet.transfer",
    "with_lr_factors": "keras_alexnet.transfer",
}
__all__ = sorted(_EXPORTS)

# Kept importable by name, but out of ``__all__``, so that ``from keras_alexnet import *``
# does not shadow keras.layers.Conv2D/Dense.
_LAYERS_BY_NAME = {"Conv2D": "keras_alexnet.layers", "Dense": "keras_alexnet.layers"}


def _import_public_api():
    """Import every public name (which registers the package's layers and optimizers with Keras)."""
    for name, module in _EXPORTS.items():
        globals()[name] = getattr(importlib.import_module(module), name)


def __getattr__(name):
    module = _EXPORTS.get(name) or _LAYERS_BY_NAME.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_alexnet' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


# ``import keras_alexnet`` loads the API at once, so that keras.models.load_model finds the
# registered classes. Only the ``keras-alexnet`` console script defers it: its parser needs
# no TensorFlow, and each subcommand imports what it uses (``--help`` answers in well under 1 s).
if os.path.basename(sys.argv[0] if sys.argv else "") != "keras-alexnet":
    _import_public_api()
