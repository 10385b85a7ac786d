"""Training with ``model.fit`` and MATLAB-grade options: validation frequency,
patience, piecewise schedules, progress plot, CSV log, best checkpoint, resume
after a crash, mixed precision, XLA, feature caching. ``train`` goes from a
folder of images to a trained, saved model; ``fit`` wires the options around
any compiled model and tf.data pipelines.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from pathlib import Path

import keras
import tensorflow as tf

from keras_alexnet.callbacks import (
    AtomicBackupAndRestore, BestModelCheckpoint, TrainingProgress, save_model_atomic, trim_csv_log,
)
from keras_alexnet.checks import is_count
from keras_alexnet.data import ImageFolder
from keras_alexnet.feature_cache import DEFAULT_MEMORY_LIMIT, cache_features, split_frozen_prefix
from keras_alexnet.layers import attach_class_names
from keras_alexnet.model import AlexNet
from keras_alexnet.transfer import RECIPES, TrainableStateGuard, apply_recipe

log = logging.getLogger("keras_alexnet.training")


@dataclasses.dataclass
class TrainResult:
    """What a training run produced."""

    model: keras.Model
    history: dict
    run_dir: Path
    model_path: Path
    best_path: Path
    class_names: list
    val_accuracy: float | None
    seconds: float
    cached_features: bool = False


def configure(seed=0, mixed_precision=None, deterministic=False):
    """Seed everything; set the dtype policy (None, "float16" or "bfloat16").

    Seeded CPU runs repeat exactly without more (tested). ``deterministic=True``
    also turns on TensorFlow's op determinism, for GPUs; it disables XLA.
    """
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    if mixed_precision not in (None, "float16", "bfloat16"):
        raise ValueError(f"mixed_precision={mixed_precision!r}: use None, 'float16' or 'bfloat16'.")
    keras.mixed_precision.set_global_policy(f"mixed_{mixed_precision}" if mixed_precision else "float32")


def piecewise_schedule(initial_rate, drop_factor=0.1, drop_period=10):
    """MATLAB LearnRateSchedule 'piecewise': multiply by ``drop_factor`` every ``drop_period`` epochs."""
    return keras.callbacks.LearningRateScheduler(lambda epoch: initial_rate * drop_factor ** (epoch // drop_period))


def fit(
    model,
    train_data,
    val_data=None,
    *,
    epochs=3,
    run_dir="runs/alexnet",
    resume=False,
    validation_frequency=None,
    patience=None,
    lr_schedule=None,
    cache=None,
    backup_every=1,
    verbose=1,
    extra_callbacks=(),
):
    """``model.fit`` with the run directory's callbacks.

    Writes into ``run_dir``: ``log.csv``, ``history.json``, ``progress.png``,
    ``best.keras`` (best validation accuracy) and, while running, ``backup/``
    (``AtomicBackupAndRestore`` after every ``backup_every``-th epoch). With ``resume=True`` a killed
    run continues from its last backup; otherwise an old backup is
    discarded. ``cache``: a (train, val) pair of pipelines over cached features
    and the head model to fit on them (see ``train``).
    """
    run_dir = Path(run_dir)
    backup = run_dir / "backup"
    backup_callback = AtomicBackupAndRestore(str(backup), save_freq="epoch", delete_checkpoint=True, every_epochs=backup_every)
    if not resume:
        for stale in (backup, run_dir / "history.json", run_dir / "log.csv", run_dir / "best.best.json"):
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()
    else:
        trim_csv_log(run_dir / "log.csv", backup_callback.backed_up_epochs())
    run_dir.mkdir(parents=True, exist_ok=True)
    fit_model, fit_train, fit_val = (cache["head"], cache["train"], cache["val"]) if cache else (model, train_data, val_data)
    callbacks = [
        TrainableStateGuard(),
        # The logs before the backup: a run killed between the two repeats an epoch that is
        # logged (and trimmed on resume), instead of missing one.
        keras.callbacks.CSVLogger(str(run_dir / "log.csv"), append=resume),
        TrainingProgress(run_dir, fit_val, validation_frequency),
        backup_callback,
    ]
    if fit_val is not None:
        callbacks.append(BestModelCheckpoint(run_dir / "best.keras", model))
        if patience:
            callbacks.append(keras.callbacks.EarlyStopping("val_loss", patience=patience, restore_best_weights=False))
    if lr_schedule is not None:
        callbacks.append(lr_schedule)
    callbacks.extend(extra_callbacks)
    # shuffle=False: the pipelines shuffle themselves, every epoch.
    history = fit_model.fit(fit_train, validation_data=fit_val, epochs=epochs, callbacks=callbacks, verbose=verbose, shuffle=False)
    return history.history


def prepare_model(recipe, classes, *, weights="imagenet", learning_rate=None, optimizer=None, xla="auto", input_shape=None):
    """AlexNet with ``weights`` (convolutions), set up and compiled by ``recipe``."""
    if optimizer is not None and isinstance(optimizer, str):
        from keras_alexnet.transfer import make_optimizer

        recipe_obj = RECIPES[recipe] if isinstance(recipe, str) else recipe
        optimizer = make_optimizer(optimizer, learning_rate if learning_rate is not None else recipe_obj.learning_rate)
    base = AlexNet(weights=weights, include_top=False, input_shape=input_shape)
    return apply_recipe(base, recipe, classes, learning_rate=learning_rate, optimizer=optimizer, jit_compile=xla)


def train(
    data,
    *,
    val=None,
    val_split=None,
    recipe="frozen-features",
    epochs=3,
    batch_size=32,
    learning_rate=None,
    optimizer=None,
    run_dir="runs/alexnet",
    resume=False,
    validation_frequency=None,
    patience=None,
    augment="none",
    lr_schedule="none",
    drop_factor=0.1,
    drop_period=10,
    mixed_precision=None,
    xla="auto",
    seed=0,
    deterministic=False,
    weights="imagenet",
    cache_features=False,
    cache_dtype="float32",
    cache_memory_limit=DEFAULT_MEMORY_LIMIT,
    on_bad_file="skip",
    backup_every=1,
    callbacks=(),
    verbose=1,
):
    """Train AlexNet on a folder of images (one sub-folder per class).

    Args:
        data: training folder, or an ``ImageFolder``.
        val / val_split: a validation folder, or a stratified fraction of ``data``
            held out (MATLAB ``splitEachLabel(imds, 1 - val_split, 'randomized')``).
        recipe: one of ``RECIPES`` (frozen-features, fine-tune-all, later-convs, matlab).
        optimizer: override the recipe's optimizer: sgdm, sgd, adam, adamw, rmsprop.
        validation_frequency: validate every N iterations (default: every epoch).
        patience: stop after N epochs without a lower validation loss.
        augment: none, flip, resized-crop (torchvision's RandomResizedCrop + flip).
        lr_schedule: "none" or "piecewise" (``drop_factor`` every ``drop_period`` epochs).
        mixed_precision: None, "float16" or "bfloat16".
        xla: True, False or "auto" (see ``keras_alexnet.transfer.resolve_jit_compile``).
        deterministic: TensorFlow op determinism (GPUs); seeded CPU runs repeat without it.
        cache_features: compute the frozen layers once and train the rest on the
            cached activations (needs augment="none"; same results as uncached).
        backup_every: back up for ``resume`` after every N-th epoch (default every
            epoch); larger for epochs shorter than the backup (1-2 s on 2 CPU cores).
        callbacks: more Keras callbacks, run after the run directory's own.
    Returns:
        ``TrainResult``; ``run_dir/model.keras`` holds the final model with its class names.
    """
    start = time.perf_counter()
    counts = {"epochs": epochs, "batch_size": batch_size, "backup_every": backup_every, "drop_period": drop_period,
              "validation_frequency": validation_frequency, "patience": patience}
    for name, value in counts.items():
        if value is not None and not is_count(value):
            raise ValueError(f"{name}={value!r}: use a whole number of at least 1.")
    if val is not None and val_split is not None:
        raise ValueError("give either val (a folder) or val_split (a fraction), not both.")
    if val_split is not None and not 0 < val_split < 1:
        raise ValueError(f"val_split={val_split}: hold out a fraction strictly between 0 and 1 (e.g. 0.3).")
    configure(seed, mixed_precision, deterministic)
    train_set = data if isinstance(data, ImageFolder) else ImageFolder.read(data, on_bad_file=on_bad_file)
    if val_split is not None:
        train_set, val_set = train_set.split(1 - val_split, seed=seed)
    elif val is not None:
        val_set = val if isinstance(val, ImageFolder) else ImageFolder.read(val, on_bad_file=on_bad_file, class_names=train_set.class_names)
    else:
        val_set = None
    classes = len(train_set.class_names)
    model = prepare_model(recipe, classes, weights=weights, learning_rate=learning_rate, optimizer=optimizer, xla=xla)
    train_ds = train_set.dataset(batch_size, training=True, augment=augment, seed=seed)
    val_ds = val_set.dataset(batch_size) if val_set is not None else None
    schedule = None
    if lr_schedule == "piecewise":
        schedule = piecewise_schedule(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)), drop_factor, drop_period)
    elif lr_schedule != "none":
        raise ValueError(f"lr_schedule={lr_schedule!r}: use 'none' or 'piecewise'.")

    cache = None
    if cache_features:
        if augment != "none":
            raise ValueError("cache_features needs augment='none': random augmentation changes the frozen layers' input every epoch.")
        split = split_frozen_prefix(model)
        if split is None:
            raise ValueError(f"cache_features: recipe {recipe!r} leaves no frozen leading layers to cache.")
        prefix, head = split
        head.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"], jit_compile=model.jit_compile)
        cache_dir = Path(run_dir) / "feature_cache"
        cached_train = cache_features_of(prefix, train_set, batch_size, cache_dtype, cache_memory_limit, cache_dir, "train")
        cached_val = cache_features_of(prefix, val_set, batch_size, cache_dtype, cache_memory_limit, cache_dir, "val") if val_set is not None else None
        cache = {
            "head": head,
            "train": cached_train.dataset(batch_size, training=True, seed=seed),
            "val": cached_val.dataset(batch_size, training=False) if cached_val is not None else None,
        }
        log.info("feature cache: %.1f MiB (%s)", cached_train.nbytes / 2**20, "disk" if cached_train.on_disk else "memory")

    history = fit(
        model, train_ds, val_ds, epochs=epochs, run_dir=run_dir, resume=resume,
        validation_frequency=validation_frequency, patience=patience, lr_schedule=schedule, cache=cache,
        backup_every=backup_every, verbose=verbose, extra_callbacks=callbacks,
    )
    final = attach_class_names(model, train_set.class_names)
    final.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"])
    model_path = save_model_atomic(final, Path(run_dir) / "model.keras")
    best_path = Path(run_dir) / "best.keras"
    if best_path.exists():  # the checkpoint holds the bare model: add the names there too
        best = keras.models.load_model(best_path)
        save_model_atomic(attach_class_names(best, train_set.class_names), best_path)
    val_accuracy = history.get("val_accuracy", [None])[-1] if history.get("val_accuracy") else None
    return TrainResult(final, history, Path(run_dir), model_path, best_path, train_set.class_names, val_accuracy, time.perf_counter() - start, cache is not None)


def cache_features_of(prefix, folder, batch_size, dtype, memory_limit, directory, name):
    """Cache ``prefix``'s output over an ImageFolder, in file order (eval transform)."""
    return cache_features(prefix, folder.dataset(batch_size, training=False), dtype=dtype, memory_limit=memory_limit, directory=directory, name=name)
