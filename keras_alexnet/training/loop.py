"""Training with ``model.fit`` and MATLAB-grade options: validation frequency,
patience, piecewise schedules, progress plot, CSV log, best checkpoint, resume
after a crash, mixed precision, XLA, activation caching. ``train`` goes from a
folder of images to a trained, saved model; ``fit`` wires the run directory's
callbacks around any compiled model and tf.data pipelines.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import math
import time
from pathlib import Path

import keras
import numpy as np

from keras_alexnet._utils.choices import OUTPUT_NETWORKS
from keras_alexnet._utils.disk import DiskFullError, disk_full_message, ensure_space, is_disk_full, weights_bytes
from keras_alexnet._utils.files import atomic_write
from keras_alexnet.calibration import CalibrationScores, ece_floor, fit_temperature, tempered
from keras_alexnet.datasets import DatasetError, ImageFolder
from keras_alexnet.datasets.class_weights import weighted
from keras_alexnet.datasets.files import ignored
from keras_alexnet.datasets.statistics import colour_statistics
from keras_alexnet.explain.report import write_report
from keras_alexnet.layers import attach_class_names, with_temperature
from keras_alexnet.metrics import BALANCED_METRICS, training_metrics
from keras_alexnet.options import AUTO, TrainingOptions
from keras_alexnet.preprocessing import eval_transform
from keras_alexnet.run_directory import RunDirectory
from keras_alexnet.training.callbacks import (
    AtomicBackupAndRestore,
    StopOnDivergence,
    TrainingDiverged,
    TrainingProgress,
    plot_progress,
    save_model_atomic,
    trim_csv_log,
    write_backup,
)
from keras_alexnet.training.distributed import device_names, device_strategy
from keras_alexnet.training.output_network import early_stopping, keep_output_network, output_checkpoint
from keras_alexnet.training.regularizers import ValidateAveragedWeights, mixed
from keras_alexnet.training.resume import (
    check_resume,
    check_same_data,
    data_record,
    record_data,
    record_resume,
    resumed_folders,
    resumed_options,
)
from keras_alexnet.training.sets import read_sets
from keras_alexnet.training.setup import (
    activation_pipelines,
    balancing,
    build_model,
    configure,
    enter_stage,
    prepare_model,
    stage_epochs,
    stage_label,
)
from keras_alexnet.training.tensorboard import tensorboard_callbacks
from keras_alexnet.transfer import TrainableStateGuard
from keras_alexnet.tta import measure as measure_tta

log = logging.getLogger("keras_alexnet.training")

__all__ = [
    "TrainResult",
    "configure",
    "fit",
    "piecewise_schedule",
    "prepare_model",
    "read_sets",
    "train",
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
    temperature: float | None = None  # fitted on the validation images (None: not calibrated)
    tta: object = None  # tta.Measurement on the validation images (None: not measured)


def piecewise_schedule(initial_rate, drop_factor=0.1, drop_period=10):
    """MATLAB LearnRateSchedule 'piecewise': multiply by ``drop_factor`` every ``drop_period`` epochs."""
    return keras.callbacks.LearningRateScheduler(lambda epoch: initial_rate * drop_factor ** (epoch // drop_period))


def fit(
    model,
    train_data,
    val_data=None,
    *,
    epochs=3,
    run_dir=RunDirectory.DEFAULT,
    resume=False,
    validation_frequency=None,
    patience=None,
    lr_schedule=None,
    cache=None,
    backup_every=1,
    verbose=1,
    extra_callbacks=(),
    steps_per_epoch=None,
    stage=None,
    keep_backup=False,
    checkpoint=None,
    output_network=OUTPUT_NETWORKS[0],
    val_weights=None,
):
    """``model.fit`` with the run directory's callbacks.

    Writes into ``run_dir`` (a folder or a ``RunDirectory``): ``log.csv``, ``history.json``,
    ``progress.png``, while running ``best.keras`` (the output network's best epoch so far) and ``backup/``
    (``AtomicBackupAndRestore`` after every ``backup_every``-th epoch). With ``resume=True`` a killed
    run continues from its last backup; otherwise an old backup is
    discarded. ``steps_per_epoch``: for pipelines that hold several epochs
    (``ImageFolder.dataset(epochs=...)``). ``cache``: a (train, val) pair of pipelines over cached features
    and the model to fit on them (see ``train``). ``stage``: (number, label) of a two-stage
    recipe's stage: the backup records the number, the plot marks where the label's stage began.
    ``keep_backup``: leave the last backup when the fit ends (the next stage starts from it).
    ``checkpoint``: the ``BestModelCheckpoint`` that keeps the best epoch (``train`` keeps one across
    stages); None: one that writes ``best.keras``; False: none (the log and history tell the best epoch).
    ``output_network``: the rule the checkpoint and ``patience`` follow (``training.output_network``).
    ``val_weights``: per-class weights of the validation images (``setup.balancing``).
    """
    run = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
    backup_callback = AtomicBackupAndRestore(
        str(run.backup),
        save_freq="epoch",
        delete_checkpoint=not keep_backup,
        every_epochs=backup_every,
        stage=stage[0] if stage else 1,
    )
    if not resume:
        run.clear_fit_state()
    else:
        trim_csv_log(run.log, backup_callback.backed_up_epochs())
    run.path.mkdir(parents=True, exist_ok=True)
    fit_model, fit_train, fit_val = (
        (cache["model"], cache["train"], cache["val"]) if cache else (model, train_data, val_data)
    )
    if fit_val is not None:
        fit_val = weighted(fit_val, val_weights)
    rate = model.optimizer.learning_rate if model.optimizer is not None else None
    callbacks = [
        TrainableStateGuard(),
        # First: a non-finite loss stops the run before the log, plot, backup or checkpoint see it.
        StopOnDivergence(float(keras.ops.convert_to_numpy(rate)) if isinstance(rate, keras.Variable) else None),
        # The logs before the backup: a run killed between the two repeats an epoch that is
        # logged (and trimmed on resume), instead of missing one.
        keras.callbacks.CSVLogger(str(run.log), append=resume),
        TrainingProgress(run, fit_val, validation_frequency, stage=stage[1] if stage else None),
        backup_callback,
    ]
    if fit_val is not None:
        if checkpoint is None:
            checkpoint = output_checkpoint(output_network, run, model, None, save_file=True)
        if getattr(model.optimizer, "use_ema", False):
            # Validation and the checkpoint see the weights' moving average (what the run ships).
            callbacks.append(ValidateAveragedWeights(model.optimizer, checkpoint or None))
        elif checkpoint:
            callbacks.append(checkpoint)
        if patience:
            callbacks.append(early_stopping(output_network, patience))
    if lr_schedule is not None:
        callbacks.append(lr_schedule)
    callbacks.extend(extra_callbacks)
    # shuffle=False: the pipelines shuffle themselves, every epoch.
    history = fit_model.fit(
        fit_train,
        validation_data=fit_val,
        epochs=epochs,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,
        steps_per_epoch=steps_per_epoch,
    )
    return history.history


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
            named like its fields change it: ``train(data, epochs=5, recipe="matlab")``.
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
        )


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
):
    """``train``'s work, in a ``RunDirectory`` the caller holds locked and has checked (new or resumable).

    For callers that write into the run directory first (``recipe="auto"``'s choice); the
    sets are ``ImageFolder``s, the options name a recipe. Returns a ``TrainResult``.
    """
    start = time.perf_counter() if started is None else started
    configure(options.seed, options.mixed_precision, options.deterministic)
    recipe = options.recipe_object
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
    val_ds = val_set.dataset(options.batch_size) if val_set is not None else None
    weights, val_weights = balancing(options, train_set, val_set)
    checkpoint = None
    if val_set is not None:
        checkpoint = output_checkpoint(
            options.output_network,
            run,
            model,
            lambda fitted: _saved_form(fitted, train_set.class_names, options),
            save_file=options.save_models,
        )
    if options.tensorboard:
        callbacks = [*_tensorboard(model, options, val_set, run, verbose), *callbacks]
    shared = {
        "run_dir": run,
        "validation_frequency": options.validation_frequency,
        "patience": options.patience,
        "backup_every": options.backup_every,
        "verbose": verbose,
        "extra_callbacks": callbacks,
        "steps_per_epoch": steps_per_epoch,
        "checkpoint": checkpoint,
        "output_network": options.output_network,
        "val_weights": val_weights,
        # The backup outlives the fit: the run is resumable until its model is written (run.finish).
        "keep_backup": True,
    }
    history, cached, last_cache = {}, False, None
    bounds = stage_epochs(options)
    skipped_before = False
    for index, stage in enumerate(recipe.stages):
        number, (first, last) = index + 1, bounds[index]
        final = index == len(recipe.stages) - 1
        if index:
            with scope():
                enter_stage(model, options, index, steps_per_epoch)
                if not skipped_before:  # the backup this stage starts from: its model, its optimizer
                    model.optimizer.build(model.trainable_variables)
                    write_backup(model, run.backup, first, stage=number)
        # A resumed run whose backup is past this stage goes straight to the next one.
        skipped_before = not final and (done > last or (done == last and done_stage > number))
        if skipped_before:
            continue
        epochs = {"epochs": last, "start_epoch": min(max(done, first), last - 1)}
        # Each epoch's batches come from (seed, epoch): a resumed run continues with the epoch it lost.
        train_ds = weighted(
            train_set.dataset(
                options.batch_size,
                training=True,
                augment=options.augment,
                seed=options.seed,
                balanced=options.balanced_sampling,
                **epochs,
            ),
            weights,
        )
        train_ds = mixed(
            train_ds,
            classes,
            mixup=options.mixup,
            cutmix=options.cutmix,
            seed=options.seed,
            first_step=epochs["start_epoch"] * steps_per_epoch,
        )
        cache = None
        if options.cache_activations and (index == 0 or stage.freezes_first_convolution):
            cache = activation_pipelines(
                model, options, train_set, val_set, run.activation_cache, epochs, shared_activations
            )
            cached = True
        schedule = None
        if stage.schedule is None and options.lr_schedule == "piecewise":
            initial = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
            schedule = piecewise_schedule(initial, options.drop_factor, options.drop_period)
        part = fit(
            model,
            train_ds,
            val_ds,
            epochs=last,
            resume=resume or index > 0,
            lr_schedule=schedule,
            cache=cache,
            stage=(number, stage_label(number, stage)) if recipe.two_stage else None,
            **shared,
        )
        history = {key: history.get(key, []) + values for key, values in part.items()}
        last_cache = cache
    kept_epoch = keep_output_network(model, checkpoint, run, _epochs_done(history, run, options))
    if run.history.exists():  # the progress plot marks the epoch model.keras holds
        plot_progress(json.loads(run.history.read_text()), run.progress, kept_epoch=kept_epoch)
    temperature, shipped = None, model
    if options.calibrate and val_set is not None:
        temperature = _fit_temperature(model, val_set, val_ds, last_cache, verbose)
        shipped = with_temperature(model, temperature)
    names = train_set.class_names
    final_model = attach_class_names(shipped, names)
    final_model.compile(optimizer=model.optimizer, loss=model.loss, metrics=training_metrics(len(names)))
    check_finite(final_model, run)
    augmentation = None
    if options.measure_tta and val_set is not None and len(val_set):
        augmentation = measure_tta(final_model, val_set, options.batch_size)
        if verbose:
            print(augmentation.line())
    model_path = None
    if options.save_models:
        model_path = save_final(final_model if options.save_optimizer else attach_class_names(shipped, names), run)
    record = _result_record(options, kept_epoch, history, run, temperature, train_set, val_set)
    run.record_result({**record, "tta": augmentation.to_dict() if augmentation else None})
    run.finish()
    val_accuracy = _validation_accuracy(history, run, kept_epoch)
    if options.report:
        report = write_report(run.path)
        if verbose:
            print(f"report: {report}")
    return TrainResult(
        final_model,
        history,
        run.path,
        model_path,
        train_set.class_names,
        val_accuracy,
        time.perf_counter() - start,
        cached,
        options,
        output_epoch=kept_epoch,
        temperature=temperature,
        val_scores=_validation_scores(run, kept_epoch),
        tta=augmentation,
    )


def _saved_form(model, class_names, options):
    """What ``model.keras`` (and, while running, ``best.keras``) hold: the model with its class names, and the
    optimizer's state only when asked (Adam's is two more copies of every weight; resuming reads
    the backup, not these files)."""
    named = attach_class_names(model, class_names)
    if options.save_optimizer:
        named.compile(optimizer=model.optimizer, loss=model.loss, metrics=training_metrics(len(class_names)))
    return named


def check_finite(model, run):
    """Refuse to finish with non-finite weights: the backup and ``best.keras`` (intact files) stay."""
    for variable in model.weights:
        if not np.all(np.isfinite(keras.ops.convert_to_numpy(variable))):
            raise TrainingDiverged(
                f"the final model has non-finite weights (NaN or infinity) in {variable.path}; nothing was written "
                f"and nothing deleted: {run.backup} and {run.best} are kept as they were. If the run resumed from a "
                "backup, the backup may hold them; otherwise lower the learning rate"
            )


def save_final(model, run):
    """Write ``model.keras``; on a full disk, say so and keep the run resumable (its backup stays)."""
    needed = int(weights_bytes(model) * 1.05) + (64 << 10)
    then = (
        "The run and its backup are kept: free space, then continue with --resume (it writes the model and "
        "finishes; no epoch is repeated)."
    )
    ensure_space(run.path, needed, run.MODEL, then)
    try:
        return save_model_atomic(model, run.model)
    except OSError as error:
        if is_disk_full(error):
            raise DiskFullError(disk_full_message(run.path, run.MODEL, needed, then, error)) from None
        raise


def _result_record(options, kept_epoch, history, run, temperature, train_set, val_set):
    """What the run made and what the report warns about: the epoch kept, the temperature, the class
    counts, the unreadable files skipped and the validation images that are also training images."""
    counts = np.bincount(np.asarray(train_set.labels, np.int64), minlength=len(train_set.class_names))
    skipped = [str(path) for path, _ in train_set.skipped] + (
        [str(path) for path, _ in val_set.skipped] if val_set is not None else []
    )
    return {
        "output_network": options.output_network,
        "output_epoch": kept_epoch,
        "epochs_done": _epochs_done(history, run, options),
        "temperature": temperature,
        "training_counts": {name: int(n) for name, n in zip(train_set.class_names, counts)},
        "skipped_count": len(skipped),
        "skipped": skipped[:20],
        "shared_validation_images": len(train_set.shared_with(val_set)) if val_set is not None else 0,
        # What predict and evaluate compare their inputs with (datasets.statistics.far_from).
        "image_statistics": colour_statistics(train_set.paths),
        "changed_options": options.changed_from_defaults(),
    }


def _epochs_done(history, run, options):
    """How many epochs the run has trained (early stopping may end it before ``options.epochs``)."""
    if run.history.exists():
        return json.loads(run.history.read_text()).get("epochs_done") or options.epochs
    return options.epochs


def _fit_temperature(model, val_set, val_ds, cache, verbose):
    """The temperature that calibrates ``model`` on the validation images (on the cached activations
    when the last stage trained on them: the same outputs without running the frozen layers again)."""
    if cache is not None and cache.get("val") is not None:
        probabilities = cache["model"].predict(cache["val"].map(lambda x, y: x), verbose=0)
    else:
        probabilities = model.predict(val_ds.map(lambda x, y: x), verbose=0)
    temperature = fit_temperature(probabilities, val_set.labels)
    if verbose:
        before = CalibrationScores.of(probabilities, val_set.labels)
        calibrated = tempered(probabilities, temperature)
        after = CalibrationScores.of(calibrated, val_set.labels)
        print(
            f"calibration: temperature {temperature:.3f}; validation {before.line()} -> {after.line()} "
            f"(a perfectly calibrated model: ECE {ece_floor(calibrated):.4f} on {len(val_set.labels)} images by chance)"
        )
    return temperature


def _validation_scores(run, epoch):
    """{accuracy, balanced_accuracy, macro_f1} on the validation images at ``epoch`` (1-based), from ``log.csv``."""
    if not run.log.exists():
        return {}
    with open(run.log, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("epoch", "").isdigit()]
    for row in rows:
        if int(row["epoch"]) + 1 == epoch:
            names = ("accuracy", *BALANCED_METRICS)
            values = {name: _number(row.get(f"val_{name}")) for name in names}
            return {name: value for name, value in values.items() if value is not None}
    return {}


def _number(text):
    """A log.csv cell as a float, or None (Keras's CSVLogger writes "NA" for a value it did not get)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _validation_accuracy(history, run, epoch):
    """The validation accuracy of ``epoch`` (1-based; the output network's) from ``log.csv``, else the
    last: this call's history, or the run's (a resume with no epoch left)."""
    scores = _validation_scores(run, epoch)
    if "accuracy" in scores:
        return scores["accuracy"]
    if history.get("val_accuracy"):
        return history["val_accuracy"][-1]
    if run.history.exists():
        recorded = json.loads(run.history.read_text()).get("val_accuracy") or []
        return recorded[-1] if recorded else None
    return None


def record_validation_set(val_set, path):
    """The validation images and labels, for the report (``keras-alexnet report`` reads them back)."""
    text = json.dumps(val_set.to_dict(absolute=True))
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _tensorboard(model, options, val_set, run, verbose):
    """TensorBoard callbacks (and the command to watch them, printed)."""
    images = None
    if options.tensorboard_images and val_set is not None:
        picked = np.linspace(0, len(val_set) - 1, num=min(4, len(val_set))).astype(int)
        images = np.stack([eval_transform(val_set.paths[i]) for i in picked])
    if verbose:
        print(f"TensorBoard: tensorboard --logdir {run.tensorboard}")
    return tensorboard_callbacks(run.tensorboard, model, images)
