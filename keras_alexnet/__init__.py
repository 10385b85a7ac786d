"""keras-alexnet: torchvision's AlexNet in Keras 3, for transfer learning.

Public API only; see the modules for details.
"""

from keras_alexnet.model import AlexNet, TORCHVISION_MODULES
from keras_alexnet.preprocessing import (
    decode_predictions,
    eval_transform,
    imagenet_class_names,
    imagenet_eval_layers,
    load_image,
    preprocess_input,
)

__version__ = "0.1.0"

__all__ = [
    "AlexNet",
    "TORCHVISION_MODULES",
    "decode_predictions",
    "eval_transform",
    "imagenet_class_names",
    "imagenet_eval_layers",
    "load_image",
    "preprocess_input",
]
