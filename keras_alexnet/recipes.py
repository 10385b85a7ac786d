"""Recipes and heads as plain data: the one table of each (no Keras, no TensorFlow).

A **recipe** is a named way to set up transfer learning, in one or two stages; each
stage says what is frozen, the learning-rate factors, the share of the base rate and
its schedule. Everything else about a recipe is derived from its stages: whether it
has two stages (``Recipe.two_stage``), whether it can train on cached activations
(``Recipe.cacheable``), the names the CLI offers (``recipe_names()``).

A **head** is what maps pool5 to the classes: an entry names its builder, a function
``builder(model, features, classes, activation, architecture)`` that returns the
output tensor (``keras_alexnet.transfer.heads`` holds the built-in ones). The builder is
given as ``"module:function"`` (imported when a head is built, so this table loads
nothing) or as the function itself.

Adding a recipe or a head is one entry: ``register_recipe(Recipe(...))`` or
``register_head(Head(...))`` (or a line in the tables below); ``train``, ``layers``,
``compare``, ``auto`` and the CLI's choices all read these tables.
"""

from __future__ import annotations

import dataclasses
import importlib
import re

ONE_CYCLE = "one-cycle"


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a recipe.

    Attributes:
        frozen: layers frozen in this stage (Keras names, torchvision paths or groups).
        factors: ``{layer: learning-rate factor}`` (see ``with_lr_factors``).
        discriminative_ratio: instead of ``factors``, factors spread geometrically from
            conv1 (``1 / ratio``) to the head (1): fastai's ``slice(lr / ratio, lr)``.
        rate_scale: this stage's peak rate as a share of the recipe's (or the user's) base rate.
        schedule: ``None`` (the options' ``lr_schedule``) or ``"one-cycle"``.
        pct_start / div_factor: the one-cycle's warm-up share and start (peak / div_factor).
        epochs: ``"all"`` (a one-stage recipe), ``"freeze_epochs"`` (a first stage of two:
            ``TrainingOptions.freeze_epochs``) or ``"rest"`` (a second stage: the epochs left).
        label: what the stage trains, for the progress plot (``"head only"``).
    """

    frozen: tuple = ()
    factors: dict = dataclasses.field(default_factory=dict)
    discriminative_ratio: float | None = None
    rate_scale: float = 1.0
    schedule: str | None = None
    pct_start: float = 0.3
    div_factor: float = 25.0
    epochs: str = "all"
    label: str = ""

    def __post_init__(self):
        if self.schedule not in (None, ONE_CYCLE):
            raise ValueError(f"Stage schedule={self.schedule!r}: use None (the options' lr_schedule) or 'one-cycle'.")
        if self.epochs not in ("all", "freeze_epochs", "rest"):
            raise ValueError(f"Stage epochs={self.epochs!r}: use 'all', 'freeze_epochs' or 'rest'.")
        if self.discriminative_ratio is not None and self.factors:
            raise ValueError("a Stage takes factors or discriminative_ratio, not both.")
        if not (isinstance(self.rate_scale, (int, float)) and self.rate_scale > 0):
            raise ValueError(f"Stage rate_scale={self.rate_scale!r}: use a positive number.")

    @property
    def freezes_first_convolution(self):
        """Whether conv1 is frozen: then the stage can train on cached activations of its frozen prefix."""
        return any(_covers_first_convolution(spec) for spec in self.frozen)


def _covers_first_convolution(spec):
    spec = str(spec).replace(" ", "")
    if spec in ("features", "features.0", "conv1"):
        return True
    match = re.fullmatch(r"features\[(\d*):(\d*)\]", spec)
    return bool(match) and (match.group(1) in ("", "0")) and match.group(2) != "0"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A transfer-learning recipe: its stages, optimizer, base rate and L2.

    ``learning_rate`` is the base rate (a one-cycle's peak); each stage trains at
    ``rate_scale`` of it. ``cycle_momentum``: one-cycle schedules also cycle momentum
    (beta_1), as fastai's ``fit_one_cycle`` does.
    """

    name: str
    summary: str
    stages: tuple = (Stage(),)
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    l2_regularization: float = 0.0
    cycle_momentum: bool = False

    def __post_init__(self):
        if not (isinstance(self.name, str) and re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.name)) or self.name == "auto":
            raise ValueError(f"recipe name {self.name!r}: use lower-case letters, digits and '-' (not 'auto').")
        if len(self.stages) not in (1, 2) or not all(isinstance(stage, Stage) for stage in self.stages):
            raise ValueError(f"recipe {self.name!r}: give one or two Stage(...) in stages.")
        wanted = ("all",) if len(self.stages) == 1 else ("freeze_epochs", "rest")
        if tuple(stage.epochs for stage in self.stages) != wanted:
            raise ValueError(f"recipe {self.name!r}: its stages' epochs must be {wanted}.")

    @property
    def two_stage(self):
        """A recipe that trains with some layers frozen first, then with them unfrozen (fastai's ``fine_tune``)."""
        return len(self.stages) == 2

    @property
    def cacheable(self):
        """Its (first) stage freezes the leading convolutions, so it can train on their cached activations."""
        return self.stages[0].freezes_first_convolution

    @property
    def frozen(self):
        """What the first stage freezes."""
        return self.stages[0].frozen

    @property
    def factors(self):
        """The first stage's learning-rate factors."""
        return self.stages[0].factors

    def to_dict(self):
        """The recipe as JSON-ready values (``Recipe.from_dict`` reads them back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """A recipe from ``to_dict``'s values."""
        values = dict(values)
        values["stages"] = tuple(
            Stage(**{**stage, "frozen": tuple(stage.get("frozen", ()))}) for stage in values.get("stages", ())
        )
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class Head:
    """A head: what maps pool5 to the classes, and the function that builds it.

    ``builder(model, features, classes, activation, architecture)`` returns the output
    tensor; ``model`` is the AlexNet the head goes on (its layers may be reused),
    ``features`` its pool5 tensor. Give it as ``"module:function"`` or as a function.
    """

    name: str
    summary: str
    builder: object

    def __post_init__(self):
        if not (isinstance(self.name, str) and re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.name)):
            raise ValueError(f"head name {self.name!r}: use lower-case letters, digits and '-'.")
        if not (callable(self.builder) or (isinstance(self.builder, str) and ":" in self.builder)):
            raise ValueError(f"head {self.name!r}: builder must be a function or 'module:function'.")

    def build(self, model, features, classes, activation, architecture):
        """The head's output tensor on ``features``."""
        return self.resolve_builder()(model, features, classes, activation, architecture)

    def resolve_builder(self):
        """The builder function (imported where given as ``"module:function"``)."""
        if callable(self.builder):
            return self.builder
        module, _, function = self.builder.partition(":")
        return getattr(importlib.import_module(module), function)

    @property
    def builder_path(self):
        """``"module:function"`` of the builder, for another process (a function at an importable module's top level)."""
        if isinstance(self.builder, str):
            return self.builder
        module, name = getattr(self.builder, "__module__", None), getattr(self.builder, "__qualname__", "")
        if module in (None, "__main__") or "<" in name or "." in name:
            raise ValueError(
                f"head {self.name!r}: its builder {name or self.builder!r} cannot be found from another process "
                "(a comparison trains each run in one): define it at the top level of an importable module, or "
                "give it as 'module:function'."
            )
        return f"{module}:{name}"

    def to_dict(self):
        """The head as JSON-ready values: its builder by path (for a comparison's run processes)."""
        return {"name": self.name, "summary": self.summary, "builder": self.builder_path}


RECIPES: dict[str, Recipe] = {}
HEADS: dict[str, Head] = {}


def register_recipe(recipe, replace=False):
    """Add ``recipe`` to ``RECIPES`` (``replace=True`` to change an entry of the same name)."""
    if not isinstance(recipe, Recipe):
        raise ValueError(f"register_recipe takes a Recipe, not {type(recipe).__name__}.")
    if recipe.name in RECIPES and not replace and RECIPES[recipe.name] != recipe:
        raise ValueError(f"a recipe named {recipe.name!r} exists: give another name, or replace=True.")
    RECIPES[recipe.name] = recipe
    return recipe


def register_head(head, replace=False):
    """Add ``head`` to ``HEADS`` (``replace=True`` to change an entry of the same name)."""
    if not isinstance(head, Head):
        raise ValueError(f"register_head takes a Head, not {type(head).__name__}.")
    if head.name in HEADS and not replace and HEADS[head.name] != head:
        raise ValueError(f"a head named {head.name!r} exists: give another name, or replace=True.")
    HEADS[head.name] = head
    return head


def unregister(name):
    """Remove a recipe or head added by ``register_recipe`` / ``register_head`` (the built-in ones stay)."""
    if name in BUILT_IN:
        raise ValueError(f"{name!r} is built in and stays.")
    RECIPES.pop(name, None)
    HEADS.pop(name, None)


def recipe_names():
    """The recipes' names, in the table's order."""
    return tuple(RECIPES)


def head_names():
    """The heads' names, in the table's order."""
    return tuple(HEADS)


def recipe_named(name):
    """The recipe called ``name``, or a ``ValueError`` that lists the known ones."""
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        raise ValueError(f"recipe {name!r} is not known: use one of {', '.join(RECIPES)}.")
    return RECIPES[name]


def head_named(name):
    """The head called ``name``, or a ``ValueError`` that lists the known ones."""
    if name not in HEADS:
        raise ValueError(f"head={name!r}: use one of {', '.join(repr(h) for h in HEADS)}.")
    return HEADS[name]


for _recipe in (
    Recipe(
        "frozen-features",
        "PyTorch guide: freeze the convolutions (features), train a new classifier.",
        stages=(Stage(frozen=("features",)),),
        optimizer="adam",
        learning_rate=1e-4,
    ),
    # The guide's head rate of 1e-3 assumes pretrained fc6/fc7. With the fresh ones the
    # offline weights give, 1e-4 trains far better (cats vs dogs, 3 epochs: fine-tune-all
    # 0.935 vs 0.75, later-convs 0.925 vs 0.875); the 1:10 ratio is the guide's.
    Recipe(
        "fine-tune-all",
        "PyTorch guide: fine-tune everything, convolutions at 1/10 of the classifier's rate (1e-5 vs 1e-4).",
        stages=(Stage(factors={"features": 0.1}),),
        optimizer="adam",
        learning_rate=1e-4,
    ),
    Recipe(
        "later-convs",
        "PyTorch guide, Example 3: freeze features[0:5] (conv1, conv2), fine-tune features[5:] "
        "(conv3..conv5) at 1/10 of the classifier's rate (1e-5 vs 1e-4).",
        stages=(Stage(frozen=("features[0:5]",), factors={"features[5:]": 0.1}),),
        optimizer="adam",
        learning_rate=1e-4,
    ),
    Recipe(
        "matlab",
        "MATLAB guide: new fc8 with WeightLearnRateFactor=BiasLearnRateFactor=20, sgdm, rate 1e-4, L2 1e-4.",
        stages=(Stage(factors={"fc8": 20.0}),),
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
        stages=(
            Stage(frozen=("features",), schedule=ONE_CYCLE, pct_start=0.99, epochs="freeze_epochs", label="head only"),
            Stage(
                discriminative_ratio=100.0,
                rate_scale=0.5,
                schedule=ONE_CYCLE,
                div_factor=5.0,
                epochs="rest",
                label="all layers",
            ),
        ),
        optimizer="adam",
        learning_rate=2e-4,
    ),
):
    register_recipe(_recipe)

for _head in (
    Head(
        "alexnet",
        "AlexNet's classifier: fc6, fc7 and a new fc8 (58M parameters; the ImageNet fc6/fc7 where the model has them)",
        "keras_alexnet.transfer.heads:alexnet_head",
    ),
    Head(
        "compact",
        "fastai's head on pool5: average and max pooling, batch norm, dropout, Dense(512), the classes (0.3M)",
        "keras_alexnet.transfer.heads:compact_head_of",
    ),
):
    register_head(_head)

BUILT_IN = frozenset((*RECIPES, *HEADS))
