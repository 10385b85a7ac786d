"""Resuming a run (training/resume.py): a damaged backup or best model is named and nothing intact is
deleted; the recorded validation set is kept."""

import csv
import json
import os
import shutil
import time

import pytest
from conftest import TINY as TINY_NETWORK
from conftest import StopAfter, split_folders

from keras_alexnet.run_directory import RunDirectory

SHAPES = {"per_class": 4, "size": 64, "seed": 2}  # conftest.shapes_dir
TINY_RUN = {**TINY_NETWORK, "tensorboard": False}


def _interrupted_run(data, val, run_dir, epochs=3):
    from keras_alexnet.training import train

    with pytest.raises(KeyboardInterrupt):
        train(data, val=val, run_dir=run_dir, epochs=epochs, callbacks=[StopAfter(1)], verbose=0, **TINY_RUN)
    return RunDirectory(run_dir)


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


def test_a_run_started_on_workers_continues_on_one_process(shapes_dir, tmp_path):
    """Both ways of training write the same backups, log.csv columns and record (issue 36): one process
    continues a run data.json says started on workers (0.8.0 refused it), appending rows of the same columns."""
    from keras_alexnet.training import train

    train_dir, val_dir = split_folders(shapes_dir, tmp_path)
    run = _interrupted_run(train_dir, val_dir, tmp_path / "run")
    record = json.loads(run.data.read_text())
    assert record["engine"] == "one process"
    run.data.write_text(json.dumps({**record, "engine": "workers"}))  # as `train --workers 2` records it
    (run.ray_train / "train-1").mkdir(parents=True)  # what a --workers run stopped by SIGTERM leaves
    header = run.log.read_text().splitlines()[0]
    result = train(train_dir, val=val_dir, run_dir=run.path, resume=True, epochs=3, verbose=0, **TINY_RUN)
    lines = run.log.read_text().splitlines()
    assert lines[0] == header and [line.split(",")[0] for line in lines[1:]] == ["0", "1", "2"]
    assert result.model_path.exists() and not run.backup.exists() and not run.ray_train.exists()
