"""Balanced accuracy and macro-F1 beside accuracy (issue 20, item 2's metrics), equal to scikit-learn's."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from keras_alexnet.evaluation import Evaluation, confusion_matrix


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
    from keras_alexnet.model import AlexNet

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
