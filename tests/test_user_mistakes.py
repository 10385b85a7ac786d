"""What a careless user does (issue 19): each case ends in a clear message or the right result,
before any work where it can, and nothing the user made is changed or lost."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import keras
import numpy as np
import pytest
from conftest import CLI, TINY_FLAGS, solid_image, split_folders
from PIL import Image

from keras_alexnet.architecture import TINY
from keras_alexnet.cli import main
from keras_alexnet.datasets import ImageFolder
from keras_alexnet.explain import output_names
from keras_alexnet.model import AlexNet, load_model
from keras_alexnet.run_directory import RunDirectory
from keras_alexnet.training import TrainingOptions, read_sets

SHAPES = {"per_class": 4, "size": 64, "seed": 2}  # conftest.shapes_dir


# Item 3
def test_explain_gives_images_that_share_a_name_distinct_pictures(model_file, tmp_path, capsys):
    first, second = solid_image(tmp_path / "cats" / "001.png"), solid_image(tmp_path / "dogs" / "001.png", value=200)
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
    solid_image(data / "__MACOSX" / "star" / "._star_0000.png")
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
    solid_image(images / "small.png", size=(20, 20))
    solid_image(images / "huge.png", size=(300, 400))
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
    solid_image(data / "star" / "huge.png", size=(300, 400))
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
        load_model(solid_image(tmp_path / "picture.png"))


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
@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_in_train_names_the_epoch_and_the_command_that_continues(shapes_dir, tmp_path, sent):
    """SIGTERM (kill, systemd, schedulers; issue 27, item 14) ends a run as Ctrl-C does."""
    run = tmp_path / "run"
    argv = ["train", "--data", str(shapes_dir), "--run-dir", str(run), "--epochs", "500", "--architecture", "tiny"]
    argv += ["--weights", "none", "--batch-size", "8", "--no-tensorboard", "--no-report", "--quiet"]
    process = subprocess.Popen(
        [*CLI, *argv],
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
        process.send_signal(sent)
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


# Issue 27: odd names, links, damaged backups and habits lose nothing.
TINY_RUN = {"architecture": "tiny", "weights": None, "batch_size": 8, "report": False, "tensorboard": False}


class _StopAfter(keras.callbacks.Callback):
    """Ctrl-C after ``epochs`` epochs (the run's own callbacks, the backup among them, have run by then)."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise KeyboardInterrupt


def _interrupted_run(data, val, run_dir, epochs=3):
    from keras_alexnet.training import train

    with pytest.raises(KeyboardInterrupt):
        train(data, val=val, run_dir=run_dir, epochs=epochs, callbacks=[_StopAfter(1)], verbose=0, **TINY_RUN)
    return RunDirectory(run_dir)


# Issue 27, items 4 and 10
def test_a_file_name_that_is_not_utf8_trains_evaluates_and_predicts(shapes_dir, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    odd = os.path.join(os.fsencode(data / "star"), b"caf\xe9.png")
    shutil.copy(next((data / "star").iterdir()), odd)
    (data / "circle" / "broken.png").write_bytes(b"not an image")
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--run-dir", str(run), "--epochs", "1", "--val-split", "0.3", "--quiet"]
    assert main(argv + TINY_FLAGS) == 0, capsys.readouterr().err
    record = json.loads((run / "options.json").read_text())["result"]
    assert record["skipped_count"] == 1 and record["skipped"][0].endswith("broken.png")  # recorded with --val-split
    assert main(["evaluate", "--model", str(run / "model.keras"), "--data", str(data)]) == 0
    out = tmp_path / "predictions.csv"
    assert main(["predict", "--model", str(run / "model.keras"), str(data), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "caf\\xe9.png: " in printed.out
    rows = list(csv.DictReader(open(out, newline="", encoding="utf-8")))
    assert len(rows) == 18 and any(row["path"].endswith("caf\\xe9.png") for row in rows)


def test_predictions_written_before_a_failure_are_kept(tmp_path):
    from keras_alexnet.evaluation import Prediction, write_predictions

    def stream():
        yield Prediction(tmp_path / "a.png", [("cats", 0.9)])
        yield Prediction(tmp_path / "b.png", [("dogs", 0.8)])
        raise KeyboardInterrupt

    out = tmp_path / "predictions.csv"
    with pytest.raises(KeyboardInterrupt) as raised:
        write_predictions(stream(), out, 1)
    assert [row["class"] for row in csv.DictReader(open(out, newline=""))] == ["cats", "dogs"]
    assert "holds the 2 rows written before it" in "".join(raised.value.__notes__)


# Issue 27, item 5
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


# Issue 27, item 6
def test_a_damaged_backup_or_best_model_is_named_and_nothing_intact_is_deleted(shapes_dir, tmp_path, caplog):
    from keras_alexnet.run_directory import RunDirectoryError
    from keras_alexnet.training import train

    train_dir, val_dir = split_folders(shapes_dir, tmp_path)
    run = _interrupted_run(train_dir, val_dir, tmp_path / "run")
    for _ in range(100):  # the checksum is added beside training, within a second of the backup
        if json.loads(run.backup_metadata.read_text()).get("sha256"):
            break
        time.sleep(0.1)
    weights = run.backup / json.loads(run.backup_metadata.read_text())["weights"]
    assert run.check_resumable() == (1, 1)
    content = bytearray(weights.read_bytes())
    content[-200:-100] = b"\xff" * 100  # NaN bytes, as a failing disk leaves them
    weights.write_bytes(bytes(content))
    log_before = run.log.read_text()
    with pytest.raises(RunDirectoryError, match="backup .* is damaged: its bytes differ from the SHA-256"):
        train(train_dir, val=val_dir, run_dir=run.path, resume=True, verbose=0)
    assert run.log.read_text() == log_before and run.best.exists() and weights.exists()

    from keras_alexnet.training.callbacks import BestModelCheckpoint
    from keras_alexnet.training.output_network import keep_output_network

    checkpoint = BestModelCheckpoint(run.best, None, monitor="val_loss", mode="min", record=run.best_record)
    assert checkpoint.best_epoch == 1
    run.best.write_bytes(run.best.read_bytes()[:-10] + b"\x00" * 10)
    with caplog.at_level("WARNING", logger="keras_alexnet.training"):
        assert keep_output_network(None, checkpoint, run, epochs_done=3) == 3
    assert "best.keras is damaged" in caplog.text


def test_a_final_model_with_non_finite_weights_keeps_the_backup(shapes_dir, tmp_path):
    from keras_alexnet.training.callbacks import TrainingDiverged
    from keras_alexnet.training.finishing import check_finite

    model = AlexNet(weights=None, classes=2, architecture=TINY)
    check_finite(model, RunDirectory(tmp_path))
    model.get_layer("fc8").bias.assign(np.full(2, np.nan, np.float32))
    with pytest.raises(TrainingDiverged, match="fc8.* nothing deleted: .*backup .* are kept"):
        check_finite(model, RunDirectory(tmp_path))


# Issue 27, item 7
def test_resume_keeps_the_recorded_validation_set_and_refuses_other_data(shapes_dir, tmp_path, caplog):
    from keras_alexnet.run_directory import RunDirectoryError
    from keras_alexnet.training import train

    train_dir, val_dir = split_folders(shapes_dir, tmp_path)
    run = _interrupted_run(train_dir, val_dir, tmp_path / "run")
    record = json.loads(run.data.read_text())
    assert record["val"] == str(val_dir.resolve()) and record["training"]["images"] == 12
    other = tmp_path / "other"
    shutil.copytree(train_dir, other)
    (other / "star" / sorted(os.listdir(other / "star"))[0]).unlink()
    with pytest.raises(RunDirectoryError, match="other data .* the training files differ \\(12 images then"):
        train(other, run_dir=run.path, resume=True, verbose=0)
    with caplog.at_level("WARNING", logger="keras_alexnet.training"):
        result = train(train_dir, run_dir=run.path, resume=True, verbose=0)  # no --val: the recorded one
    assert "resuming with the run's validation folder" in caplog.text
    rows = list(csv.DictReader(open(run.log)))
    assert [row["epoch"] for row in rows] == ["0", "1", "2"] and all(row["val_loss"] != "NA" for row in rows)
    assert result.output_epoch is not None


# Issue 27, item 8
def test_links_to_a_parent_or_another_class_are_skipped_and_a_file_counts_once(shapes_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    (data / "star" / "up").symlink_to("..")
    (data / "circle" / "stars").symlink_to(data / "star")
    (data / "circle" / "again.png").symlink_to(next((data / "circle").glob("*.png")))
    (data / "circle" / "a_star.png").symlink_to(next((data / "star").glob("*.png")))
    folder = ImageFolder.read(data)
    assert len(folder) == 16 and folder.counts() == {name: 4 for name in folder.class_names}
    reasons = {os.path.basename(path): reason for path, reason in folder.skipped}
    assert "holds" in reasons["up"] and "another class folder" in reasons["stars"]
    assert "reached twice" in reasons["again.png"] and "reached twice" in reasons["a_star.png"]


# Issue 27, item 11
def test_predict_warns_when_the_images_are_far_from_the_training_images(shapes_dir, tmp_path, capsys):
    run = tmp_path / "run"
    grey = tmp_path / "grey"
    for name in os.listdir(shapes_dir):
        for index, file in enumerate(sorted((shapes_dir / name).iterdir())):
            (grey / name).mkdir(parents=True, exist_ok=True)
            Image.open(file).convert("L").convert("RGB").save(grey / name / f"{index}.png")
    argv = ["train", "--data", str(grey), "--run-dir", str(run), "--epochs", "1", "--quiet"]
    assert main(argv + TINY_FLAGS) == 0
    colour = tmp_path / "colour"
    colour.mkdir()
    for index in range(4):
        Image.fromarray(np.asarray([[[220, 30, 40]]], np.uint8).repeat(40, 0).repeat(48, 1)).save(
            colour / f"{index}.png"
        )
    capsys.readouterr()
    assert main(["predict", "--model", str(run / "model.keras"), str(colour)]) == 0
    assert "far from those" in capsys.readouterr().err
    assert main(["predict", "--model", str(run / "model.keras"), str(grey / "star")]) == 0
    assert "far from those" not in capsys.readouterr().err


# Issue 27, item 12
def test_an_extreme_aspect_ratio_is_named_and_skipped_before_it_is_resized(model_file, shapes_dir, tmp_path, capsys):
    from keras_alexnet.preprocessing import ImageTooLarge, load_image

    thin = tmp_path / "images" / "thin.png"
    thin.parent.mkdir()
    Image.new("RGB", (1, 100_000)).save(thin)
    assert thin.stat().st_size < 2000
    with pytest.raises(ImageTooLarge, match="1 x 100000 pixels: resized to a shorter side of 256 it would be"):
        load_image(thin)
    solid_image(tmp_path / "images" / "fine.png")
    assert main(["predict", "--model", str(model_file), str(thin.parent)]) == 0
    printed = capsys.readouterr()
    assert "fine.png: " in printed.out and "skipped" in printed.err and "thin.png" in printed.err
    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    shutil.copy(thin, data / "star" / "thin.png")
    assert [os.path.basename(p) for p, _ in ImageFolder.read(data).skipped] == ["thin.png"]


# Issue 27, item 13
def test_train_until_early_stopping_with_a_huge_epoch_count(shapes_dir, tmp_path):
    from keras_alexnet.training import train

    train_dir, val_dir = split_folders(shapes_dir, tmp_path)
    result = train(
        train_dir,
        val=val_dir,
        run_dir=tmp_path / "run",
        epochs=1_000_000_000,
        patience=1,
        output_network="best-validation-accuracy",  # 4 validation images: it stops improving at once
        verbose=0,
        **TINY_RUN,
    )
    assert 2 <= len(result.history["loss"]) < 100  # stopped by patience, with no epoch order drawn in advance


# Issue 27, item 14
@pytest.mark.slow
def test_the_data_folder_vanishing_mid_run_is_one_line_and_resumable(shapes_dir, tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    shutil.copytree(shapes_dir, data)
    argv = ["train", "--data", str(data), "--run-dir", str(run), "--epochs", "500", "--recipe", "fine-tune-all"]
    process = subprocess.Popen(
        [*CLI, *argv, *TINY_FLAGS, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metadata = run / "backup" / "training_metadata.json"
    try:
        for _ in range(3000):
            if metadata.exists():
                break
            assert process.poll() is None, process.communicate()
            subprocess.run(["sleep", "0.1"])
        data.rename(tmp_path / "moved")
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 1, err[-2000:]
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert "an image disappeared while it was being read" in line and "--resume" in line
    assert not (run / "run.lock").exists()


def test_a_read_only_run_directory_is_refused_before_any_work(shapes_dir, tmp_path, capsys):
    if not (os.geteuid() == 0 and shutil.which("mount")):  # root writes through permissions: a read-only disk
        run = tmp_path / "ro"
        run.mkdir()
        run.chmod(0o555)
    else:
        run = tmp_path / "ro"
        run.mkdir()
        assert subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(run)]).returncode == 0
    try:
        argv = ["train", "--data", str(shapes_dir), "--run-dir", str(run), "--epochs", "1", "--quiet"]
        assert main(argv + TINY_FLAGS) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "cannot write the run's files into" in error
        assert not (run / "run.lock").exists()
    finally:
        if os.geteuid() == 0 and shutil.which("mount"):
            subprocess.run(["umount", str(run)], check=True)


# Issue 27, item 15
@pytest.mark.parametrize("target", [("os", "system"), ("subprocess", "Popen")])
def test_a_tampered_keras_config_is_refused_in_one_line(model_file, tmp_path, target, capsys):
    with zipfile.ZipFile(model_file) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    layer = config["config"]["layers"][1]
    layer["module"], layer["class_name"], layer["registered_name"] = target[0], target[1], None
    files["config.json"] = json.dumps(config).encode()
    tampered = tmp_path / "tampered.keras"
    with zipfile.ZipFile(tampered, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    image = str(solid_image(tmp_path / "x.png"))
    assert main(["predict", "--model", str(tampered), image]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "is refused: Keras could not rebuild its config safely" in error
    assert target[1] in error


def test_a_tflite_without_probabilities_is_named(tmp_path):
    import tensorflow as tf

    from keras_alexnet.deployment import load_classifier

    module = tf.Module()
    module.scores = tf.function(
        lambda images: {"scores": tf.reduce_mean(tf.cast(images, tf.float32), axis=(1, 2))},
        input_signature=[tf.TensorSpec((1, 32, 32, 3), tf.uint8, name="images")],
    )
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.scores})
    (tmp_path / "other.tflite").write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm")).convert())
    with pytest.raises(ValueError, match="answers \\['scores'\\], not 'probabilities'"):
        load_classifier(tmp_path / "other.tflite")
