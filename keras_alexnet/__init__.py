"""keras-alexnet: torchvision's AlexNet in Keras 3, for transfer learning.

Public API only, loaded lazily: ``import keras_alexnet`` loads no TensorFlow (each public
name is imported on first use), so the CLI's parser and the plain tables
(``keras_alexnet.architecture``, ``keras_alexnet.recipes``) answer at once. It registers the
package's Keras classes (layers, factored optimizers, schedules: ``keras_alexnet.saving``) as
soon as Keras is imported, by anyone, so ``keras.models.load_model`` reads every model the
package saves; and it asks TensorFlow for its pooling CPU allocator
(``keras_alexnet._utils.runtime``; set ``TF_CPU_ALLOCATOR_USE_BFC=false`` to opt out).

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

Layout (docs/ARCHITECTURE.md): ``architecture`` and ``recipes`` (the tables), ``model``
(builder), ``layers``, ``weights`` (sources, readers, loader), ``preprocessing``,
``conversion`` (torch -> ONNX -> Keras), ``optimizers`` (factors and schedules for any Keras
model), ``transfer`` (freeze, heads, apply a recipe, layer table), ``training`` (options,
train/fit, callbacks, activation cache, distributed), ``run_directory``, ``experiments``
(compare, ``recipe="auto"``, ``train``: the one most callers want), ``report`` (the HTML run report), ``datasets``, ``evaluation``, ``export``, ``cli``.
"""

import importlib

from keras_alexnet._utils.keras_hook import after_keras_loads
from keras_alexnet._utils.runtime import prefer_pooled_cpu_allocator

prefer_pooled_cpu_allocator()  # before any TensorFlow op runs

__version__ = "0.9.0"

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
    "TrainingOptions": "keras_alexnet.options",
    "train": "keras_alexnet.experiments",
    "RECIPES": "keras_alexnet.recipes",
    "Recipe": "keras_alexnet.recipes",
    "Stage": "keras_alexnet.recipes",
    "Head": "keras_alexnet.recipes",
    "HEADS": "keras_alexnet.recipes",
    "register_recipe": "keras_alexnet.recipes",
    "register_head": "keras_alexnet.recipes",
    "RunDirectory": "keras_alexnet.run_directory",
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


def __getattr__(name):
    module = _EXPORTS.get(name) or _LAYERS_BY_NAME.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_alexnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__():
    return sorted({*globals(), *__all__})


def _register_keras_classes():
    importlib.import_module("keras_alexnet.saving")


after_keras_loads(_register_keras_classes)
