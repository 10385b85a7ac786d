"""A SavedModel from elsewhere is data (saved_model_ops.py): its graph is read, and refused when it touches
files, before any of it runs; keras-alexnet's own SavedModel passes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet import TINY, AlexNet
from keras_alexnet.cli import main
from keras_alexnet.deployment import load_classifier
from keras_alexnet.export import export_savedmodel
from keras_alexnet.layers import attach_class_names
from keras_alexnet.saved_model_ops import UnsafeSavedModelError, check_saved_model


class _Hostile(tf.Module):
    """A SavedModel shaped like keras-alexnet's (serving_default on 'images', class_names) that does more."""

    def __init__(self, evil):
        super().__init__()
        self.evil = evil

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8, name="images")])
    def serve(self, images):
        if self.evil == "write":
            tf.io.write_file(self.target, "written by a model file")
        elif self.evil == "save":  # the checkpoint op every SavedModel holds, reached from a signature
            tf.raw_ops.SaveV2(prefix=self.target, tensor_names=["x"], shape_and_slices=[""], tensors=[images])
        return {"probabilities": tf.ones((tf.shape(images)[0], 2)) / 2}

    @tf.function(input_signature=[])
    def names(self):
        if self.evil == "read":
            return {"class_names": tf.strings.split(tf.io.read_file("/etc/hostname"), "\n")}
        return {"class_names": tf.constant(["a", "b"])}


@pytest.mark.parametrize(("evil", "op"), [("write", "WriteFile"), ("read", "ReadFile"), ("save", "SaveV2")])
def test_a_savedmodel_that_touches_files_is_refused_before_it_runs(evil, op, tmp_path, capsys):
    module = _Hostile(evil)
    module.target = str(tmp_path / "written")
    folder = tmp_path / "savedmodel"
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve, "class_names": module.names})
    image = tmp_path / "x.png"
    keras.utils.save_img(image, np.full((40, 40, 3), 90, np.uint8))
    with pytest.raises(UnsafeSavedModelError, match=f"before running any of it: .* holds the op {op} "):
        check_saved_model(folder)
    capsys.readouterr()
    assert main(["predict", "--model", str(folder), str(image)]) == 2
    err = capsys.readouterr().err
    assert f"op {op}" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("written*"))  # nothing of the graph ran


def test_keras_alexnets_own_savedmodel_passes_the_check(tmp_path):
    model = attach_class_names(AlexNet(weights=None, classes=2, architecture=TINY), ["a", "b"])
    export_savedmodel(model, tmp_path / "savedmodel")
    ops = check_saved_model(tmp_path / "savedmodel")
    assert "SaveV2" in ops  # the saver is there, reached by no signature
    assert load_classifier(tmp_path / "savedmodel").class_names == ["a", "b"]
