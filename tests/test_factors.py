"""Per-layer learning-rate and L2 factors: exact arithmetic, any optimizer, save/load."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness import run_model_saving_test

from keras_alexnet.optimizers import Factors, LearningRateFactorsMixin, with_lr_factors


def small_model(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((6,))
    x = keras.layers.Dense(5, activation="tanh", name="a")(inp)
    x = keras.layers.Dense(4, activation="tanh", name="b")(x)
    return keras.Model(inp, keras.layers.Dense(3, name="c")(x))


def data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)).astype("float32"), rng.integers(0, 3, n)


def gradients(model):
    x, y = data()
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(y, model(x), from_logits=True)
        loss = tf.reduce_mean(loss)
    variables = model.trainable_variables
    return tape.gradient(loss, variables), variables


# Steps are measured as (w - step) - w in float32: about |w| * 2**-23 of rounding.
STEP_ATOL = 1e-7


def one_step(model, optimizer):
    before = [v.numpy().copy() for v in model.trainable_variables]
    grads, variables = gradients(model)
    optimizer.apply(grads, variables)
    return {v.path: (v.numpy() - b, g.numpy()) for v, b, g in zip(variables, before, grads)}


def test_sgd_step_is_minus_factor_times_lr_times_grad():
    model = small_model()
    opt = with_lr_factors(keras.optimizers.SGD(0.1), {"a": (3.0, 0.5), "b": 2.0}, model)
    steps = one_step(model, opt)
    expected = {"a/kernel": 3.0, "a/bias": 0.5, "b/kernel": 2.0, "b/bias": 2.0, "c/kernel": 1.0, "c/bias": 1.0}
    for path, factor in expected.items():
        delta, grad = steps[path]
        np.testing.assert_allclose(delta, -factor * 0.1 * grad, rtol=1e-5, atol=STEP_ATOL)


OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.01),
    "sgdm": lambda: keras.optimizers.SGD(0.01, momentum=0.9),
    "rmsprop": lambda: keras.optimizers.RMSprop(0.01),
    "adam": lambda: keras.optimizers.Adam(0.01),
    "adamw": lambda: keras.optimizers.AdamW(0.01, weight_decay=0.0),
    "adagrad": lambda: keras.optimizers.Adagrad(0.01),
    "nadam": lambda: keras.optimizers.Nadam(0.01),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_factor_scales_the_step_for_every_optimizer(name):
    """The first step of a layer with factor k is k times its step with factor 1."""
    reference = one_step(small_model(), with_lr_factors(OPTIMIZERS[name](), {}, small_model()))
    model = small_model()
    steps = one_step(model, with_lr_factors(OPTIMIZERS[name](), {"a": 5.0, "c": 0.25}, model))
    for path, factor in [("a/kernel", 5.0), ("a/bias", 5.0), ("b/kernel", 1.0), ("c/kernel", 0.25)]:
        np.testing.assert_allclose(steps[path][0], factor * reference[path][0], rtol=0.01, atol=STEP_ATOL)


def test_scaling_gradients_would_do_nothing_for_adam():
    """Why factors scale the step: Adam's first step is lr * g / (|g| + eps'), about lr
    whatever the gradient's scale, so a factor on the gradient would be divided away.
    (Keras adds eps to the uncorrected sqrt(v), so eps' = eps / sqrt(1 - beta_2).)"""
    model = small_model()
    steps = one_step(model, with_lr_factors(keras.optimizers.Adam(0.01, epsilon=1e-7), {"a": 10.0}, model))
    for path, rate in [("a/kernel", 0.1), ("b/kernel", 0.01)]:
        delta, grad = steps[path]
        np.testing.assert_allclose(
            -delta, rate * grad / (np.abs(grad) + 1e-7 / np.sqrt(1 - 0.999)), rtol=1e-3, atol=STEP_ATOL
        )


def test_schedule_times_factor_at_every_step():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    model = small_model()
    opt = with_lr_factors(keras.optimizers.SGD(schedule), {"b": 4.0}, model)
    for step in range(3):
        delta, grad = one_step(model, opt)["b/kernel"]
        np.testing.assert_allclose(delta, -4.0 * 0.1 * 0.5**step * grad, rtol=1e-5, atol=STEP_ATOL)


def test_zero_factor_keeps_weights_bit_identical_and_skips_gradients():
    model = small_model()
    opt = with_lr_factors(keras.optimizers.Adam(0.05), {"a": 0.0, "b": (1.0, 0.0)}, model)
    assert not model.get_layer("a").kernel.trainable and not model.get_layer("b").bias.trainable
    assert len(model.trainable_variables) == 3  # b/kernel, c/kernel, c/bias: no gradients for the rest
    frozen = [
        v.numpy().copy() for v in (model.get_layer("a").kernel, model.get_layer("a").bias, model.get_layer("b").bias)
    ]
    moving = model.get_layer("c").kernel.numpy().copy()
    model.compile(opt, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(*data(), epochs=3, batch_size=8, verbose=0)
    for before, variable in zip(
        frozen, (model.get_layer("a").kernel, model.get_layer("a").bias, model.get_layer("b").bias)
    ):
        np.testing.assert_array_equal(variable.numpy(), before)
    assert np.abs(model.get_layer("c").kernel.numpy() - moving).max() > 1e-3


def test_zero_factor_holds_even_if_the_variable_is_trainable_again():
    """After a reload variables are trainable again; the optimizer still never moves them."""
    model = small_model()
    opt = with_lr_factors(keras.optimizers.SGD(0.1, momentum=0.9), {"a": 0.0}, model)
    model.get_layer("a").kernel.trainable = True
    before = model.get_layer("a").kernel.numpy().copy()
    one_step(model, opt)
    np.testing.assert_array_equal(model.get_layer("a").kernel.numpy(), before)


def test_coupled_l2_with_factors_is_matlab_l2regularization():
    model = small_model()
    weights = {v.path: v.numpy().copy() for v in model.trainable_variables}
    opt = with_lr_factors(
        keras.optimizers.SGD(0.1),
        {"a": Factors(weight_lr=2.0, weight_l2=3.0), "b": Factors(weight_l2=0.0)},
        model,
        l2_regularization=0.01,
    )
    steps = one_step(model, opt)
    for path, lr_f, l2_f in [("a/kernel", 2.0, 3.0), ("b/kernel", 1.0, 0.0), ("c/kernel", 1.0, 1.0)]:
        delta, grad = steps[path]
        np.testing.assert_allclose(delta, -lr_f * 0.1 * (grad + 0.01 * l2_f * weights[path]), rtol=1e-5, atol=STEP_ATOL)


def test_decoupled_weight_decay_uses_l2_factor_and_effective_rate():
    model = small_model()
    weights = {v.path: v.numpy().copy() for v in model.trainable_variables}
    opt = with_lr_factors(
        keras.optimizers.AdamW(0.01, weight_decay=0.5), {"a": Factors(weight_lr=2.0, weight_l2=0.5)}, model
    )
    variables = model.trainable_variables
    opt.apply([tf.zeros_like(v) for v in variables], variables)  # zero gradient: Adam's own step is 0
    np.testing.assert_allclose(
        model.get_layer("a").kernel.numpy(), weights["a/kernel"] * (1 - 0.5 * 0.5 * 0.01 * 2.0), rtol=1e-6
    )
    np.testing.assert_allclose(model.get_layer("c").kernel.numpy(), weights["c/kernel"] * (1 - 0.5 * 0.01), rtol=1e-6)


def test_factors_survive_save_and_training_continues_identically(tmp_path):
    x, y = data(48)
    model = small_model()
    opt = with_lr_factors(
        keras.optimizers.SGD(0.05, momentum=0.9), {"a": 0.0, "b": (3.0, 0.5), "c": 20.0}, model, l2_regularization=1e-3
    )
    model.compile(opt, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    loaded = run_model_saving_test(model, x, tmp_path)
    assert isinstance(loaded.optimizer, LearningRateFactorsMixin)
    assert loaded.optimizer.lr_factors == opt.lr_factors and loaded.optimizer.l2_regularization == 1e-3
    assert type(loaded.optimizer).__name__ == "FactoredSGD"
    for m in (model, loaded):
        m.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)


def test_optimizer_config_round_trip():
    model = small_model()
    opt = with_lr_factors(keras.optimizers.Adam(0.002), {"c": 20.0}, model)
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert clone.lr_factors == {"c/kernel": 20.0, "c/bias": 20.0} and float(clone.learning_rate) == pytest.approx(0.002)


def test_jit_compiled_fit_applies_factors():
    x, y = data()
    runs = {}
    for jit in (False, True):
        model = small_model()
        opt = with_lr_factors(keras.optimizers.Adam(0.01), {"a": 0.0, "b": 0.1}, model)
        model.compile(opt, keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)
        before = model.get_layer("a").kernel.numpy().copy()
        model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
        np.testing.assert_array_equal(model.get_layer("a").kernel.numpy(), before)
        runs[jit] = model.get_layer("b").kernel.numpy()
    np.testing.assert_allclose(runs[True], runs[False], rtol=1e-4, atol=1e-6)


def test_bad_factors_are_refused():
    model = small_model()
    with pytest.raises(ValueError, match="factors must be >= 0"):
        with_lr_factors(keras.optimizers.SGD(), {"a": -1.0}, model)
    with pytest.raises(ValueError, match="unknown layer 'fc9'"):
        with_lr_factors(keras.optimizers.SGD(), {"fc9": 2.0}, model)
    with pytest.raises(ValueError, match="not understood"):
        with_lr_factors(keras.optimizers.SGD(), {"a": "fast"}, model)


def _vgg_style():
    """A small VGG-style stack (two conv blocks and a dense head): no AlexNet anywhere."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="block1_conv1")(inp)
    x = keras.layers.MaxPooling2D(name="block1_pool")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="block2_conv1")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, keras.layers.Dense(3, name="predictions")(x), name="vgg_style")


def test_factors_work_for_any_keras_model_by_layer_path_or_pattern():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 12, 12, 3)).astype("float32"), rng.integers(0, 3, 8)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def step(factors):
        model = _vgg_style()
        before = {v.path: v.numpy().copy() for v in model.trainable_variables}
        model.compile(with_lr_factors(keras.optimizers.SGD(0.1), factors, model), loss)
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        return {v.path: v.numpy() - before[v.path] for v in model.weights}

    plain = step({})
    factored = step({"block1_conv1": 0.0, "block2_conv1/kernel": 3.0, "pred.*/bias": 0.5})
    np.testing.assert_array_equal(factored["block1_conv1/kernel"], 0.0)
    np.testing.assert_allclose(
        factored["block2_conv1/kernel"], 3.0 * plain["block2_conv1/kernel"], rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(factored["block2_conv1/bias"], plain["block2_conv1/bias"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(factored["predictions/bias"], 0.5 * plain["predictions/bias"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(factored["predictions/kernel"], plain["predictions/kernel"], rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="unknown layer 'block9.*'"):
        with_lr_factors(keras.optimizers.SGD(0.1), {"block9.*": 2.0}, _vgg_style())


def test_infinite_factors_and_negative_l2_are_refused():
    model = small_model()
    with pytest.raises(ValueError, match="factors must be >= 0 and finite"):
        with_lr_factors(keras.optimizers.SGD(), {"a": float("inf")}, model)
    with pytest.raises(ValueError, match="l2_regularization=-0.1: use a number >= 0"):
        with_lr_factors(keras.optimizers.SGD(), {"a": 1.0}, model, l2_regularization=-0.1)


def test_an_earlier_zero_factor_does_not_stick_and_training_resumes_identically(tmp_path):
    from keras_alexnet import load_model

    x, y = data(48)
    model = small_model()
    with_lr_factors(keras.optimizers.SGD(0.1), {"a": 0.0}, model)  # built, then replaced by the one below
    model.compile(
        with_lr_factors(keras.optimizers.Adam(0.01), {"c": 5.0}, model),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = model.get_layer("a").kernel.numpy().copy()
    model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    assert not np.array_equal(model.get_layer("a").kernel.numpy(), before)  # the optimizer in use decides: a trains
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras", alexnet_only=False)  # the optimizer state fits: no warning, no error
    for m in (model, loaded):
        m.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)


def test_loading_optimizer_state_that_does_not_fit_is_an_error(tmp_path):
    from keras_alexnet import load_model

    x, y = data(16)
    model = small_model()
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.get_layer("a").trainable = False  # by hand, without recompiling: the saved slots no longer fit
    model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="saved optimizer state does not fit the model"):
        load_model(tmp_path / "m.keras", alexnet_only=False)
