"""The stage runner: one ``fit`` per ``Stage`` of the recipe, as fastai's ``fine_tune`` composes
``freeze``, ``fit_one_cycle``, ``unfreeze`` and ``fit_one_cycle``.

A stage after the first switches the model (``setup.enter_stage``: its frozen layers, factors and a
new optimizer) and backs it up before its first epoch; a resumed run skips the stages its backup
is past. Each stage's batches come from (seed, epoch), so a resumed run continues with the epoch
it lost.
"""

from __future__ import annotations

import dataclasses

import keras

from keras_alexnet.training.batches import training_batches
from keras_alexnet.training.callbacks import write_backup
from keras_alexnet.training.fitting import fit, stage_schedule
from keras_alexnet.training.setup import (
    activation_pipelines,
    balancing,
    caches_stage,
    enter_stage,
    stage_epochs,
    stage_label,
)


@dataclasses.dataclass
class Fitted:
    """What the stages leave for the finishing steps."""

    model: keras.Model
    history: dict
    checkpoint: object  # the output network's BestModelCheckpoint, or None without validation images
    val_ds: object  # the validation pipeline (None without validation images)
    last_cache: dict | None  # the last stage's cached activations ({"model", "train", "val"}), if any
    cached: bool  # whether any stage trained on cached activations


def run_stages(
    model,
    options,
    run,
    train_set,
    val_set,
    *,
    checkpoint,
    callbacks,
    resume,
    done,
    scope,
    verbose,
    shared_activations=None,
):
    """Fit ``model`` through every stage of the options' recipe; returns ``Fitted``.

    ``done``: (epochs done, stage number) of the backup a resumed run starts from.
    """
    recipe = options.recipe_object
    steps_per_epoch = -(-len(train_set) // options.batch_size)
    done_epochs, done_stage = done
    weights, val_weights = balancing(options, train_set, val_set)
    val_ds = val_set.dataset(options.batch_size) if val_set is not None else None
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
        skipped_before = not final and (done_epochs > last or (done_epochs == last and done_stage > number))
        if skipped_before:
            continue
        epochs = {"epochs": last, "start_epoch": min(max(done_epochs, first), last - 1)}
        train_ds = training_batches(train_set, options, weights, **epochs)
        cache = None
        if caches_stage(options, index):
            cache = activation_pipelines(
                model, options, train_set, val_set, run.activation_cache, epochs, shared_activations
            )
            cached = True
        part = fit(
            model,
            train_ds,
            val_ds,
            epochs=last,
            resume=resume or index > 0,
            lr_schedule=stage_schedule(model, options, stage),
            cache=cache,
            stage=(number, stage_label(number, stage)) if recipe.two_stage else None,
            **shared,
        )
        history = {key: history.get(key, []) + values for key, values in part.items()}
        last_cache = cache
    return Fitted(model, history, checkpoint, val_ds, last_cache, cached)
