"""Learning-rate schedules: OneCycle equals PyTorch's OneCycleLR at every step; they serialize."""

import keras
import numpy as np
import pytest

from keras_alexnet.optimizers.schedules import OneCycle, cosine_with_warmup


@pytest.mark.torch
@pytest.mark.parametrize("total_steps, pct_start", [(50, 0.3), (37, 0.25), (10, 0.99), (200, 0.1)])
def test_one_cycle_equals_pytorch_at_every_step(torch_modules, total_steps, pct_start):
    torch, _ = torch_modules
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.01, total_steps=total_steps, pct_start=pct_start, anneal_strategy="cos", three_phase=False
    )
    expected = []
    for _ in range(total_steps):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    schedule = OneCycle(0.01, total_steps, pct_start=pct_start)
    got = [float(schedule(step)) for step in range(total_steps)]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)


def test_one_cycle_drives_a_factored_optimizer_and_serializes(tmp_path):
    from keras_alexnet.optimizers import with_lr_factors

    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2, name="d")(inp))
    schedule = OneCycle(0.05, 20)
    optimizer = with_lr_factors(keras.optimizers.SGD(schedule), {"d": 2.0}, model)
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(clone.learning_rate, OneCycle) or isinstance(clone._learning_rate, OneCycle)
    assert clone.lr_factors == {"d/kernel": 2.0, "d/bias": 2.0}
    assert OneCycle.from_config(schedule.get_config()).get_config() == schedule.get_config()


def test_cosine_with_warmup_rises_then_falls():
    schedule = cosine_with_warmup(1e-3, total_steps=100, warmup_fraction=0.1)
    values = [float(schedule(step)) for step in range(100)]
    assert values[0] == 0.0 and values[10] == pytest.approx(1e-3) and values[-1] < 1e-5
    assert all(a <= b for a, b in zip(values[:10], values[1:11]))


@pytest.mark.parametrize("bad, message", [({"total_steps": 1}, "total_steps=1"), ({"pct_start": 1.0}, "pct_start=1.0")])
def test_bad_one_cycle_settings_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        OneCycle(**{"max_lr": 0.01, "total_steps": 10, **bad})


def _pytorch_one_cycle(torch, optimizer, total_steps, pct_start, read):
    """What ``read(param_group)`` is at each of ``total_steps`` steps of OneCycleLR (cycle_momentum on)."""
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.01, total_steps=total_steps, pct_start=pct_start, cycle_momentum=True
    )
    values = []
    for _ in range(total_steps):
        values.append(read(optimizer.param_groups[0]))
        optimizer.step()
        scheduler.step()
    return values


@pytest.mark.torch
@pytest.mark.parametrize("total_steps, pct_start", [(50, 0.3), (37, 0.25), (10, 0.99)])
def test_one_cycle_momentum_equals_pytorch_for_sgd_and_adam(torch_modules, total_steps, pct_start):
    torch, _ = torch_modules
    parameter = torch.nn.Parameter(torch.zeros(1))
    sgd = _pytorch_one_cycle(
        torch, torch.optim.SGD([parameter], lr=0.1, momentum=0.9), total_steps, pct_start, lambda g: g["momentum"]
    )
    adam = _pytorch_one_cycle(torch, torch.optim.Adam([parameter]), total_steps, pct_start, lambda g: g["betas"][0])
    schedule = OneCycle(0.01, total_steps, pct_start=pct_start).momentum()
    got = [float(schedule(step)) for step in range(total_steps)]
    np.testing.assert_allclose(got, sgd, rtol=1e-6)
    np.testing.assert_allclose(got, adam, rtol=1e-6)
    assert got[0] == pytest.approx(0.95) and min(got) < 0.87  # high while the rate is low, low at its peak


def _least_squares():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 3)).astype("float32")
    return x, y, rng.normal(size=(4, 3)).astype("float32")


@pytest.mark.torch
@pytest.mark.parametrize("jit", [False, True])
def test_adam_with_one_cycle_rate_and_beta_1_equals_pytorch_step_for_step(torch_modules, jit):
    """fastai's fit_one_cycle with Adam: the rate and beta_1 both cycle; weights match torch.optim.Adam."""
    from keras_alexnet.optimizers import with_momentum_schedule

    torch, _ = torch_modules
    x, y, w0 = _least_squares()
    steps = 24
    weight = torch.nn.Parameter(torch.tensor(w0))
    reference = torch.optim.Adam([weight], lr=0.01, eps=1e-8)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(reference, max_lr=0.05, total_steps=steps, cycle_momentum=True)
    expected = []
    for _ in range(steps):
        reference.zero_grad()
        ((torch.tensor(x) @ weight - torch.tensor(y)) ** 2).mean().backward()
        reference.step()
        scheduler.step()
        expected.append(weight.detach().numpy().copy())

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, use_bias=False, name="w")(inputs))
    model.get_layer("w").kernel.assign(w0)
    rate = OneCycle(0.05, steps)
    # Keras adds epsilon before the bias correction of sqrt(v), PyTorch after: eps / sqrt(1 - beta_2^t) matches it.
    optimizer = with_momentum_schedule(keras.optimizers.Adam(rate, epsilon=1e-8), rate.momentum())
    model.compile(optimizer, "mse", jit_compile=jit)
    got = []
    for _ in range(steps):
        model.train_on_batch(x, y)
        got.append(model.get_layer("w").kernel.numpy().copy())
    for step, (ours, theirs) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5, err_msg=f"step {step}")
    assert not np.allclose(got[-1], w0)


def test_sgd_momentum_follows_the_schedule_at_every_step():
    """A constant gradient c: Keras's momentum step is v = m_t v - lr c, w += v, with m_t the schedule's."""
    from keras_alexnet.optimizers import with_momentum_schedule

    steps, c, lr = 12, np.array([1.0, -2.0], "float32"), 0.1
    schedule = OneCycle(0.1, steps).momentum()
    variable = keras.Variable(np.zeros(2, "float32"), name="w")
    optimizer = with_momentum_schedule(keras.optimizers.SGD(lr, momentum=0.9), schedule)
    velocity, weight = np.zeros(2), np.zeros(2)
    for step in range(steps):
        optimizer.apply([keras.ops.convert_to_tensor(c)], [variable])
        velocity = float(schedule(step)) * velocity - lr * c
        weight = weight + velocity
        np.testing.assert_allclose(variable.numpy(), weight, rtol=1e-5, err_msg=f"step {step}")
    constant_velocity, constant_weight = np.zeros(2), np.zeros(2)
    for _ in range(steps):  # a constant momentum of 0.9 ends elsewhere: the schedule moved it
        constant_velocity = 0.9 * constant_velocity - lr * c
        constant_weight = constant_weight + constant_velocity
    assert np.abs(weight - constant_weight).max() > 0.05


def test_a_momentum_schedule_survives_save_and_load(tmp_path):
    from keras_alexnet.optimizers import with_momentum_schedule
    from keras_alexnet.optimizers.schedules import OneCycleMomentum

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="d")(inputs))
    rate = OneCycle(0.05, 20, pct_start=0.25)
    model.compile(with_momentum_schedule(keras.optimizers.SGD(rate, momentum=0.9), rate.momentum(0.8, 0.9)), "mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras").optimizer.momentum_schedule
    assert isinstance(loaded, OneCycleMomentum)
    assert loaded.get_config() == rate.momentum(0.8, 0.9).get_config()


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: keras.optimizers.RMSprop(0.01),
        lambda: keras.optimizers.SGD(0.01),
        lambda: keras.optimizers.Adam(amsgrad=True),
    ],
)
def test_a_momentum_schedule_on_an_optimizer_without_one_is_refused(optimizer):
    from keras_alexnet.optimizers import with_momentum_schedule

    with pytest.raises(ValueError, match="needs SGD with momentum > 0 or Adam/AdamW without amsgrad"):
        with_momentum_schedule(optimizer(), OneCycle(0.01, 10).momentum())
    with pytest.raises(ValueError, match="base_momentum=0.99, max_momentum=0.95"):
        OneCycle(0.01, 10).momentum(0.99, 0.95)
