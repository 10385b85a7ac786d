"""Learning-rate schedules: OneCycle equals PyTorch's OneCycleLR at every step; they serialize."""

import keras
import numpy as np
import pytest

from keras_alexnet.training.schedules import OneCycle, cosine_with_warmup


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
