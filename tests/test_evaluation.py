"""Balanced accuracy and macro-F1 beside accuracy (issue 20, item 2's metrics), equal to scikit-learn's."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import balanced_accuracy_score, f1_score

from keras_alexnet.evaluation import Evaluation, confusion_matrix
from keras_alexnet.model import AlexNet


def test_balanced_accuracy_and_macro_f1_are_scikit_learns_and_do_not_reward_the_big_class():
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.zeros(90, int), np.ones(10, int), np.full(5, 2)])
    predictions = np.where(rng.random(len(labels)) < 0.7, labels, rng.integers(0, 3, len(labels)))
    evaluation = Evaluation(["cat", "dog", "fox"], confusion_matrix(labels, predictions, 3), [])
    assert np.isclose(evaluation.balanced_accuracy, balanced_accuracy_score(labels, predictions))
    assert np.isclose(evaluation.macro_f1, f1_score(labels, predictions, average="macro"))
    always_cats = Evaluation(["cat", "dog", "fox"], confusion_matrix(labels, np.zeros_like(labels), 3), [])
    assert always_cats.accuracy > 0.85 and np.isclose(always_cats.balanced_accuracy, 1 / 3)
    assert np.isclose(always_cats.macro_f1, f1_score(labels, np.zeros_like(labels), average="macro"))
    text = evaluation.report()
    assert text.splitlines()[0].startswith("accuracy ") and "balanced accuracy" in text and "macro-F1" in text


def test_predict_answers_unknown_under_the_minimum_confidence(tmp_path, capsys):
    """Issue 20, item 5 (the flag): under --min-confidence the answer is "unknown", on screen and in the CSV."""
    import csv

    import keras
    from PIL import Image

    from keras_alexnet.architecture import TINY
    from keras_alexnet.cli import main
    from keras_alexnet.layers import attach_class_names

    keras.utils.set_random_seed(0)
    model = attach_class_names(AlexNet(weights=None, classes=4, architecture=TINY), ["a", "b", "c", "d"])
    model.save(tmp_path / "m.keras")
    for index in range(3):
        Image.fromarray(np.full((40, 50, 3), 60 * index, np.uint8)).save(tmp_path / f"{index}.png")
    images = [str(tmp_path / f"{index}.png") for index in range(3)]
    assert main(["predict", "--model", str(tmp_path / "m.keras"), *images, "--out", str(tmp_path / "all.csv")]) == 0
    assert ": unknown" not in capsys.readouterr().out
    argv = ["predict", "--model", str(tmp_path / "m.keras"), *images, "--min-confidence", "0.9"]
    assert main([*argv, "--out", str(tmp_path / "unsure.csv")]) == 0  # an untrained model is never that sure
    assert capsys.readouterr().out.count(": unknown (under 0.9): ") == 3
    with open(tmp_path / "all.csv") as sure, open(tmp_path / "unsure.csv") as unsure:
        sure, unsure = list(csv.DictReader(sure)), list(csv.DictReader(unsure))
    assert [row["answer"] for row in sure] == [row["class"] for row in sure]
    assert [row["answer"] for row in unsure] == ["unknown"] * 3
    assert [row["class"] for row in unsure] == [row["class"] for row in sure]  # the scores are still there
    with pytest.raises(SystemExit):  # the parser refuses a probability over 1
        main([*argv[:-1], "1.5"])


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


# The command line in a fresh process that prints its own peak memory (kB) as its last line on stderr.
# VmHWM, not ru_maxrss: on Linux ru_maxrss keeps the size of the process that forked it (here a
# pytest worker of several GB) across exec.
_WITH_PEAK = (
    "import sys\n"
    "from keras_alexnet.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "peak = [line for line in open('/proc/self/status') if line.startswith('VmHWM')][0].split()[1]\n"
    "print('peak_kb', peak, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _cli_with_peak(*args):
    """(completed process, peak resident memory in MB) of ``keras-alexnet ARGS``."""
    done = subprocess.run([sys.executable, "-c", _WITH_PEAK, *map(str, args)], capture_output=True, text=True)
    peak = [line for line in done.stderr.splitlines() if line.startswith("peak_kb")]
    assert peak, done.stderr[-3000:]
    return done, int(peak[-1].split()[1]) / 1024


# The tiny network from the command line, with its report (what the memory bound covers).
WITH_REPORT = ["--architecture", "tiny", "--weights", "none", "--batch-size", "8", "--no-tensorboard", "--quiet"]


@pytest.mark.slow
def test_hundreds_of_classes_train_report_and_evaluate_in_bounded_memory(tmp_path):
    """Item 7: 300 classes (the report was killed at 21 GB; the confusion figure grew with the square)."""
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for index in range(300):
        for image in range(2):
            folder = data / f"class_{index:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{image}.png")
    run = tmp_path / "run"
    done, peak = _cli_with_peak(
        "train", "--data", data, "--val-split", "0.5", "--epochs", "1", "--run-dir", run, *WITH_REPORT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert peak < 3000, f"train with its report peaked at {peak:.0f} MB"
    page = (run / "report.html").read_text()
    assert len(page) < 8e6 and "Most confused (up to 20 pairs)" in page and "class_299" in page
    done, peak = _cli_with_peak("evaluate", "--model", run / "model.keras", "--data", data, "--out", tmp_path / "eval")
    assert done.returncode == 0, done.stderr[-3000:]
    assert peak < 3000, f"evaluate peaked at {peak:.0f} MB"
    text = (tmp_path / "eval" / "evaluation.txt").read_text()
    assert "most confused (of 300 classes" in text and "confusion matrix (rows" not in text
    with Image.open(tmp_path / "eval" / "confusion_matrix.png") as figure:
        assert figure.size[0] <= 1400 and figure.size[1] <= 1300  # a fixed size, not 1.2 inches a class


@pytest.mark.slow
def test_predicting_thousands_of_images_streams_them_in_bounded_memory(tmp_path):
    """Item 8: 2,000 images in nested folders: printed as they go, a CSV, one unreadable file skipped by name,
    and memory that does not grow with the number of images (it held 0.6 MB each before)."""
    from keras_alexnet.architecture import TINY as TINY_TABLE
    from keras_alexnet.layers import attach_class_names
    from keras_alexnet.model import AlexNet

    keras.utils.set_random_seed(0)
    model = tmp_path / "model.keras"
    attach_class_names(AlexNet(weights=None, classes=2, architecture=TINY_TABLE), ["cat", "dog"]).save(model)
    photos = sorted((Path(__file__).parent / "data" / "cats_vs_dogs" / "test").rglob("*.jpg"))
    images = tmp_path / "images"
    for index in range(2000):
        folder = images / f"batch_{index // 500}" / f"part_{index // 100 % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        os.link(photos[index % len(photos)], folder / f"{index:05d}.jpg")
    (images / "batch_1" / "broken.jpg").write_text("not a photo")
    one, baseline = _cli_with_peak("predict", "--model", model, photos[0])
    assert one.returncode == 0, one.stderr[-3000:]
    done, peak = _cli_with_peak("predict", "--model", model, images, "--out", tmp_path / "predictions.csv")
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(done.stdout.splitlines()) == 2000
    assert "skipped" in done.stderr and "broken.jpg" in done.stderr
    assert "2000 image(s) predicted, 1 skipped; written to" in done.stderr
    with open(tmp_path / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2001 and sum(bool(row["error"]) for row in rows) == 1
    assert {row["class"] for row in rows if not row["error"]} <= {"cat", "dog"}
    assert peak - baseline < 400, f"2,000 images took {peak - baseline:.0f} MB more than one"


def test_images_from_the_folder_a_run_trained_on_get_a_note(tmp_path):
    import json

    from keras_alexnet.evaluation import seen_in_training

    photos, other = tmp_path / "photos", tmp_path / "new"
    (photos / "cats").mkdir(parents=True)
    other.mkdir()
    run = tmp_path / "runs" / "pets"
    run.mkdir(parents=True)
    (run / "data.json").write_text(json.dumps({"data": str(photos.resolve()), "val": None}))
    model = run / "model.keras"
    for items in ([photos], [photos / "cats"], [photos / "cats" / "1.jpg"], [tmp_path]):
        note = seen_in_training(model, items)
        assert note is not None and "was trained on" in note and str(photos.resolve()) in note
    assert seen_in_training(model, [other]) is None
    assert seen_in_training(tmp_path / "elsewhere" / "model.keras", [photos]) is None  # no run: nothing to say
