"""What a careless user does (issue 19): each case ends in a clear message or the right result,
before any work where it can, and nothing the user made is changed or lost."""

import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

from keras_alexnet.architecture import TINY
from keras_alexnet.cli import main
from keras_alexnet.datasets import ImageFolder, generate_shapes
from keras_alexnet.explain import output_names
from keras_alexnet.layers import attach_class_names
from keras_alexnet.model import AlexNet, load_model
from keras_alexnet.training import TrainingOptions, read_sets


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    return generate_shapes(tmp_path_factory.mktemp("shapes") / "data", per_class=4, size=64, seed=2)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, shapes_dir):
    """An untrained tiny AlexNet with the shapes' class names, saved as a run would save it."""
    keras.utils.set_random_seed(0)
    model = attach_class_names(AlexNet(weights=None, classes=4, architecture=TINY), sorted(os.listdir(shapes_dir)))
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path


def _image(path, size=(48, 40), value=90):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)
    return path


# Item 3
def test_explain_gives_images_that_share_a_name_distinct_pictures(model_file, tmp_path, capsys):
    first, second = _image(tmp_path / "cats" / "001.png"), _image(tmp_path / "dogs" / "001.png", value=200)
    assert output_names([first, second], "gradcam") == ["cats_001.gradcam.png", "dogs_001.gradcam.png"]
    assert output_names([tmp_path / "a.png", tmp_path / "b.png"], "occlusion") == ["a.occlusion.png", "b.occlusion.png"]
    out = tmp_path / "out"
    assert (
        main(["explain", "--model", str(model_file), str(tmp_path / "cats"), str(tmp_path / "dogs"), "--out", str(out)])
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["cats_001.gradcam.png", "dogs_001.gradcam.png"]
    assert "2 picture(s)" in capsys.readouterr().out


# Item 4
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


# Items 5 and 15
def test_broken_and_looping_links_are_named_and_macosx_is_not_a_class(shapes_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    (data / "star" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (data / "star" / "loop_a.png").symlink_to(data / "star" / "loop_b.png")
    (data / "star" / "loop_b.png").symlink_to(data / "star" / "loop_a.png")
    _image(data / "__MACOSX" / "star" / "._star_0000.png")
    folder = ImageFolder.read(data)
    assert folder.class_names == ["circle", "rectangle", "star", "triangle"]
    reasons = {os.path.basename(path): reason for path, reason in folder.skipped}
    assert "broken symbolic link" in reasons["gone.png"] and "nowhere.png" in reasons["gone.png"]
    assert "loops" in reasons["loop_a.png"] and "loops" in reasons["loop_b.png"]
    assert len(folder) == 16


# Item 9
def test_an_image_over_the_decompression_bomb_limit_is_skipped_by_name_everywhere(
    model_file, shapes_dir, tmp_path, monkeypatch, capsys
):
    images = tmp_path / "images"
    _image(images / "small.png", size=(20, 20))
    _image(images / "huge.png", size=(300, 400))
    # huge.png is over twice the limit, which PIL refuses; the 256-pixel resize of the others is not.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)
    assert main(["predict", "--model", str(model_file), str(images)]) == 0
    printed = capsys.readouterr()
    assert "small.png: " in printed.out
    assert "skipped" in printed.err and "huge.png" in printed.err and "decompression-bomb limit" in printed.err
    assert main(["explain", "--model", str(model_file), str(images), "--out", str(tmp_path / "explained")]) == 0
    assert "decompression-bomb" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "explained").iterdir()] == ["small.gradcam.png"]
    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    _image(data / "star" / "huge.png", size=(300, 400))
    folder = ImageFolder.read(data)
    assert [(os.path.basename(p), "decompression-bomb" in r) for p, r in folder.skipped] == [("huge.png", True)]


# Items 10 and 17
def test_foreign_and_damaged_model_files_are_named_in_one_line(model_file, shapes_dir, tmp_path, capsys):
    foreign = tmp_path / "foreign.keras"
    plain = keras.Sequential([keras.Input((224, 224, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    plain.save(foreign)
    image = str(next(shapes_dir.rglob("*.png")))
    commands = [
        ["predict", "--model", str(foreign), image],
        ["evaluate", "--model", str(foreign), "--data", str(shapes_dir)],
        ["export", "--model", str(foreign), "--format", "savedmodel", "--out", str(tmp_path / "sm")],
        ["explain", "--model", str(foreign), image, "--out", str(tmp_path / "x")],
    ]
    for argv in commands:
        assert main(argv) == 2, argv
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "not an AlexNet keras-alexnet made" in error, error
    assert not (tmp_path / "sm").exists() and not (tmp_path / "x").exists()
    truncated = tmp_path / "truncated.keras"
    data = model_file.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    assert main(["predict", "--model", str(truncated), image]) == 2
    assert "is damaged: a truncated .keras archive" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a .keras model"):
        load_model(_image(tmp_path / "picture.png"))


def test_safe_mode_still_refuses_a_lambda_layer(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        load_model(tmp_path / "lambda.keras")


# Item 11
def test_convert_into_a_folder_it_cannot_write_stops_before_any_work(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    monkeypatch.setenv("KERAS_HOME", str(blocker / "keras"))  # a folder cannot be made under a file
    assert main(["convert", "--source", str(tmp_path / "missing.pth")]) == 2
    error = capsys.readouterr().err
    assert "cannot write the converted weights into" in error and "KERAS_HOME" in error and "--out" in error
    if os.geteuid() == 0 and shutil.which("mount"):  # and a read-only disk, which permissions alone do not tell
        read_only = tmp_path / "ro"
        read_only.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(read_only)]).returncode == 0:
            try:
                assert main(["convert", "--source", "x.pth", "--out", str(read_only / "w.weights.h5")]) == 2
                assert "Read-only file system" in capsys.readouterr().err
            finally:
                subprocess.run(["umount", str(read_only)], check=True)


# Item 12
@pytest.mark.parametrize(
    "argv, function, expected",
    [
        (["compare", "--data", "D", "--out", "O"], "keras_alexnet.experiments.compare", "finished runs are kept in O"),
        (["lr-find", "--data", "D"], "keras_alexnet.training.lr_find.lr_find_on_folder", "nothing was written"),
        (
            ["export", "--model", "M", "--format", "tflite", "--out", "x.tflite"],
            "keras_alexnet.model.load_model",
            "nothing was written",
        ),
    ],
    ids=["compare", "lr-find", "export"],
)
def test_ctrl_c_is_one_line_and_exit_130(argv, function, expected, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(function, interrupted)
    assert main(argv) == 130
    error = capsys.readouterr().err.strip()
    assert error.startswith("interrupted") and expected in error and "\n" not in error


@pytest.mark.slow
def test_ctrl_c_in_train_names_the_epoch_and_the_command_that_continues(shapes_dir, tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--data", str(shapes_dir), "--run-dir", str(run), "--epochs", "500", "--architecture", "tiny"]
    argv += ["--weights", "none", "--batch-size", "8", "--no-tensorboard", "--no-report", "--quiet"]
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_alexnet.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: pytest-xdist's workers ignore SIGINT, and a child would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    metadata = run / "backup" / "training_metadata.json"
    try:
        for _ in range(3000):  # up to 5 minutes on a loaded machine
            if metadata.exists() and json.loads(metadata.read_text())["epoch"] >= 2:
                break
            assert process.poll() is None, process.communicate()
            subprocess.run(["sleep", "0.1"])
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("interrupted")]
    epochs = json.loads(metadata.read_text())["epoch"]
    assert line.startswith(f"interrupted after epoch {epochs}; continue with: keras-alexnet train ")
    assert line.endswith(" --resume") and f"--run-dir {run}" in line
    assert not (run / "run.lock").exists()


# Item 13
def test_an_out_that_is_a_file_is_refused_before_any_work(model_file, shapes_dir, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    image = str(next(shapes_dir.rglob("*.png")))
    for argv in (
        ["evaluate", "--model", str(tmp_path / "no_model.keras"), "--data", str(shapes_dir), "--out", str(taken)],
        ["explain", "--model", str(model_file), image, "--out", str(taken)],
    ):
        assert main(argv) == 2
        assert f"--out {taken} is a file" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path / "no_model.keras"), image, "--out", str(taken)]) == 2
    assert f"--out {taken} exists" in capsys.readouterr().err
    assert taken.read_text() == "mine"


# Item 14
def test_a_run_directory_inside_the_data_folder_is_refused_before_anything_is_made(
    shapes_dir, tmp_path, monkeypatch, capsys
):
    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    monkeypatch.chdir(data)
    assert main(["train", "--data", ".", "--architecture", "tiny", "--weights", "none"]) == 2
    assert "--run-dir runs/alexnet is inside --data" in capsys.readouterr().err
    assert sorted(os.listdir(data)) == ["circle", "rectangle", "star", "triangle"]


# Item 18
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
