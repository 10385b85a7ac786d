"""Training with ``model.fit`` and MATLAB-grade options: validation frequency,
patience, piecewise schedules, progress plot, CSV log, best checkpoint, resume
after a crash, mixed precision, XLA, activation caching. ``train`` goes from a
folder of images to a trained, saved model; ``fit`` wires the run directory's
callbacks around any compiled model and tf.data pipelines.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from pathlib import Path

import keras
import numpy as np

from keras_alexnet.calibration import TemperatureChoice
from keras_alexnet.datasets import DatasetError, ImageFolder
from keras_alexnet.datasets.files import ignored
from keras_alexnet.layers import class_names_of
from keras_alexnet.model import load_model
from keras_alexnet.options import AUTO, TrainingOptions
from keras_alexnet.preprocessing import eval_transform
from keras_alexnet.run_directory import RunDirectory
from keras_alexnet.training.distributed import device_names, device_strategy
from keras_alexnet.training.finishing import (
    FINISHING,
    RunEnd,
    run_checkpoint,
    validation_accuracy,
    validation_scores,
)
from keras_alexnet.training.fitting import fit, piecewise_schedule
from keras_alexnet.training.resume import (
    check_resume,
    check_same_data,
    data_record,
    record_data,
    record_resume,
    resumed_folders,
    resumed_options,
)
from keras_alexnet.training.rule import with_named_recipe
from keras_alexnet.training.sets import read_sets, record_validation_set
from keras_alexnet.training.setup import (
    build_model,
    configure,
    prepare_model,
)
from keras_alexnet.training.stages import run_stages
from keras_alexnet.training.tensorboard import tensorboard_callbacks
from keras_alexnet.tta import Measurement

log = logging.getLogger("keras_alexnet.training")

__all__ = [
    "TrainResult",
    "configure",
    "fit",
    "piecewise_schedule",
    "prepare_model",
    "read_sets",
    "train",
    "prepare_run",
    "train_locked",
    "without_optimizer",
]


@dataclasses.dataclass
class TrainResult:
    """What a training run produced."""

    model: keras.Model
    history: dict
    run_dir: Path
    model_path: Path | None  # None when options.save_models is False
    class_names: list
    val_accuracy: float | None
    seconds: float
    cached_activations: bool = False
    options: TrainingOptions | None = None
    output_epoch: int | None = None  # the epoch model.keras holds (options.output_network)
    val_scores: dict = dataclasses.field(default_factory=dict)  # accuracy, balanced_accuracy, macro_f1 of that epoch
    temperature: float | None = None  # what the model divides its logits by (None: not calibrated)
    calibration: object = None  # calibration.TemperatureChoice: the temperature, its free fit, the images, why
    tta: object = None  # tta.Measurement on the validation images (None: not measured)


def finished_result(run_dir, seconds):
    """The ``TrainResult`` of a run another process finished (a ``--workers`` run's chief), read back from its
    run directory: ``model.keras``, ``options.json`` and its record, ``log.csv``."""
    run = RunDirectory(run_dir)
    record = run.result()
    model = load_model(run.model) if run.model.exists() else None
    return TrainResult(
        model=model,
        history=run.history_record(),
        run_dir=run.path,
        model_path=run.model if model is not None else None,
        class_names=class_names_of(model) if model is not None else list(record.training_counts),
        val_accuracy=validation_accuracy({}, run, record.output_epoch),
        seconds=seconds,
        options=TrainingOptions.load(run.options),
        output_epoch=record.output_epoch,
        val_scores=validation_scores(run, record.output_epoch),
        temperature=record.temperature,
        calibration=TemperatureChoice.from_dict(record.calibration),
        tta=Measurement.from_dict(record.tta) if record.tta else None,
    )


def without_optimizer(model):
    """The same layers as an uncompiled model: ``save`` then writes no optimizer state."""
    return keras.Model(model.inputs, model.outputs, name=model.name)


def train(
    data,
    options=None,
    *,
    val=None,
    run_dir=RunDirectory.DEFAULT,
    resume=False,
    overwrite=False,
    callbacks=(),
    verbose=1,
    shared_activations=None,
    devices=None,
    **changes,
):
    """Train AlexNet on a folder of images (one sub-folder per class).

    Args:
        data: training folder, or an ``ImageFolder``.
        options: a ``TrainingOptions`` (default: its defaults). Keyword arguments
            named like its fields change it: ``train(data, epochs=5, recipe="matlab")``. With no
            recipe (the default) the rule of thumb picks one from the data (``training.rule``:
            fine-tune, or frozen-features for a few dozen images), and the run says which and why.
            ``recipe="auto"`` is chosen by a comparison first: call
            ``keras_alexnet.experiments.train`` (or ``keras-alexnet train --recipe auto``).
        val: a validation folder (or ``options.val_split``: a stratified fraction of
            ``data`` held out, MATLAB ``splitEachLabel(imds, 1 - val_split, 'randomized')``).
        run_dir: where the model, log, plot, options and backups go (a ``RunDirectory``).
        resume: continue a killed run from its last backup (which must exist and load), with the
            options it was started with (``options.json``); a difference other than
            ``training.resume.RESUMABLE`` (more epochs, ...) is refused, naming the fields.
        overwrite: replace a previous run's files in ``run_dir`` (refused otherwise).
        callbacks: more Keras callbacks, run after the run directory's own.
        shared_activations: a dict, or a folder (across processes), that keeps activation
            caches between calls (``compare`` passes a folder): runs over the same data and
            frozen weights compute them once.
        devices: the devices of this machine to train on (``distributed.device_strategy``): None
            every visible GPU (``MirroredStrategy`` from two), a count, or device names.
    Returns:
        ``TrainResult``; ``run_dir/model.keras`` holds the final model with its class
        names and ``run_dir/options.json`` the options it was trained with.

    Writes no ``report.html``: the report reads finished runs from above training. ``keras_alexnet.train``
    (this, plus ``recipe="auto"`` and the report when ``options.report``) is the one most callers want.
    """
    start = time.perf_counter()
    run = RunDirectory(run_dir)
    options = resumed_options(run, options, **changes) if resume else TrainingOptions.of(options, **changes)
    if options.recipe == AUTO:
        raise ValueError(
            "recipe='auto' compares the recipes on the data before training: call "
            "keras_alexnet.experiments.train(...) (or `keras-alexnet train --recipe auto`), which resolves it "
            "and then trains the winner here."
        )
    with prepare_run(run, data, val, options, resume=resume, overwrite=overwrite, devices=devices) as sets:
        train_set, val_set = sets
        options, recipe_reason = with_named_recipe(options, train_set, verbose)
        return train_locked(
            train_set,
            val_set,
            options,
            run,
            resume=resume,
            callbacks=callbacks,
            verbose=verbose,
            shared_activations=shared_activations,
            started=start,
            devices=devices,
            recipe_reason=recipe_reason,
        )


@contextlib.contextmanager
def prepare_run(run, data, val, options, *, resume=False, overwrite=False, devices=None):
    """A run's opening steps, for ``train`` and ``experiments.train`` alike: the folders (a resume's recorded
    ones), the checks made before any work, the sets read, the run directory locked and started (a new run
    records what it trains on). Yields (training set, validation set or None) with the run locked."""
    if resume:
        data, val = resumed_folders(run, data, val, options)
    check_outside_data(run, data, val)
    device_names(devices)  # more devices than the machine has: refused before any work
    train_set, val_set = read_sets(data, val, options)
    run.check_can_start(resume)
    if resume:
        check_same_data(run, train_set, val_set)
    with run.locked():
        if not resume:
            run.start_new(overwrite)
            record_data(run, data_record(data, val, train_set, val_set))
        else:
            run.clear_ray_train()
        yield train_set, val_set


def check_outside_data(run, data, val=None):
    """Refuse a run directory inside the data (or validation) folder, where its files would be read as a
    class (unless it is in a hidden folder)."""
    for flag, folder in (("--data", data), ("--val", val)):
        if folder is None or isinstance(folder, ImageFolder):
            continue
        folder, inside = Path(folder).resolve(), run.path.resolve()
        if inside != folder and folder not in inside.parents:
            continue
        # A hidden folder (".runs/...") is never read as a class.
        if not any(ignored(Path(part)) for part in inside.relative_to(folder).parts):
            raise DatasetError(
                f"--run-dir {run.path} is inside {flag} {folder}: its files would be read as a class folder. "
                "Choose a --run-dir outside the data folder."
            )


def train_locked(
    train_set,
    val_set,
    options,
    run,
    *,
    resume=False,
    callbacks=(),
    verbose=1,
    shared_activations=None,
    started=None,
    devices=None,
    recipe_reason=None,
):
    """``train``'s work, in a ``RunDirectory`` the caller holds locked and has checked (new or resumable).

    For callers that write into the run directory first (``recipe="auto"``'s choice); the
    sets are ``ImageFolder``s, the options name a recipe. Three steps: set the run up, fit each
    stage of the recipe (``stages.run_stages``), then the finishing steps (``finishing.FINISHING``:
    keep the output network, calibrate, check, measure test-time augmentation, save, record).
    ``recipe_reason``: why the rule of thumb chose the recipe (``training.rule``), recorded. Returns a
    ``TrainResult``.
    """
    start = time.perf_counter() if started is None else started
    configure(options)
    classes = len(train_set.class_names)
    done, done_stage = run.check_resumable(classes) if resume else (0, 1)
    if resume:
        record_resume(run, done, check_resume(run, options, done))
    steps_per_epoch = math.ceil(len(train_set) / options.batch_size)
    strategy = device_strategy(devices)
    scope = strategy.scope if strategy is not None else contextlib.nullcontext
    with scope():
        model = build_model(options, classes, steps_per_epoch)
    options.save(run.options)
    if val_set is not None:
        record_validation_set(val_set, run.validation)
    checkpoint = run_checkpoint(options, run, model, train_set.class_names) if val_set is not None else None
    if options.tensorboard:
        callbacks = [*_tensorboard(model, options, val_set, run, verbose), *callbacks]
    fitted = run_stages(
        model,
        options,
        run,
        train_set,
        val_set,
        checkpoint=checkpoint,
        callbacks=callbacks,
        resume=resume,
        done=(done, done_stage),
        scope=scope,
        verbose=verbose,
        shared_activations=shared_activations,
    )
    end = RunEnd(fitted, options, run, train_set, val_set, verbose, recipe_reason=recipe_reason)
    for step in FINISHING:
        step(end)
    return TrainResult(
        end.final_model,
        fitted.history,
        run.path,
        end.model_path,
        train_set.class_names,
        end.val_accuracy,
        time.perf_counter() - start,
        fitted.cached,
        options,
        output_epoch=end.kept_epoch,
        temperature=end.calibration.temperature if end.calibration else None,
        calibration=end.calibration,
        val_scores=end.val_scores,
        tta=end.augmentation,
    )


def _tensorboard(model, options, val_set, run, verbose):
    """TensorBoard callbacks (and the command to watch them, printed)."""
    images = None
    if options.tensorboard_images and val_set is not None:
        picked = np.linspace(0, len(val_set) - 1, num=min(4, len(val_set))).astype(int)
        images = np.stack([eval_transform(val_set.paths[i]) for i in picked])
    if verbose:
        print(f"TensorBoard: tensorboard --logdir {run.tensorboard}")
    return tensorboard_callbacks(run.tensorboard, model, images)
