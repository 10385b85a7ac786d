"""Freezing, naming by torchvision paths, head replacement, layer table, recipes."""

import keras
import numpy as np
import pytest

from keras_alexnet import TINY, AlexNet
from keras_alexnet._utils.runtime import tensorflow_uses_gpu
from keras_alexnet.transfer import (
    RECIPES,
    TrainableStateGuard,
    apply_recipe,
    format_layer_table,
    freeze,
    layer_table,
    replace_head,
    unfreeze,
)
from keras_alexnet.transfer.names import layer_range, resolve_layers

SMALL = (80, 80, 3)


@pytest.fixture(scope="module")
def full():
    return AlexNet(weights=None, classes=10, input_shape=SMALL)


def test_torchvision_paths_slices_and_groups(full):
    assert resolve_layers(full, "features.0") == ["conv1"]
    assert resolve_layers(full, "classifier.6") == ["fc8"]
    assert resolve_layers(full, "features[0:5]") == ["conv1", "pool1", "conv2"]
    assert resolve_layers(full, "features[8:]") == ["conv4", "conv5", "pool5"]
    assert resolve_layers(full, "classifier") == ["drop6", "fc6", "drop7", "fc7", "fc8"]
    assert resolve_layers(full, ["conv2", "features.6"]) == ["conv2", "conv3"]
    assert layer_range(full, up_to="conv3")[-1] == "conv3" and "conv4" not in layer_range(full, up_to="conv3")
    with pytest.raises(ValueError, match="unknown layer 'conv9'.*features.0"):
        resolve_layers(full, "conv9")


def small_data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *SMALL)).astype("float32"), rng.integers(0, 10, n)


def test_freeze_after_fit_is_not_silently_ignored():
    model = AlexNet(weights=None, classes=10, input_shape=SMALL)
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    x, y = small_data()
    model.fit(x, y, epochs=1, verbose=0)
    freeze(model, "features")  # recompiles: the next fit honours it
    frozen = {name: [w.copy() for w in model.get_layer(name).get_weights()] for name in ("conv1", "conv5")}
    fc8 = model.get_layer("fc8").get_weights()[0].copy()
    model.fit(x, y, epochs=1, verbose=0)
    for name, weights in frozen.items():
        for before, after in zip(weights, model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(before, after)
    assert np.abs(model.get_layer("fc8").get_weights()[0] - fc8).max() > 0
    unfreeze(model, up_to="conv2")
    assert model.get_layer("conv1").trainable and not model.get_layer("conv3").trainable


def test_hand_made_trainable_change_after_fit_is_refused():
    model = AlexNet(weights=None, classes=10, input_shape=SMALL)
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    x, y = small_data()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[TrainableStateGuard()])
    model.get_layer("conv1").trainable = False  # behind the API's back
    with pytest.raises(RuntimeError, match="trainable flags changed"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[TrainableStateGuard()])


def test_replace_fc8_keeps_fc6_fc7(full):
    new = replace_head(full, 3)
    assert new.output.shape[-1] == 3
    assert new.get_layer("fc7") is full.get_layer("fc7")  # same layer, same weights
    assert new.get_layer("fc8") is not full.get_layer("fc8")
    assert new.get_layer("fc8").kernel.shape == (4096, 3)


def test_replace_head_on_features_only_model():
    features = AlexNet(weights="imagenet", include_top=False)
    new = replace_head(features, 5)
    assert [n for n in ("avgpool", "fc6", "fc7", "fc8") if n in {layer.name for layer in new.layers}] == [
        "avgpool",
        "fc6",
        "fc7",
        "fc8",
    ]
    assert new(np.zeros((1, 100, 100, 3), "float32")).shape == (1, 5)
    np.testing.assert_array_equal(new.get_layer("conv1").get_weights()[0], features.get_layer("conv1").get_weights()[0])


def test_replace_whole_classifier_with_user_layers(full):
    new = replace_head(
        full, layers=[keras.layers.Dense(64, activation="relu", name="hidden"), keras.layers.Dense(2, name="out")]
    )
    assert new.get_layer("hidden").kernel.shape == (9216, 64)
    assert "fc6" not in {layer.name for layer in new.layers}
    with pytest.raises(ValueError, match="exactly one"):
        replace_head(full)


def test_layer_table_shows_factors_and_frozen_layers():
    model = apply_recipe(AlexNet(weights=None, include_top=False, input_shape=SMALL), "matlab", 4)
    rows = {r.name: r for r in layer_table(model)}
    assert rows["fc8"].weight_lr_factor == 20 and rows["fc8"].bias_lr_factor == 20
    assert rows["conv1"].weight_lr_factor == 1 and rows["conv1"].torchvision == "features.0,features.1"
    assert rows["fc8"].params == 4096 * 4 + 4
    frozen = {
        r.name: r
        for r in layer_table(
            apply_recipe(AlexNet(weights=None, include_top=False, input_shape=SMALL), "later-convs", 4)
        )
    }
    # The PyTorch guide's Example 3: features[0:5] (conv1, conv2) frozen, features[5:] at 1/10.
    assert not frozen["conv2"].trainable and frozen["conv2"].weight_lr_factor == 0
    assert frozen["conv3"].trainable and frozen["conv3"].weight_lr_factor == pytest.approx(0.1)
    assert frozen["conv4"].weight_lr_factor == pytest.approx(0.1) and frozen["fc6"].weight_lr_factor == 1
    text = format_layer_table(list(frozen.values()))
    assert "conv4" in text and "trainable" in text


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipes_freeze_and_factor_as_documented(name):
    model = apply_recipe(AlexNet(weights=None, include_top=False, input_shape=SMALL), name, 3)
    rows = {r.name: r for r in layer_table(model)}
    convs = [rows[f"conv{i}"].weight_lr_factor for i in range(1, 6)]
    expected = {
        "frozen-features": [0, 0, 0, 0, 0],
        "fine-tune-all": [0.1] * 5,
        "later-convs": [0, 0, 0.1, 0.1, 0.1],
        "matlab": [1] * 5,
        "fine-tune": [0, 0, 0, 0, 0],  # its first stage; the second is in test_stages.py
    }[name]
    assert convs == pytest.approx(expected)
    assert rows["fc8"].weight_lr_factor == (20 if name == "matlab" else 1)
    assert model.output.shape[-1] == 3 and model.compiled
    assert type(model.optimizer).__name__ == ("FactoredSGD" if name == "matlab" else "FactoredAdam")


def test_frozen_weights_unchanged_after_fit():
    model = apply_recipe(AlexNet(weights="imagenet", include_top=False, input_shape=SMALL), "frozen-features", 10)
    before = [w.numpy().copy() for w in model.non_trainable_weights]
    model.fit(*small_data(), epochs=2, batch_size=8, verbose=0)
    assert len(before) == 10  # conv1..conv5 kernels and biases
    for b, w in zip(before, model.non_trainable_weights):
        np.testing.assert_array_equal(b, w.numpy())


def test_unknown_recipe_and_optimizer():
    with pytest.raises(ValueError, match="recipe 'magic'"):
        apply_recipe(AlexNet(weights=None, include_top=False, input_shape=SMALL), "magic", 2)
    from keras_alexnet.transfer import make_optimizer

    with pytest.raises(ValueError, match="optimizer 'adamx'"):
        make_optimizer("adamx", 0.1)


@pytest.mark.parametrize("rate", [0, -1e-3])
def test_a_learning_rate_that_is_not_positive_is_refused(rate):
    with pytest.raises(ValueError, match=f"learning_rate={rate}: use a positive number"):
        apply_recipe(
            AlexNet(weights=None, include_top=False, input_shape=SMALL), "frozen-features", 2, learning_rate=rate
        )


def test_recipe_can_keep_a_trained_head():
    model = apply_recipe(AlexNet(weights=None, include_top=False, input_shape=SMALL), "frozen-features", 4)
    fc8 = model.get_layer("fc8")
    tuned = apply_recipe(model, "fine-tune-all", 4, new_head=False)
    assert tuned.get_layer("fc8") is fc8 and tuned.get_layer("conv1").trainable
    with pytest.raises(ValueError, match="classes=5"):
        apply_recipe(model, "fine-tune-all", 5, new_head=False)


def test_xla_is_chosen_where_it_wins():
    frozen = apply_recipe(AlexNet(weights=None, include_top=False, input_shape=SMALL), "frozen-features", 2)
    trained = apply_recipe(AlexNet(weights=None, include_top=False, input_shape=SMALL), "fine-tune-all", 2)
    on_gpu = tensorflow_uses_gpu()  # CPU: TensorFlow's kernels win (measured)
    assert frozen.jit_compile is on_gpu and trained.jit_compile is False
    forced = apply_recipe(
        AlexNet(weights=None, include_top=False, input_shape=SMALL), "fine-tune-all", 2, jit_compile=True
    )
    assert forced.jit_compile is True


@pytest.mark.slow
def test_zero_factor_variables_do_not_trip_the_guard_after_unfreeze():
    from keras_alexnet.optimizers import with_lr_factors

    model = AlexNet(weights=None, classes=10, input_shape=SMALL)
    model.compile(with_lr_factors(keras.optimizers.SGD(0.01), {"conv1": 0.0}, model), "sparse_categorical_crossentropy")
    x, y = small_data()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[TrainableStateGuard()])
    before = model.get_layer("conv1").get_weights()[0].copy()
    unfreeze(model)  # makes conv1's variables trainable again; the optimizer still never moves them
    model.fit(x, y, epochs=1, verbose=0, callbacks=[TrainableStateGuard()])
    np.testing.assert_array_equal(model.get_layer("conv1").get_weights()[0], before)


def _one_step_updates(policy):
    """Per-weight change of one training step of the matlab recipe (fc8 at 20x) under a dtype policy."""
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        # The tiny network: the same layers, factors and loss scaling, in seconds (full size took 47 s).
        base = AlexNet(weights=None, include_top=False, input_shape=SMALL, architecture=TINY)
        model = apply_recipe(base, "matlab", 3)
        for layer in model.layers:  # dropout masks drawn under another dtype differ: compare without
            if isinstance(layer, keras.layers.Dropout):
                layer.rate = 0.0
        x = np.random.default_rng(0).normal(size=(8, *SMALL)).astype("float32")
        before = [w.numpy().copy() for w in model.trainable_weights]
        model.fit(x, np.arange(8) % 3, epochs=1, batch_size=8, verbose=0, shuffle=False)
        return model, {w.path: w.numpy() - b for w, b in zip(model.trainable_weights, before)}
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_float16_loss_scaling_keeps_the_learning_rate_factors():
    model, half = _one_step_updates("mixed_float16")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    _, full = _one_step_updates("float32")
    for path, want in full.items():
        # float16 passes round the small convolution gradients (up to 17% from float32's measured, a bias);
        # a lost fc8 factor would be 95% off there, a loss scale left in the gradients 32768x everywhere.
        error = np.linalg.norm(half[path] - want) / np.linalg.norm(want)
        assert error < (0.05 if path.startswith("fc8/") else 0.3), (path, error)


def test_an_empty_torchvision_slice_says_it_is_empty():
    model = AlexNet(weights=None, classes=3, input_shape=SMALL)
    with pytest.raises(ValueError, match=r"'features\[5:2\]' is an empty slice of features"):
        freeze(model, "features[5:2]")


def test_recipe_facts_are_derived_from_their_stages():
    assert [name for name, recipe in RECIPES.items() if recipe.two_stage] == ["fine-tune"]
    # Recipes whose (first) stage freezes conv1 can train on cached activations.
    assert {name for name, recipe in RECIPES.items() if recipe.cacheable} == {
        "frozen-features",
        "later-convs",
        "fine-tune",
    }
