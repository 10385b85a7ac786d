"""Run directories: locked while used, a previous run never replaced by accident, resume checked first."""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import TINY as TINY_NETWORK
from conftest import TINY_FLAGS

from keras_alexnet.cli import main
from keras_alexnet.run_directory import RunDirectoryError
from keras_alexnet.training import TrainingOptions, train

# report=False: the report has its own tests (test_report.py); here it would only cost time.
TINY = {**TINY_NETWORK, "val_split": 0.3, "verbose": 0}


SHAPES = {"per_class": 8, "size": 72, "seed": 1}  # conftest.shapes_dir


class Crash(keras.callbacks.Callback):
    """Stands in for a kill: the run stops after its first epoch's backup."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


def _interrupted_run(shapes_dir, run):
    with pytest.raises(KeyboardInterrupt):
        train(shapes_dir, run_dir=run, epochs=3, callbacks=[Crash()], **TINY)
    assert (run / "backup" / "training_metadata.json").exists()


def _snapshot(directory):
    return {p.relative_to(directory): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_previous_run_is_not_replaced_without_overwrite(shapes_dir, tmp_path, capsys):
    run = tmp_path / "run"
    train(shapes_dir, run_dir=run, epochs=1, **TINY)
    before = _snapshot(run)
    with pytest.raises(RunDirectoryError, match="holds a previous run .*--resume.*--overwrite"):
        train(shapes_dir, run_dir=run, epochs=1, **TINY)
    assert _snapshot(run) == before  # nothing changed
    args = ["train", "--data", str(shapes_dir), "--run-dir", str(run), "--architecture", "tiny", "--weights", "none"]
    assert main(args + ["--epochs", "1"]) == 2 and "holds a previous run" in capsys.readouterr().err
    assert main(args + ["--epochs", "1", "--overwrite", "--quiet"]) == 0
    assert not (run / "run.lock").exists()


def test_a_run_directory_in_use_by_a_live_process_is_refused(shapes_dir, tmp_path):
    run = tmp_path / "busy"
    run.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / "run.lock").write_text(f"{other.pid}\n")
        with pytest.raises(RunDirectoryError, match=f"in use by another training run \\(process {other.pid}"):
            train(shapes_dir, run_dir=run, epochs=1, overwrite=True, **TINY)
    finally:
        other.kill()
        other.wait()
    train(shapes_dir, run_dir=run, epochs=1, overwrite=True, **TINY)  # a dead process's lock is replaced
    assert (run / "model.keras").exists() and not (run / "run.lock").exists()


def test_resume_needs_a_backup_and_says_so(shapes_dir, tmp_path):
    with pytest.raises(RunDirectoryError, match="nothing to resume: .*missing does not exist"):
        train(shapes_dir, run_dir=tmp_path / "missing", resume=True, epochs=1, **TINY)
    assert not (tmp_path / "missing").exists()
    finished = tmp_path / "finished"
    train(shapes_dir, run_dir=finished, epochs=1, **TINY)
    with pytest.raises(RunDirectoryError, match="has no backup/ to resume from"):
        train(shapes_dir, run_dir=finished, resume=True, epochs=2, **TINY)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunDirectoryError, match="is a file"):
        train(shapes_dir, run_dir=tmp_path / "afile", epochs=1, **TINY)


def test_a_damaged_backup_is_named_and_nothing_is_trimmed(shapes_dir, tmp_path):
    run = tmp_path / "run"
    _interrupted_run(shapes_dir, run)
    log_before = (run / "log.csv").read_bytes()
    metadata = run / "backup" / "training_metadata.json"
    metadata.write_text(metadata.read_text()[:7])  # truncated
    with pytest.raises(RunDirectoryError, match="training_metadata.json is damaged"):
        train(shapes_dir, run_dir=run, resume=True, epochs=3, **TINY)
    assert (run / "log.csv").read_bytes() == log_before


@pytest.mark.slow
def test_resume_with_other_classes_is_refused_before_anything_changes(shapes_dir, tmp_path):
    run = tmp_path / "run"
    _interrupted_run(shapes_dir, run)
    before = _snapshot(run)
    fewer = tmp_path / "three_classes"
    shutil.copytree(shapes_dir, fewer)
    shutil.rmtree(fewer / "star")
    with pytest.raises(RunDirectoryError, match="trained for 4 classes, the data now has 3"):
        train(fewer, run_dir=run, resume=True, epochs=3, **TINY)
    assert _snapshot(run) == before
    result = train(shapes_dir, run_dir=run, resume=True, epochs=3, **TINY)  # the right data resumes
    assert result.history and not (run / "backup").exists() and not os.path.exists(run / "run.lock")


@pytest.mark.slow
def test_a_resumed_run_ends_with_the_uninterrupted_runs_weights(shapes_dir, tmp_path):
    """Batch order, augmentation and dropout masks follow the epoch: the resumed epoch is the one it replaces."""
    options = {**TINY, "recipe": "fine-tune-all", "augment": "flip", "seed": 4, "epochs": 3}
    whole = train(shapes_dir, run_dir=tmp_path / "whole", **options)
    _interrupted = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train(shapes_dir, run_dir=_interrupted, callbacks=[Crash()], **options)
    resumed = train(shapes_dir, run_dir=_interrupted, resume=True, **options)
    for a, b in zip(whole.model.weights, resumed.model.weights):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
    np.testing.assert_allclose(resumed.history["loss"], whole.history["loss"][1:], rtol=1e-5)


@pytest.mark.slow
def test_resume_with_other_settings_is_refused_and_only_resumable_ones_change(shapes_dir, tmp_path, capsys):
    """Issue 19, item 2: another rate, recipe or head would make options.json describe a run that never happened."""
    run = tmp_path / "run"
    _interrupted_run(shapes_dir, run)
    before = _snapshot(run)
    with pytest.raises(
        RunDirectoryError, match=r"learning_rate None -> 0\.5; recipe 'frozen-features' -> 'fine-tune-all'"
    ):
        train(shapes_dir, run_dir=run, resume=True, epochs=3, learning_rate=0.5, recipe="fine-tune-all", **TINY)
    with pytest.raises(RunDirectoryError, match="head 'alexnet' -> 'compact'.*only epochs, .*backup_every"):
        train(shapes_dir, run_dir=run, resume=True, epochs=3, head="compact", **TINY)
    assert _snapshot(run) == before
    # The command line: the run's own settings, changed only by the flags written (--epochs here).
    argv = ["train", "--data", str(shapes_dir), "--run-dir", str(run), "--resume", "--quiet", "--no-report"]
    assert main([*argv, "--lr", "0.5"]) == 2 and "learning_rate None -> 0.5" in capsys.readouterr().err
    assert main([*argv, "--epochs", "4"]) == 0
    options = json.loads((run / "options.json").read_text())
    assert (options["epochs"], options["architecture"], options["val_split"]) == (4, "tiny", 0.3)
    (record,) = json.loads((run / "resumes.json").read_text())
    assert record["from_epoch"] == 1 and record["changed"] == {"epochs": [3, 4]}
    assert len((run / "log.csv").read_text().splitlines()) == 1 + 4


def test_a_resume_may_not_ask_for_fewer_epochs_than_are_done(tmp_path):
    from keras_alexnet.run_directory import RunDirectory
    from keras_alexnet.training.resume import check_resume

    run = RunDirectory(tmp_path)
    TrainingOptions(epochs=5).save(run.options)
    assert check_resume(run, TrainingOptions(epochs=8, report=False), epochs_done=3) == {
        "epochs": [5, 8],
        "report": [True, False],
    }
    with pytest.raises(RunDirectoryError, match="--epochs 2: the run .* has done 3 epochs already. Give --epochs 3"):
        check_resume(run, TrainingOptions(epochs=2), epochs_done=3)


def test_a_run_directory_inside_the_data_folder_is_refused_before_anything_is_made(
    shapes_dir, tmp_path, monkeypatch, capsys
):
    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    monkeypatch.chdir(data)
    assert main(["train", "--data", ".", "--architecture", "tiny", "--weights", "none"]) == 2
    assert "--run-dir runs/alexnet is inside --data" in capsys.readouterr().err
    assert sorted(os.listdir(data)) == ["circle", "rectangle", "star", "triangle"]


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
