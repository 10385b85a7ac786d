"""Naming layers the Keras way, the torchvision way, or by range.

``resolve_layers(model, "classifier.6")`` -> ``["fc8"]``;
``resolve_layers(model, "features[0:5]")`` -> ``["conv1", "pool1", "conv2"]``;
``layer_range(model, up_to="conv3")`` -> every layer from the input to conv3.
"""

from __future__ import annotations

import re

from keras_alexnet.architecture import ALEXNET

TORCHVISION_MODULES = ALEXNET.torchvision_modules
GROUP_SIZES = ALEXNET.group_sizes
_SLICE = re.compile(r"^(features|classifier)\[(-?\d*):(-?\d*)\]$")


def _torch_paths(spec):
    if spec in GROUP_SIZES:
        return [f"{spec}.{i}" for i in range(GROUP_SIZES[spec])]
    match = _SLICE.match(spec)
    if match:
        group, start, stop = match.groups()
        indices = range(GROUP_SIZES[group])[slice(int(start) if start else None, int(stop) if stop else None)]
        if not indices:
            raise ValueError(f"{spec!r} is an empty slice of {group} (0..{GROUP_SIZES[group] - 1}): nothing to select.")
        return [f"{group}.{i}" for i in indices]
    if spec in TORCHVISION_MODULES:
        return [spec]
    return None


def _unique(names):
    return list(dict.fromkeys(names))


def resolve_layers(model, spec, allow_paths=False):
    """Keras layer names for a Keras name, a torchvision path/slice/group, or a list of them.

    Raises ``ValueError`` naming the unknown entry and what is accepted. With
    ``allow_paths`` an entry that is neither is returned as it is (a variable path
    or pattern, for ``keras_alexnet.optimizers.with_lr_factors``).
    """
    if isinstance(spec, (list, tuple)):
        return _unique(name for item in spec for name in resolve_layers(model, item, allow_paths))
    names = {layer.name for layer in model.layers}
    if spec in names:
        return [spec]
    paths = _torch_paths(str(spec).replace(" ", ""))
    if paths is not None:
        mapped = [TORCHVISION_MODULES[p] for p in paths if TORCHVISION_MODULES.get(p) in names]
        if mapped:
            return _unique(mapped)
        raise ValueError(f"{spec!r} names torchvision modules that this model does not have (its head was replaced?).")
    if allow_paths:
        return [spec]
    weighted = [layer.name for layer in model.layers if layer.weights]
    raise ValueError(
        f"unknown layer {spec!r}. Use a layer name ({', '.join(weighted)}), a torchvision "
        "path (features.0 .. features.12, avgpool, classifier.0 .. classifier.6), a slice "
        "such as features[0:5], or a group: features, classifier."
    )


def layer_range(model, up_to=None, start=None):
    """Names of the layers from ``start`` (default the first) to ``up_to`` (default the last), inclusive."""
    order = [layer.name for layer in model.layers]
    first = order.index(resolve_layers(model, start)[0]) if start else 0
    last = order.index(resolve_layers(model, up_to)[-1]) if up_to else len(order) - 1
    if first > last:
        raise ValueError(f"start={start!r} comes after up_to={up_to!r} in the model.")
    return order[first : last + 1]
