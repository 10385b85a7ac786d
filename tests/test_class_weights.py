"""Class weights and balanced sampling (datasets/class_weights.py): scikit-learn's "balanced", trained with and
without the activation cache, and the validation loss weighted like the training loss."""

import csv

import numpy as np
import pytest
from conftest import TINY as TINY_NETWORK
from sklearn.utils.class_weight import compute_class_weight

from keras_alexnet.datasets.class_weights import class_weights
from keras_alexnet.training import train

TINY = {**{k: v for k, v in TINY_NETWORK.items() if k != "batch_size"}, "tensorboard": False}
SHAPES = {"per_class": 10, "size": 64, "seed": 0}  # conftest.shapes_dir


def test_class_weights_auto_are_scikit_learns_balanced_and_a_dict_names_classes():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    np.testing.assert_allclose(class_weights("auto", labels, ["a", "b", "c"]), expected, rtol=1e-6)
    assert class_weights("none", labels, ["a", "b", "c"]) is None
    np.testing.assert_allclose(class_weights({"b": 5, 2: 0.5}, labels, ["a", "b", "c"]), [1, 5, 0.5])
    with pytest.raises(ValueError, match="'z', which is not one of the classes"):
        class_weights({"z": 2}, labels, ["a", "b", "c"])


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
