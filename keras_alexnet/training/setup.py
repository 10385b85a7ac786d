"""What ``train`` and ``lr_find`` both set up from ``TrainingOptions``: the seeded runtime, the model
compiled for a recipe's stage with its optimizer and rate, and the activation cache.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet.architecture import ARCHITECTURES
from keras_alexnet.datasets.class_weights import class_weights, weighted
from keras_alexnet.metrics import training_metrics
from keras_alexnet.model import AlexNet
from keras_alexnet.optimizers import make_optimizer, with_momentum_schedule
from keras_alexnet.optimizers.schedules import OneCycle, cosine_with_warmup
from keras_alexnet.recipes import ONE_CYCLE, recipe_named
from keras_alexnet.training.activation_cache import (
    cache_activations,
    claim_shared_activations,
    save_shared_activations,
    split_frozen_prefix,
)
from keras_alexnet.training.regularizers import averaged, loss_for, uses_soft_loss
from keras_alexnet.transfer import apply_recipe, freeze, resolve_jit_compile, stage_factors, unfreeze, with_lr_factors

log = logging.getLogger("keras_alexnet.training")


def configure(options):
    """Seed everything and set the dtype policy, from ``options`` (a checked ``TrainingOptions``).

    Seeded CPU runs repeat exactly without more (tested). ``options.deterministic``
    also turns on TensorFlow's op determinism, for GPUs; it disables XLA.
    """
    keras.utils.set_random_seed(options.seed)
    if options.deterministic:
        tf.config.experimental.enable_op_determinism()
    precision = options.mixed_precision
    keras.mixed_precision.set_global_policy(f"mixed_{precision}" if precision else "float32")


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
    """AlexNet with ``weights`` (convolutions), set up and compiled by ``recipe`` (its first stage).

    ``architecture``: ``"alexnet"`` or ``"tiny"`` (``keras_alexnet.architecture``), or a table.
    """
    if optimizer is not None and isinstance(optimizer, str):
        rate = learning_rate if learning_rate is not None else recipe_named(recipe).learning_rate
        optimizer = make_optimizer(optimizer, rate)
    if isinstance(architecture, str):
        architecture = ARCHITECTURES[architecture]
    base = AlexNet(weights=weights, include_top=False, input_shape=input_shape, architecture=architecture)
    return apply_recipe(
        base,
        recipe,
        classes,
        learning_rate=learning_rate,
        optimizer=optimizer,
        jit_compile=xla,
        head=head,
        metrics=training_metrics(classes),
    )


def balancing(options, train_set, val_set=None):
    """(training weights, validation weights) per class, or None: what evens the classes out.

    ``class_weight="auto"`` weighs the training images by the training set's class counts and the
    validation images by the validation set's own (a balanced validation set gets weight 1, so its
    loss is the plain loss); ``balanced_sampling`` evens the training batches and weighs the
    validation images the same way. A dict of weights is the user's, and weighs both. The
    validation loss, which picks the epoch kept and drives ``patience``, is then the balanced loss:
    unweighted, on a validation set as imbalanced as the training set, it is lowest when the
    model answers the large class.
    """
    weights = class_weights(options.class_weight, train_set.labels, train_set.class_names)
    balanced = options.balanced_sampling or (isinstance(options.class_weight, str) and options.class_weight == "auto")
    if balanced:
        val_weights = (
            class_weights("auto", val_set.labels, val_set.class_names) if val_set is not None and len(val_set) else None
        )
        if val_weights is not None and np.allclose(val_weights, 1.0):
            val_weights = None  # the validation classes are even: the plain loss is the balanced loss
        return weights, val_weights
    return weights, weights


def stage_epochs(options):
    """``[(first, last), ...]``: the epochs each stage of the options' recipe trains (0-based, end exclusive)."""
    if not options.two_stage:
        return [(0, options.epochs)]
    return [(0, options.freeze_epochs), (options.freeze_epochs, options.epochs)]


def stage_label(number, stage):
    """The progress plot's mark for a stage: ``"stage 1: head only"``."""
    what = stage.label or (f"{', '.join(stage.frozen)} frozen" if stage.frozen else "all layers")
    return f"stage {number}: {what}"


def learning_rate(options, steps_per_epoch=None, stage_index=0):
    """The stage's rate: a number, or a schedule over the stage (one-cycle, cosine) peaking at it.

    The peak is ``options.learning_rate`` or the recipe's, times the stage's ``rate_scale``.
    A stage with its own one-cycle (fastai's ``fine_tune``: over the frozen epochs with the
    peak at the end, then at half the rate from a fifth of its peak) uses it; otherwise
    ``options.lr_schedule``. ``steps_per_epoch=None``: the constant peak (``lr_find``).
    """
    recipe = options.recipe_object
    stage = recipe.stages[stage_index]
    rate = options.learning_rate
    scheduled = stage.schedule == ONE_CYCLE or options.lr_schedule in ("one-cycle", "cosine")
    if rate is None and (scheduled or stage.rate_scale != 1):
        rate = recipe.learning_rate
    if rate is not None and stage.rate_scale != 1:
        rate = rate * stage.rate_scale
    if steps_per_epoch is None:
        return rate
    first, last = stage_epochs(options)[stage_index]
    total = max((last - first) * steps_per_epoch, 2)
    if stage.schedule == ONE_CYCLE:
        return OneCycle(rate, total, pct_start=stage.pct_start, div_factor=stage.div_factor)
    if options.lr_schedule == "one-cycle":
        return OneCycle(rate, total)
    if options.lr_schedule == "cosine":
        return cosine_with_warmup(rate, total)
    return rate


def optimizer_for(options, rate):
    """The options' solver at ``rate``, its momentum cycled against the rate where the options say so."""
    optimizer = make_optimizer(options.solver, rate)
    return with_momentum_schedule(optimizer, rate.momentum()) if options.momentum_cycles else optimizer


def build_model(options, classes, steps_per_epoch=None):
    """AlexNet set up and compiled for the options' recipe's first stage.

    With ``steps_per_epoch`` the optimizer follows the stage's schedule; without, its rate is
    the constant peak (what ``lr_find`` sweeps).
    """
    rate = learning_rate(options, steps_per_epoch)
    cycling = steps_per_epoch is not None and options.momentum_cycles
    model = prepare_model(
        options.recipe,
        classes,
        weights=options.weights,
        learning_rate=rate,
        optimizer=optimizer_for(options, rate) if cycling else options.optimizer,
        xla=options.xla,
        architecture=options.architecture,
        head=options.head,
    )
    if uses_soft_loss(options) or options.ema:
        model.compile(
            optimizer=averaged(model.optimizer, options.ema) if options.ema else model.optimizer,
            loss=loss_for(options),
            metrics=training_metrics(classes, soft=uses_soft_loss(options)),
            jit_compile=model.jit_compile,
        )
    return model


def enter_stage(model, options, stage_index, steps_per_epoch):
    """Switch ``model`` to a later stage of its recipe: its frozen layers, factors and a new optimizer.

    fastai's ``fine_tune`` starts a new ``fit_one_cycle`` for its second stage: the optimizer is new,
    with the recipe's L2 and solver (or ``options.optimizer``).
    """
    recipe = options.recipe_object
    stage = recipe.stages[stage_index]
    unfreeze(model)
    for spec in stage.frozen:
        freeze(model, spec)
    rate = learning_rate(options, steps_per_epoch, stage_index)
    optimizer = with_lr_factors(
        optimizer_for(options, rate), stage_factors(model, stage), model, l2_regularization=recipe.l2_regularization
    )
    if options.ema:
        optimizer = averaged(optimizer, options.ema)
    model.compile(
        optimizer=optimizer,
        loss=model.loss,
        metrics=training_metrics(model.output.shape[-1], soft=uses_soft_loss(options)),
        jit_compile=resolve_jit_compile(model, options.xla),
    )
    return model


def caches_stage(options, index):
    """Whether stage ``index`` of the options' recipe trains on cached activations: with ``cache_activations``,
    the first stage, and a later one that still freezes the first convolution (every engine asks this)."""
    stage = options.recipe_object.stages[index]
    return options.cache_activations and (index == 0 or stage.freezes_first_convolution)


def activation_pipelines(
    model, options, train_set, val_set, cache_dir, epochs=None, shared=None, required=True, training=True
):
    """The frozen prefix's activations over both sets, and the rest of the model to train on them.

    Returns ``{"model", "activations", "train", "val"}`` (``None`` when nothing leading is frozen and not
    ``required``; ``activations``: the training set's ``CachedActivations``). ``epochs``: ``{"epochs", "start_epoch"}`` of the training pipeline.
    ``shared``: a dict of caches from earlier runs, or a folder (across processes), keyed by
    what makes activations equal (the cut, the images, the frozen weights: the file named,
    or the seed of random ones).
    """
    split = split_frozen_prefix(model)
    if split is None:
        if not required:
            return None
        raise ValueError(f"cache_activations: recipe {options.recipe_name!r} leaves no frozen leading layers to cache.")
    prefix, rest = split
    rest.compile(
        optimizer=model.optimizer,
        loss=model.loss,
        metrics=training_metrics(model.output.shape[-1]),
        jit_compile=model.jit_compile,
    )

    weights = options.weights if options.weights is not None else f"random seed {options.seed}"
    if shared is not None and not isinstance(weights, str):
        shared = None  # weights given as an object: no key to share by

    def cached(folder, name):
        key = (prefix.layers[-1].name, tuple(folder.paths), weights, options.architecture, options.cache_dtype)
        if isinstance(shared, dict) and key in shared:
            return shared[key]
        lock = None
        if isinstance(shared, (str, Path)):
            found, lock = claim_shared_activations(shared, key)  # waits while another process computes it
            if found is not None:
                return found
        try:
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
        finally:
            if lock is not None:
                lock.unlink(missing_ok=True)
        return activations

    cached_train = cached(train_set, "train")
    cached_val = cached(val_set, "val") if val_set is not None else None
    log.info(
        "activation cache: %.1f MiB (%s)", cached_train.nbytes / 2**20, "disk" if cached_train.on_disk else "memory"
    )
    weights, _ = balancing(options, train_set)
    balanced = options.balanced_sampling and training and epochs is not None
    return {
        "model": rest,
        "activations": cached_train,  # the workers take their rows of each global batch from it
        "train": weighted(
            cached_train.dataset(
                options.batch_size, training=training, seed=options.seed, balanced=balanced, **(epochs or {})
            ),
            weights,
        ),
        "val": cached_val.dataset(options.batch_size, training=False) if cached_val is not None else None,
    }
