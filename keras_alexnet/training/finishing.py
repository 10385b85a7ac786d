"""The finishing steps of a run, after its stages: each a function of the ``RunEnd``, run in the order
of ``FINISHING``.

keep the output network -> plot it -> calibrate -> name the classes -> refuse non-finite weights ->
measure test-time augmentation -> save ``model.keras`` -> record the result -> finish the folder. The
report (``keras_alexnet.report``, above training) reads the finished run afterwards. A step that fails leaves the run resumable: until ``model.keras`` is written and
``run.finish`` has run, the backup is kept.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import keras
import numpy as np

from keras_alexnet._utils.choices import validation
from keras_alexnet._utils.disk import DiskFullError, disk_full_message, ensure_space, is_disk_full, weights_bytes
from keras_alexnet.calibration import CalibrationScores, choose_temperature, ece_floor, tempered
from keras_alexnet.datasets.statistics import colour_statistics
from keras_alexnet.layers import attach_class_names, with_temperature
from keras_alexnet.metrics import BALANCED_METRICS, training_metrics
from keras_alexnet.run_result import RunResult
from keras_alexnet.training.callbacks import TrainingDiverged, plot_progress, save_model_atomic
from keras_alexnet.training.output_network import keep_output_network, output_checkpoint
from keras_alexnet.transfer import layer_table
from keras_alexnet.tta import measure as measure_tta


@dataclasses.dataclass
class RunEnd:
    """What the finishing steps read and fill in, in order."""

    fitted: object  # stages.Fitted
    options: object
    run: object  # RunDirectory
    train_set: object
    val_set: object
    verbose: int = 1
    kept_epoch: int | None = None
    calibration: object = None  # calibration.TemperatureChoice (None: not calibrated)
    shipped: keras.Model | None = None  # the model with its temperature
    final_model: keras.Model | None = None  # and its class names, compiled: what train returns
    augmentation: object = None  # tta.Measurement
    model_path: Path | None = None
    val_accuracy: float | None = None
    val_scores: dict = dataclasses.field(default_factory=dict)
    recipe_reason: str | None = None  # why the rule of thumb chose the recipe (no recipe named)
    workers: int | None = None  # the run trained on this many workers (None: one process)


def keep_output(end):
    """The output network's epoch back in the model (``--output-network``)."""
    fitted = end.fitted
    end.kept_epoch = keep_output_network(fitted.model, fitted.checkpoint, end.run, _epochs_done(end.run, end.options))


def plot(end):
    """The progress plot, marking the epoch ``model.keras`` holds."""
    history = end.run.history_record()
    if history:
        plot_progress(history, end.run.progress, kept_epoch=end.kept_epoch)


def calibrate(end):
    """A temperature fitted on the validation images (``--no-calibrate``: none)."""
    end.shipped = end.fitted.model
    if end.options.calibrate and end.val_set is not None:
        end.calibration = _choose_temperature(
            end.fitted.model, end.val_set, end.fitted.val_ds, end.fitted.last_cache, end.verbose
        )
        end.shipped = with_temperature(end.fitted.model, end.calibration.temperature)


def name_classes(end):
    """The class names in the model; compiled as it trained, for the caller."""
    model, names = end.fitted.model, end.train_set.class_names
    end.final_model = attach_class_names(end.shipped, names)
    end.final_model.compile(optimizer=model.optimizer, loss=model.loss, metrics=training_metrics(len(names)))


def refuse_non_finite(end):
    check_finite(end.final_model, end.run)


def measure_augmentation(end):
    """Test-time augmentation on the validation images, recorded (``--no-measure-tta``: skipped)."""
    if end.options.measure_tta and end.val_set is not None and len(end.val_set):
        end.augmentation = measure_tta(end.final_model, end.val_set, end.options.batch_size)
        if end.verbose:
            print(end.augmentation.line())


def save(end):
    """``model.keras`` (with the optimizer's state only when asked)."""
    if end.options.save_models:
        names = end.train_set.class_names
        kept = end.final_model if end.options.save_optimizer else attach_class_names(end.shipped, names)
        end.model_path = save_final(kept, end.run)


def record(end):
    """What the run made, in ``options.json``'s ``result``; the folder keeps only a finished run's files."""
    fitted, run = end.fitted, end.run
    run.record_result(_result_record(end))
    run.finish()
    end.val_accuracy = validation_accuracy(fitted.history, run, end.kept_epoch)
    end.val_scores = validation_scores(run, end.kept_epoch)


FINISHING = (
    keep_output,
    plot,
    calibrate,
    name_classes,
    refuse_non_finite,
    measure_augmentation,
    save,
    record,
)


def run_checkpoint(options, run, model, class_names):
    """The output network's checkpoint of a run with validation images (``best.keras`` in ``saved_form``;
    kept in memory only without ``save_models``), for every engine; None for ``--output-network last``."""
    return output_checkpoint(
        options.output_network,
        run,
        model,
        lambda fitted: saved_form(fitted, class_names, options),
        save_file=options.save_models,
    )


def saved_form(model, class_names, options):
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


def _result_record(end):
    """What the run made and what the report warns about: the epoch kept, the temperature, the class
    counts, the unreadable files skipped, the validation images that are also training images, TTA's
    measurement and the layers the last stage trained."""
    options, train_set, val_set, calibration = end.options, end.train_set, end.val_set, end.calibration
    counts = np.bincount(np.asarray(train_set.labels, np.int64), minlength=len(train_set.class_names))
    skipped = [str(path) for path, _ in train_set.skipped] + (
        [str(path) for path, _ in val_set.skipped] if val_set is not None else []
    )
    changed = options.changed_from_defaults()
    if end.recipe_reason:  # the rule named the recipe: not a choice of the user's
        changed = [name for name in changed if name != "recipe"]
    return RunResult(
        output_network=options.output_network,
        output_epoch=end.kept_epoch,
        epochs_done=_epochs_done(end.run, options),
        temperature=calibration.temperature if calibration is not None else None,
        calibration=calibration.to_dict() if calibration is not None else None,
        training_counts={name: int(n) for name, n in zip(train_set.class_names, counts)},
        skipped_count=len(skipped),
        skipped=skipped[:20],
        shared_validation_images=len(train_set.shared_with(val_set)) if val_set is not None else 0,
        # What predict and evaluate compare their inputs with (datasets.statistics.far_from).
        image_statistics=colour_statistics(train_set.paths),
        changed_options=changed,
        tta=end.augmentation.to_dict() if end.augmentation else None,
        layers=_layers(end.fitted.model),
        recipe_reason=end.recipe_reason or None,
        workers=end.workers or None,
    )


def _layers(model):
    """What the last stage trained, layer by layer: trainable or frozen, and the learning-rate factors of the
    optimizer it used (what the report shows; nothing rebuilt)."""
    return [
        {
            "name": row.name,
            "trainable": row.trainable,
            "weight_lr_factor": row.weight_lr_factor,
            "bias_lr_factor": row.bias_lr_factor,
        }
        for row in layer_table(model)
        if row.params
    ]


def _epochs_done(run, options):
    """How many epochs the run has trained (early stopping may end it before ``options.epochs``)."""
    return run.history_record().get("epochs_done") or options.epochs


def _choose_temperature(model, val_set, val_ds, cache, verbose):
    """The temperature that calibrates ``model`` on the validation images, as the rule allows it
    (``calibration.choose_temperature``; on the cached activations when the last stage trained on them:
    the same outputs without running the frozen layers again)."""
    if cache is not None and cache.get("val") is not None:
        probabilities = cache["model"].predict(cache["val"].map(lambda x, y: x), verbose=0)
    else:
        probabilities = model.predict(val_ds.map(lambda x, y: x), verbose=0)
    choice = choose_temperature(probabilities, val_set.labels)
    if verbose:
        print(calibration_line(choice, probabilities, val_set.labels))
    return choice


def calibration_line(choice, probabilities, labels):
    """What ``train`` prints about its temperature: the value, why, and the validation scores before and after."""
    before = CalibrationScores.of(probabilities, labels)
    calibrated = tempered(probabilities, choice.temperature)
    after = CalibrationScores.of(calibrated, labels)
    return (
        f"calibration: temperature {choice.temperature:.3f} ({choice.reason()}); validation {before.line()} -> "
        f"{after.line()} (a perfectly calibrated model: ECE {ece_floor(calibrated):.4f} on {len(labels)} images "
        "by chance)"
    )


def validation_scores(run, epoch):
    """{accuracy, balanced_accuracy, macro_f1} on the validation images at ``epoch`` (1-based), from ``log.csv``."""
    for row in run.log_rows():
        if row["epoch"] + 1 == epoch:
            names = ("accuracy", *BALANCED_METRICS)
            values = {name: row.get(validation(name), math.nan) for name in names}
            return {name: value for name, value in values.items() if math.isfinite(value)}
    return {}


def validation_accuracy(history, run, epoch):
    """The validation accuracy of ``epoch`` (1-based; the output network's) from ``log.csv``, else the
    last: this call's history, or the run's (a resume with no epoch left)."""
    scores = validation_scores(run, epoch)
    if "accuracy" in scores:
        return scores["accuracy"]
    if history.get("val_accuracy"):
        return history["val_accuracy"][-1]
    recorded = run.history_record().get("val_accuracy") or []
    return recorded[-1] if recorded else None
