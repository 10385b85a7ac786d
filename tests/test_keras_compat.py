"""Every private Keras attribute the package relies on exists on the installed Keras."""

import keras
import pytest

from keras_alexnet import _keras_compat
from keras_alexnet.optimizers import with_lr_factors


def _built(optimizer):
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2, name="d")(inp))
    optimizer = with_lr_factors(optimizer, {"d": 2.0}, model)
    optimizer.build(model.trainable_variables)
    return optimizer, model


OWNERS = {
    # use_ema: the moving averages exist only on an optimizer that keeps them
    "optimizer": lambda: _built(keras.optimizers.SGD(0.1, momentum=0.9, use_ema=True))[0],
    "adam": lambda: _built(keras.optimizers.Adam(0.1))[0],
    "layer": lambda: _built(keras.optimizers.SGD(0.1))[1].get_layer("d"),
    "backup_and_restore": lambda: keras.callbacks.BackupAndRestore("/tmp/unused-backup-dir"),
}
CASES = [(owner, name) for owner, names in _keras_compat.PRIVATE_ATTRIBUTES.items() for name in names]


@pytest.mark.parametrize("owner, attribute", CASES, ids=[f"{o}.{a}" for o, a in CASES])
def test_private_attribute_exists(owner, attribute):
    assert hasattr(OWNERS[owner](), attribute), f"Keras {keras.__version__} has no {owner}.{attribute}"


def test_accessors_return_what_the_package_expects():
    optimizer, model = _built(keras.optimizers.Adam(0.1))
    variables = _keras_compat.optimizer_variables(optimizer)
    assert [v.path for v in variables] == [v.path for v in model.trainable_variables]
    index = _keras_compat.variable_index(optimizer, variables[1])
    assert index == 1
    m, v = _keras_compat.adam_slots(optimizer, index)
    assert m.shape == v.shape == variables[1].shape
    sgd, _ = _built(keras.optimizers.SGD(0.1, momentum=0.9))
    assert _keras_compat.sgd_momentum(sgd, 0).shape == _keras_compat.optimizer_variables(sgd)[0].shape
    assert _keras_compat.inbound_node_count(model.get_layer("d")) == 1
    averaged, _ = _built(keras.optimizers.SGD(0.1, use_ema=True))
    pairs = _keras_compat.moving_averages(averaged)
    assert [variable.path for variable, _ in pairs] == [v.path for v in _keras_compat.optimizer_variables(averaged)]
    state = _keras_compat.BackupState(keras.callbacks.BackupAndRestore("/tmp/unused-backup-dir"))
    assert str(state.metadata_path).endswith("training_metadata.json")


def test_keras_is_inside_the_declared_bounds():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    spec = next(d for d in project["dependencies"] if d.startswith("keras"))
    upper = tuple(int(x) for x in spec.split("<")[1].split("."))
    assert _keras_compat.keras_version()[: len(upper)] < upper


def test_trainable_by_design_leaves_out_batch_norm_statistics():
    layer = keras.layers.BatchNormalization()
    layer.build((None, 4))
    layer.trainable = False
    assert [v.name for v in _keras_compat.trainable_by_design(layer)] == ["gamma", "beta"]
