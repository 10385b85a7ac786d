"""Shared checks that every model this package builds must pass (keras-hub's run_model_saving_test)."""

import keras
import numpy as np


def run_model_saving_test(model, inputs, directory, *, rtol=1e-6, atol=1e-7):
    """Save ``model`` as .keras, load it in this process, and check it is the same model.

    Same layer names and classes, the same weights bit for bit, the same outputs on
    ``inputs`` (inference mode) and, when compiled, the same optimizer config.
    Returns the loaded model.
    """
    path = directory / f"{model.name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # safe_mode: no Lambda layers
    assert [(layer.name, type(layer)) for layer in loaded.layers] == [
        (layer.name, type(layer)) for layer in model.layers
    ]
    assert len(loaded.weights) == len(model.weights)
    for saved, restored in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy(), err_msg=saved.path)
    np.testing.assert_allclose(loaded(inputs, training=False), model(inputs, training=False), rtol=rtol, atol=atol)
    if getattr(model, "optimizer", None) is not None and model.compiled:
        assert loaded.optimizer.get_config() == model.optimizer.get_config()
    return loaded
