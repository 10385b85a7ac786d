"""Balanced accuracy and macro-F1 as streamed Keras metrics (metrics.py), equal to scikit-learn's over an epoch."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from keras_alexnet.metrics import BalancedAccuracy, MacroF1


def test_streamed_metrics_equal_scikit_learn_over_the_epoch():
    rng = np.random.default_rng(0)
    labels = rng.choice(4, size=203, p=[0.6, 0.3, 0.1, 0.0])  # class 3 never occurs
    scores = rng.random((203, 4))
    balanced, macro = BalancedAccuracy(4), MacroF1(4)
    for start in range(0, 203, 32):  # batch by batch, as fit feeds them
        balanced.update_state(labels[start : start + 32], scores[start : start + 32])
        macro.update_state(labels[start : start + 32], scores[start : start + 32])
    predicted = scores.argmax(axis=1)
    assert float(balanced.result()) == pytest.approx(balanced_accuracy_score(labels, predicted), abs=1e-6)
    present = sorted(set(labels) | set(predicted))
    assert float(macro.result()) == pytest.approx(
        f1_score(labels, predicted, average="macro", labels=present), abs=1e-6
    )
    balanced.reset_state()
    assert float(balanced.result()) == 0.0
