"""The typed run record and the readers of a run's files (issue 36: one owner for what a run leaves)."""

import dataclasses
import json
import math

from keras_alexnet.run_directory import RunDirectory
from keras_alexnet.run_result import RunResult, log_columns, read_history, read_log

WRITTEN = {  # what 0.8.1 wrote for a run on one process
    "output_network": "best-validation-loss",
    "output_epoch": 2,
    "epochs_done": 3,
    "temperature": 0.8,
    "calibration": {"temperature": 0.8, "fitted": 0.7, "images": 40, "rule": "map"},
    "training_counts": {"cats": 10, "dogs": 12},
    "skipped_count": 1,
    "skipped": ["broken.png"],
    "shared_validation_images": 0,
    "image_statistics": {"mean": [0.5, 0.5, 0.5]},
    "changed_options": ["epochs"],
    "tta": None,
    "layers": [{"name": "fc8", "trainable": True, "weight_lr_factor": 1.0, "bias_lr_factor": 1.0}],
}


def test_the_record_is_written_and_read_back_with_the_same_keys(tmp_path):
    run = RunDirectory(tmp_path)
    run.options.write_text(json.dumps({"epochs": 3}))
    result = RunResult.from_dict(WRITTEN)
    run.record_result(result)
    on_disk = json.loads(run.options.read_text())
    assert on_disk["epochs"] == 3 and on_disk["result"] == WRITTEN  # the file format users read is kept
    assert run.result() == result and run.result().output_epoch == 2
    on_workers = result.replace(workers=2, recipe_reason="few images")
    run.record_result(on_workers)
    assert json.loads(run.options.read_text())["result"] == {**WRITTEN, "workers": 2, "recipe_reason": "few images"}
    assert run.result() == on_workers


def test_a_record_edited_by_hand_reads_as_defaults_where_it_is_wrong(tmp_path):
    edited = {
        **WRITTEN,
        "output_epoch": "two",
        "epochs_done": -1,
        "temperature": float("nan"),
        "training_counts": {"cats": "many"},
        "skipped": "broken.png",
        "layers": ["fc8"],
        "workers": True,
        "unknown": 1,
    }
    result = RunResult.from_dict(edited)
    assert result.output_epoch is None and result.epochs_done == 0 and result.temperature is None
    assert result.training_counts == {} and result.skipped == [] and result.layers == [] and result.workers is None
    assert result.output_network == "best-validation-loss" and result.changed_options == ["epochs"]  # kept
    assert RunResult.from_dict(None) == RunResult.from_dict([1, 2]) == RunResult()
    run = RunDirectory(tmp_path)
    assert run.result() == RunResult()  # no options.json
    run.options.write_text("{not json")
    assert run.result() == RunResult()


def test_the_log_reader_reads_numbers_not_applicable_cells_and_skips_a_row_being_written(tmp_path):
    run = RunDirectory(tmp_path)
    assert run.log_rows() == [] and run.history_record() == {}
    run.log.write_text("epoch,loss,val_loss\n0,0.9,NA\n1,0.5,0.6\n2,0.4")  # the last row is half written
    rows = run.log_rows()
    assert [row["epoch"] for row in rows] == [0, 1] and rows[1] == {"epoch": 1, "loss": 0.5, "val_loss": 0.6}
    assert math.isnan(rows[0]["val_loss"])
    columns = log_columns(rows)
    assert columns["loss"] == [0.9, 0.5] and "epoch" not in columns
    assert read_log(tmp_path / "missing.csv") == []
    run.history.write_text('{"epochs_done": 2, "loss": [0.9, 0.5]}')
    assert run.history_record()["epochs_done"] == 2
    run.history.write_text("[1, 2]")
    assert read_history(run.history) == {}


def test_every_field_of_the_record_says_what_it_may_hold():
    """A field added without its kind would fail every read of a record: the kind sits on the field."""
    assert all("kind" in field.metadata for field in dataclasses.fields(RunResult))
