"""Label smoothing, mixup, CutMix and the weights' moving average (training/regularizers.py)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY

from keras_alexnet.metrics import Accuracy, BalancedAccuracy
from keras_alexnet.training import TrainingOptions, train
from keras_alexnet.training.regularizers import SoftCrossentropy, mixed


def test_soft_cross_entropy_is_keras_sparse_cross_entropy_and_smooths_like_keras(rng):
    probabilities = rng.dirichlet(np.ones(5), size=16).astype("float32")
    labels = rng.integers(0, 5, size=16)
    plain = keras.losses.SparseCategoricalCrossentropy()(labels, probabilities)
    assert abs(float(SoftCrossentropy()(labels, probabilities)) - float(plain)) < 1e-6
    one_hot = np.eye(5, dtype="float32")[labels]
    smoothed = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(one_hot, probabilities)
    assert abs(float(SoftCrossentropy(0.1)(labels, probabilities)) - float(smoothed)) < 1e-6
    assert abs(float(SoftCrossentropy(0.1)(one_hot, probabilities)) - float(smoothed)) < 1e-6


def test_accuracy_and_balanced_accuracy_read_soft_targets_by_their_larger_share():
    predicted = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], "float32")
    soft = np.array([[0.7, 0.3], [0.4, 0.6], [0.2, 0.8]], "float32")
    accuracy = Accuracy()
    accuracy.update_state(soft, predicted)
    assert abs(float(accuracy.result()) - 2 / 3) < 1e-6
    accuracy.reset_state()
    accuracy.update_state(np.array([0, 1, 1]), predicted)
    assert abs(float(accuracy.result()) - 2 / 3) < 1e-6
    balanced = BalancedAccuracy(2)
    balanced.update_state(soft, predicted)
    assert abs(float(balanced.result()) - 0.75) < 1e-6  # class 0: 1/1, class 1: 1/2


def _constant_batch(count=8, size=16, classes=4):
    """Images whose every pixel is the image's index: a mixed pixel says which images it came from."""
    images = np.stack([np.full((size, size, 3), i, "float32") for i in range(count)])
    labels = np.arange(count) % classes
    weights = np.linspace(1, 2, count).astype("float32")
    return tf.data.Dataset.from_tensors((images, labels, weights)), images, labels, weights


def test_mixup_blends_images_labels_and_weights_by_one_share_with_the_larger_on_the_original():
    ds, images, labels, weights = _constant_batch(classes=8)  # a class per image: the label names the partner
    x, y, w = next(iter(mixed(ds, 8, mixup=0.4, seed=7)))
    x, y, w = x.numpy(), y.numpy(), w.numpy()
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-6)
    for i in range(len(images)):
        value = x[i, 0, 0, 0]
        assert np.allclose(x[i], value)  # the whole image blended by one share
        share = y[i, i]
        assert share >= 0.5 - 1e-6  # fastai's MixUp: the original keeps the larger share
        partner = int(np.argsort(y[i])[-2]) if share < 1 - 1e-6 else i
        assert abs(share * i + (1 - share) * partner - value) < 1e-4
        assert abs(w[i] - (share * weights[i] + (1 - share) * weights[partner])) < 1e-4
    again = next(iter(mixed(ds, 8, mixup=0.4, seed=7)))[0].numpy()
    other_step = next(iter(mixed(ds, 8, mixup=0.4, seed=7, first_step=5)))[0].numpy()
    assert np.array_equal(x, again)  # (seed, step) alone decide: a resumed run mixes the same
    assert not np.array_equal(x, other_step)


def test_cutmix_pastes_a_box_and_the_label_share_is_the_area_kept():
    ds, images, labels, _ = _constant_batch(size=32)
    x, y, _ = next(iter(mixed(ds, 4, cutmix=1.0, seed=3)))
    x, y = x.numpy(), y.numpy()
    boxed = 0
    for i in range(len(images)):
        values = x[i, :, :, 0]
        kept = float(np.mean(values == i))
        if kept < 1:
            boxed += 1
            other = np.unique(values[values != i])
            assert len(other) == 1  # one other image's pixels
            assert abs(y[i, labels[i]] - (kept if labels[int(other[0])] != labels[i] else 1.0)) < 1e-5
    assert boxed > 0


def test_options_check_the_regularizers_and_refuse_mixing_on_cached_activations():
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainingOptions(label_smoothing=1.0)
    with pytest.raises(ValueError, match="mixup"):
        TrainingOptions(mixup=-1)
    with pytest.raises(ValueError, match="ema"):
        TrainingOptions(ema=1.5)
    with pytest.raises(ValueError, match="CutMix blend the images"):
        TrainingOptions(cutmix=1.0, cache_activations=True)
    TrainingOptions(label_smoothing=0.1, ema=0.9, cache_activations=True)  # sound on cached activations


@pytest.mark.slow
def test_each_regularizer_changes_training_and_the_run_records_it(shapes_dir, tmp_path):
    common = {**TINY, "val_split": 0.25, "epochs": 2, "verbose": 0, "measure_tta": False}
    losses = {}
    for name, change in (
        ("plain", {}),
        ("smoothing", {"label_smoothing": 0.2}),
        ("mixup", {"mixup": 0.4}),
        ("cutmix", {"cutmix": 1.0}),
    ):
        result = train(shapes_dir, run_dir=tmp_path / name, **common, **change)
        losses[name] = result.history["loss"]
        assert np.all(np.isfinite(result.history["val_loss"]))
        recorded = json.loads((tmp_path / name / "options.json").read_text())
        assert all(recorded[key] == value for key, value in change.items())
    for name in ("smoothing", "mixup", "cutmix"):
        assert not np.allclose(losses[name], losses["plain"]), name  # a dropped option would train the same


@pytest.mark.slow
def test_ema_ships_the_averaged_weights_and_validates_them(shapes_dir, tmp_path):
    """The final fc8 equals the moving average (with TensorFlow's warm-up) of the raw weights after every
    step, and the last epoch's logged validation loss is the shipped model's."""
    raw = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raw.append(self.model.get_layer("fc8").kernel.numpy().copy())

    decay = 0.9
    result = train(
        shapes_dir,
        run_dir=tmp_path / "ema",
        ema=decay,
        learning_rate=0.01,
        output_network="last",
        calibrate=False,
        callbacks=[Record()],
        **{**TINY, "val_split": 0.25, "epochs": 2, "verbose": 0, "measure_tta": False},
    )
    average = raw[0]
    for step, weights in enumerate(raw[1:], start=1):
        rate = min(decay, (1 + step) / (10 + step))
        average = rate * average + (1 - rate) * weights
    shipped = result.model.get_layer("fc8").kernel.numpy()
    assert np.max(np.abs(shipped - average)) < 1e-5
    assert np.max(np.abs(shipped - raw[-1])) > 1e-3  # not the raw weights
    val = result.model.evaluate(_validation(result, tmp_path / "ema"), verbose=0, return_dict=True)
    assert abs(val["loss"] - result.history["val_loss"][-1]) < 1e-4


def _validation(result, run_dir):
    from keras_alexnet.datasets import ImageFolder

    record = json.loads((run_dir / "validation.json").read_text())
    folder = ImageFolder.from_dict(record)
    return folder.dataset(8)
