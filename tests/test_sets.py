"""The training and validation sets, read and checked once (training/sets.py): the same folder twice is
refused, files in both are counted."""

import os
import shutil

import pytest

from keras_alexnet.training import TrainingOptions, read_sets

SHAPES = {"per_class": 4, "size": 64, "seed": 2}  # conftest.shapes_dir


def test_validation_on_the_training_images_is_refused_or_counted(shapes_dir, tmp_path, caplog):
    options = TrainingOptions()
    with pytest.raises(ValueError, match="--val .* is the training folder --data.*held out"):
        read_sets(shapes_dir, shapes_dir, options)
    overlapping = tmp_path / "val"
    for name in os.listdir(shapes_dir):
        (overlapping / name).mkdir(parents=True)
        first, *rest = sorted((shapes_dir / name).iterdir())
        os.link(first, overlapping / name / "same.png")  # the same file under another name
        shutil.copy(rest[0], overlapping / name / "copy.png")  # a copy is another file
    with caplog.at_level("WARNING", logger="keras_alexnet.training"):
        _, val_set = read_sets(shapes_dir, overlapping, options)
    assert len(val_set) == 8
    assert "4 of the 8 validation images are also training images" in caplog.text
