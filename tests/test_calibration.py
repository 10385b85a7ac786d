"""Calibration (calibration.py): the fitted temperature, ECE and its sampling floor, the Brier score, and
model.keras as the output network with its temperature."""

import csv
import json

import keras
import numpy as np
import pytest
from conftest import TINY as TINY_NETWORK
from sklearn.metrics import log_loss

from keras_alexnet.calibration import (
    CalibrationScores,
    brier_score,
    ece_floor,
    expected_calibration_error,
    fit_temperature,
    tempered,
)
from keras_alexnet.layers import temperature_of
from keras_alexnet.model import load_model
from keras_alexnet.training import train

TINY = {**{k: v for k, v in TINY_NETWORK.items() if k != "batch_size"}, "tensorboard": False}


SHAPES = {"per_class": 10, "size": 64, "seed": 0}  # conftest.shapes_dir


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_fitted_temperature_recovers_the_one_that_made_the_labels():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=4.0, size=(4000, 5))
    labels = np.array([rng.choice(5, p=p) for p in _softmax(logits / 2.5)])
    overconfident = _softmax(logits)
    temperature = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(2.5, rel=0.08)
    calibrated = tempered(overconfident, temperature)
    np.testing.assert_array_equal(calibrated.argmax(axis=1), overconfident.argmax(axis=1))  # same answers
    before, after = CalibrationScores.of(overconfident, labels), CalibrationScores.of(calibrated, labels)
    assert after.ece < before.ece / 2 and after.nll < before.nll and after.brier < before.brier
    assert before.nll == pytest.approx(log_loss(labels, overconfident, labels=range(5)), rel=1e-6)
    with pytest.raises(ValueError, match="non-finite"):
        fit_temperature(np.full((3, 2), np.nan), [0, 1, 0])


def test_ece_floor_is_what_a_calibrated_model_shows_by_chance_and_shrinks_with_more_images():
    """A perfectly calibrated model's ECE on n images is about the floor, and the floor falls like 1/sqrt(n):
    on 200 images an ECE of 0.03 says nothing (the benchmark's point), on 20,000 it would."""
    rng = np.random.default_rng(2)
    confidence = rng.uniform(0.5, 1.0, 20000)
    probabilities = np.stack([confidence, 1 - confidence], axis=1)
    labels = (rng.random(20000) > confidence).astype(int)  # drawn from the probabilities: calibrated
    small, large = ece_floor(probabilities[:200]), ece_floor(probabilities)
    assert 0.02 < small < 0.1
    assert large < small / 5  # sqrt(100) = 10 times more images
    measured = [
        expected_calibration_error(probabilities[i : i + 200], labels[i : i + 200]) for i in range(0, 20000, 200)
    ]
    assert np.mean(measured) == pytest.approx(small, rel=0.25)
    assert ece_floor(probabilities[:200]) == small  # seeded
    assert ece_floor(np.zeros((0, 2))) == 0.0


def test_calibration_error_and_brier_by_hand():
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    labels = np.array([0, 1, 0, 1])
    # bins: 0.9 (2 images, 1 right), 0.6 (1, right), 0.8 (1, right)
    expected = (2 * abs(0.5 - 0.9) + abs(1 - 0.6) + abs(1 - 0.8)) / 4
    assert expected_calibration_error(probabilities, labels) == pytest.approx(expected)
    assert brier_score(probabilities, labels) == pytest.approx((0.02 + 1.62 + 0.32 + 0.08) / 4)


class _Weights(keras.callbacks.Callback):
    """fc8's kernel after every epoch."""

    def __init__(self):
        super().__init__()
        self.kernels = []

    def on_epoch_end(self, epoch, logs=None):
        self.kernels.append(np.array(self.model.get_layer("fc8").kernel))


@pytest.mark.parametrize("rule,column,pick", [("best-validation-loss", "val_loss", np.argmin), ("last", None, None)])
def test_model_keras_is_the_output_network_with_a_fitted_temperature(shapes_dir, tmp_path, rule, column, pick):
    seen = _Weights()
    result = train(
        shapes_dir,
        val_split=0.3,
        epochs=4,
        batch_size=8,
        recipe="fine-tune-all",
        learning_rate=0.01,
        output_network=rule,
        run_dir=tmp_path / "run",
        verbose=0,
        callbacks=[seen],
        **TINY,
    )
    with open(tmp_path / "run" / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    expected = int(pick([float(row[column]) for row in rows])) + 1 if column else 4
    assert result.output_epoch == expected
    saved = load_model(tmp_path / "run" / "model.keras")
    np.testing.assert_array_equal(np.array(saved.get_layer("fc8").kernel), seen.kernels[expected - 1])
    assert not (tmp_path / "run" / "best.keras").exists()  # model.keras is the output network
    record = json.loads((tmp_path / "run" / "options.json").read_text())["result"]
    assert record["output_epoch"] == expected and record["output_network"] == rule
    assert temperature_of(saved) == pytest.approx(record["temperature"]) and record["temperature"] > 0
    assert result.val_accuracy == pytest.approx(float(rows[expected - 1]["val_accuracy"]))
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history["val_balanced_accuracy"]) == 4 and len(history["val_macro_f1"]) == 4
    assert {"balanced_accuracy", "val_balanced_accuracy", "macro_f1", "val_macro_f1"} <= set(rows[0])
