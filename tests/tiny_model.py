"""A three-layer model with learning-rate factors, shared by the distribution checks."""

import keras

from keras_alexnet.optimizers import with_lr_factors

FACTORS = {"a": 0.0, "b": (3.0, 0.5), "c": 20.0}


def build_factored():
    """Dense a -> b -> c, seeded, compiled with SGD(0.05, momentum 0.9) and ``FACTORS``."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,))
    x = keras.layers.Dense(5, activation="tanh", name="a")(inp)
    x = keras.layers.Dense(4, activation="tanh", name="b")(x)
    model = keras.Model(inp, keras.layers.Dense(3, name="c")(x))
    optimizer = with_lr_factors(keras.optimizers.SGD(0.05, momentum=0.9), FACTORS, model)
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def linear_head(model, features, classes, activation, architecture):
    """A head without dropout or batch norm (average-pooled pool5, then the classes): its training is the same
    on several workers as on one, to float32's rounding."""
    from keras_alexnet.model import output_layer

    pooled = keras.layers.GlobalAveragePooling2D(name="head_avg_pool")(features)
    return output_layer(classes, features.shape[-1], activation, architecture)(pooled)
