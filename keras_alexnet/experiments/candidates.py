"""What a comparison compares and what each of its runs records: a ``Candidate`` (a recipe, a head, a base
rate and a regularizer), ``candidates_of`` (every combination) and a finished run's ``RunRecord``."""

from __future__ import annotations

import dataclasses
import math

from keras_alexnet.options import REGULARIZERS
from keras_alexnet.recipes import HEADS, RECIPES, head_named, recipe_named


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One configuration to compare: a recipe, a head, a base rate (None: the recipe's) and a regularizer
    (a name of ``REGULARIZERS``; "none": the options as given)."""

    recipe: str
    head: str = "alexnet"
    learning_rate: float | None = None
    regularizer: str = "none"

    def __post_init__(self):
        recipe_named(self.recipe)  # raises, listing the known recipes
        head_named(self.head)
        if self.regularizer not in REGULARIZERS:
            raise ValueError(f"regularizer {self.regularizer!r} is not known: use one of {', '.join(REGULARIZERS)}.")
        rate = self.learning_rate
        if rate is not None and not (isinstance(rate, (int, float)) and rate > 0 and math.isfinite(rate)):
            raise ValueError(f"learning rate {rate!r}: use a positive, finite number (or None: the recipe's).")

    @property
    def name(self):
        rate = "" if self.learning_rate is None else f" lr {self.learning_rate:g}"
        extra = "" if self.regularizer == "none" else f" + {self.regularizer}"
        return f"{self.recipe} / {self.head}{rate}{extra}"

    @property
    def slug(self):
        rate = "" if self.learning_rate is None else f"-lr{self.learning_rate:g}"
        extra = "" if self.regularizer == "none" else f"-{self.regularizer}"
        return f"{self.recipe}-{self.head}{rate}{extra}"

    def options(self, options):
        """``options`` with this candidate's regularizer's settings."""
        return options.replace(**REGULARIZERS[self.regularizer])


@dataclasses.dataclass
class RunRecord:
    """One finished run: a candidate trained with one seed."""

    recipe: str
    head: str
    learning_rate: float | None
    seed: int
    val_accuracy: float
    val_loss: float
    best_epoch: int
    trained_parameters: int
    seconds: float
    val_accuracy_curve: list
    val_loss_curve: list
    # The epoch's balanced scores (records written before 0.5 have none: NaN).
    val_balanced_accuracy: float = float("nan")
    val_macro_f1: float = float("nan")
    tta: bool = False  # the scores are test-time augmented (compare --tta)
    node: str = ""  # the address of the node the run trained on (its last try's)
    node_id: str = ""  # and Ray's ID of that node (several nodes can share an address)
    regularizer: str = "none"  # the candidate's (records written before 0.7 have none)

    @property
    def candidate(self):
        return Candidate(self.recipe, self.head, self.learning_rate, self.regularizer)


def candidates_of(recipes=None, heads=None, learning_rates=None, regularizers=None):
    """Every recipe x head x rate x regularizer (defaults: all recipes, both heads, each recipe's own rate,
    no regularizer beyond the options')."""
    return [
        Candidate(recipe, head, rate, regularizer)
        for recipe in (recipes or tuple(RECIPES))
        for head in (heads or tuple(HEADS))
        for rate in (learning_rates or (None,))
        for regularizer in (regularizers or ("none",))
    ]
