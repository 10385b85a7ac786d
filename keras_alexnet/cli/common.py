"""What the subcommands share: the options the typed flags describe, the data and cluster flags, the notes printed before predicting."""

from __future__ import annotations

import sys

from keras_alexnet._utils.choices import (
    TTA_VIEWS,
    tta_description,
)
from keras_alexnet._utils.flags import (
    add_flags,
    non_negative_number,
    positive_number,
    typed_options,
)
from keras_alexnet.options import (
    TrainingOptions,
)
from keras_alexnet.run_directory import RunDirectory


def training_options(args, base=None):
    """The ``TrainingOptions`` the typed flags describe: ``base`` (default: the defaults) changed by them.

    The flags are made from the fields (``_utils.flags``), with no default of their own: what is in
    ``args`` was typed.
    """
    from keras_alexnet.options import TrainingOptions

    return (base or TrainingOptions()).replace(**typed_options(args, TrainingOptions))


def resume_options(args):
    """On --resume: the run's own options (options.json), changed only by the flags the user wrote."""
    from keras_alexnet.options import TrainingOptions

    saved = RunDirectory(args.run_dir).options
    return training_options(args, TrainingOptions.load(saved) if saved.exists() else None)


def cluster_of(args):
    """The ``Cluster`` the --address, --cpus-per-trial and --gpus-per-trial flags name."""
    from keras_alexnet.experiments import Cluster

    return Cluster(args.address, args.cpus_per_trial, args.gpus_per_trial)


def cluster_arguments(p):
    p.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="run the comparison's trials (compare, --recipe auto) on this Ray cluster (default: RAY_ADDRESS, else Ray "
        "on this machine); the output folder must be on storage every node mounts",
    )
    p.add_argument(
        "--cpus-per-trial",
        "--cpus-per-worker",
        type=positive_number,
        default=1,
        help="CPUs each comparison trial (or --workers worker) takes (default %(default)s)",
    )
    p.add_argument(
        "--gpus-per-trial",
        "--gpus-per-worker",
        type=non_negative_number,
        default=0,
        help="GPUs each comparison trial (or --workers worker) takes (default %(default)s)",
    )


def warn_if_tta_lowered(model):
    """Say so when the model's run measured test-time augmentation lowering its validation accuracy."""
    from keras_alexnet.tta import warning

    line = warning(model) if model else None
    if line:
        print(line, file=sys.stderr)


def warn_if_far_from_training(model, items):
    """Print ``evaluation.seen_in_training``'s note and ``far_from_training``'s warning for the images under
    ``items``, if any."""
    from keras_alexnet.datasets.files import image_files
    from keras_alexnet.evaluation import far_from_training, seen_in_training

    note = seen_in_training(model, items)
    if note:
        print(note, file=sys.stderr)

    try:
        images, _ = image_files(items)
    except FileNotFoundError:
        return  # the command itself says what is missing
    warning = far_from_training(model, images)
    if warning:
        print(warning, file=sys.stderr)


def data_arguments(p, *, data_help="training folder, one sub-folder per class", split=None):
    p.add_argument("--data", required=True, help=data_help)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--val", help="validation folder")
    add_flags(group, TrainingOptions, ["val_split"], defaults={"val_split": split} if split else None)


def overwrite_argument(p, help):
    p.add_argument("--overwrite", action="store_true", help=help)


def tta_argument(parser, what):
    parser.add_argument(
        "--tta", action="store_true", help=f"{what} ({tta_description()}; {len(TTA_VIEWS)} times the work)"
    )
