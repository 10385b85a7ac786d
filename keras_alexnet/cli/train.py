"""``keras-alexnet train``: its flags made from ``TrainingOptions``; one process, several devices, Ray Train workers or a ``TF_CONFIG``."""

from __future__ import annotations

from keras_alexnet._utils.choices import BALANCED_ACCURACY, MACRO_F1
from keras_alexnet._utils.flags import (
    add_flags,
    positive_int,
)
from keras_alexnet.cli.common import cluster_arguments, cluster_of, data_arguments, resume_options, training_options
from keras_alexnet.options import (
    TrainingOptions,
)
from keras_alexnet.run_directory import RunDirectory


def run(args):
    from keras_alexnet.experiments import train

    result = train(
        args.data,
        resume_options(args) if args.resume else training_options(args),
        val=args.val,
        run_dir=args.run_dir,
        resume=args.resume,
        overwrite=args.overwrite,
        verbose=2 if args.quiet else 1,
        cluster=cluster_of(args),
        devices=args.devices,
        workers=args.workers,
    )
    if result is None:  # a TF_CONFIG worker that is not the chief: the chief prints the run's lines
        return 0
    if result.val_accuracy is not None:
        print(f"validation accuracy: {result.val_accuracy:.4f}")
    scores = result.val_scores
    if BALANCED_ACCURACY in scores:
        macro_f1 = scores.get(MACRO_F1, float("nan"))
        print(f"balanced accuracy: {scores[BALANCED_ACCURACY]:.4f}, macro-F1: {macro_f1:.4f}")
    if result.output_epoch is not None and result.options is not None:
        print(f"model.keras: epoch {result.output_epoch} (--output-network {result.options.output_network})")
    run = RunDirectory(result.run_dir)
    print(f"model: {result.model_path}\nprogress plot: {run.progress}\nlog: {run.log}")
    return 0


def add(command):
    p = command(NAME, "transfer-learn AlexNet on a folder of images (one sub-folder per class)", run)
    data_arguments(p)
    add_flags(p, TrainingOptions, [name for name in _option_names() if name != "val_split"])
    p.add_argument(
        "--run-dir",
        default=RunDirectory.DEFAULT,
        help="where the model, log, plot and checkpoints go (default: %(default)s)",
    )
    resume = p.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="continue a killed run from its last backup")
    resume.add_argument("--overwrite", action="store_true", help="replace a previous run's files in --run-dir")
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    p.add_argument(
        "--devices",
        type=positive_int,
        help="train on this many of this machine's GPUs (MirroredStrategy; default: every visible GPU, the CPU as "
        "one device)",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        help="train on N Ray Train workers (MultiWorkerMirroredStrategy; the global --batch-size split across them), "
        "on this machine or the --address cluster; without it a TF_CONFIG set by your own launcher is honoured",
    )
    cluster_arguments(p)


def _option_names():
    import dataclasses

    return [field.name for field in dataclasses.fields(TrainingOptions) if field.metadata.get("flag")]


NAME = "train"
EXAMPLE = "keras-alexnet train --data photos/ --val-split 0.3 --recipe frozen-features --run-dir runs/pets"
