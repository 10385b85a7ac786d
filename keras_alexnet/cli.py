"""The ``keras-alexnet`` command line: flags in, calls of the Python API out.

Each subcommand is built by one small function (``_train_command`` ...) from shared
argument groups (data, model, seed, batch, output), so a flag is written once; its
``run`` function maps the flags onto a library call. The parser needs neither
TensorFlow nor Keras (``--help`` and bad flags answer at once; recipe and head names
come from the plain tables in ``keras_alexnet.recipes``); each subcommand imports what
it uses, with TensorFlow's start-up lines hidden unless ``--verbose``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shlex
import signal
import sys
import threading
import time

from keras_alexnet import __version__
from keras_alexnet._utils.choices import (
    COMPARE_METRICS,
    EXPLAIN_METHODS,
    TTA_VIEWS,
    tta_description,
)
from keras_alexnet._utils.disk import DiskFullError, is_disk_full
from keras_alexnet._utils.files import check_folder_target, check_new_file, check_not_source
from keras_alexnet._utils.flags import (
    add_flags,
    fraction,
    non_negative_number,
    positive_int,
    positive_number,
    typed_options,
)
from keras_alexnet._utils.runtime import VERBOSE, quiet_tensorflow
from keras_alexnet._utils.text import printable
from keras_alexnet.formats import FORMATS, export_formats, quantizations
from keras_alexnet.options import (
    AUTO,
    COMPARE_FIELDS,
    COMPARE_VAL_SPLIT,
    LR_FIND_FIELDS,
    REGULARIZER_NAMES,
    DemoOptions,
    SweepOptions,
    TrainingOptions,
)
from keras_alexnet.recipes import head_names, recipe_names
from keras_alexnet.run_directory import RunDirectory

EXAMPLES = {
    "convert": "keras-alexnet convert --source alexnet-owt-7be5be79.pth",
    "train": "keras-alexnet train --data photos/ --val-split 0.3 --recipe frozen-features --run-dir runs/pets",
    "evaluate": "keras-alexnet evaluate --model runs/pets/model.keras --data test/ --out runs/pets/eval",
    "predict": "keras-alexnet predict --model runs/pets/model.keras photo1.jpg photo2.jpg --top 3",
    "export": "keras-alexnet export --model runs/pets/model.keras --format onnx --out pets.onnx",
    "layers": "keras-alexnet layers --recipe matlab --classes 5",
    "lr-find": "keras-alexnet lr-find --data photos/ --recipe frozen-features --plot lr_find.png",
    "compare": "keras-alexnet compare --data photos/ --val-split 0.3 --epochs 3 --seeds 3 --out comparison",
    "explain": "keras-alexnet explain --model runs/pets/model.keras photo1.jpg photos/ --method gradcam --out explained",
    "report": "keras-alexnet report --run-dir runs/pets --data photos/test",
    "demo": "keras-alexnet demo --out demo_output",
}


def _convert(args):
    from keras_alexnet.conversion import ParityError, convert

    try:
        threshold = {} if args.max_rel is None else {"max_rel": args.max_rel}
        result = convert(
            args.source, out=args.out, check_onnx2tf=args.check_onnx2tf, keep_onnx=args.keep_onnx, **threshold
        )
    except ParityError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"weights: {result.weights_path}")
    return 0


def training_options(args, base=None):
    """The ``TrainingOptions`` the typed flags describe: ``base`` (default: the defaults) changed by them.

    The flags are made from the fields (``_utils.flags``), with no default of their own: what is in
    ``args`` was typed.
    """
    from keras_alexnet.options import TrainingOptions

    return (base or TrainingOptions()).replace(**typed_options(args, TrainingOptions))


def _resume_options(args):
    """On --resume: the run's own options (options.json), changed only by the flags the user wrote."""
    from keras_alexnet.options import TrainingOptions

    saved = RunDirectory(args.run_dir).options
    return training_options(args, TrainingOptions.load(saved) if saved.exists() else None)


def _train(args):
    from keras_alexnet.experiments import train

    if args.workers or os.environ.get("TF_CONFIG"):
        return _train_on_workers(args)

    result = train(
        args.data,
        _resume_options(args) if args.resume else training_options(args),
        val=args.val,
        run_dir=args.run_dir,
        resume=args.resume,
        overwrite=args.overwrite,
        verbose=2 if args.quiet else 1,
        cluster=_cluster(args),
        devices=args.devices,
    )
    if result.val_accuracy is not None:
        print(f"validation accuracy: {result.val_accuracy:.4f}")
    scores = result.val_scores
    if "balanced_accuracy" in scores:
        print(
            f"balanced accuracy: {scores['balanced_accuracy']:.4f}, macro-F1: {scores.get('macro_f1', float('nan')):.4f}"
        )
    if result.output_epoch is not None and result.options is not None:
        print(f"model.keras: epoch {result.output_epoch} (--output-network {result.options.output_network})")
    run = RunDirectory(result.run_dir)
    print(f"model: {result.model_path}\nprogress plot: {run.progress}\nlog: {run.log}")
    return 0


def _train_on_workers(args):
    """``train --workers N`` (Ray Train), or this process's share of a run whose workers ``TF_CONFIG`` names."""
    from keras_alexnet.training.on_workers import train_on_workers, train_with_tf_config

    options = _resume_options(args) if args.resume else training_options(args)
    common = {"val": args.val, "run_dir": args.run_dir, "resume": args.resume, "overwrite": args.overwrite}
    if args.workers:
        from keras_alexnet.experiments.auto import resolve_auto

        def resolve(options, train_set, val_set, run):  # --recipe auto: its comparison on the same cluster
            return resolve_auto(options, train_set, val_set, run.path, args.resume, cluster=_cluster(args))

        result = train_on_workers(
            args.data,
            options,
            workers=args.workers,
            address=args.address,
            cpus_per_worker=args.cpus_per_trial,
            gpus_per_worker=args.gpus_per_trial,
            resolve=resolve,
            **common,
        )
    else:
        if options.recipe == AUTO:
            raise ValueError(
                "--recipe auto with TF_CONFIG: every worker would run the comparison. Choose the recipe first "
                "(`keras-alexnet compare`), then start the workers with --recipe NAME."
            )
        result = train_with_tf_config(args.data, options, **common)
    if result:
        print(
            f"model: {RunDirectory(args.run_dir).model} (epoch {result.get('output_epoch')}; log: "
            f"{RunDirectory(args.run_dir).log})"
        )
    return 0


def _lr_find(args):
    from keras_alexnet.options import SweepOptions
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


def _compare(args):
    from keras_alexnet.experiments import candidates_of, compare

    options = training_options(args)
    compare(
        args.data,
        options,
        val=args.val,
        candidates=candidates_of(args.recipes, args.heads, args.lrs, args.regularizers),
        seeds=args.seeds,
        out=args.out,
        overwrite=args.overwrite,
        time_limit=None if args.time_limit is None else args.time_limit * 60,
        keep_models=args.keep_models,
        metric=args.metric,
        tta=args.tta,
        cluster=_cluster(args),
    )
    return 0


def _cluster(args):
    """The ``Cluster`` the --address, --cpus-per-trial and --gpus-per-trial flags name."""
    from keras_alexnet.experiments import Cluster

    return Cluster(args.address, args.cpus_per_trial, args.gpus_per_trial)


def _cluster_arguments(p):
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


def _explain(args):
    from keras_alexnet.explain import explain
    from keras_alexnet.model import AlexNet, load_model

    if args.method != "filters" and not args.images:
        raise ValueError(f"--method {args.method} explains images: give image files or folders.")
    if args.model == "imagenet":
        needs_classifier = args.method in ("gradcam", "occlusion")
        model = AlexNet(weights="imagenet", include_top=needs_classifier)
    else:
        model = load_model(args.model)
    written, skipped = explain(model, args.images, args.method, args.layer, args.target, args.out)
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(f"{len(written)} picture(s) in {args.out}/" + (f"; {len(skipped)} image(s) skipped" if skipped else ""))
    return 0


def _report(args):
    from keras_alexnet.explain.report import write_report

    path = write_report(args.run_dir, data=args.data, top_losses=args.top_losses, tta=args.tta)
    print(f"report: {path}")
    return 0


def _evaluate(args):
    from keras_alexnet.deployment import load_classifier
    from keras_alexnet.evaluation import evaluate, tta_gain

    if args.out:
        check_folder_target(args.out)
    classifier = load_classifier(args.model)
    _warn_if_far_from_training(args.model, [args.data])
    started = time.perf_counter()
    result = evaluate(classifier, args.data, batch_size=training_options(args).batch_size)
    if args.tta:
        _warn_if_tta_lowered(args.model)
        plain, plain_seconds = result, time.perf_counter() - started
        started = time.perf_counter()
        result = evaluate(classifier, args.data, batch_size=training_options(args).batch_size, tta=True)
        print(tta_gain(plain, result, plain_seconds, time.perf_counter() - started))
    print(result.report())
    if args.out:
        paths = result.save(args.out)
        print(f"wrote {', '.join(str(path) for path in paths)}")
    return 0


def _warn_if_tta_lowered(model):
    """Say so when the model's run measured test-time augmentation lowering its validation accuracy."""
    from keras_alexnet.tta import warning

    line = warning(model) if model else None
    if line:
        print(line, file=sys.stderr)


def _warn_if_far_from_training(model, items):
    """Print ``evaluation.far_from_training``'s warning for the images under ``items``, if any."""
    from keras_alexnet.datasets.files import image_files
    from keras_alexnet.evaluation import far_from_training

    try:
        images, _ = image_files(items)
    except FileNotFoundError:
        return  # the command itself says what is missing
    warning = far_from_training(model, images)
    if warning:
        print(warning, file=sys.stderr)


def _predict(args):
    from keras_alexnet.deployment import KerasClassifier, load_classifier
    from keras_alexnet.evaluation import predict_files, write_predictions
    from keras_alexnet.model import AlexNet

    if args.out:
        check_new_file(args.out, args.overwrite)
    model = load_classifier(args.model) if args.model else KerasClassifier(AlexNet(weights="imagenet"))
    top = min(args.top, model.outputs)
    _warn_if_far_from_training(args.model, args.images)
    if args.tta:
        _warn_if_tta_lowered(args.model)

    def echo(prediction):
        if prediction.error is not None:
            print(f"skipped {printable(prediction.path)}: {prediction.error}", file=sys.stderr, flush=True)
        else:
            scores = ", ".join(f"{n} {p:.3f}" for n, p in prediction.top)
            unknown = f"unknown (under {args.min_confidence:g}): " if prediction.answer == prediction.UNKNOWN else ""
            print(f"{printable(prediction.path)}: {unknown}{scores}", flush=True)

    predictions = predict_files(
        model,
        args.images,
        top=top,
        batch_size=training_options(args).batch_size,
        min_confidence=args.min_confidence,
        tta=args.tta,
    )
    if args.out:
        done, skipped = write_predictions(predictions, args.out, top, echo)
    else:
        done = skipped = 0
        for prediction in predictions:
            echo(prediction)
            done, skipped = done + (prediction.error is None), skipped + (prediction.error is not None)
    where = f"; written to {args.out}" if args.out else ""
    print(f"{done} image(s) predicted" + (f", {skipped} skipped" if skipped else "") + where, file=sys.stderr)
    return 0 if done else 1


def _export(args):
    from keras_alexnet.export import calibration_crops, export, labelled_images
    from keras_alexnet.layers import class_names_of
    from keras_alexnet.model import load_model

    check_not_source(args.out, args.model)
    model = load_model(args.model)
    labelled = None
    if args.data or args.quantize:
        labelled = labelled_images(args.model, args.data, class_names_of(model))
        if args.quantize and labelled is None:
            print("note: no labelled images (--data, or a run's validation set): the accuracy gate is skipped")
    check = export(
        model,
        args.format,
        args.out,
        overwrite=args.overwrite,
        quantize=args.quantize,
        labelled=labelled,
        representative=calibration_crops(labelled) if args.quantize == "int8" and labelled else None,
        max_accuracy_drop=args.max_accuracy_drop,
    )
    size = sum(p.stat().st_size for p in check.path.rglob("*")) if check.path.is_dir() else check.path.stat().st_size
    shown = f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 2**10:.0f} KB"
    if args.quantize:  # float32 TFLite holds 4 bytes a parameter
        shown += f", float32 would be about {4 * model.count_params() / 2**20:.1f} MB"
    print(
        f"{args.format}{' ' + args.quantize if args.quantize else ''} written to {check.path} ({shown}); "
        f"checked on {check.samples} images: max |difference| to Keras {check.max_abs_diff:.2e}"
    )
    if check.gate is not None:
        print(check.gate)
    return 0


def _layers(args):
    from keras_alexnet.architecture import ALEXNET, TINY
    from keras_alexnet.model import AlexNet
    from keras_alexnet.transfer import apply_recipe, print_layer_table, replace_head

    options = training_options(args, TrainingOptions(weights=None))  # the table needs no weights
    architecture = {"alexnet": ALEXNET, "tiny": TINY}[options.architecture]
    model = AlexNet(weights=None, include_top=False, architecture=architecture)
    if args.shown_recipe:
        model = apply_recipe(model, args.shown_recipe, args.classes, head=options.head)
    elif options.head != "alexnet":
        model = replace_head(model, args.classes, head=options.head)
    print_layer_table(model)
    return 0


def _demo(args):
    from keras_alexnet.demo import run_demo

    demo = DemoOptions(**typed_options(args, DemoOptions))
    run_demo(demo.out, per_class=demo.per_class, epochs=demo.epochs, seed=demo.seed)
    return 0


# Shared argument groups: each flag is written here once.


def _data_arguments(p, *, data_help="training folder, one sub-folder per class", split=None):
    p.add_argument("--data", required=True, help=data_help)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--val", help="validation folder")
    add_flags(group, TrainingOptions, ["val_split"], defaults={"val_split": split} if split else None)


def _overwrite_argument(p, help):
    p.add_argument("--overwrite", action="store_true", help=help)


# One function per subcommand.


def _convert_command(command):
    p = command("convert", "convert torchvision AlexNet weights to Keras through ONNX, with a parity report", _convert)
    p.add_argument(
        "--source",
        default="torchvision",
        help="'torchvision' (download official ImageNet weights), 'random[:SEED]', or a .pth/.npz state dict",
    )
    p.add_argument("--out", help="output .weights.h5 (default: the Keras cache, $KERAS_HOME/models)")
    p.add_argument("--check-onnx2tf", action="store_true", help="also compare against onnx2tf's conversion")
    p.add_argument("--keep-onnx", metavar="PATH", help="keep the intermediate ONNX file here")
    p.add_argument(
        "--max-rel",
        type=float,
        help="fail (and write nothing) if any relative difference exceeds this (default 1e-4)",
    )


def _train_command(command):
    p = command("train", "transfer-learn AlexNet on a folder of images (one sub-folder per class)", _train)
    _data_arguments(p)
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
    _cluster_arguments(p)


def _option_names():
    import dataclasses

    return [field.name for field in dataclasses.fields(TrainingOptions) if field.metadata.get("flag")]


def _lr_find_command(command):
    p = command("lr-find", "sweep the base learning rate of a recipe and suggest one (fastai's lr_find)", _lr_find)
    p.add_argument("--data", required=True, help="training folder, one sub-folder per class")
    add_flags(p, TrainingOptions, LR_FIND_FIELDS)
    add_flags(p, SweepOptions)
    p.add_argument("--plot", default="lr_find.png", help="PNG of loss against rate (default lr_find.png)")


def _compare_command(command):
    p = command("compare", "train every recipe and head over several seeds on one split, and tabulate them", _compare)
    _data_arguments(p, split=COMPARE_VAL_SPLIT)
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
    p.add_argument("--seeds", type=positive_int, default=3, help="runs per candidate, seeds 0..N-1 (default 3)")
    add_flags(p, TrainingOptions, [name for name in COMPARE_FIELDS if name != "val_split"])
    p.add_argument("--time-limit", type=positive_number, metavar="MINUTES", help="start no run after this many minutes")
    p.add_argument("--out", default="comparison", help="comparison folder; run again to continue a killed one")
    _overwrite_argument(p, "replace a comparison with other settings in --out")
    p.add_argument(
        "--keep-models",
        action="store_true",
        help="keep every run's model.keras (228 MB with AlexNet's head; default: numbers only)",
    )
    p.add_argument(
        "--metric",
        default="accuracy",
        choices=tuple(COMPARE_METRICS),
        help="rank the candidates by this validation score (balanced-accuracy or macro-f1 for imbalanced classes; "
        "default: %(default)s)",
    )
    _tta_argument(p, "score every run's model on the validation images with test-time augmentation")
    _cluster_arguments(p)


def _explain_command(command):
    p = command(
        "explain", "show what the model sees: Grad-CAM, occlusion, activations or conv1 filters, as PNGs", _explain
    )
    p.add_argument("images", nargs="*", help="image files or folders (not needed for --method filters)")
    p.add_argument(
        "--model",
        default="imagenet",
        help="a trained .keras model, or 'imagenet' (Grad-CAM/occlusion need `keras-alexnet convert` first)",
    )
    p.add_argument("--method", default="gradcam", choices=EXPLAIN_METHODS)
    p.add_argument("--layer", help="gradcam: a convolution (default conv5); activations: any layer (default conv2)")
    p.add_argument("--class", dest="target", help="explain this class (name or index) instead of the predicted one")
    p.add_argument("--out", default="explain", help="folder for the PNGs (default explain/)")


def _report_command(command):
    p = command("report", "write a self-contained HTML report of a training run (run-dir/report.html)", _report)
    p.add_argument("--run-dir", required=True, help="the run directory `keras-alexnet train` wrote")
    p.add_argument("--data", help="a labelled folder to interpret the model on (default: the run's validation images)")
    p.add_argument("--top-losses", type=positive_int, default=9, help="images in the top-losses gallery (default 9)")
    _tta_argument(p, "also score the model with test-time augmentation and show the gain")


def _evaluate_command(command):
    p = command("evaluate", "accuracy, per-class precision/recall, confusion matrix", _evaluate)
    p.add_argument("--model", required=True, help="model.keras, a SavedModel folder, a .tflite or an .onnx file")
    p.add_argument("--data", required=True, help="folder with one sub-folder per class")
    p.add_argument("--out", help="folder for evaluation.txt, confusion_matrix.png and reliability.png")
    _tta_argument(p, "also evaluate with test-time augmentation and print the gain and the cost per image")
    add_flags(p, TrainingOptions, ["batch_size"])


def _predict_command(command):
    p = command("predict", "top-k classes of images, streamed in batches (any number of images)", _predict)
    p.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument(
        "--model",
        help="model.keras, a SavedModel folder, a .tflite or an .onnx file (default: ImageNet AlexNet, needs "
        "`keras-alexnet convert`)",
    )
    p.add_argument("--top", type=positive_int, default=5)
    p.add_argument("--out", help="also write the predictions as CSV (path, answer, class, probability, ..., error)")
    p.add_argument(
        "--min-confidence",
        type=fraction,
        default=0.0,
        metavar="P",
        help="answer 'unknown' when the top probability is under P (default 0: always the top class; the run "
        "report's accuracy/coverage curve helps pick P)",
    )
    _tta_argument(p, "blend each image's probabilities over test-time augmentation's views")
    _overwrite_argument(p, "replace the --out file if it exists")
    add_flags(p, TrainingOptions, ["batch_size"])


def _tta_argument(parser, what):
    parser.add_argument(
        "--tta", action="store_true", help=f"{what} ({tta_description()}; {len(TTA_VIEWS)} times the work)"
    )


def _export_command(command):
    p = command("export", "export a trained model to SavedModel (TF Serving), TFLite or ONNX, verified", _export)
    p.add_argument("--model", required=True)
    p.add_argument(
        "--format",
        required=True,
        choices=export_formats(),
        help="; ".join(f"{f.name}: {f.summary}" for f in FORMATS.values() if f.writable),
    )
    p.add_argument("--out", required=True)
    _overwrite_argument(p, "replace an existing export (a SavedModel folder or .tflite file) at --out")
    p.add_argument(
        "--quantize",
        choices=quantizations(),
        help="TFLite only: a smaller file (float16 half, dynamic and int8 a quarter), checked with its own "
        "tolerance and, on labelled images, its accuracy",
    )
    p.add_argument(
        "--data",
        help="--quantize: labelled images (a folder per class) to check the accuracy on and, for int8, to calibrate "
        "on (up to 200 of them); default the validation images of the run that wrote --model",
    )
    p.add_argument(
        "--max-accuracy-drop",
        type=fraction,
        default=0.02,
        help="--quantize: refuse (write nothing) when the accuracy falls by more than this (default 0.02)",
    )


def _layers_command(command):
    p = command("layers", "print the layer table (parameters, trainable, factors) of a recipe", _layers)
    p.add_argument(
        "--recipe", dest="shown_recipe", choices=recipe_names(), help="show this recipe's freezing and factors"
    )
    p.add_argument("--classes", type=positive_int, default=2)
    add_flags(p, TrainingOptions, ["architecture", "head"])


def _demo_command(command):
    p = command("demo", "offline demo: shapes data set, MATLAB recipe, plots, SavedModel", _demo)
    add_flags(p, DemoOptions)


COMMANDS = (
    _convert_command,
    _train_command,
    _lr_find_command,
    _compare_command,
    _explain_command,
    _report_command,
    _evaluate_command,
    _predict_command,
    _export_command,
    _layers_command,
    _demo_command,
)


def build_parser():
    """The ``keras-alexnet`` parser: one sub-parser per entry of ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="keras-alexnet",
        description="torchvision's AlexNet in Keras: convert, train, evaluate, predict, export.",
        epilog="example: " + EXAMPLES["train"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up and log lines")
    parser.add_argument("--version", action="version", version=f"keras-alexnet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, summary, run):
        p = commands.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog="example: " + EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(run=run)
        return p

    for add in COMMANDS:
        add(command)
    return parser


def _interrupted(args, argv):
    """One line after Ctrl-C: what was kept, and the command that continues (exit status 130)."""
    if args.command == "train":
        run = RunDirectory(args.run_dir)
        if not run.has_backup():
            return "interrupted before the first backup: nothing to resume; start the run again."
        epochs, _ = run.check_resumable()
        again = [arg for arg in argv if arg not in ("--overwrite", "--resume")]
        return f"interrupted after epoch {epochs}; continue with: keras-alexnet {shlex.join(again)} --resume"
    if args.command == "compare":
        return f"interrupted; the finished runs are kept in {args.out}: the same command continues where it stopped."
    if args.command in ("export", "lr-find", "convert"):
        return "interrupted; nothing was written (files are written whole or not at all)."
    return "interrupted."


def _what_is_kept(args, argv):
    """What a failed command leaves, and the command that continues it (train), in words."""
    if args.command == "train":
        run = RunDirectory(args.run_dir)
        if run.has_backup():
            epochs, _ = run.check_resumable()
            again = [arg for arg in argv if arg not in ("--overwrite", "--resume")]
            return f"the backup of epoch {epochs} is kept; once fixed, continue with: keras-alexnet {shlex.join(again)} --resume"
        return "no epoch was backed up; once fixed, start the run again."
    return "files are written whole or not at all: nothing half-written was left."


def _pipeline_failure(error):
    """One line for a TensorFlow op error: the Python error inside it, where an image read failed."""
    lines = [line.strip() for line in str(error.message).splitlines() if line.strip()]
    inner = [line for line in lines if "Error:" in line and not line.startswith("[[")]
    text = inner[-1] if inner else (lines[0] if lines else type(error).__name__)
    if "does not exist" in text or "No such file" in text:
        return f"an image disappeared while it was being read ({text}): was the data folder moved or deleted?"
    return f"TensorFlow stopped: {text}"


@contextlib.contextmanager
def termination_as_interrupt():
    """SIGTERM (what kill, systemd and schedulers send) ends a command like Ctrl-C: one line, exit 130,
    the lock released and the backup kept. Only in the main thread, where Python allows it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None):
    """Entry point of the ``keras-alexnet`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):
        # A file name that is not UTF-8 prints with its odd bytes escaped instead of ending the command.
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    args.argv = argv
    VERBOSE["native"] = bool(args.verbose)
    with quiet_tensorflow(args.verbose):
        from keras_alexnet.deployment import MissingRuntime
        from keras_alexnet.export import ExportCheckError
        from keras_alexnet.training.callbacks import TrainingDiverged

    try:
        with termination_as_interrupt():
            return args.run(args)
    except ExportCheckError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except TrainingDiverged as error:
        print(f"error: {error} (keras-alexnet train --lr ...)", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, MissingRuntime) as error:  # bad input: the message says what to do
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{_interrupted(args, argv)}", file=sys.stderr)
        return 130
    except OSError as error:
        if is_disk_full(error):
            text = (
                str(error) if isinstance(error, DiskFullError) else f"the disk is full ({error}): free space and retry."
            )
        elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            text = f"cannot write {printable(error.filename or '')} ({error.strerror}): {_what_is_kept(args, argv)}"
        else:
            raise
        print(f"error: {text}", file=sys.stderr)
        return 1
    except Exception as error:
        # An image read inside a tf.data pipeline that is gone (the data folder moved or deleted mid-run).
        tf = sys.modules.get("tensorflow")
        if tf is None or not isinstance(error, tf.errors.OpError):
            raise
        print(f"error: {_pipeline_failure(error)}; {_what_is_kept(args, argv)}", file=sys.stderr)
        return 1


def console():
    """The ``keras-alexnet`` console script: ``main``, then, after Ctrl-C or a failure, an exit that skips
    Python's teardown. A tf.data pipeline or an HDF5 file stopped mid-way can hang or crash the garbage
    collection at exit (seen after Ctrl-C: the process never ended); everything is written by then."""
    code = main()
    if code in (1, 130):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(console())
