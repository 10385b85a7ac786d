"""Everything Keras needs to load what this package saves.

Importing this module imports every module that registers a Keras class of ours
(``@keras.saving.register_keras_serializable(package="keras_alexnet")``): the layers,
the metrics, the preprocessing layer, the factored optimizers and the schedules. ``import keras_alexnet``
arranges for it to be imported as soon as Keras is (``_utils.keras_hook``), so
``keras.models.load_model`` reads any model the package saved without more.
"""

from __future__ import annotations

from keras_alexnet import layers, metrics, preprocessing
from keras_alexnet.optimizers import factors, schedules

REGISTERING_MODULES = (layers, metrics, preprocessing, factors, schedules)
