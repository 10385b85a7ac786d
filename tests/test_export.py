"""Exports: TFLite with its weights, NaN-aware checks, and folders the package did not create left alone."""

import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import photo_paths

from keras_alexnet import TINY, AlexNet
from keras_alexnet.cli import main
from keras_alexnet.export import ExportCheckError, export_savedmodel, export_tflite
from keras_alexnet.model import load_model


@pytest.fixture(scope="module")
def tiny_model():
    return AlexNet(weights=None, classes=2, architecture=TINY, input_shape=(224, 224, 3))


def _crops():
    """Real photos, center-cropped to 224x224 uint8 as a mobile app would pass them."""
    from PIL import Image

    crops = []
    for path in photo_paths(per_class=2):
        with Image.open(path) as image:
            image = image.convert("RGB").resize((224, 224))
            crops.append(np.asarray(image, np.uint8))
    return np.stack(crops)


@pytest.mark.parametrize("quantize", [None, "float16", "dynamic"])
@pytest.mark.slow
def test_tflite_has_the_weights_and_matches_keras_in_a_fresh_process(tiny_model, tmp_path, quantize):
    out = tmp_path / "m.tflite"
    images = _crops()
    check = export_tflite(tiny_model, out, check_images=images, quantize=quantize)
    params = tiny_model.count_params()
    size = os.path.getsize(out)
    bytes_per_param = {None: 4, "float16": 2, "dynamic": 1}[quantize]
    assert size > 0.9 * bytes_per_param * params  # the weights are in the file (it was 15 KB of zeros)
    from keras_alexnet.export import TFLITE_TOLERANCE
    from keras_alexnet.preprocessing import preprocess_input

    expected = tiny_model.predict(preprocess_input(images), verbose=0)
    np.save(tmp_path / "images.npy", images)
    code = (
        "import numpy as np, tensorflow as tf; "
        f"r = tf.lite.Interpreter(r'{out}').get_signature_runner(); "
        f"x = np.load(r'{tmp_path / 'images.npy'}'); "
        f"np.save(r'{tmp_path / 'got.npy'}', np.concatenate([r(image=i[None])['probabilities'] for i in x]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = np.load(tmp_path / "got.npy")
    assert np.all(np.isfinite(got))
    assert np.max(np.abs(got - expected)) <= TFLITE_TOLERANCE[quantize]
    assert check.max_abs_diff <= TFLITE_TOLERANCE[quantize]


def test_a_nan_producing_model_fails_the_check_and_leaves_no_file(tiny_model, tmp_path):
    broken = AlexNet(weights=None, classes=2, architecture=TINY, input_shape=(224, 224, 3))
    kernel, bias = broken.get_layer("fc8").get_weights()
    broken.get_layer("fc8").set_weights([np.full_like(kernel, np.nan), bias])
    with pytest.raises(ExportCheckError, match="NaN"):
        export_tflite(broken, tmp_path / "m.tflite")
    with pytest.raises(ExportCheckError, match="NaN"):
        export_savedmodel(broken, tmp_path / "sm")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_savedmodel_never_deletes_a_users_folder(tiny_model, tmp_path, monkeypatch):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(ValueError, match="not empty; nothing was changed"):
        export_savedmodel(tiny_model, mine)
    with pytest.raises(ValueError, match="not a SavedModel"):
        export_savedmodel(tiny_model, mine, overwrite=True)
    assert (mine / "holiday.jpg").read_bytes() == b"precious"
    monkeypatch.chdir(mine)
    assert main(["export", "--model", "x.keras", "--format", "savedmodel", "--out", "."]) == 2  # no such model
    with pytest.raises(ValueError, match="not empty"):
        export_savedmodel(tiny_model, ".")
    assert sorted(p.name for p in mine.iterdir()) == ["holiday.jpg"]


def test_savedmodel_replaces_only_a_savedmodel_and_follows_the_umask(tiny_model, tmp_path):
    out = tmp_path / "serving" / "1"
    export_savedmodel(tiny_model, out)
    assert (out / "saved_model.pb").exists()
    umask = os.umask(0)
    os.umask(umask)
    assert (out.stat().st_mode & 0o777) == 0o777 & ~umask
    with pytest.raises(ValueError, match="--overwrite"):
        export_savedmodel(tiny_model, out)
    export_savedmodel(tiny_model, out, overwrite=True)
    assert sorted(p.name for p in out.parent.iterdir()) == ["1"]  # no temporary or old copy left


def test_tflite_refuses_to_replace_an_existing_file(tiny_model, tmp_path):
    existing = tmp_path / "notes.tflite"
    existing.write_text("mine")
    with pytest.raises(ValueError, match="exists; nothing was changed"):
        export_tflite(tiny_model, existing)
    assert existing.read_text() == "mine"


def test_the_format_table_is_what_the_cli_offers_and_every_row_resolves():
    """Issue 29, item 2: one table of formats (``keras_alexnet.formats``); the CLI's choices, the
    writers and the readers all come from it."""
    import argparse

    from keras_alexnet.cli import build_parser
    from keras_alexnet.formats import FORMATS, export_formats, quantizations, resolve

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    actions = {a.dest: a for a in commands["export"]._actions}
    assert tuple(actions["format"].choices) == export_formats() == ("savedmodel", "tflite", "onnx")
    assert tuple(actions["quantize"].choices) == quantizations() == FORMATS["tflite"].quantizations
    for name, row in FORMATS.items():
        assert callable(resolve(row.reader)), name
        if row.writable:
            assert callable(resolve(row.builder)) and None in row.tolerance, name
            assert set(row.labelled) <= set(row.quantizations), name


def test_quantize_and_data_follow_the_table(tiny_model, tmp_path):
    from keras_alexnet.datasets import ImageFolder
    from keras_alexnet.export import export

    with pytest.raises(ValueError, match="--quantize float16 does not apply to onnx \\(its quantizations: none\\)"):
        export(tiny_model, "onnx", tmp_path / "m.onnx", quantize="float16")
    labelled = ImageFolder(["a.png", "b.png"], [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="labelled images \\(--data\\) are for a quantized export"):
        export(tiny_model, "tflite", tmp_path / "m.tflite", labelled=labelled)
    with pytest.raises(ValueError, match="format 'coreml': use one of savedmodel, tflite, onnx"):
        export(tiny_model, "coreml", tmp_path / "m.mlmodel")
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_savedmodel_export_removes_only_the_leftovers_of_killed_exports(model_file, tmp_path):
    from keras_alexnet.export import LEFTOVER_PREFIXES, export_savedmodel

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = tmp_path / f"{LEFTOVER_PREFIXES[0]}{dead.pid}-model-abc123"
    (killed / "variables").mkdir(parents=True)
    alive = tmp_path / f"{LEFTOVER_PREFIXES[0]}{os.getpid()}-model-def456"  # an export running now
    alive.mkdir()
    users = tmp_path / ".tmp-mine"
    users.mkdir()
    export_savedmodel(load_model(model_file), tmp_path / "model")
    assert not killed.exists() and alive.exists() and users.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".tmp-mine", alive.name, "model"])
    with zipfile.ZipFile(model_file) as archive:  # the model file itself is untouched
        assert "config.json" in archive.namelist()


def test_an_export_never_writes_over_the_model_it_reads(model_file, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    model = run / "model.keras"
    shutil.copy(model_file, model)
    (tmp_path / "link.keras").symlink_to(model)
    before = model.read_bytes()
    for fmt, out in (("tflite", model), ("tflite", tmp_path / "link.keras"), ("savedmodel", run)):
        argv = ["export", "--model", str(model), "--format", fmt, "--out", str(out), "--overwrite"]
        assert main(argv) == 2
        assert "would replace the model being read" in capsys.readouterr().err
    assert model.read_bytes() == before


def test_a_second_export_into_the_same_out_while_one_runs_is_refused_and_the_first_is_kept(tiny_model, tmp_path):
    out = tmp_path / "serving" / "pets"
    export_savedmodel(tiny_model, out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    lock = out.parent / ".pets.export.lock"
    lock.write_text(f"{os.getppid()}\n")  # another export, alive, holds the folder
    with pytest.raises(ValueError, match="in use by another export"):
        export_savedmodel(tiny_model, out, overwrite=True)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    lock.unlink()
    export_savedmodel(tiny_model, out, overwrite=True)  # once it has finished: replaced whole
    assert not lock.exists()
