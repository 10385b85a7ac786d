"""Training: options (MATLAB's trainingOptions), ``train`` from a folder, ``fit`` for your own
pipelines, the run directory's callbacks, the activation cache and multi-worker training.

A run directory holds ``options.json``, ``model.keras``, ``best.keras``, ``log.csv``,
``history.json``, ``progress.png`` and, while running, ``backup/``.
"""

from keras_alexnet.training.activation_cache import CachedActivations, cache_activations, split_frozen_prefix
from keras_alexnet.training.callbacks import (
    AtomicBackupAndRestore,
    BestModelCheckpoint,
    TrainingProgress,
    plot_progress,
    save_model_atomic,
    trim_csv_log,
)
from keras_alexnet.training.loop import TrainResult, configure, fit, piecewise_schedule, prepare_model, train
from keras_alexnet.training.options import TrainingOptions

__all__ = [
    "AtomicBackupAndRestore",
    "BestModelCheckpoint",
    "CachedActivations",
    "TrainResult",
    "TrainingOptions",
    "TrainingProgress",
    "cache_activations",
    "configure",
    "fit",
    "piecewise_schedule",
    "plot_progress",
    "prepare_model",
    "save_model_atomic",
    "split_frozen_prefix",
    "train",
    "trim_csv_log",
]
