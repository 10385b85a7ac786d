"""Transfer-learning recipes as data, and ``apply_recipe`` that sets a model up with one."""

from __future__ import annotations

import dataclasses

import keras

from keras_alexnet._utils.runtime import tensorflow_uses_gpu
from keras_alexnet.optimizers import make_optimizer
from keras_alexnet.transfer.factors import with_lr_factors
from keras_alexnet.transfer.freezing import freeze, unfreeze
from keras_alexnet.transfer.heads import replace_head


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A transfer-learning recipe: what to freeze, factors, optimizer and rate."""

    name: str
    summary: str
    frozen: tuple = ()
    factors: dict = dataclasses.field(default_factory=dict)
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    l2_regularization: float = 0.0
    # Two stages (fastai's fine_tune): after the frozen stage, unfreeze everything with factors
    # spread geometrically over this ratio (``discriminative_factors``). None: one stage.
    unfreeze_ratio: float | None = None
    # One-cycle schedules also cycle momentum (beta_1), as fastai's fit_one_cycle does by default.
    cycle_momentum: bool = False

    @property
    def stages(self):
        """1, or 2 for a recipe that trains the head first and then everything."""
        return 1 if self.unfreeze_ratio is None else 2


RECIPES = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            "frozen-features",
            "PyTorch guide: freeze the convolutions (features), train a new classifier.",
            frozen=("features",),
            optimizer="adam",
            learning_rate=1e-4,
        ),
        # The guide's head rate of 1e-3 assumes pretrained fc6/fc7. With the fresh ones the
        # offline weights give, 1e-4 trains far better (cats vs dogs, 3 epochs: fine-tune-all
        # 0.935 vs 0.75, later-convs 0.925 vs 0.875); the 1:10 ratio is the guide's.
        Recipe(
            "fine-tune-all",
            "PyTorch guide: fine-tune everything, convolutions at 1/10 of the classifier's rate (1e-5 vs 1e-4).",
            factors={"features": 0.1},
            optimizer="adam",
            learning_rate=1e-4,
        ),
        Recipe(
            "later-convs",
            "PyTorch guide, Example 3: freeze features[0:5] (conv1, conv2), fine-tune features[5:] "
            "(conv3..conv5) at 1/10 of the classifier's rate (1e-5 vs 1e-4).",
            frozen=("features[0:5]",),
            factors={"features[5:]": 0.1},
            optimizer="adam",
            learning_rate=1e-4,
        ),
        Recipe(
            "matlab",
            "MATLAB guide: new fc8 with WeightLearnRateFactor=BiasLearnRateFactor=20, sgdm, rate 1e-4, L2 1e-4.",
            factors={"fc8": 20.0},
            optimizer="sgdm",
            learning_rate=1e-4,
            l2_regularization=1e-4,
        ),
        # fastai's fine_tune(): stage 1 fit_one_cycle on the head (pct_start 0.99); stage 2
        # unfreeze, base rate halved, slice(lr / 100, lr), fit_one_cycle(div=5). The rate is
        # the one-cycle peak; 2e-4 is frozen-features' Adam rate with room for the warm-up.
        # fit_one_cycle also cycles beta_1 (0.95-0.85-0.95): with Keras's Adam it measured lower
        # on the shipped photos (README, "Which recipe?"), so it is an option (cycle_momentum).
        Recipe(
            "fine-tune",
            "fastai's fine_tune: train the new classifier with the convolutions frozen for freeze_epochs "
            "(one-cycle), then everything with discriminative rates (conv1 at 1/100 of the head), "
            "base rate halved, one-cycle.",
            frozen=("features",),
            optimizer="adam",
            learning_rate=2e-4,
            unfreeze_ratio=100.0,
        ),
    )
}


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
        recipe: a name from ``RECIPES`` or a ``Recipe``.
        learning_rate: overrides the recipe's base rate (a float or a schedule).
        optimizer: a Keras optimizer whose config replaces the recipe's choice.
        new_head: replace fc8 with a new layer for ``classes`` (False keeps a
            trained head, e.g. to fine-tune after training with frozen features).
        head: ``"alexnet"`` (AlexNet's classifier: fc6, fc7 and a new fc8; the ImageNet
            fc6/fc7 are kept when the model has them) or ``"compact"`` (fastai's head).
        jit_compile: True, False or ``"auto"`` (see ``resolve_jit_compile``).
    Returns:
        A new compiled model (softmax head, sparse categorical cross-entropy) that
        shares the features' layers with ``model``.
    """
    if isinstance(recipe, str):
        if recipe not in RECIPES:
            raise ValueError(f"recipe {recipe!r} is not known: use one of {', '.join(RECIPES)}.")
        recipe = RECIPES[recipe]
    if isinstance(learning_rate, (int, float)) and not learning_rate > 0:
        raise ValueError(f"learning_rate={learning_rate}: use a positive number (or a keras LearningRateSchedule).")
    if new_head:
        model = replace_head(model, classes, head=head)
    elif model.output.shape[-1] != classes:
        raise ValueError(f"new_head=False keeps the model's {model.output.shape[-1]} outputs, but classes={classes}.")
    unfreeze(model)
    for spec in recipe.frozen:
        freeze(model, spec)
    rate = learning_rate if learning_rate is not None else recipe.learning_rate
    if optimizer is None:
        optimizer = make_optimizer(recipe.optimizer, rate)
    elif learning_rate is not None:
        optimizer = optimizer.__class__.from_config({**optimizer.get_config(), "learning_rate": rate})
    optimizer = with_lr_factors(optimizer, recipe.factors, model, l2_regularization=recipe.l2_regularization)
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
    from keras_alexnet.architecture import architecture_of

    architecture = architecture_of(model)
    names = [layer.name for layer in model.layers]
    head = [layer.name for layer in model.layers[names.index(architecture.features_output) + 1 :] if layer.weights]
    groups = [[conv] for conv in architecture.conv_names] + [head]
    last = len(groups) - 1
    return {layer: float(ratio) ** ((index - last) / last) for index, group in enumerate(groups) for layer in group}
