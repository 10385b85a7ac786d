"""``fit``: ``model.fit`` with the run directory's callbacks (log, plot, backups, the output network's
checkpoint, patience), for ``train``'s stages and for any compiled model and tf.data pipelines."""

from __future__ import annotations

import keras

from keras_alexnet._utils.choices import OUTPUT_NETWORKS
from keras_alexnet.datasets.class_weights import weighted
from keras_alexnet.run_directory import RunDirectory
from keras_alexnet.training.callbacks import (
    AtomicBackupAndRestore,
    StopOnDivergence,
    TrainingProgress,
    trim_csv_log,
)
from keras_alexnet.training.output_network import early_stopping, output_checkpoint
from keras_alexnet.training.regularizers import ValidateAveragedWeights
from keras_alexnet.transfer import TrainableStateGuard


def piecewise_schedule(initial_rate, drop_factor=0.1, drop_period=10):
    """MATLAB LearnRateSchedule 'piecewise': multiply by ``drop_factor`` every ``drop_period`` epochs."""
    return keras.callbacks.LearningRateScheduler(lambda epoch: initial_rate * drop_factor ** (epoch // drop_period))


def stage_schedule(model, options, stage, initial=None):
    """``--lr-schedule piecewise``'s callback for a recipe stage with no schedule of its own, else None.

    ``initial``: the stage's base rate; default the optimizer's rate, right for a new stage, not for one whose
    optimizer a backup restored (its rate already dropped: the caller gives the rate from before the restore).
    """
    if stage.schedule is not None or options.lr_schedule != "piecewise":
        return None
    if initial is None:
        initial = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    return piecewise_schedule(initial, options.drop_factor, options.drop_period)


def run_callbacks(
    run,
    model,
    *,
    append,
    validated,
    progress=None,
    backup=None,
    checkpoint=None,
    output_network=OUTPUT_NETWORKS[0],
    patience=None,
    lr_schedule=None,
):
    """The callbacks of a run's stage, in their order, for every engine: Keras's ``fit`` and the workers' loop
    (``multi_worker``), which drives the same list. ``progress`` (``TrainingProgress``), the CSV log (written
    when ``progress`` is given), ``backup`` and ``checkpoint`` write the run directory: one process and the
    workers' chief pass them, the other workers None. ``validated``: the stage has validation images (the
    checkpoint and ``patience`` watch them); ``append``: the log continues an earlier fit's."""
    rate = model.optimizer.learning_rate if model.optimizer is not None else None
    callbacks = [
        TrainableStateGuard(),
        # First: a non-finite loss stops the run before the log, plot, backup or checkpoint see it.
        StopOnDivergence(float(keras.ops.convert_to_numpy(rate)) if isinstance(rate, keras.Variable) else None),
    ]
    if progress is not None:
        # The logs before the backup: a run killed between the two repeats an epoch that is
        # logged (and trimmed on resume), instead of missing one.
        callbacks += [keras.callbacks.CSVLogger(str(run.log), append=append), progress]
    if backup is not None:
        callbacks.append(backup)
    if validated:
        if getattr(model.optimizer, "use_ema", False):
            # Validation and the checkpoint see the weights' moving average (what the run ships).
            callbacks.append(ValidateAveragedWeights(model.optimizer, checkpoint or None))
        elif checkpoint:
            callbacks.append(checkpoint)
        if patience:
            callbacks.append(early_stopping(output_network, patience))
    if lr_schedule is not None:
        callbacks.append(lr_schedule)
    return callbacks


def _backup(run, resume, keep_backup, backup_every, stage):
    """The backup callback of ``run``; a fresh fit clears what an earlier one left, a resumed one cuts
    ``log.csv`` back to the epochs the backup holds."""
    backup = AtomicBackupAndRestore(
        str(run.backup), save_freq="epoch", delete_checkpoint=not keep_backup, every_epochs=backup_every, stage=stage
    )
    if not resume:
        run.clear_fit_state()
    else:
        trim_csv_log(run.log, backup.backed_up_epochs())
    run.path.mkdir(parents=True, exist_ok=True)
    return backup


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
    backup_callback = _backup(run, resume, keep_backup, backup_every, stage[0] if stage else 1)
    fit_model, fit_train, fit_val = (
        (cache["model"], cache["train"], cache["val"]) if cache else (model, train_data, val_data)
    )
    if fit_val is not None:
        fit_val = weighted(fit_val, val_weights)
    if fit_val is not None and checkpoint is None:
        checkpoint = output_checkpoint(output_network, run, model, None, save_file=True)
    callbacks = run_callbacks(
        run,
        model,
        append=resume,
        validated=fit_val is not None,
        progress=TrainingProgress(run, fit_val, validation_frequency, stage=stage[1] if stage else None),
        backup=backup_callback,
        checkpoint=checkpoint,
        output_network=output_network,
        patience=patience,
        lr_schedule=lr_schedule,
    )
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
