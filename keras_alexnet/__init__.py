"""keras-alexnet: torchvision's AlexNet in Keras 3, for transfer learning.

Public API only; see the modules for details. Importing the package registers its
custom layers and factored optimizers, so ``keras.models.load_model`` can read
models saved with them, and asks TensorFlow for its pooling CPU allocator (see
``keras_alexnet.runtime``; set ``TF_CPU_ALLOCATOR_USE_BFC=false`` to opt out).
"""

from keras_alexnet.runtime import prefer_pooled_cpu_allocator

prefer_pooled_cpu_allocator()  # before any TensorFlow op runs

from keras_alexnet.layers import AdaptiveAveragePooling2D, ClassNames, Conv2D, Dense, class_names_of
from keras_alexnet.lr_factors import Factors, with_lr_factors
from keras_alexnet.model import AlexNet, TORCHVISION_MODULES
from keras_alexnet.preprocessing import (
    ResizeShorterSide,
    decode_predictions,
    eval_transform,
    imagenet_class_names,
    imagenet_eval_layers,
    load_image,
    preprocess_input,
)
from keras_alexnet.transfer import RECIPES, apply_recipe, freeze, print_layer_table, replace_head, unfreeze

__version__ = "0.1.0"

__all__ = [
    "AdaptiveAveragePooling2D",
    "AlexNet",
    "ClassNames",
    "Conv2D",
    "Dense",
    "Factors",
    "RECIPES",
    "ResizeShorterSide",
    "TORCHVISION_MODULES",
    "apply_recipe",
    "class_names_of",
    "decode_predictions",
    "eval_transform",
    "freeze",
    "imagenet_class_names",
    "imagenet_eval_layers",
    "load_image",
    "preprocess_input",
    "print_layer_table",
    "replace_head",
    "unfreeze",
    "with_lr_factors",
]
