"""Class weights for imbalanced data, applied as per-example weights in the input pipeline.

Per-example weights (a third element of each batch, Keras's ``sample_weight``) rather than
``model.fit(class_weight=...)``: they travel with the batches, so they work the same for
image and cached-activation pipelines, both stages of a two-stage recipe, ``lr_find`` and
``tf.distribute``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def class_weights(choice, labels, class_names):
    """One weight per class, or None for ``"none"``.

    ``"auto"``: scikit-learn's ``"balanced"``, ``n / (classes * count)``, so every class weighs
    as much in the loss as if the classes were equal in size (a weighted mean of 1 over the
    images). A dict maps class names (or indices) to weights; a class it leaves out weighs 1.
    """
    if choice is None or (isinstance(choice, str) and choice == "none"):
        return None
    labels = np.asarray(labels)
    classes = len(class_names)
    if isinstance(choice, str) and choice == "auto":
        counts = np.bincount(labels, minlength=classes).astype(np.float64)
        present = counts > 0
        weights = np.ones(classes)
        weights[present] = len(labels) / (present.sum() * counts[present])
        return weights.astype(np.float32)
    if isinstance(choice, dict):
        weights = np.ones(classes, np.float32)
        for key, weight in choice.items():
            if isinstance(key, str) and key in class_names:
                index = class_names.index(key)
            elif isinstance(key, (int, np.integer)) or (isinstance(key, str) and key.isdigit()):
                index = int(key)
                if not 0 <= index < classes:
                    raise ValueError(f"class_weight names class index {index}; the data has {classes} classes.")
            else:
                raise ValueError(f"class_weight names {key!r}, which is not one of the classes {class_names}.")
            weights[index] = float(weight)
        return weights
    raise ValueError(f"class_weight={choice!r}: use 'none', 'auto' or a dict from class to weight.")


def weighted(ds, weights):
    """``ds`` of (x, label) batches as (x, label, weight of the label's class); ``ds`` when ``weights`` is None."""
    if weights is None:
        return ds
    table = tf.constant(np.asarray(weights, np.float32))
    return ds.map(lambda x, y: (x, y, tf.gather(table, tf.cast(y, tf.int32))))
