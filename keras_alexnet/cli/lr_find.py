"""``keras-alexnet lr-find``: fastai's learning-rate finder for a recipe on a folder."""

from __future__ import annotations

from keras_alexnet._utils.flags import (
    add_flags,
    typed_options,
)
from keras_alexnet.cli.common import training_options
from keras_alexnet.options import (
    LR_FIND_FIELDS,
    SweepOptions,
    TrainingOptions,
)


def run(args):
    from keras_alexnet.training.lr_find import lr_find_on_folder

    options = training_options(args)
    sweep = SweepOptions(**typed_options(args, SweepOptions))
    result = lr_find_on_folder(
        args.data,
        options,
        plot=args.plot,
        steps=sweep.steps,
        start_lr=sweep.start_lr,
        end_lr=sweep.end_lr,
        verbose=False,
    )
    print(result)
    print(f"plot: {result.plot_path}")
    recipe = "" if options.recipe is None else f" --recipe {options.recipe_name}"  # else the rule's, as train's
    print(f"next: keras-alexnet train --data {args.data}{recipe} --lr {result.valley:.1e} ...")
    return 0


def add(command):
    p = command(NAME, "sweep the base learning rate of a recipe and suggest one (fastai's lr_find)", run)
    p.add_argument("--data", required=True, help="training folder, one sub-folder per class")
    add_flags(p, TrainingOptions, LR_FIND_FIELDS)
    add_flags(p, SweepOptions)
    p.add_argument("--plot", default="lr_find.png", help="PNG of loss against rate (default lr_find.png)")


NAME = "lr-find"
EXAMPLE = "keras-alexnet lr-find --data photos/ --recipe frozen-features --plot lr_find.png"
