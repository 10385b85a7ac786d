"""The learning-rate finder: restores everything, suggests a rate in the good range, runs on cached activations."""

import keras
import numpy as np
import pytest

from keras_alexnet.optimizers import with_lr_factors
from keras_alexnet.training.lr_find import lr_find, lr_find_on_folder, steepest, valley


def _problem(seed=0):
    """Two well-separated Gaussian classes in 8 dimensions, and a small MLP with dropout."""
    rng = np.random.default_rng(seed)
    # Inputs of scale 4: large rates make this diverge well inside fastai's sweep to 10.
    x = 4 * np.concatenate([rng.normal(-1, 1, (256, 8)), rng.normal(1, 1, (256, 8))]).astype("float32")
    y = np.repeat([0, 1], 256)
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu", name="hidden")(inp)
    h = keras.layers.Dropout(0.2, name="drop")(h)
    model = keras.Model(inp, keras.layers.Dense(2, name="out")(h))
    return model, x, y


def _compiled(model, optimizer, factors):
    model.compile(
        with_lr_factors(optimizer, factors, model), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model


def test_the_sweep_restores_weights_optimizer_state_and_random_draws_bit_for_bit(tmp_path):
    import tensorflow as tf

    model, x, y = _problem()
    model = _compiled(model, keras.optimizers.Adam(1e-3), {"out": 5.0})
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # the optimizer has state to keep
    weights = [v.numpy().copy() for v in model.weights]
    state = [keras.ops.convert_to_numpy(v).copy() for v in model.optimizer.variables]
    seeds = model.get_layer("drop").seed_generator.state.numpy().copy()
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(512, seed=0).batch(32)
    result = lr_find(model, data, steps=60, plot=tmp_path / "lr.png", verbose=False)
    for before, variable in zip(weights, model.weights):
        np.testing.assert_array_equal(variable.numpy(), before, err_msg=variable.path)
    for before, variable in zip(state, model.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), before, err_msg=variable.path)
    np.testing.assert_array_equal(model.get_layer("drop").seed_generator.state.numpy(), seeds)
    assert (tmp_path / "lr.png").stat().st_size > 10_000
    assert len(result.learning_rates) == len(result.losses) <= 60


def test_the_finder_is_a_callback_on_fit_that_records_each_steps_own_loss():
    """fastai's LRFinder on Keras's fit: each recorded loss is its batch's, at its rate (not Keras's running
    mean of the epoch), the same as stepping the optimizer by hand; the batches run on across passes."""
    import tensorflow as tf

    model, x, y = _problem()
    model = _compiled(model, keras.optimizers.SGD(), {})
    data = tf.data.Dataset.from_tensor_slices((x[::16], y[::16])).batch(8)  # 4 batches: the sweep repeats them
    result = lr_find(model, data, start_lr=1e-3, end_lr=1e-1, steps=10, divergence=1e9, verbose=False)
    assert len(result.raw_losses) == 10
    rates = 1e-3 * (1e-1 / 1e-3) ** (np.arange(10) / 9)
    by_hand, batches = [], list(data) * 3
    for rate, (images, labels) in zip(rates, batches):
        model.optimizer.learning_rate.assign(rate)
        by_hand.append(float(model.train_on_batch(images, labels, return_dict=True)["loss"]))
    np.testing.assert_allclose(result.raw_losses, by_hand, rtol=1e-5)
    assert len(set(np.round(by_hand, 6))) == 10  # ten different batches' losses, no running mean


def test_the_suggestion_falls_in_the_known_good_range():
    """The good range, measured by training 10 steps at fixed rates: loss 0.82 at 1e-3, 0.51 at 0.01,
    0.31 at 0.03, 0.15 at 0.1, 0.09 at 0.3, 0.22 at 1, and 4e16 (diverged) at 3. So [0.01, 1]."""
    import tensorflow as tf

    model, x, y = _problem(1)
    model = _compiled(model, keras.optimizers.SGD(0.01), {})
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(512, seed=1).batch(32)
    result = lr_find(model, data, verbose=False)
    assert 0.01 <= result.valley <= 1.0, result.valley
    assert result.learning_rates[-1] < 10.0  # the sweep stopped when the loss diverged


def test_factors_shift_the_suggested_base_rate():
    """The sweep moves the base rate; a layer with factor 10 moves 10x as far, so the suggestion falls."""
    import tensorflow as tf

    suggestions = {}
    for factor in (1.0, 10.0):
        model, x, y = _problem(2)
        model = _compiled(model, keras.optimizers.SGD(0.01), {"hidden": factor, "out": factor})
        data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(512, seed=2).batch(32)
        suggestions[factor] = lr_find(model, data, verbose=False).valley
    assert 3 <= suggestions[1.0] / suggestions[10.0] <= 30


def test_valley_and_steep_on_a_known_curve():
    rates = np.logspace(-6, 1, 50)
    losses = 1 + np.tanh(-(np.log10(rates) + 2))  # falls from 1e-4 to 1, steepest at 1e-2
    losses[rates < 1e-4] = losses[rates >= 1e-4][0]  # flat before
    losses[-8:] = np.linspace(losses[-9], 5, 8)  # then diverges
    assert 1e-3 <= valley(rates, losses) <= 1e-1
    assert steepest(rates, losses) == pytest.approx(1e-2, rel=0.5)
    bumpy = losses.copy()
    bumpy[-4:] = [4.0, 3.0, 2.0, 6.0]  # falls steeply again while diverging: not a suggestion
    assert steepest(rates, bumpy) == pytest.approx(1e-2, rel=0.5)


def test_on_a_folder_with_frozen_convolutions_it_sweeps_the_cached_activations(tmp_path):
    from keras_alexnet.datasets import generate_shapes

    shapes = generate_shapes(tmp_path / "shapes", per_class=6, size=72, seed=0)
    result = lr_find_on_folder(
        shapes, recipe="frozen-features", architecture="tiny", weights=None, batch_size=8, steps=30, verbose=False
    )
    assert 1e-7 <= result.valley <= 10 and len(result.losses) >= 3
    # With class weights, cached and on images (fine-tune-all caches nothing): each batch carries its weights.
    for recipe in ("frozen-features", "fine-tune-all"):
        weighted = lr_find_on_folder(
            shapes,
            recipe=recipe,
            architecture="tiny",
            weights=None,
            batch_size=8,
            steps=5,
            verbose=False,
            class_weight={"star": 3.0},
        )
        assert np.all(np.isfinite(weighted.raw_losses))


def test_a_schedule_or_an_uncompiled_model_is_refused():
    model, x, y = _problem()
    with pytest.raises(ValueError, match="needs a compiled model"):
        lr_find(model, [(x, y)])
    model.compile(keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)), "mse")
    with pytest.raises(ValueError, match="constant learning rate"):
        lr_find(model, [(x, y)])


def test_cli_lr_find_prints_the_suggestion_and_writes_the_plot(tmp_path, capsys):
    from keras_alexnet.cli import main
    from keras_alexnet.datasets import generate_shapes

    shapes = generate_shapes(tmp_path / "shapes", per_class=6, size=72, seed=0)
    plot = tmp_path / "lr.png"
    args = ["lr-find", "--data", str(shapes), "--architecture", "tiny", "--weights", "none"]
    assert main([*args, "--batch-size", "8", "--steps", "30", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "suggested base learning rate" in out and "keras-alexnet train" in out and plot.exists()


@pytest.mark.slow
def test_one_cycle_training_follows_the_schedule_and_plots_the_rate(tmp_path):
    import json

    from keras_alexnet.datasets import generate_shapes
    from keras_alexnet.training import train

    shapes = generate_shapes(tmp_path / "shapes", per_class=6, size=72, seed=0)
    result = train(
        shapes,
        recipe="fine-tune-all",
        architecture="tiny",
        weights=None,
        epochs=3,
        batch_size=8,
        learning_rate=1e-3,
        lr_schedule="one-cycle",
        run_dir=tmp_path / "run",
        verbose=0,
    )
    rates = json.loads((tmp_path / "run" / "history.json").read_text())["learning_rate"]
    peak = int(np.argmax(rates))
    assert max(rates) == pytest.approx(1e-3, rel=0.05) and 0 < peak < len(rates) - 1
    assert rates[-1] < 1e-5 and rates[0] < 1e-4  # from max/25 up, then down to max/25e4
    assert result.options.lr_schedule == "one-cycle"
