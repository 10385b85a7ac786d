"""The layer table: MATLAB analyzeNetwork's learnable-parameter view, with factors."""

from __future__ import annotations

import dataclasses

from keras_alexnet.architecture import ALEXNET
from keras_alexnet.optimizers import factors_of


@dataclasses.dataclass
class LayerRow:
    """One row of ``layer_table``: MATLAB analyzeNetwork's learnable-parameter view."""

    name: str
    torchvision: str
    kind: str
    output_shape: tuple
    params: int
    trainable: bool
    weight_lr_factor: float | None
    bias_lr_factor: float | None
    weight_l2_factor: float | None
    bias_l2_factor: float | None


def _torch_paths_by_layer():
    paths = {}
    for path, layer in ALEXNET.torchvision_modules.items():
        paths.setdefault(layer, []).append(path)
    return {layer: ",".join(p) for layer, p in paths.items()}


def layer_table(model, optimizer=None):
    """Every layer with its parameters, trainable state and effective factors.

    A frozen variable shows learning-rate factor 0, as in MATLAB. Factors come
    from ``optimizer`` (default: the model's compiled optimizer).
    """
    optimizer = optimizer or getattr(model, "optimizer", None)
    torch_paths = _torch_paths_by_layer()
    rows = []
    for layer in model.layers:
        factors = {}
        for variable in layer.weights:
            kind = "bias" if len(variable.shape) == 1 else "weight"
            lr, l2 = factors_of(optimizer, variable.path)
            active = layer.trainable and variable.trainable
            factors[kind] = (lr if active else 0.0, l2)
        shape = layer.output.shape if hasattr(layer, "output") else ()
        rows.append(
            LayerRow(
                name=layer.name,
                torchvision=torch_paths.get(layer.name, ""),
                kind=type(layer).__name__,
                output_shape=tuple(shape),
                params=layer.count_params() if layer.built else 0,
                trainable=bool(layer.trainable and any(v.trainable for v in layer.weights)) if layer.weights else False,
                weight_lr_factor=factors.get("weight", (None, None))[0],
                bias_lr_factor=factors.get("bias", (None, None))[0],
                weight_l2_factor=factors.get("weight", (None, None))[1],
                bias_l2_factor=factors.get("bias", (None, None))[1],
            )
        )
    return rows


def format_layer_table(rows):
    """``layer_table`` rows as aligned text."""

    def num(value):
        return "-" if value is None else f"{value:g}"

    header = ("layer", "torchvision", "type", "output", "params", "train", "W lr", "B lr", "W L2", "B L2")
    lines = [
        (
            r.name,
            r.torchvision,
            r.kind,
            "x".join("?" if d is None else str(d) for d in r.output_shape[1:]),
            f"{r.params:,}",
            "yes" if r.trainable else "no",
            num(r.weight_lr_factor),
            num(r.bias_lr_factor),
            num(r.weight_l2_factor),
            num(r.bias_l2_factor),
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)]
    text = [("  ".join(str(x).ljust(w) for x, w in zip(row, widths))).rstrip() for row in (header, *lines)]
    total = sum(r.params for r in rows)
    trainable = sum(r.params for r in rows if r.trainable)
    text.append(f"total params {total:,}, trainable {trainable:,}")
    return "\n".join(text)


def print_layer_table(model, optimizer=None):
    """Print ``layer_table`` (like MATLAB's analyzeNetwork) and return its rows."""
    rows = layer_table(model, optimizer)
    print(format_layer_table(rows))
    return rows
