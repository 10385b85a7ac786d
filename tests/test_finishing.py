"""The finishing steps after the stages (training/finishing.py): a model that is not finite is not shipped."""

import numpy as np
import pytest

from keras_alexnet.architecture import TINY
from keras_alexnet.model import AlexNet
from keras_alexnet.run_directory import RunDirectory

SHAPES = {"per_class": 4, "size": 64, "seed": 2}  # conftest.shapes_dir


def test_a_final_model_with_non_finite_weights_keeps_the_backup(shapes_dir, tmp_path):
    from keras_alexnet.training.callbacks import TrainingDiverged
    from keras_alexnet.training.finishing import check_finite

    model = AlexNet(weights=None, classes=2, architecture=TINY)
    check_finite(model, RunDirectory(tmp_path))
    model.get_layer("fc8").bias.assign(np.full(2, np.nan, np.float32))
    with pytest.raises(TrainingDiverged, match="fc8.* nothing deleted: .*backup .* are kept"):
        check_finite(model, RunDirectory(tmp_path))
