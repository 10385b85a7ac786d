"""A file from elsewhere is data (issue 27, items 1-3): a SavedModel's graph is read before any of it
runs, a weights file never reads another file, and no cell of a CSV the package writes is a formula."""

import csv
import io
import os

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet import TINY, AlexNet
from keras_alexnet._utils.hdf5 import references_elsewhere
from keras_alexnet._utils.text import SafeCSVWriter, printable, spreadsheet_safe
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


def _weights_file(tmp_path):
    keras.utils.set_random_seed(0)
    model = AlexNet(weights=None, classes=2, architecture=TINY)
    path = tmp_path / "mine.weights.h5"
    model.save_weights(path)
    with h5py.File(path, "r") as handle:
        bias = next(name for name in _datasets(handle) if handle[name].ndim == 1)
    return path, bias


def _datasets(handle):
    found = []
    handle.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
    return found


@pytest.mark.parametrize("kind", ["external", "virtual", "link"])
def test_a_weights_file_that_points_at_another_file_is_refused(kind, tmp_path):
    path, bias = _weights_file(tmp_path)
    assert AlexNet(weights=str(path), classes=2, architecture=TINY)  # as saved, it loads
    secret = tmp_path / "secret.bin"
    with h5py.File(path, "a") as handle:
        size = handle[bias].shape[0]
        del handle[bias]
        if kind == "external":
            secret.write_bytes(b"secrets!" * size)
            handle.create_dataset(bias, shape=(size,), dtype="float32", external=[(str(secret), 0, 4 * size)])
        elif kind == "virtual":
            with h5py.File(secret, "w") as other:
                other["x"] = np.ones(size, np.float32)
            layout = h5py.VirtualLayout(shape=(size,), dtype="float32")
            layout[:] = h5py.VirtualSource(str(secret), "x", shape=(size,))
            handle.create_virtual_dataset(bias, layout)
        else:
            with h5py.File(secret, "w") as other:
                other["x"] = np.ones(size, np.float32)
            handle[bias] = h5py.ExternalLink(str(secret), "x")
    with h5py.File(path, "r") as handle:
        assert references_elsewhere(handle)[0][0] == f"/{bias}"
    with pytest.raises(ValueError, match=f"is refused: /{bias} is an? .*never another file"):
        AlexNet(weights=str(path), classes=2, architecture=TINY)


def test_csv_cells_that_a_spreadsheet_would_evaluate_are_neutralised(tmp_path, capsys):
    assert spreadsheet_safe("=1+2") == "'=1+2" and spreadsheet_safe("@SUM(A1)") == "'@SUM(A1)"
    assert spreadsheet_safe("-0.25") == "-0.25" and spreadsheet_safe(-0.25) == -0.25  # numbers stay numbers
    assert spreadsheet_safe("cats") == "cats"
    buffer = io.StringIO()
    SafeCSVWriter(buffer).writerow(["+cmd|' /C calc'!A0", 3, "\tx"])
    assert next(csv.reader(io.StringIO(buffer.getvalue()))) == ["'+cmd|' /C calc'!A0", "3", "'\tx"]

    names = ['=HYPERLINK("http://x")', "-dogs"]
    keras.utils.set_random_seed(0)
    model = attach_class_names(AlexNet(weights=None, classes=2, architecture=TINY), names)
    model.save(tmp_path / "model.keras")
    folder = tmp_path / "=cmd"
    folder.mkdir()
    for name in ("+1.png", "@SUM(1).png", "-2+3.png"):
        keras.utils.save_img(folder / name, np.full((40, 40, 3), 90, np.uint8))
    out = tmp_path / "predictions.csv"
    assert main(["predict", "--model", str(tmp_path / "model.keras"), str(folder), "--out", str(out)]) == 0
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "@")) and not (cell.startswith("-") and not _number(cell)), row
        assert row["class"] in ("'" + names[0], "'" + names[1])


def _number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def test_a_file_name_that_is_not_utf8_prints_escaped(tmp_path):
    name = os.fsdecode(b"caf\xe9.png")
    assert printable(tmp_path / name).endswith("caf\\xe9.png")
    assert printable("plain é.png") == "plain é.png"
