"""Transfer learning verbs: freeze/unfreeze, replace the head, set factors, inspect, apply a recipe.

Layers are named the Keras way (``"conv1"``), the torchvision way
(``"features.3"``, ``"features[0:5]"``, ``"classifier"``) or by range
(``up_to="conv3"``) wherever a verb takes layers.
"""

from keras_alexnet.optimizers import make_optimizer
from keras_alexnet.recipes import HEADS
from keras_alexnet.transfer.factors import with_lr_factors
from keras_alexnet.transfer.freezing import (
    TrainableStateGuard,
    freeze,
    recompile,
    trainable_state_is_stale,
    unfreeze,
)
from keras_alexnet.transfer.heads import alexnet_head, compact_head, compact_head_of, replace_head
from keras_alexnet.transfer.layer_table import LayerRow, format_layer_table, layer_table, print_layer_table
from keras_alexnet.transfer.names import layer_range, resolve_layers
from keras_alexnet.transfer.recipes import (
    RECIPES,
    Recipe,
    apply_recipe,
    discriminative_factors,
    resolve_jit_compile,
    stage_factors,
)

__all__ = [
    "HEADS",
    "LayerRow",
    "RECIPES",
    "Recipe",
    "TrainableStateGuard",
    "apply_recipe",
    "alexnet_head",
    "compact_head",
    "compact_head_of",
    "discriminative_factors",
    "format_layer_table",
    "freeze",
    "layer_range",
    "layer_table",
    "make_optimizer",
    "print_layer_table",
    "recompile",
    "replace_head",
    "resolve_jit_compile",
    "resolve_layers",
    "stage_factors",
    "trainable_state_is_stale",
    "unfreeze",
    "with_lr_factors",
]
