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


# Issue 35's attacks: each SavedModel below acts on files outside its folder when TensorFlow loads or runs it.
# Each carries a genuine keras-alexnet record and variables (copied from a real export), so a reader that
# trusted the file's graph would find everything it looks for.
ATTACKS = ("tf1-signature-save", "tf1-main-op-save", "tf1-restore-names", "tf1-merge", "tf1-saver-def", "tf2-renamed")


def _tf1_savedmodel(folder, outside, attack):
    """A TF1-style SavedModel (graph at top level) shaped like ours, whose ``attack`` touches ``outside``."""
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        images = v1.placeholder(tf.uint8, (None, None, None, 3), name="images")
        probabilities = tf.ones(tf.stack([tf.shape(images)[0], 2])) / 2
        names = tf.constant(["a", "b"])
        target = str(outside / "written")

        def save():
            return tf.raw_ops.SaveV2(
                prefix=target, tensor_names=["x"], shape_and_slices=[""], tensors=[tf.constant("attack")]
            )

        main_op = None
        if attack == "tf1-signature-save":
            with tf.control_dependencies([save()]):
                probabilities = tf.identity(probabilities)
        elif attack == "tf1-main-op-save":
            main_op = save()
        elif attack == "tf1-restore-names":
            names = tf.raw_ops.RestoreV2(
                prefix=str(outside / "secret"),
                tensor_names=["secret/.ATTRIBUTES/VARIABLE_VALUE"],
                shape_and_slices=[""],
                dtypes=[tf.string],
            )[0][None]
        elif attack == "tf1-merge":
            merge = tf.raw_ops.MergeV2Checkpoints(
                checkpoint_prefixes=[str(outside / "secret")], destination_prefix=str(outside / "moved" / "m")
            )
            with tf.control_dependencies([merge]):
                probabilities = tf.identity(probabilities)
        elif attack == "tf1-saver-def":  # at load, the saver's restore op: a save, then a merge
            with tf.control_dependencies([save()]):
                restore = tf.raw_ops.MergeV2Checkpoints(
                    checkpoint_prefixes=[str(outside / "secret")], destination_prefix=str(outside / "moved" / "m")
                )
        with v1.Session(graph=graph) as session:
            builder = v1.saved_model.Builder(str(folder))
            signature = v1.saved_model.predict_signature_def
            builder.add_meta_graph_and_variables(
                session,
                ["serve"],
                signature_def_map={
                    "serving_images": signature({"images": images}, {"probabilities": probabilities}),
                    "class_names": v1.saved_model.build_signature_def(
                        outputs={"class_names": v1.saved_model.build_tensor_info(names)}
                    ),
                },
                main_op=main_op,
            )
            builder.save()
        if attack == "tf1-saver-def":
            from tensorflow.core.protobuf import saved_model_pb2

            proto = saved_model_pb2.SavedModel()
            proto.ParseFromString((folder / "saved_model.pb").read_bytes())
            proto.meta_graphs[0].saver_def.restore_op_name = restore.name
            proto.meta_graphs[0].saver_def.filename_tensor_name = images.name
            proto.meta_graphs[0].saver_def.save_tensor_name = restore.name + ":0"
            (folder / "saved_model.pb").write_bytes(proto.SerializeToString())


def _tf2_renamed(folder, outside):
    """A TF2 SavedModel whose serving_images calls SaveV2, its signature's tensor names edited to a missing node
    (a reachability check from the signature finds nothing; TensorFlow's loader runs the object graph's function)."""
    from tensorflow.core.protobuf import saved_model_pb2

    module = _Hostile("save")
    module.target = str(outside / "written")
    tf.saved_model.save(module, str(folder), signatures={"serving_images": module.serve, "class_names": module.names})
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((folder / "saved_model.pb").read_bytes())
    for signature in proto.meta_graphs[0].signature_def.values():
        for tensor in [*signature.inputs.values(), *signature.outputs.values()]:
            tensor.name = "missing_node:0"
    (folder / "saved_model.pb").write_bytes(proto.SerializeToString())


def _snapshot(folder):
    return {str(p.relative_to(folder)): (p.stat().st_size, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def genuine_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("genuine") / "savedmodel"
    model = attach_class_names(AlexNet(weights=None, classes=2, architecture=TINY), ["a", "b"])
    export_savedmodel(model, folder)
    return folder


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("second_line", [True, False], ids=["with-op-check", "without-op-check"])
def test_a_hostile_savedmodel_changes_nothing_outside_its_folder(
    attack, second_line, genuine_export, tmp_path, monkeypatch, capsys
):
    import shutil

    import keras_alexnet.deployment as deployment

    outside = tmp_path / "outside"
    outside.mkdir()
    secret = tf.train.Checkpoint(secret=tf.Variable("private contents"))
    secret.write(str(outside / "secret"))
    folder = tmp_path / "hostile"
    if attack == "tf2-renamed":
        _tf2_renamed(folder, outside)
    else:
        _tf1_savedmodel(folder, outside, attack)
    # The attacker copies a genuine record and genuine variables in.
    shutil.rmtree(folder / "variables", ignore_errors=True)
    shutil.copytree(genuine_export / "variables", folder / "variables")
    shutil.copytree(genuine_export / "assets.extra", folder / "assets.extra")
    before = _snapshot(outside)
    if not second_line:  # by construction, not by the op check: without it nothing runs either
        monkeypatch.setattr(deployment, "check_saved_model", lambda path: set())
    image = solid_image_file(tmp_path / "x.png")
    code = main(["predict", "--model", str(folder), str(image), "--out", str(tmp_path / "p.csv")])
    out, err = capsys.readouterr()
    assert _snapshot(outside) == before, f"{attack} changed files outside its folder"
    assert "private contents" not in out + err
    if second_line and attack.startswith("tf1"):
        assert code == 2 and "TF1-style" in err and len(err.strip().splitlines()) == 1
    else:  # read as data: the genuine model's answers, none of the graph's
        assert code == 0, err


def solid_image_file(path):
    keras.utils.save_img(path, np.full((40, 40, 3), 90, np.uint8))
    return path


def test_a_savedmodel_without_the_record_is_refused_in_one_line(tmp_path, capsys):
    module = _Hostile("none")
    tf.saved_model.save(module, str(tmp_path / "other"), signatures={"serving_images": module.serve})
    image = solid_image_file(tmp_path / "x.png")
    assert main(["predict", "--model", str(tmp_path / "other"), str(image)]) == 2
    err = capsys.readouterr().err
    assert "has no assets.extra/keras-alexnet.json" in err and len(err.strip().splitlines()) == 1


def test_a_record_that_asks_for_more_than_its_variables_hold_is_refused_before_reading(genuine_export, tmp_path):
    import json
    import shutil

    from keras_alexnet.saved_model_record import RECORD, SavedModelRecordError, read_saved_model

    folder = tmp_path / "big"
    shutil.copytree(genuine_export, folder)
    record = json.loads((folder / RECORD).read_text())
    text = json.dumps(record["config"]).replace('"units": 2', '"units": 100000000')
    record["config"] = json.loads(text)
    (folder / RECORD).write_text(json.dumps(record))
    with pytest.raises(SavedModelRecordError, match="100000000 units"):
        read_saved_model(folder)
