"""torchvision AlexNet -> ONNX -> Keras weights, with a parity report.

A pipeline of small steps, each usable alone:
``load_state_dict`` -> ``torchvision_alexnet`` -> ``export_onnx`` ->
``keras_model_from_onnx`` -> ``save_weights_atomic`` -> ``parity_report``.
``convert`` runs them all. Needs the ``convert`` extra (torch, torchvision,
onnxruntime; onnx2tf for the optional second check).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from keras_alexnet._utils.files import atomic_write, check_writable, cleanup_on_signals
from keras_alexnet.architecture import ALEXNET
from keras_alexnet.conversion.parity import DEFAULT_MAX_REL, ParityRow, parity_inputs, parity_report, worst_difference
from keras_alexnet.model import AlexNet
from keras_alexnet.weights import IMAGENET, keras_cache_dir
from keras_alexnet.weights.onnx_reader import read_torch_layers
from keras_alexnet.weights.state_dicts import FEATURE_KEYS, import_torch, load_state_dict

__all__ = [
    "FEATURE_KEYS",
    "ConversionResult",
    "ParityError",
    "convert",
    "default_output",
    "export_onnx",
    "keras_model_from_onnx",
    "load_state_dict",
    "save_weights_atomic",
    "torchvision_alexnet",
]


class ParityError(ValueError):
    """The converted Keras model does not reproduce PyTorch's outputs; nothing was written."""

    def __init__(self, message, rows):
        super().__init__(message)
        self.rows = rows


def torchvision_alexnet(state, features_only):
    """torchvision's AlexNet (or its ``features`` alone) holding ``state``, eval mode."""
    torch, torchvision = import_torch()
    classes = 1000 if features_only else int(state["classifier.6.weight"].shape[0])
    model = torchvision.models.alexnet(weights=None, num_classes=classes)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    model.load_state_dict(tensors, strict=not features_only)
    return (model.features if features_only else model).eval()


def export_onnx(torch_model, path, image_size=224):
    """Export to ONNX with a dynamic batch dimension (input name ``image``)."""
    torch, _ = import_torch()
    example = (torch.zeros(2, 3, image_size, image_size),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            torch_model,
            example,
            str(path),
            input_names=["image"],
            output_names=["output"],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
            dynamo=True,
            verbose=False,
        )
    return Path(path)


def keras_model_from_onnx(path):
    """A Keras AlexNet (logits out) filled from an ONNX export of torchvision's."""
    layers = read_torch_layers(path)
    if ALEXNET.output_name not in layers:
        return AlexNet(weights=path, include_top=False)
    classes = layers[ALEXNET.output_name].weight.shape[0]
    return AlexNet(weights=path, classes=classes, classifier_activation=None)


def save_weights_atomic(model, out):
    """``model.save_weights(out)`` through a temporary file and an atomic rename."""
    return atomic_write(out, model.save_weights)


@dataclasses.dataclass
class ConversionResult:
    """What ``convert`` wrote and measured."""

    weights_path: Path
    features_only: bool
    classes: int | None
    parity: list[ParityRow]
    seconds: float
    onnx_path: Path | None = None


def default_output(source, features_only):
    """Where a conversion lands when ``out`` is not given: the Keras cache."""
    name = os.path.basename(os.fspath(source))
    if source == "torchvision" or name == IMAGENET.url_filename:
        return keras_cache_dir() / IMAGENET.filename
    stem = name.split(".")[0].replace(":", "-") or "alexnet"
    return keras_cache_dir() / f"{stem}{'_features' if features_only and 'features' not in stem else ''}.weights.h5"


def convert(
    source="torchvision", out=None, check_onnx2tf=False, keep_onnx=None, progress=print, max_rel=DEFAULT_MAX_REL
):
    """Convert torchvision AlexNet weights to a Keras ``.weights.h5`` through ONNX.

    The weights are written to a temporary file next to ``out`` and renamed onto it
    only after the parity check passes: a failed check (a relative difference above
    ``max_rel``, or any NaN) raises ``ParityError`` and leaves nothing behind.

    Args:
        source: see ``load_state_dict``.
        out: output path; default the Keras cache (``alexnet_imagenet.weights.h5``
            for torchvision's ImageNet weights, which ``AlexNet(weights="imagenet")``
            then finds).
        check_onnx2tf: also convert with onnx2tf and report its difference.
        keep_onnx: path to keep the intermediate ONNX file at.
        progress: called with one line per step.
    """
    if out is not None and not os.fspath(out).endswith(".weights.h5"):
        raise ValueError(
            f"--out {os.fspath(out)!r} must end in .weights.h5 (Keras's weights format), e.g. mine.weights.h5."
        )
    # Before the half minute of work: the folder the weights go to must take a file.
    check_writable(
        Path(out).parent if out else keras_cache_dir(),
        "the converted weights",
        "choose another file with --out (Python: out=...), or another Keras cache folder with KERAS_HOME.",
    )
    start = time.perf_counter()

    def step(message):
        progress(f"[{time.perf_counter() - start:6.1f}s] {message}")

    step(f"loading state dict from {source}")
    state, features_only = load_state_dict(source, progress=step)
    torch_model = torchvision_alexnet(state, features_only)
    # A kill (SIGTERM/SIGHUP) mid-conversion removes the 234 MB ONNX work folder and any partial file.
    with cleanup_on_signals(), tempfile.TemporaryDirectory(prefix="keras-alexnet-") as workdir:
        onnx_path = Path(keep_onnx) if keep_onnx else Path(workdir) / "alexnet.onnx"
        step(f"exporting torchvision AlexNet{' features' if features_only else ''} to ONNX")
        export_onnx(torch_model, onnx_path)
        step("reading ONNX graph into Keras")
        keras_model = keras_model_from_onnx(onnx_path)
        out = Path(out) if out else default_output(source, features_only)
        step("parity check: PyTorch vs ONNX Runtime vs Keras" + (" vs onnx2tf" if check_onnx2tf else ""))
        rows = parity_report(torch_model, onnx_path, keras_model, parity_inputs(), check_onnx2tf, workdir)
        for row in rows:
            progress(f"  {row}")
        worst = worst_difference(rows)
        if not worst <= max_rel:
            raise ParityError(
                f"parity check failed: max relative difference {worst:.2e} > {max_rel:.0e}; {out} was not written.",
                rows,
            )
        step(f"writing {out}")
        save_weights_atomic(keras_model, out)
    seconds = time.perf_counter() - start
    step(f"done in {seconds:.1f}s")
    classes = None if features_only else int(state[ALEXNET.state_dict_keys[ALEXNET.output_name][0]].shape[0])
    return ConversionResult(out, features_only, classes, rows, seconds, Path(keep_onnx) if keep_onnx else None)
