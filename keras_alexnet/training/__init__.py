"""Training: options (MATLAB's trainingOptions), ``train`` from a folder, ``fit`` for your own
pipelines, the set-up ``train`` and ``lr_find`` share, the run directory's callbacks, the
activation cache and multi-worker training.

A run writes into a ``keras_alexnet.run_directory.RunDirectory`` (the one owner of its file
names). ``recipe="auto"`` is an experiment: ``keras_alexnet.experiments.train`` resolves it,
then trains here.
"""

from keras_alexnet.options import AutoBudget, TrainingOptions
from keras_alexnet.training.activation_cache import CachedActivations, cache_activations, split_frozen_prefix
from keras_alexnet.training.callbacks import (
    AtomicBackupAndRestore,
    BestModelCheckpoint,
    TrainingProgress,
    plot_progress,
    save_model_atomic,
    trim_csv_log,
)
from keras_alexnet.training.loop import (
    TrainResult,
    configure,
    fit,
    piecewise_schedule,
    prepare_model,
    read_sets,
    train,
    train_locked,
)
from keras_alexnet.training.setup import build_model

__all__ = [
    "AtomicBackupAndRestore",
    "AutoBudget",
    "BestModelCheckpoint",
    "CachedActivations",
    "TrainResult",
    "TrainingOptions",
    "TrainingProgress",
    "build_model",
    "cache_activations",
    "configure",
    "fit",
    "piecewise_schedule",
    "plot_progress",
    "prepare_model",
    "read_sets",
    "save_model_atomic",
    "split_frozen_prefix",
    "train",
    "train_locked",
    "trim_csv_log",
]
