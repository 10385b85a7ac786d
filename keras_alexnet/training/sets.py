"""The training and validation sets of a run, read once and checked the same way for ``train``,
``lr_find`` and ``compare``: a validation folder, or a stratified split of the training folder."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from keras_alexnet._utils.files import atomic_write
from keras_alexnet.datasets import DatasetError, ImageFolder

log = logging.getLogger("keras_alexnet.training")


def read_sets(data, val, options):
    """(training set, validation set or None) from folders or ``ImageFolder``s and the options' split."""
    if val is not None and options.val_split is not None:
        raise ValueError("give either val (a folder) or val_split (a fraction), not both.")
    train_set = data if isinstance(data, ImageFolder) else ImageFolder.read(data, on_bad_file=options.on_bad_file)
    if options.val_split is not None:
        return train_set.split(1 - options.val_split, seed=options.seed)
    if val is None:
        return train_set, None
    if not isinstance(val, ImageFolder) and not isinstance(data, ImageFolder) and _same_folder(data, val):
        raise DatasetError(
            f"--val {val} is the training folder --data {data}: validation images must be held out. Give a "
            "separate folder, or --val-split to hold out a fraction of --data."
        )
    val_set = (
        val
        if isinstance(val, ImageFolder)
        else ImageFolder.read(val, on_bad_file=options.on_bad_file, class_names=train_set.class_names)
    )
    shared = train_set.shared_with(val_set)
    if shared:
        log.warning(
            "%d of the %d validation images are also training images (e.g. %s): the validation scores are not on "
            "held-out images. Remove them from one of the two folders.",
            len(shared),
            len(val_set),
            shared[0],
        )
    return train_set, val_set


def _same_folder(first, second):
    return Path(first).exists() and Path(second).exists() and os.path.samefile(first, second)


def record_validation_set(val_set, path):
    """The validation images and labels, for the report (``keras-alexnet report`` reads them back)."""
    text = json.dumps(val_set.to_dict(absolute=True))
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
