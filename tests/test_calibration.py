"""Calibration (calibration.py): the fitted temperature, ECE and its sampling floor, the Brier score, and
model.keras as the output network with its temperature."""

import csv
import html
import json

import keras
import numpy as np
import pytest
from conftest import TINY as TINY_NETWORK
from conftest import solid_image
from sklearn.metrics import log_loss

from keras_alexnet.calibration import (
    PRIOR_WIDTH,
    CalibrationScores,
    TemperatureChoice,
    brier_score,
    choose_temperature,
    ece_floor,
    expected_calibration_error,
    fit_temperature,
    tempered,
)
from keras_alexnet.layers import temperature_of
from keras_alexnet.model import load_model
from keras_alexnet.report import write_report
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


def test_six_confident_right_answers_do_not_set_the_temperature():
    """Issue 38: six validation images, all right at 0.8, pull the free fit to the search's edge (T = 0.05, the
    logits multiplied by 20); the rule keeps T near 1, says why, and records both."""
    probabilities = np.array([[0.8, 0.2], [0.2, 0.8]] * 3)
    labels = np.array([0, 1] * 3)
    assert fit_temperature(probabilities, labels) < 0.06
    choice = choose_temperature(probabilities, labels)
    assert 0.6 < choice.temperature < 0.8  # sharpened somewhat, as six right answers suggest
    assert choice.shrunk and "shrunk toward 1" in choice.reason() and "6 validation images" in choice.reason()
    assert TemperatureChoice.from_dict(json.loads(json.dumps(choice.to_dict()))) == choice
    assert TemperatureChoice.from_dict(None) is None and TemperatureChoice.from_dict({"temperature": 1}) is None
    for hostile in (
        {"temperature": "1e999", "fitted": 1, "images": 6},
        {"temperature": 1, "fitted": "nan", "images": 6},
        {"temperature": 1, "fitted": 1, "images": -5},
        {"temperature": [], "fitted": 1, "images": 6},
    ):
        assert TemperatureChoice.from_dict(hostile) is None, hostile  # a record edited by hand: no sentence


def test_the_prior_bounds_how_far_few_images_move_the_temperature():
    """Six images at 0.99, all wrong, want T at the top of the range; the rule's T is where the prior's pull
    toward 1 balances the images' (the most probable T: n dNLL/dlog T = -log T / width**2)."""
    probabilities = np.array([[0.99, 0.01]] * 6)
    labels = np.ones(6, int)
    free = fit_temperature(probabilities, labels)
    assert free > 19  # the search's upper edge
    choice = choose_temperature(probabilities, labels)
    assert 1.0 < choice.temperature < free
    step = 1e-4
    nll = [
        len(labels) * CalibrationScores.of(tempered(probabilities, choice.temperature * np.exp(d)), labels).nll
        for d in (-step, step)
    ]
    slope = (nll[1] - nll[0]) / (2 * step)
    assert slope == pytest.approx(-np.log(choice.temperature) / PRIOR_WIDTH**2, rel=0.01)


def test_many_images_fit_the_temperature_as_before():
    """2,000 images drawn at T = 2.5: the rule's T is the free fit within 2% (the prior is outweighed)."""
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=4.0, size=(2000, 5))
    labels = np.array([rng.choice(5, p=p) for p in _softmax(logits / 2.5)])
    choice = choose_temperature(_softmax(logits), labels)
    assert choice.temperature == pytest.approx(choice.fitted, rel=0.02) and not choice.shrunk
    assert choice.fitted == pytest.approx(2.5, rel=0.1)
    assert "fitted on 2000 validation images" in choice.reason()


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


def _brightness_classes(folder, per_class, seed):
    """Two classes of one-colour images whose brightness overlaps (dark ~ 100, bright ~ 140, spread 25): a
    tiny network learns them in a few epochs but cannot be always right, so a temperature has a best value."""
    rng = np.random.default_rng(seed)
    for name, centre in (("dark", 100), ("bright", 140)):
        for index in range(per_class):
            value = int(np.clip(rng.normal(centre, 25), 0, 255))
            solid_image(folder / name / f"{index:03d}.png", size=(32, 32), value=value)
    return folder


@pytest.mark.parametrize("per_class", [4, 100])
def test_a_run_says_how_its_validation_images_set_the_temperature(tmp_path, capsys, per_class):
    """Issue 38: a run validated on 8 images keeps its temperature between its free fit and 1 and says why; one
    validated on 200 fits it as the images say. Both recorded (``result.calibration``) and shown in the report."""
    train_dir = _brightness_classes(tmp_path / "train", 40, seed=0)
    val_dir = _brightness_classes(tmp_path / "val", per_class, seed=1)
    result = train(
        train_dir, val=val_dir, epochs=4, batch_size=8, recipe="fine-tune-all", learning_rate=0.01,
        augment="none", run_dir=tmp_path / "run", verbose=1, **TINY,
    )  # fmt: skip
    record = json.loads((tmp_path / "run" / "options.json").read_text())["result"]
    choice = TemperatureChoice.from_dict(record["calibration"])
    assert choice == result.calibration and choice.images == 2 * per_class
    assert record["temperature"] == pytest.approx(choice.temperature) == pytest.approx(result.temperature)
    assert temperature_of(load_model(result.model_path)) == pytest.approx(choice.temperature)
    log_t, log_fit = np.log(choice.temperature), np.log(choice.fitted)
    assert abs(log_t) <= abs(log_fit) + 1e-6 and log_t * log_fit >= 0  # toward 1, never past it
    printed = capsys.readouterr().out
    assert f"calibration: temperature {choice.temperature:.3f} ({choice.reason()})" in printed
    write_report(tmp_path / "run")
    page = html.unescape((tmp_path / "run" / "report.html").read_text())
    assert f"Temperature {choice.temperature:.3f}: {choice.reason()}." in page
