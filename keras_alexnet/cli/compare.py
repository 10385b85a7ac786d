"""``keras-alexnet compare``: every recipe and head (and regularizer) over seeds, as Ray Tune trials."""

from __future__ import annotations

from keras_alexnet._utils.flags import (
    add_flags,
    positive_number,
    typed_options,
)
from keras_alexnet.cli.common import (
    cluster_arguments,
    cluster_of,
    data_arguments,
    overwrite_argument,
    training_options,
    tta_argument,
)
from keras_alexnet.options import (
    COMPARE_FIELDS,
    COMPARE_VAL_SPLIT,
    REGULARIZER_NAMES,
    CompareOptions,
    TrainingOptions,
)
from keras_alexnet.recipes import head_names, recipe_names


def run(args):
    from keras_alexnet.experiments import candidates_of, compare

    options = training_options(args)
    settings = CompareOptions(**typed_options(args, CompareOptions))
    compare(
        args.data,
        options,
        val=args.val,
        candidates=candidates_of(args.recipes, args.heads, args.lrs, args.regularizers),
        seeds=settings.seeds,
        out=settings.out,
        overwrite=args.overwrite,
        time_limit=None if args.time_limit is None else args.time_limit * 60,
        keep_models=args.keep_models,
        metric=settings.metric,
        tta=args.tta,
        cluster=cluster_of(args),
    )
    return 0


def add(command):
    p = command(NAME, "train every recipe and head over several seeds on one split, and tabulate them", run)
    data_arguments(p, split=COMPARE_VAL_SPLIT)
    p.add_argument("--recipes", nargs="+", choices=recipe_names(), help="default: all")
    p.add_argument("--heads", nargs="+", choices=head_names(), help="default: all")
    p.add_argument("--lrs", nargs="+", type=float, metavar="LR", help="base rates to try (default: each recipe's)")
    p.add_argument(
        "--regularizers",
        nargs="+",
        choices=tuple(REGULARIZER_NAMES),
        help="also compare each candidate with these regularizers (none: as the other flags say; label-smoothing "
        "0.1, mixup 0.4, cutmix 1.0, ema 0.99); default: none",
    )
    add_flags(p, TrainingOptions, [name for name in COMPARE_FIELDS if name != "val_split"])
    p.add_argument(
        "--time-limit",
        type=positive_number,
        metavar="MINUTES",
        help="stop after this many minutes: no run starts after it and running ones stop (run the command again to "
        "resume them from their backups)",
    )
    add_flags(p, CompareOptions, ["seeds", "out"])
    overwrite_argument(p, "replace a comparison with other settings in --out")
    p.add_argument(
        "--keep-models",
        action="store_true",
        help="keep every run's model.keras (228 MB with AlexNet's head; default: numbers only)",
    )
    add_flags(p, CompareOptions, ["metric"])
    tta_argument(p, "score every run's model on the validation images with test-time augmentation")
    cluster_arguments(p)


NAME = "compare"
EXAMPLE = "keras-alexnet compare --data photos/ --val-split 0.3 --epochs 3 --seeds 3 --out comparison"
