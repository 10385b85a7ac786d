"""The model file formats keras-alexnet writes and reads: one table, plain data.

Each ``Format`` says its name (``--format``), its file suffix (or that it is a folder), the
function that builds its serving graph (``keras_alexnet.export``'s module for it), the class
that reads it back (``keras_alexnet.deployment``), the largest difference from Keras its
check allows (per quantization), the quantizations it offers and which of them need labelled
images. ``export.export`` and ``deployment.load_classifier`` both go through this table, and the
command line's choices come from it, without loading TensorFlow. Adding a format is one module
in ``export/`` and one row here.
"""

from __future__ import annotations

import dataclasses
import importlib
import zipfile
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Format:
    """One format: where its writer and reader live, and the rules its export is checked by."""

    name: str
    summary: str
    suffix: str | None  # None: a folder
    builder: str | None  # "module:function" building the file (None: the format is only read)
    reader: str  # "module:Class", a deployment.Classifier
    tolerance: dict = dataclasses.field(default_factory=dict)  # quantization (None: float32) -> max |difference|
    labelled: tuple = ()  # quantizations that are checked (and calibrated) on labelled images

    @property
    def quantizations(self):
        """The ``--quantize`` choices this format offers."""
        return tuple(name for name in self.tolerance if name is not None)

    @property
    def writable(self):
        return self.builder is not None


def resolve(path):
    """The object a ``"module:name"`` string names."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


FORMATS = {
    format.name: format
    for format in (
        Format(
            "keras",
            "the Keras model train writes (model.keras)",
            ".keras",
            None,
            "keras_alexnet.deployment:KerasClassifier",
        ),
        Format(
            "savedmodel",
            "TF Serving: encoded or uint8 images of any size in, preprocessing in the graph",
            None,
            "keras_alexnet.export.savedmodel:build",
            "keras_alexnet.deployment:SavedModelClassifier",
            {None: 1e-4},
        ),
        Format(
            "tflite",
            "LiteRT / TFLite: uint8 224x224 crops in, smaller with --quantize",
            ".tflite",
            "keras_alexnet.export.tflite:build",
            "keras_alexnet.deployment:TFLiteClassifier",
            # int8 moves probabilities by up to a quantization step of the softmax's input: its real check is
            # the accuracy gate on labelled images; this bound only catches a broken file.
            {None: 1e-4, "float16": 1e-2, "dynamic": 5e-2, "int8": 0.25},
            labelled=("float16", "dynamic", "int8"),
        ),
        Format(
            "onnx",
            "ONNX Runtime, OpenVINO, OpenCV: uint8 224x224 crops in, any batch",
            ".onnx",
            "keras_alexnet.export.onnx:build",
            "keras_alexnet.deployment:ONNXClassifier",
            {None: 1e-5},
        ),
    )
}


def export_formats():
    """The names ``--format`` takes: the formats keras-alexnet writes."""
    return tuple(name for name, format in FORMATS.items() if format.writable)


def quantizations():
    """Every ``--quantize`` choice, over the formats that offer one."""
    return tuple(dict.fromkeys(q for format in FORMATS.values() for q in format.quantizations))


def format_named(name):
    """The ``Format`` called ``name``, or ``ValueError`` listing them."""
    if name not in FORMATS or not FORMATS[name].writable:
        raise ValueError(f"format {name!r}: use one of {', '.join(export_formats())}.")
    return FORMATS[name]


def format_of(path):
    """The ``Format`` of a model file or folder, or ``ValueError`` saying what is read."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model {path} does not exist (train one with `keras-alexnet train`).")
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return next(format for format in FORMATS.values() if format.suffix is None)
        raise ValueError(f"{path} is a folder without saved_model.pb: give a SavedModel folder or a model file.")
    suffix = path.suffix.lower()
    for format in FORMATS.values():
        if format.suffix is not None and suffix == format.suffix:
            return format
    if zipfile.is_zipfile(path):
        return FORMATS["keras"]
    readable = ", ".join(
        "a SavedModel folder" if format.suffix is None else f"a {format.suffix} file" for format in FORMATS.values()
    )
    raise ValueError(
        f"{path}: not a model file keras-alexnet reads. Give {readable} (what `keras-alexnet train` and `export` "
        "write)."
    )
