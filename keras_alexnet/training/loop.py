"""Training with ``model.fit`` and MATLAB-grade options: validation frequency,
patience, piecewise schedules, progress plot, CSV log, best checkpoint, resume
after a crash, mixed precision, XLA, activation caching. ``train`` goes from a
folder of images to a trained, saved model; ``fit`` wires the run directory's
callbacks around any compiled model and tf.data pipelines.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet._utils.files import atomic_write
from keras_alexnet.architecture import ALEXNET, TINY
from keras_alexnet.datasets import ImageFolder
from keras_alexnet.layers import attach_class_names
from keras_alexnet.model import AlexNet
from keras_alexnet.optimizers import make_optimizer, with_momentum_schedule
from keras_alexnet.preprocessing import eval_transform
from keras_alexnet.training.activation_cache import (
    cache_activations,
    load_shared_activations,
    save_shared_activations,
    split_frozen_prefix,
)
from keras_alexnet.training.callbacks import (
    AtomicBackupAndRestore,
    BestModelCheckpoint,
    StopOnDivergence,
    TrainingProgress,
    save_model_atomic,
    trim_csv_log,
    write_backup,
)
from keras_alexnet.training.options import TrainingOptions
from keras_alexnet.training.run_directory import RunDirectoryError, check_new_run, check_resumable, locked
from keras_alexnet.training.schedules import OneCycle, cosine_with_warmup
from keras_alexnet.transfer import (
    RECIPES,
    TrainableStateGuard,
    apply_recipe,
    discriminative_factors,
    resolve_jit_compile,
    unfreeze,
    with_lr_factors,
)

log = logging.getLogger("keras_alexnet.training")


@dataclasses.dataclass
class TrainResult:
    """What a training run produced."""

    model: keras.Model
    history: dict
    run_dir: Path
    model_path: Path | None  # None when options.save_models is False
    best_path: Path | None
    class_names: list
    val_accuracy: float | None
    seconds: float
    cached_activations: bool = False
    options: TrainingOptions | None = None


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
    steps_per_epoch=None,
    stage=None,
    keep_backup=False,
    save_best=True,
):
    """``model.fit`` with the run directory's callbacks.

    Writes into ``run_dir``: ``log.csv``, ``history.json``, ``progress.png``,
    ``best.keras`` (best validation accuracy) and, while running, ``backup/``
    (``AtomicBackupAndRestore`` after every ``backup_every``-th epoch). With ``resume=True`` a killed
    run continues from its last backup; otherwise an old backup is
    discarded. ``steps_per_epoch``: for pipelines that hold several epochs
    (``ImageFolder.dataset(epochs=...)``). ``cache``: a (train, val) pair of pipelines over cached features
    and the model to fit on them (see ``train``). ``stage``: (number, label) of a two-stage
    recipe's stage: the backup records the number, the plot marks where the label's stage began.
    ``keep_backup``: leave the last backup when the fit ends (the next stage starts from it).
    ``save_best``: write ``best.keras`` (False: only the log and history tell the best epoch).
    """
    run_dir = Path(run_dir)
    backup = run_dir / "backup"
    backup_callback = AtomicBackupAndRestore(
        str(backup),
        save_freq="epoch",
        delete_checkpoint=not keep_backup,
        every_epochs=backup_every,
        stage=stage[0] if stage else 1,
    )
    if not resume:
        for stale in (backup, run_dir / "history.json", run_dir / "log.csv", run_dir / "best.best.json"):
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()
    else:
        trim_csv_log(run_dir / "log.csv", backup_callback.backed_up_epochs())
    run_dir.mkdir(parents=True, exist_ok=True)
    fit_model, fit_train, fit_val = (
        (cache["model"], cache["train"], cache["val"]) if cache else (model, train_data, val_data)
    )
    rate = model.optimizer.learning_rate if model.optimizer is not None else None
    callbacks = [
        TrainableStateGuard(),
        # First: a non-finite loss stops the run before the log, plot, backup or checkpoint see it.
        StopOnDivergence(float(keras.ops.convert_to_numpy(rate)) if isinstance(rate, keras.Variable) else None),
        # The logs before the backup: a run killed between the two repeats an epoch that is
        # logged (and trimmed on resume), instead of missing one.
        keras.callbacks.CSVLogger(str(run_dir / "log.csv"), append=resume),
        TrainingProgress(run_dir, fit_val, validation_frequency, stage=stage[1] if stage else None),
        backup_callback,
    ]
    if fit_val is not None:
        if save_best:
            callbacks.append(BestModelCheckpoint(run_dir / "best.keras", model))
        if patience:
            callbacks.append(keras.callbacks.EarlyStopping("val_loss", patience=patience, restore_best_weights=False))
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


def prepare_model(
    recipe,
    classes,
    *,
    weights="imagenet",
    learning_rate=None,
    optimizer=None,
    xla="auto",
    input_shape=None,
    architecture="alexnet",
    head="alexnet",
):
    """AlexNet with ``weights`` (convolutions), set up and compiled by ``recipe``.

    ``architecture``: ``"alexnet"`` or ``"tiny"`` (``keras_alexnet.architecture``), or a table.
    """
    if optimizer is not None and isinstance(optimizer, str):
        recipe_obj = RECIPES[recipe] if isinstance(recipe, str) else recipe
        optimizer = make_optimizer(optimizer, learning_rate if learning_rate is not None else recipe_obj.learning_rate)
    if isinstance(architecture, str):
        architecture = {"alexnet": ALEXNET, "tiny": TINY}[architecture]
    base = AlexNet(weights=weights, include_top=False, input_shape=input_shape, architecture=architecture)
    return apply_recipe(
        base, recipe, classes, learning_rate=learning_rate, optimizer=optimizer, jit_compile=xla, head=head
    )


def train(
    data,
    options=None,
    *,
    val=None,
    run_dir="runs/alexnet",
    resume=False,
    overwrite=False,
    callbacks=(),
    verbose=1,
    shared_activations=None,
    **changes,
):
    """Train AlexNet on a folder of images (one sub-folder per class).

    Args:
        data: training folder, or an ``ImageFolder``.
        options: a ``TrainingOptions`` (default: its defaults). Keyword arguments
            named like its fields change it: ``train(data, epochs=5, recipe="matlab")``.
        val: a validation folder (or ``options.val_split``: a stratified fraction of
            ``data`` held out, MATLAB ``splitEachLabel(imds, 1 - val_split, 'randomized')``).
        run_dir: where the model, log, plot, options and backups go.
        resume: continue a killed run from its last backup (which must exist and load).
        overwrite: replace a previous run's files in ``run_dir`` (refused otherwise).
        callbacks: more Keras callbacks, run after the run directory's own.
        shared_activations: a dict, or a folder (across processes), that keeps activation
            caches between calls (``compare`` passes a folder): runs over the same data and
            frozen weights compute them once.
    Returns:
        ``TrainResult``; ``run_dir/model.keras`` holds the final model with its class
        names and ``run_dir/options.json`` the options it was trained with.
    """
    start = time.perf_counter()
    if "cache_features" in changes:  # the name before the activation cache was named so
        changes["cache_activations"] = changes.pop("cache_features")
    options = (options or TrainingOptions()).replace(**changes)
    if val is not None and options.val_split is not None:
        raise ValueError("give either val (a folder) or val_split (a fraction), not both.")
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(f"--run-dir {run_dir} is a file; give a folder (it is created if missing).")
    if resume and not (run_dir / "backup").is_dir():
        check_resumable(run_dir, classes=None)  # raises: names what is missing, before any work
    run_dir.mkdir(parents=True, exist_ok=True)
    with locked(run_dir):
        if not resume:
            check_new_run(run_dir, overwrite)
        return _train_locked(data, options, val, run_dir, resume, callbacks, verbose, start, shared_activations)


def _train_locked(data, options, val, run_dir, resume, callbacks, verbose, start, shared_activations=None):
    """``train`` once the run directory is locked and checked."""
    configure(options.seed, options.mixed_precision, options.deterministic)
    train_set = data if isinstance(data, ImageFolder) else ImageFolder.read(data, on_bad_file=options.on_bad_file)
    if options.val_split is not None:
        train_set, val_set = train_set.split(1 - options.val_split, seed=options.seed)
    elif val is not None:
        val_set = (
            val
            if isinstance(val, ImageFolder)
            else ImageFolder.read(val, on_bad_file=options.on_bad_file, class_names=train_set.class_names)
        )
    else:
        val_set = None
    if options.recipe == "auto":
        options = _resolve_auto(options, train_set, val_set, run_dir, resume, verbose)
        # The comparison drew random numbers: seed again, so the winner trains as it would alone.
        configure(options.seed, options.mixed_precision, options.deterministic)
    classes = len(train_set.class_names)
    done, done_stage = check_resumable(run_dir, classes, with_stage=True) if resume else (0, 1)
    steps_per_epoch = math.ceil(len(train_set) / options.batch_size)
    two_stage = options.stages == 2
    last_epoch = options.freeze_epochs if two_stage else options.epochs
    rate = _learning_rate(options, steps_per_epoch, stage=1 if two_stage else None)
    model = prepare_model(
        options.recipe,
        classes,
        weights=options.weights,
        learning_rate=rate,
        optimizer=_optimizer(options, rate) if options.momentum_cycles else options.optimizer,
        xla=options.xla,
        architecture=options.architecture,
        head=options.head,
    )
    options.save(Path(run_dir) / "options.json")
    if val_set is not None:
        _record_validation_set(val_set, Path(run_dir) / "validation.json")
    val_ds = val_set.dataset(options.batch_size) if val_set is not None else None
    if options.tensorboard:
        callbacks = [*_tensorboard(model, options, val_set, run_dir, verbose), *callbacks]
    run = {
        "run_dir": run_dir,
        "validation_frequency": options.validation_frequency,
        "patience": options.patience,
        "backup_every": options.backup_every,
        "verbose": verbose,
        "extra_callbacks": callbacks,
        "steps_per_epoch": steps_per_epoch,
        "save_best": options.save_models,
    }

    def train_pipelines(first, last, cacheable=True):
        # Each epoch's batches come from (seed, epoch): a resumed run continues with the epoch it lost.
        epochs = {"epochs": last, "start_epoch": min(first, last - 1)}
        images = train_set.dataset(
            options.batch_size, training=True, augment=options.augment, seed=options.seed, **epochs
        )
        cache = None
        if options.cache_activations and cacheable:  # a two-stage recipe's second stage trains every layer
            cache = _cached_pipelines(
                model, options, train_set, val_set, Path(run_dir) / "activation_cache", epochs, shared_activations
            )
        return images, cache

    stage_one_done = two_stage and (done > last_epoch or (done == last_epoch and done_stage == 2))
    history = {}
    cached = False
    if not stage_one_done:
        train_ds, cache = train_pipelines(done, last_epoch)
        cached = cache is not None
        schedule = None
        if options.lr_schedule == "piecewise":
            initial = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
            schedule = piecewise_schedule(initial, options.drop_factor, options.drop_period)
        history = fit(
            model,
            train_ds,
            val_ds,
            epochs=last_epoch,
            resume=resume,
            lr_schedule=schedule,
            cache=cache,
            stage=(1, "stage 1: head only") if two_stage else None,
            keep_backup=two_stage,
            **run,
        )
    if two_stage:
        unfreeze_for_stage_two(model, options, steps_per_epoch)
        if not stage_one_done:  # the backup the second stage starts from: its model, its optimizer
            model.optimizer.build(model.trainable_variables)
            write_backup(model, Path(run_dir) / "backup", last_epoch, stage=2)
        train_ds, _ = train_pipelines(max(done, last_epoch), options.epochs, cacheable=False)
        second = fit(
            model, train_ds, val_ds, epochs=options.epochs, resume=True, stage=(2, "stage 2: all layers"), **run
        )
        history = {key: history.get(key, []) + values for key, values in second.items()}
    final = attach_class_names(model, train_set.class_names)
    final.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"])
    # The optimizer's state (Adam: two more copies of every weight) is for resuming, which the
    # backup does; the final model holds it only when asked.
    model_path = best_path = None
    if options.save_models:
        saved = final if options.save_optimizer else without_optimizer(final)
        model_path = save_model_atomic(saved, Path(run_dir) / "model.keras")
        best_path = Path(run_dir) / "best.keras"
    if best_path is not None and best_path.exists():  # the checkpoint holds the bare model: add the names there too
        best = attach_class_names(keras.models.load_model(best_path), train_set.class_names)
        save_model_atomic(best if options.save_optimizer else without_optimizer(best), best_path)
    val_accuracy = history.get("val_accuracy", [None])[-1] if history.get("val_accuracy") else None
    if options.report:
        from keras_alexnet.explain.report import write_report

        report = write_report(run_dir)
        if verbose:
            print(f"report: {report}")
    return TrainResult(
        final,
        history,
        Path(run_dir),
        model_path,
        best_path,
        train_set.class_names,
        val_accuracy,
        time.perf_counter() - start,
        cached,
        options,
    )


def _record_validation_set(val_set, path):
    """The validation images and labels, for the report (``keras-alexnet report`` reads them back)."""
    text = json.dumps(val_set.to_dict(absolute=True))
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _tensorboard(model, options, val_set, run_dir, verbose):
    """TensorBoard callbacks (and the command to watch them, printed)."""
    from keras_alexnet.training.tensorboard import TENSORBOARD_DIR, tensorboard_callbacks

    images = None
    if options.tensorboard_images and val_set is not None:
        picked = np.linspace(0, len(val_set) - 1, num=min(4, len(val_set))).astype(int)
        images = np.stack([eval_transform(val_set.paths[i]) for i in picked])
    if verbose:
        print(f"TensorBoard: tensorboard --logdir {Path(run_dir) / TENSORBOARD_DIR}")
    return tensorboard_callbacks(run_dir, model, images)


def _resolve_auto(options, train_set, val_set, run_dir, resume, verbose):
    """``recipe="auto"``: the options with the recipe and head ``choose_recipe`` picks (or picked, on resume)."""
    from keras_alexnet.training.auto import AutoChoice, choose_recipe

    recorded = Path(run_dir) / "auto.json"
    if resume and recorded.exists():
        choice = AutoChoice(**json.loads(recorded.read_text()))
    else:
        choice = choose_recipe(
            train_set, val_set, options, options.auto_budget, run_dir, verbose=verbose, final_epochs=options.epochs
        )
    from keras_alexnet.training.compare import CACHEABLE_RECIPES

    # Caching was asked for "where it applies": a chosen recipe that trains every layer has nothing to cache.
    cache = options.cache_activations and choice.recipe in CACHEABLE_RECIPES
    return options.replace(recipe=choice.recipe, head=choice.head, cache_activations=cache)


def _learning_rate(options, steps_per_epoch, stage=None):
    """The base rate, or a schedule over the whole run (one-cycle, cosine) peaking at it.

    ``stage`` 1 or 2 of a two-stage recipe (fastai's ``fine_tune``): one-cycle over the
    frozen epochs with the peak at the end (``pct_start`` 0.99), then one-cycle at half
    the rate over the rest, from a fifth of its peak (fastai's ``div=5``).
    """
    rate = options.learning_rate
    if rate is None and (stage or options.lr_schedule in ("one-cycle", "cosine")):
        rate = options.recipe_object.learning_rate
    if stage == 1:
        return OneCycle(rate, max(options.freeze_epochs * steps_per_epoch, 2), pct_start=0.99)
    if stage == 2:  # fastai's fine_tune starts its second one-cycle at a fifth of the peak (div=5)
        return OneCycle(rate / 2, max((options.epochs - options.freeze_epochs) * steps_per_epoch, 2), div_factor=5.0)
    if options.lr_schedule not in ("one-cycle", "cosine"):
        return rate
    total = max(options.epochs * steps_per_epoch, 2)
    return OneCycle(rate, total) if options.lr_schedule == "one-cycle" else cosine_with_warmup(rate, total)


def unfreeze_for_stage_two(model, options, steps_per_epoch):
    """A two-stage recipe's switch: unfreeze everything, discriminative factors, a new one-cycle optimizer.

    The factors spread from conv1 (``1 / unfreeze_ratio``) to the head (1) geometrically
    (``discriminative_factors``); the optimizer is new (fastai's ``fine_tune`` starts a
    new ``fit_one_cycle``), with the recipe's L2 and solver (or ``options.optimizer``).
    """
    recipe = options.recipe_object
    unfreeze(model)
    rate = _learning_rate(options, steps_per_epoch, stage=2)
    factors = discriminative_factors(model, recipe.unfreeze_ratio)
    optimizer = with_lr_factors(_optimizer(options, rate), factors, model, l2_regularization=recipe.l2_regularization)
    model.compile(
        optimizer=optimizer,
        loss=model.loss,
        metrics=["accuracy"],
        jit_compile=resolve_jit_compile(model, options.xla),
    )
    return model


def _optimizer(options, rate):
    """The options' solver at ``rate``, its momentum cycled against the rate where the options say so."""
    optimizer = make_optimizer(options.solver, rate)
    return with_momentum_schedule(optimizer, rate.momentum()) if options.momentum_cycles else optimizer


def _cached_pipelines(model, options, train_set, val_set, cache_dir, epochs, shared=None):
    """The frozen prefix's activations over both sets, and the rest of the model to train on them.

    ``shared``: a dict of caches from earlier runs, keyed by what makes activations equal
    (the cut, the images, the frozen weights: the file named, or the seed of random ones).
    """
    split = split_frozen_prefix(model)
    if split is None:
        raise ValueError(f"cache_activations: recipe {options.recipe_name!r} leaves no frozen leading layers to cache.")
    prefix, rest = split
    rest.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"], jit_compile=model.jit_compile)

    weights = options.weights if options.weights is not None else f"random seed {options.seed}"
    if shared is not None and not isinstance(weights, str):
        shared = None  # weights given as an object: no key to share by

    def cached(folder, name):
        key = (prefix.layers[-1].name, tuple(folder.paths), weights, options.architecture, options.cache_dtype)
        if isinstance(shared, dict) and key in shared:
            return shared[key]
        if isinstance(shared, (str, Path)):
            found = load_shared_activations(shared, key)
            if found is not None:
                return found
        images = folder.dataset(options.batch_size, training=False)  # file order, eval transform
        activations = cache_activations(
            prefix,
            images,
            dtype=options.cache_dtype,
            memory_limit=options.cache_memory_limit,
            directory=cache_dir,
            name=name,
            count=len(folder),
        )
        if isinstance(shared, dict) and not activations.on_disk:  # a file cache lives in its run directory
            shared[key] = activations
        elif isinstance(shared, (str, Path)):
            save_shared_activations(shared, key, activations)
        return activations

    cached_train = cached(train_set, "train")
    cached_val = cached(val_set, "val") if val_set is not None else None
    log.info(
        "activation cache: %.1f MiB (%s)", cached_train.nbytes / 2**20, "disk" if cached_train.on_disk else "memory"
    )
    return {
        "model": rest,
        "train": cached_train.dataset(options.batch_size, training=True, seed=options.seed, **epochs),
        "val": cached_val.dataset(options.batch_size, training=False) if cached_val is not None else None,
    }
