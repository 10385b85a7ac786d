"""``apply_recipe``: set a model up with a recipe (the recipes themselves are data, ``keras_alexnet.recipes``)."""

from __future__ import annotations

import keras

from keras_alexnet._utils.runtime import tensorflow_uses_gpu
from keras_alexnet.architecture import architecture_of
from keras_alexnet.optimizers import make_optimizer
from keras_alexnet.recipes import RECIPES, Recipe, recipe_named
from keras_alexnet.transfer.factors import with_lr_factors
from keras_alexnet.transfer.freezing import freeze, unfreeze
from keras_alexnet.transfer.heads import replace_head

__all__ = ["RECIPES", "Recipe", "apply_recipe", "discriminative_factors", "resolve_jit_compile", "stage_factors"]


def resolve_jit_compile(model, jit_compile="auto"):
    """``"auto"``: XLA on a GPU when every convolution is frozen; never on the CPU.

    On the CPU, with this package's fused optimizer updates and pooled allocator,
    TensorFlow's own kernels beat XLA for frozen convolutions and tie with it when
    convolutions train (benchmarks/RESULTS.md). On GPUs the choice follows
    TensorFlow's advice (XLA fuses the classifier's element-wise work).
    """
    if jit_compile != "auto":
        return bool(jit_compile)
    if not tensorflow_uses_gpu():
        return False
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    return all(not (layer.trainable and any(v.trainable for v in layer.weights)) for layer in convs)


def apply_recipe(
    model,
    recipe,
    classes,
    *,
    learning_rate=None,
    optimizer=None,
    metrics=("accuracy",),
    jit_compile="auto",
    new_head=True,
    head="alexnet",
):
    """Prepare ``model`` for ``classes`` outputs with a recipe and compile it.

    Args:
        model: an AlexNet from ``AlexNet(...)`` (with or without top).
        recipe: a name from ``RECIPES`` or a ``Recipe``; its first stage is applied.
        learning_rate: overrides the recipe's base rate (a float or a schedule).
        optimizer: a Keras optimizer whose config replaces the recipe's choice.
        new_head: replace fc8 with a new layer for ``classes`` (False keeps a
            trained head, e.g. to fine-tune after training with frozen features).
        head: a name from ``keras_alexnet.recipes.HEADS``: ``"alexnet"`` (AlexNet's classifier:
            fc6, fc7 and a new fc8; the ImageNet fc6/fc7 are kept when the model has them) or
            ``"compact"`` (fastai's head).
        jit_compile: True, False or ``"auto"`` (see ``resolve_jit_compile``).
    Returns:
        A new compiled model (softmax head, sparse categorical cross-entropy) that
        shares the features' layers with ``model``.
    """
    recipe = recipe_named(recipe)
    stage = recipe.stages[0]
    if isinstance(learning_rate, (int, float)) and not learning_rate > 0:
        raise ValueError(f"learning_rate={learning_rate}: use a positive number (or a keras LearningRateSchedule).")
    if new_head:
        model = replace_head(model, classes, head=head)
    elif model.output.shape[-1] != classes:
        raise ValueError(f"new_head=False keeps the model's {model.output.shape[-1]} outputs, but classes={classes}.")
    unfreeze(model)
    for spec in stage.frozen:
        freeze(model, spec)
    rate = learning_rate if learning_rate is not None else recipe.learning_rate
    if optimizer is None:
        optimizer = make_optimizer(recipe.optimizer, rate)
    elif learning_rate is not None:
        optimizer = optimizer.__class__.from_config({**optimizer.get_config(), "learning_rate": rate})
    optimizer = with_lr_factors(
        optimizer, stage_factors(model, stage), model, l2_regularization=recipe.l2_regularization
    )
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=list(metrics),
        jit_compile=resolve_jit_compile(model, jit_compile),
    )
    return model


def discriminative_factors(model, ratio=100.0):
    """Learning-rate factors spread geometrically from the first convolution to the head.

    fastai's ``slice(lr / ratio, lr)``: the convolutions are groups of their own, in
    order, and the head (everything after pool5) is the last group; group ``g`` of
    ``G`` gets ``ratio ** ((g - (G - 1)) / (G - 1))``, so conv1 trains at ``1 / ratio``
    of the base rate and the head at the base rate. Returns ``{layer: factor}`` for
    ``with_lr_factors``.
    """
    if not (isinstance(ratio, (int, float)) and ratio >= 1 and ratio < float("inf")):
        raise ValueError(f"ratio={ratio!r}: use a finite number of at least 1 (fastai: 100).")

    architecture = architecture_of(model)
    names = [layer.name for layer in model.layers]
    head = [layer.name for layer in model.layers[names.index(architecture.features_output) + 1 :] if layer.weights]
    groups = [[conv] for conv in architecture.conv_names] + [head]
    last = len(groups) - 1
    return {layer: float(ratio) ** ((index - last) / last) for index, group in enumerate(groups) for layer in group}


def stage_factors(model, stage):
    """The learning-rate factors a recipe's ``stage`` trains ``model`` with (its own, or discriminative ones)."""
    if stage.discriminative_ratio is not None:
        return discriminative_factors(model, stage.discriminative_ratio)
    return dict(stage.factors)
