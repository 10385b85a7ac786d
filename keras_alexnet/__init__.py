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

from keras_alexnet._utils.runtime import prefer_pooled_cpu_allocator

prefer_pooled_cpu_allocator()  # before any TensorFlow op runs

from keras_alexnet.architecture import ALEXNET, TINY, Architecture  # noqa: E402
from keras_alexnet.layers import AdaptiveAveragePooling2D, ClassNames, class_names_of  # noqa: E402
from keras_alexnet.model import TORCHVISION_MODULES, AlexNet, load_model  # noqa: E402
from keras_alexnet.optimizers import Factors  # noqa: E402
from keras_alexnet.preprocessing import (  # noqa: E402
    ResizeShorterSide,
    decode_predictions,
    eval_transform,
    imagenet_class_names,
    imagenet_eval_layers,
    load_image,
    preprocess_input,
)
from keras_alexnet.training import TrainingOptions  # noqa: E402
from keras_alexnet.transfer import (  # noqa: E402
    RECIPES,
    apply_recipe,
    freeze,
    print_layer_table,
    replace_head,
    unfreeze,
    with_lr_factors,
)

__version__ = "0.2.0"

__all__ = [
    "ALEXNET",
    "AdaptiveAveragePooling2D",
    "AlexNet",
    "Architecture",
    "ClassNames",
    "Factors",
    "RECIPES",
    "ResizeShorterSide",
    "TINY",
    "TORCHVISION_MODULES",
    "TrainingOptions",
    "apply_recipe",
    "class_names_of",
    "decode_predictions",
    "eval_transform",
    "freeze",
    "imagenet_class_names",
    "imagenet_eval_layers",
    "load_image",
    "load_model",
    "preprocess_input",
    "print_layer_table",
    "replace_head",
    "unfreeze",
    "with_lr_factors",
]

# Kept importable by name, but out of ``__all__`` and the top-level namespace, so that
# ``from keras_alexnet import *`` does not shadow keras.layers.Conv2D/Dense.
_LAYERS_BY_NAME = {"Conv2D", "Dense"}


def __getattr__(name):
    if name in _LAYERS_BY_NAME:
        from keras_alexnet import layers

        return getattr(layers, name)
    raise AttributeError(f"module 'keras_alexnet' has no attribute {name!r}")
