"""The two-stage ``fine-tune`` recipe (fastai's ``fine_tune``): head first, then everything."""

import json

import keras
import numpy as np
import pytest
from conftest import TINY as TINY_NETWORK

from keras_alexnet.datasets import ImageFolder
from keras_alexnet.optimizers.schedules import OneCycle
from keras_alexnet.training import TrainingOptions, train
from keras_alexnet.transfer import discriminative_factors

# report=False: the report has its own tests (test_report.py); here it would only cost time.
TINY = {**TINY_NETWORK, "val_split": 0.3, "verbose": 0}


SHAPES = {"per_class": 8, "size": 72, "seed": 2}  # conftest.shapes_dir


class Watch(keras.callbacks.Callback):
    """Records conv1's kernel and the trainable count at each epoch's end."""

    def __init__(self):
        super().__init__()
        self.conv1, self.trainable = [], []

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        self.conv1.append(model.get_layer("conv1").kernel.numpy().copy())
        self.trainable.append(len(model.trainable_weights))


class Crash(keras.callbacks.Callback):
    """Stands in for a kill at the start of epoch ``at`` (0-based, counted over both stages)."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_stage_one_keeps_the_convolutions_and_stage_two_moves_them_with_the_spread(shapes_dir, tmp_path):
    watch = Watch()
    result = train(shapes_dir, run_dir=tmp_path / "run", recipe="fine-tune", epochs=3, callbacks=[watch], **TINY)
    model = result.model
    assert watch.trainable[0] < watch.trainable[1] == watch.trainable[2]  # stage 1: the head only
    assert not np.array_equal(watch.conv1[0], watch.conv1[1]) and not np.array_equal(watch.conv1[1], watch.conv1[2])
    spread = discriminative_factors(model, ratio=100)
    assert spread["conv1"] == pytest.approx(0.01) and spread["fc8"] == pytest.approx(1.0)
    for layer, factor in spread.items():  # the stage-2 optimizer applies exactly the spread
        for variable in model.get_layer(layer).trainable_weights:
            assert model.optimizer.factor_of(variable.path)[0] == pytest.approx(factor), variable.path
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    steps = history["iterations_per_epoch"]
    assert [mark["label"] for mark in history["stages"]] == ["stage 1: head only", "stage 2: all layers"]
    assert history["stages"][1]["iteration"] == steps  # after freeze_epochs=1 epoch
    # Stage 1: one-cycle peaking at the end (pct_start 0.99); stage 2: a new one-cycle at half the rate,
    # from a fifth of it (fastai's fine_tune: div=5).
    first = OneCycle(2e-4, max(steps, 2), pct_start=0.99)
    second = OneCycle(1e-4, 2 * steps, div_factor=5.0)
    expected = [float(first(i)) for i in range(steps)] + [float(second(i)) for i in range(2 * steps)]
    np.testing.assert_allclose(history["learning_rate"], expected, rtol=1e-6)
    assert not (tmp_path / "run" / "backup").exists()


@pytest.mark.slow
def test_stage_one_weights_stay_frozen(shapes_dir, tmp_path):
    watch = Watch()
    initial = {}

    class Start(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            if not initial:
                initial["conv1"] = self.model.get_layer("conv1").kernel.numpy().copy()

    train(
        shapes_dir,
        run_dir=tmp_path / "run",
        recipe="fine-tune",
        epochs=4,
        freeze_epochs=2,
        callbacks=[Start(), watch],
        **TINY,
    )
    np.testing.assert_array_equal(watch.conv1[0], initial["conv1"])
    np.testing.assert_array_equal(watch.conv1[1], initial["conv1"])
    assert not np.array_equal(watch.conv1[2], initial["conv1"])


@pytest.fixture(scope="module")
def uninterrupted(shapes_dir, tmp_path_factory):
    """The final weights of an uninterrupted run, per options (one run for the cases that share them)."""
    found = {}

    def weights(options):
        key = json.dumps(options, sort_keys=True)
        if key not in found:
            whole = train(shapes_dir, run_dir=tmp_path_factory.mktemp("whole"), **options)
            found[key] = [(w.path, w.numpy()) for w in whole.model.weights]
        return found[key]

    return weights


@pytest.mark.parametrize(
    "killed_at, cycle_momentum",
    # Killed in stage 2, the run that cycles momentum also checks what a plain stage 2 would: both
    # restore the stage's optimizer from the backup (the cycling one its momentum schedule as well).
    [
        (1, None),
        (2, None),
        (3, True),
    ],
    ids=["in-stage-1", "at-the-switch", "in-stage-2-cycling-momentum"],
)
@pytest.mark.slow
def test_resume_across_the_switch_ends_with_the_uninterrupted_runs_weights(
    shapes_dir, tmp_path, killed_at, cycle_momentum, uninterrupted
):
    options = {**TINY, "recipe": "fine-tune", "epochs": 4, "freeze_epochs": 2, "seed": 5}
    options["cycle_momentum"] = cycle_momentum
    whole = uninterrupted(options)
    run = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train(shapes_dir, run_dir=run, callbacks=[Crash(killed_at)], **options)
    resumed = train(shapes_dir, run_dir=run, resume=True, **options)
    for (path, a), b in zip(whole, resumed.model.weights):
        np.testing.assert_allclose(b.numpy(), a, rtol=1e-5, atol=1e-6, err_msg=path)
    log = (run / "log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in log[1:]] == ["0", "1", "2", "3"]
    marks = json.loads((run / "history.json").read_text())["stages"]
    assert [mark["label"] for mark in marks] == ["stage 1: head only", "stage 2: all layers"]


def test_two_stage_options_are_checked():
    with pytest.raises(ValueError, match="freeze_epochs"):
        TrainingOptions(recipe="fine-tune", epochs=1)
    with pytest.raises(ValueError, match="one-cycle"):
        TrainingOptions(recipe="fine-tune", lr_schedule="cosine")
    with pytest.raises(ValueError, match="as a number"):
        TrainingOptions(recipe="fine-tune", learning_rate=OneCycle(1e-3, 10))
    assert TrainingOptions(recipe="fine-tune").two_stage and not TrainingOptions().two_stage


@pytest.mark.slow
def test_fine_tune_stage_one_runs_on_cached_activations(shapes_dir, tmp_path):
    runs = {}
    for cached in (False, True):
        result = train(
            shapes_dir, run_dir=tmp_path / str(cached), recipe="fine-tune", epochs=2, cache_activations=cached, **TINY
        )
        assert result.cached_activations == cached
        runs[cached] = result.history["loss"]
    np.testing.assert_allclose(runs[True], runs[False], rtol=1e-3, atol=1e-4)


class MomentumWatch(keras.callbacks.Callback):
    """Records the momentum schedule of the optimizer each epoch trains with."""

    def __init__(self):
        super().__init__()
        self.schedules = []

    def on_epoch_end(self, epoch, logs=None):
        schedule = self.model.optimizer.momentum_schedule
        self.schedules.append(None if schedule is None else schedule.get_config())


@pytest.mark.slow
def test_cycle_momentum_runs_a_momentum_cycle_in_each_stage(shapes_dir, tmp_path):
    """As fastai's fine_tune: Adam's beta_1 cycles with each one-cycle, 0.95 -> 0.85 -> 0.95, stage by stage."""
    options = {**TINY, "recipe": "fine-tune", "epochs": 3, "freeze_epochs": 1}
    watch = MomentumWatch()
    cycled = train(shapes_dir, run_dir=tmp_path / "cycled", cycle_momentum=True, callbacks=[watch], **options)
    training_images, _ = ImageFolder.read(shapes_dir).split(0.7, seed=0)
    steps = -(-len(training_images) // TINY["batch_size"])
    first, second = watch.schedules[0], watch.schedules[1]
    assert watch.schedules[1] == watch.schedules[2]
    assert (first["total_steps"], first["pct_start"]) == (1 * steps, 0.99)
    assert (second["total_steps"], second["pct_start"]) == (2 * steps, 0.3)
    assert (first["max_momentum"], first["base_momentum"]) == (0.95, 0.85)
    plain = train(shapes_dir, run_dir=tmp_path / "plain", **options)  # the default: a constant beta_1
    assert not np.allclose(cycled.history["loss"], plain.history["loss"])  # the momentum changed the steps


@pytest.mark.parametrize(
    "change, message",
    [
        ({"recipe": "frozen-features"}, "use lr_schedule='one-cycle'"),
        ({"lr_schedule": "one-cycle", "optimizer": "rmsprop"}, "needs a solver with momentum"),
        ({"recipe": "fine-tune", "optimizer": "sgd"}, "needs a solver with momentum"),
    ],
)
def test_cycle_momentum_needs_one_cycle_and_a_momentum(change, message):
    with pytest.raises(ValueError, match=message):
        TrainingOptions(cycle_momentum=True, **change)


def test_momentum_cycles_only_when_asked_or_when_the_recipe_says_so():
    import dataclasses

    from keras_alexnet.transfer import RECIPES

    assert not TrainingOptions(recipe="fine-tune").momentum_cycles
    assert TrainingOptions(recipe="fine-tune", cycle_momentum=True).momentum_cycles
    cycling = dataclasses.replace(RECIPES["fine-tune"], name="fine-tune-cycling", cycle_momentum=True)
    assert TrainingOptions(recipe=cycling).momentum_cycles
    assert not TrainingOptions(recipe=cycling, optimizer="sgd").momentum_cycles  # no momentum to cycle
    assert not TrainingOptions(recipe="frozen-features", lr_schedule="one-cycle").momentum_cycles
