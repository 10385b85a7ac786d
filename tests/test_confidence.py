"""Imbalanced classes and honest confidence: balanced metrics, class weights, balanced sampling,
the output network, calibration, test-time augmentation and the report's first screen."""

import csv
import json

import keras
import numpy as np
import pytest
from conftest import TINY as TINY_NETWORK
from sklearn.metrics import balanced_accuracy_score, f1_score, log_loss
from sklearn.utils.class_weight import compute_class_weight

from keras_alexnet.calibration import (
    CalibrationScores,
    brier_score,
    ece_floor,
    expected_calibration_error,
    fit_temperature,
    tempered,
)
from keras_alexnet.cli import main
from keras_alexnet.datasets.class_weights import class_weights
from keras_alexnet.datasets.pipeline import balanced_order
from keras_alexnet.layers import Temperature, temperature_of
from keras_alexnet.metrics import BalancedAccuracy, MacroF1
from keras_alexnet.model import load_model
from keras_alexnet.preprocessing import eval_crop, tta_crops
from keras_alexnet.training import train

TINY = {**{k: v for k, v in TINY_NETWORK.items() if k != "batch_size"}, "tensorboard": False}


SHAPES = {"per_class": 10, "size": 64, "seed": 0}  # conftest.shapes_dir


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


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


def test_class_weights_auto_are_scikit_learns_balanced_and_a_dict_names_classes():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    np.testing.assert_allclose(class_weights("auto", labels, ["a", "b", "c"]), expected, rtol=1e-6)
    assert class_weights("none", labels, ["a", "b", "c"]) is None
    np.testing.assert_allclose(class_weights({"b": 5, 2: 0.5}, labels, ["a", "b", "c"]), [1, 5, 0.5])
    with pytest.raises(ValueError, match="'z', which is not one of the classes"):
        class_weights({"z": 2}, labels, ["a", "b", "c"])


def test_balanced_order_evens_every_batch_and_repeats_from_seed_and_epoch():
    labels = np.array([0] * 100 + [1] * 10)
    order = balanced_order(labels, seed=3, epoch=2)
    assert len(order) == len(labels)
    for start in range(0, len(order) - 8, 8):  # any batch of 8: 4 of each class
        assert np.bincount(labels[order[start : start + 8]], minlength=2).tolist() == [4, 4]
    assert set(order[labels[order] == 1]) == set(range(100, 110))  # every minority image, repeated
    np.testing.assert_array_equal(order, balanced_order(labels, seed=3, epoch=2))
    assert not np.array_equal(order, balanced_order(labels, seed=3, epoch=3))


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


def test_temperature_layer_is_the_logits_divided_and_survives_saving(tmp_path):
    inputs = keras.Input((3,))
    probabilities = keras.layers.Dense(4, activation="softmax", name="fc8")(inputs)
    model = keras.Model(inputs, Temperature(1.7)(probabilities))
    x = np.random.default_rng(0).normal(size=(6, 3)).astype("float32")
    dense = model.get_layer("fc8")
    logits = x @ keras.ops.convert_to_numpy(dense.kernel) + keras.ops.convert_to_numpy(dense.bias)
    np.testing.assert_allclose(model.predict(x, verbose=0), _softmax(logits / 1.7), atol=1e-6)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert temperature_of(loaded) == pytest.approx(1.7)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-7)
    with pytest.raises(ValueError, match="positive, finite"):
        Temperature(0.0)


def test_tta_views_start_with_the_eval_crop_and_mirror_it(tmp_path):
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    views = tta_crops(tmp_path / "x.png")
    assert views.shape == (6, 224, 224, 3) and views.dtype == np.uint8
    np.testing.assert_array_equal(views[0], eval_crop(tmp_path / "x.png"))
    np.testing.assert_array_equal(views[1], views[0][:, ::-1])
    assert len({view.tobytes() for view in views}) == 6  # six different views


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


@pytest.mark.parametrize("changes", [{"class_weight": "auto", "cache_activations": True}, {"balanced_sampling": True}])
def test_imbalance_options_train_cached_and_uncached(shapes_dir, tmp_path, changes):
    result = train(
        shapes_dir, val_split=0.3, epochs=2, batch_size=8, run_dir=tmp_path / "run", verbose=0, **TINY, **changes
    )
    assert result.options.class_weight == changes.get("class_weight", "none")
    assert np.isfinite(result.history["loss"]).all()


def test_class_weight_and_balanced_sampling_together_are_refused(shapes_dir, tmp_path):
    with pytest.raises(ValueError, match="Use one of them"):
        train(shapes_dir, class_weight="auto", balanced_sampling=True, run_dir=tmp_path / "r", **TINY)


def test_evaluate_and_predict_with_tta_from_the_command_line(shapes_dir, tmp_path, capsys):
    run = tmp_path / "run"
    flags = ["--architecture", "tiny", "--weights", "none", "--no-report", "--no-tensorboard", "--quiet"]
    assert (
        main(["train", "--data", str(shapes_dir), "--val-split", "0.3", "--epochs", "1", "--run-dir", str(run), *flags])
        == 0
    )
    capsys.readouterr()
    out = tmp_path / "eval"
    assert (
        main(["evaluate", "--model", str(run / "model.keras"), "--data", str(shapes_dir), "--tta", "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "test-time augmentation (6 views, blended): accuracy" in printed and "ms per image" in printed
    assert "calibration (temperature" in printed and "ECE" in printed
    assert "a perfectly calibrated model would show ECE" in printed  # its sampling floor beside it
    assert (out / "reliability.png").stat().st_size > 10_000
    assert main(["predict", "--model", str(run / "model.keras"), "--tta", "--top", "1", str(shapes_dir / "star")]) == 0
    assert capsys.readouterr().out.count("star") >= 10


def test_report_leads_with_the_answer(shapes_dir, tmp_path):
    import shutil

    from keras_alexnet.report import write_report

    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    for path in sorted((data / "star").iterdir())[:6]:  # 4 stars beside 10 of each other shape
        path.unlink()
    result = train(
        data,
        val_split=0.3,
        epochs=2,
        batch_size=8,
        run_dir=tmp_path / "my-shapes",
        verbose=0,
        class_weight={"star": 2.0},
        **TINY,
    )
    page = write_report(result.run_dir).read_text()
    assert "<h1>my-shapes</h1>" in page and "Training run" not in page
    first = page.index("Accuracy <b>")
    assert (
        first
        < page.index("Calibration (temperature")
        < page.index("model.keras is epoch")
        < page.index("Per class")
        < page.index("<details><summary>Options")
    )
    assert "reliability diagram" in page and "accuracy and coverage" in page
    assert "Imbalanced training set: circle has 7 images, star 3 (2.3:1)" in page  # a 70% split of 10 and 4
    assert "the run weighed the classes, which acts only until the head fits every training image" in page
    options = page[page.index("<details>") :]
    assert "class_weight</td><td>{&quot;star&quot;: 2.0}</td><td>changed" in options
    assert "seed</td><td>0</td><td>default" in options


def test_with_balanced_classes_the_validation_loss_is_the_balanced_one(shapes_dir, tmp_path):
    """The kept epoch and patience follow the validation loss: weighted like training, or on an imbalanced
    validation set the lowest loss would be the epoch that answers the large class."""
    from keras_alexnet.datasets import ImageFolder
    from keras_alexnet.datasets.class_weights import weighted
    from keras_alexnet.training.options import TrainingOptions
    from keras_alexnet.training.setup import balancing

    folder = ImageFolder.read(shapes_dir)
    train_set, val_set = folder.split(0.7, seed=0)
    # Issue 27, item 9: the validation images are weighted by their own class counts, not the training set's.
    imbalanced = ImageFolder(train_set.paths[:1] * 10 + train_set.paths[-1:], [0] * 10 + [1], ["a", "b"])
    uneven = ImageFolder(val_set.paths[:3], [0, 0, 1], ["a", "b"])
    weights, val_weights = balancing(TrainingOptions(balanced_sampling=True), imbalanced, uneven)
    assert weights is None and np.allclose(val_weights, [0.75, 1.5])  # 3 / (2 * 2), 3 / (2 * 1)
    even = ImageFolder(val_set.paths[:2], [0, 1], ["a", "b"])
    weights, val_weights = balancing(TrainingOptions(class_weight="auto"), imbalanced, even)
    assert weights[0] < 1 < weights[1] and val_weights is None  # a balanced validation set: the plain loss
    weights, val_weights = balancing(TrainingOptions(class_weight={"star": 3}), train_set)
    assert weights is val_weights and weights[train_set.class_names.index("star")] == 3
    assert balancing(TrainingOptions(), train_set) == (None, None)

    options = {"epochs": 1, "batch_size": 8, "output_network": "last", "calibrate": False, "verbose": 0}
    result = train(train_set, val=val_set, class_weight={"star": 3.0}, run_dir=tmp_path / "r", **options, **TINY)
    with open(tmp_path / "r" / "log.csv") as handle:
        logged = float(next(csv.DictReader(handle))["val_loss"])
    model = result.model
    model.compile(loss="sparse_categorical_crossentropy")
    star_weighted = weighted(val_set.dataset(8), class_weights({"star": 3.0}, val_set.labels, val_set.class_names))
    loss = model.evaluate(star_weighted, verbose=0, return_dict=True)["loss"]
    assert logged == pytest.approx(loss, rel=1e-4)
    assert logged != pytest.approx(model.evaluate(val_set.dataset(8), verbose=0, return_dict=True)["loss"], rel=1e-4)
