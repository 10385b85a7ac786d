"""Balanced accuracy and macro-F1 beside accuracy (issue 20, item 2's metrics), equal to scikit-learn's."""

import numpy as np
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
