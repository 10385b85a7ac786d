"""``keras-alexnet layers``: the layer table of a recipe (trainable, factors)."""

from __future__ import annotations

from keras_alexnet._utils.flags import (
    add_flags,
    positive_int,
)
from keras_alexnet.cli.common import training_options
from keras_alexnet.options import (
    TrainingOptions,
)
from keras_alexnet.recipes import recipe_names


def run(args):
    from keras_alexnet.architecture import ARCHITECTURES
    from keras_alexnet.model import AlexNet
    from keras_alexnet.transfer import apply_recipe, print_layer_table, replace_head

    options = training_options(args, TrainingOptions(weights=None))  # the table needs no weights
    architecture = ARCHITECTURES[options.architecture]
    model = AlexNet(weights=None, include_top=False, architecture=architecture)
    if args.shown_recipe:
        model = apply_recipe(model, args.shown_recipe, args.classes, head=options.head)
    elif options.head != "alexnet":
        model = replace_head(model, args.classes, head=options.head)
    print_layer_table(model)
    return 0


def add(command):
    p = command(NAME, "print the layer table (parameters, trainable, factors) of a recipe", run)
    p.add_argument(
        "--recipe", dest="shown_recipe", choices=recipe_names(), help="show this recipe's freezing and factors"
    )
    p.add_argument("--classes", type=positive_int, default=2)
    add_flags(p, TrainingOptions, ["architecture", "head"])


NAME = "layers"
EXAMPLE = "keras-alexnet layers --recipe matlab --classes 5"
